"""systemd-coredump's user.coredump.* attributes, written with os.setxattr on real files."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coredumps.xattrs import MAX_VALUE, CoreXattrs, read_xattrs

SYSTEMD_VALUES = {
    "pid": b"1234",
    "uid": b"1000",
    "gid": b"1000",
    "signal": b"11",
    "timestamp": b"1700000000123456",
    "rlimit": b"18446744073709551615",
    "hostname": b"milvus-standalone-7c9d",
    "comm": b"milvus",
    "exe": b"/milvus/bin/milvus",
}


@pytest.fixture
def core(tmp_path: Path) -> Path:
    path = tmp_path / "core.milvus.1234"
    path.write_bytes(b"\x7fELF")
    try:
        os.setxattr(path, "user.probe", b"1")
    except OSError as exc:
        pytest.skip(f"{tmp_path} does not support user xattrs: {exc.strerror}")
    os.removexattr(path, "user.probe")
    return path


def set_attrs(path: Path, values: dict[str, bytes]) -> None:
    for key, value in values.items():
        os.setxattr(path, f"user.coredump.{key}", value)


def set_largest(path: Path, name: str, value: bytes) -> int:
    """Writes the longest prefix of value the filesystem accepts (Linux caps xattr values at 64 KiB)."""
    size = len(value)
    while size > 0:
        try:
            os.setxattr(path, name, value[:size])
            return size
        except OSError as exc:
            if exc.errno not in {errno.E2BIG, errno.ENOSPC, errno.ERANGE}:
                raise
            size //= 2
    raise AssertionError("the filesystem accepted no value at all")


def test_systemd_attributes_are_parsed(core: Path) -> None:
    set_attrs(core, SYSTEMD_VALUES)
    attrs = read_xattrs(core)
    assert (attrs.pid, attrs.uid, attrs.gid, attrs.signal) == (1234, 1000, 1000, 11)
    assert attrs.signal_name == "SIGSEGV"
    assert attrs.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert attrs.rlimit == 18446744073709551615
    assert (attrs.hostname, attrs.comm, attrs.exe) == ("milvus-standalone-7c9d", "milvus", "/milvus/bin/milvus")
    assert attrs.raw == {key: value.decode() for key, value in SYSTEMD_VALUES.items()}


def test_other_user_attributes_are_ignored(core: Path) -> None:
    os.setxattr(core, "user.mime_type", b"application/x-core")
    os.setxattr(core, "user.coredump.pid", b"7")
    attrs = read_xattrs(core)
    assert attrs.raw == {"pid": "7"} and attrs.pid == 7


def test_a_file_without_attributes_gives_an_empty_result(core: Path) -> None:
    assert read_xattrs(core) == CoreXattrs()


def test_a_filesystem_without_user_xattrs_gives_an_empty_result() -> None:
    assert read_xattrs(Path("/proc/self/status")) == CoreXattrs()


def test_a_missing_file_gives_an_empty_result(tmp_path: Path) -> None:
    assert read_xattrs(tmp_path / "gone") == CoreXattrs()


def test_a_symlink_is_not_followed(core: Path, tmp_path: Path) -> None:
    set_attrs(core, SYSTEMD_VALUES)
    link = tmp_path / "link"
    link.symlink_to(core)
    assert read_xattrs(link) == CoreXattrs()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pid", b"12abc"),
        ("pid", b"-1"),
        ("pid", b""),
        ("pid", b"\xd9\xa1\xd9\xa2"),
        ("uid", b"1" * 30),
        ("signal", b"eleven"),
        ("timestamp", b"99999999999999999999"),
        ("timestamp", b"1.5"),
    ],
)
def test_invalid_numbers_are_none(core: Path, key: str, value: bytes) -> None:
    set_attrs(core, {key: value})
    assert getattr(read_xattrs(core), key) is None


def test_hostile_values_are_bounded_and_cleaned(core: Path) -> None:
    set_attrs(
        core,
        {
            "comm": b"evil\nname\r\x00\x1b[0m",
            "exe": b"/usr/bin/\xff\xfeprog\x00",
            "signal": b"6",
        },
    )
    written = set_largest(core, "user.coredump.hostname", b"h\n" * 50_000)
    attrs = read_xattrs(core)
    assert attrs.comm == "evilname[0m"
    assert attrs.exe == "/usr/bin/\ufffd\ufffdprog"
    assert attrs.signal == 6 and attrs.signal_name == "SIGABRT"
    assert attrs.hostname is not None
    assert attrs.hostname == "h" * ((min(written, MAX_VALUE) + 1) // 2)
    assert all(value.isprintable() for value in attrs.raw.values())


def test_the_value_limit_cuts_long_values(core: Path) -> None:
    set_attrs(core, {"exe": b"/" + b"x" * 500})
    assert read_xattrs(core, limit=16).exe == "/" + "x" * 15


def test_an_unknown_signal_has_no_name(core: Path) -> None:
    set_attrs(core, {"signal": b"99"})
    attrs = read_xattrs(core)
    assert attrs.signal == 99 and attrs.signal_name is None
