"""Core file names: systemd-coredump's fields one by one, kernel names, non-cores and hostile names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coredumps.corefiles import CoreName, is_temporary_name, parse_core_name

BOOT = "0123456789abcdef0123456789abcdef"


def systemd_name(
    comm: str = "milvus",
    uid: str = "0",
    boot: str = BOOT,
    pid: str = "1234",
    ts: str = "1700000000123456",
    suffix: str = ".zst",
) -> str:
    return f"core.{comm}.{uid}.{boot}.{pid}.{ts}{suffix}"


def test_the_issue_example_parses_into_every_field() -> None:
    name = r"core.milvus\x2dstandalone.0." + BOOT + ".1234.1700000000123456.zst"
    assert parse_core_name(name) == CoreName(
        kind="systemd",
        comm="milvus-standalone",
        uid=0,
        boot_id=BOOT,
        pid=1234,
        timestamp=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        compression="zst",
    )


@pytest.mark.parametrize(
    ("escaped", "comm"),
    [
        ("milvus", "milvus"),
        (r"milvus\x2dstandalone", "milvus-standalone"),
        (r"libc\x2eso", "libc.so"),
        (r"my\x20prog", "my prog"),
        (r"a\x2fb", "a/b"),
        (r"back\x5cslash", "back\\slash"),
        (r"milv\xc3\xbcs", "milvüs"),
        (r"\xe6\xb5\x8b\xe8\xaf\x95", "测试"),
        (r"bad\xffutf8", "bad\ufffdutf8"),
        (r"new\x0aline\x00nul\x1b", "newlinenul"),
        (r"MiXeD\x2Dcase", "MiXeD-case"),
        ("dots.in.comm", "dots.in.comm"),
        (r"\x2e\x2e", ".."),
    ],
)
def test_systemd_comm_is_unescaped(escaped: str, comm: str) -> None:
    parsed = parse_core_name(systemd_name(comm=escaped))
    assert parsed is not None and parsed.kind == "systemd"
    assert parsed.comm == comm
    assert (parsed.uid, parsed.boot_id, parsed.pid) == (0, BOOT, 1234)


@pytest.mark.parametrize("escaped", ["", r"\x0a"])
def test_systemd_empty_comm_is_none(escaped: str) -> None:
    parsed = parse_core_name(systemd_name(comm=escaped))
    assert parsed is not None and parsed.comm is None and parsed.pid == 1234


@pytest.mark.parametrize(("uid", "expected"), [("0", 0), ("1000", 1000), ("4294967295", 4294967295)])
def test_systemd_uid(uid: str, expected: int) -> None:
    parsed = parse_core_name(systemd_name(uid=uid))
    assert parsed is not None and parsed.uid == expected and parsed.pid == 1234


@pytest.mark.parametrize(
    ("boot", "expected"),
    [(BOOT, BOOT), ("f" * 32, "f" * 32), ("ABCDEF0123456789ABCDEF0123456789", "abcdef0123456789abcdef0123456789")],
)
def test_systemd_boot_id(boot: str, expected: str) -> None:
    parsed = parse_core_name(systemd_name(boot=boot))
    assert parsed is not None and parsed.boot_id == expected and parsed.uid == 0


@pytest.mark.parametrize("boot", ["0" * 31, "0" * 33, "g" * 32, "0123456789abcdef-0123456789abcde"])
def test_a_malformed_boot_id_is_not_a_systemd_name(boot: str) -> None:
    parsed = parse_core_name(systemd_name(boot=boot))
    assert parsed is None or parsed.kind != "systemd"


@pytest.mark.parametrize(("pid", "expected"), [("1", 1), ("1234", 1234), ("4194304", 4194304)])
def test_systemd_pid(pid: str, expected: int) -> None:
    parsed = parse_core_name(systemd_name(pid=pid))
    assert parsed is not None and parsed.pid == expected and parsed.uid == 0


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1700000000000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000123456", datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        ("1", datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("99999999999999999999", None),
    ],
)
def test_systemd_timestamp_is_microseconds_utc(ts: str, expected: datetime | None) -> None:
    parsed = parse_core_name(systemd_name(ts=ts))
    assert parsed is not None and parsed.kind == "systemd"
    assert parsed.timestamp == expected
    assert parsed.pid == 1234


@pytest.mark.parametrize(("suffix", "compression"), [(".zst", "zst"), (".lz4", "lz4"), (".xz", "xz"), ("", "none")])
def test_systemd_suffix_gives_compression(suffix: str, compression: str) -> None:
    parsed = parse_core_name(systemd_name(suffix=suffix))
    assert parsed is not None and parsed.compression == compression
    assert parsed.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "comm", "pid", "timestamp", "compression"),
    [
        ("core", None, None, None, "none"),
        ("core.zst", None, None, None, "zst"),
        ("core.1234", None, 1234, None, "none"),
        ("core.1234.lz4", None, 1234, None, "lz4"),
        ("core.milvus.1234", "milvus", 1234, None, "none"),
        ("core.milvus_crasher.1.xz", "milvus_crasher", 1, None, "xz"),
        ("core.milvus.1234.1700000000", "milvus", 1234, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "none"),
        ("core.lib.so.77", "lib.so", 77, None, "none"),
        ("core-milvus-1234-1700000000", "milvus", 1234, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "none"),
        (
            "core-milvus-standalone-9-1700000000",
            "milvus-standalone",
            9,
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            "none",
        ),
    ],
)
def test_kernel_names(
    name: str, comm: str | None, pid: int | None, timestamp: datetime | None, compression: str
) -> None:
    assert parse_core_name(name) == CoreName(
        kind="kernel", comm=comm, uid=None, boot_id=None, pid=pid, timestamp=timestamp, compression=compression
    )


@pytest.mark.parametrize(
    "name",
    [
        "",
        "core.",
        "core.txt",
        "core.milvus",
        "core..1234",
        "core.gz",
        systemd_name(suffix=".gz"),
        "Core.1234",
        "corefile",
        "coredump",
        "notes.md",
        "milvus.log",
        "core-milvus",
        ".#core.milvus.0." + BOOT + ".1234.1700000000123456.zst",
        ".#core.milvus\\x2dstandalone.0." + BOOT + ".1.2a1b2c3d4e5f6",
        "core.1234.tmp",
        "core.1234~",
        "core.milvus.1234.part",
    ],
)
def test_names_that_are_not_cores(name: str) -> None:
    assert parse_core_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "core.../../etc.1234",
        "../core.1234",
        "core.a/b.1234",
        "core.\x00.1234",
        "core." + "a" * 300 + ".1234",
        systemd_name(comm="a" * 250),
        "core.ü" * 40 + ".1",
    ],
)
def test_hostile_names_are_refused(name: str) -> None:
    assert parse_core_name(name) is None


@pytest.mark.parametrize(
    ("name", "comm"),
    [
        ("core.my prog.1234", "my prog"),
        ("core.evil\nname.1234", "evilname"),
        ("core.\x1b[31mred.1234", "[31mred"),
        ("core.\udcff.1234", "\ufffd"),
        ("core.....1234", "..."),
        ("core. .1234", None),
    ],
)
def test_hostile_kernel_comm_is_cleaned(name: str, comm: str | None) -> None:
    parsed = parse_core_name(name)
    assert parsed is not None and parsed.kind == "kernel"
    assert parsed.comm == comm and parsed.pid == 1234


def test_a_longest_valid_systemd_name_parses() -> None:
    name = systemd_name(comm=r"\x2d" * 15)
    assert len(name) <= 255
    parsed = parse_core_name(name)
    assert parsed is not None and parsed.comm == "-" * 15


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        (".#core.milvus.0." + BOOT + ".1234.1700000000123456.zst", True),
        (".#core4f2a9c", True),
        (".hidden", True),
        ("core.1234~", True),
        ("core.1234.tmp", True),
        ("core.1234.TMP", True),
        ("core.1234.part", True),
        (".core.1234.swp", True),
        ("core.1234.swp", True),
        ("core.1234", False),
        (systemd_name(), False),
        ("core", False),
        ("core.tmpfile.1234", False),
    ],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    assert is_temporary_name(name) is temporary
