"""The journal's coredump entry, read through a real executable that stands in for journalctl."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coredumps.journal import (
    COREDUMP_MESSAGE_ID,
    JournalEntry,
    container_id_from_cgroup,
    host_path_for,
    journal_entry,
    parse_entry,
    pod_uid_from_cgroup,
)

POD_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CONTAINER = "3b1f" + "a" * 56 + "9c0d"
CGROUP = (
    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
    + POD_UID.replace("-", "_")
    + f".slice/cri-containerd-{CONTAINER}.scope"
)
HOST_PATH = "/var/lib/systemd/coredump/core.milvus.0." + "0" * 32 + ".1234.1700000000123456.zst"
RECORD = {
    "__CURSOR": "s=abc;i=1",
    "MESSAGE_ID": COREDUMP_MESSAGE_ID,
    "MESSAGE": "Process 1234 (milvus) of user 0 dumped core.",
    "COREDUMP_PID": "1234",
    "COREDUMP_UID": "0",
    "COREDUMP_SIGNAL": "11",
    "COREDUMP_TIMESTAMP": "1700000000123456",
    "COREDUMP_COMM": "milvus",
    "COREDUMP_EXE": "/milvus/bin/milvus",
    "COREDUMP_HOSTNAME": "milvus-standalone-7c9d",
    "COREDUMP_CGROUP": CGROUP,
    "COREDUMP_CONTAINER_CMDLINE": list(b"/milvus/bin/milvus run standalone\x01\n"),
    "COREDUMP_FILENAME": HOST_PATH,
    "COREDUMP": None,
}


def fake_journalctl(tmp_path: Path, body: str) -> tuple[str, Path]:
    """An executable named journalctl that records its arguments, then runs body."""
    args = tmp_path / "args.txt"
    script = tmp_path / "bin" / "journalctl"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{args}'\n{body}\n")
    script.chmod(0o755)
    return str(script), args


def printing(tmp_path: Path, *lines: str, then: str = "") -> str:
    output = tmp_path / "recorded.json"
    output.write_text("".join(line + "\n" for line in lines))
    return f"cat '{output}'\n{then}"


def test_the_entry_is_read_from_journalctl(tmp_path: Path) -> None:
    journalctl, args = fake_journalctl(tmp_path, printing(tmp_path, json.dumps(RECORD)))
    entry = journal_entry(HOST_PATH, journalctl=journalctl)
    assert entry == JournalEntry(
        hostname="milvus-standalone-7c9d",
        cgroup=CGROUP,
        container_cmdline="/milvus/bin/milvus run standalone",
        exe="/milvus/bin/milvus",
        signal=11,
        pid=1234,
        uid=0,
        timestamp=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        comm="milvus",
    )
    assert entry.pod_uid == POD_UID and entry.container_id == CONTAINER
    assert args.read_text().splitlines() == [
        "-o",
        "json",
        "--no-pager",
        "-n",
        "1",
        f"MESSAGE_ID={COREDUMP_MESSAGE_ID}",
        f"COREDUMP_FILENAME={HOST_PATH}",
    ]


def test_binary_fields_and_repeated_values_are_decoded() -> None:
    entry = parse_entry(
        {
            "COREDUMP_COMM": list(b"milv\xffus\x00"),
            "COREDUMP_EXE": ["/first", "/second"],
            "COREDUMP_HOSTNAME": [list(b"host\x07"), "other"],
            "COREDUMP_PID": list(b"42"),
            "COREDUMP_SIGNAL": "not a number",
            "COREDUMP_CGROUP": None,
            "COREDUMP_UID": {"nested": 1},
            "COREDUMP_TIMESTAMP": 1700000000123456,
        }
    )
    assert entry.comm == "milv\ufffdus"
    assert entry.exe == "/first"
    assert entry.hostname == "host"
    assert entry.pid == 42
    assert entry.signal is None and entry.cgroup is None and entry.uid is None
    assert entry.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert entry.pod_uid is None and entry.container_id is None


def test_an_entry_without_coredump_fields_is_all_none() -> None:
    assert parse_entry({"MESSAGE": "hello"}) == JournalEntry(*([None] * 9))


def test_the_last_json_line_wins_and_garbage_lines_are_skipped(tmp_path: Path) -> None:
    older = {**RECORD, "COREDUMP_PID": "1"}
    body = printing(tmp_path, json.dumps(older), "-- garbage --", json.dumps(RECORD), "[1, 2]")
    journalctl, _ = fake_journalctl(tmp_path, body)
    entry = journal_entry(HOST_PATH, journalctl=journalctl)
    assert entry is not None and entry.pid == 1234


def test_no_matching_entry_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, "exit 0")
    assert journal_entry(HOST_PATH, journalctl=journalctl) is None


def test_a_missing_journalctl_gives_none(tmp_path: Path) -> None:
    assert journal_entry(HOST_PATH, journalctl=str(tmp_path / "no-such-journalctl")) is None


def test_a_journalctl_that_is_not_executable_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, "exit 0")
    Path(journalctl).chmod(0o644)
    assert journal_entry(HOST_PATH, journalctl=journalctl) is None


def test_a_failing_journalctl_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, printing(tmp_path, json.dumps(RECORD), then="exit 1"))
    assert journal_entry(HOST_PATH, journalctl=journalctl) is None


def test_garbage_output_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, printing(tmp_path, "Failed to open journal: \x00\xff{{{", '"a string"'))
    assert journal_entry(HOST_PATH, journalctl=journalctl) is None


def test_a_hanging_journalctl_is_stopped_and_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, "exec sleep 60")
    assert journal_entry(HOST_PATH, journalctl=journalctl, timeout=0.5) is None


def test_a_journalctl_that_prints_then_hangs_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, printing(tmp_path, json.dumps(RECORD), then="sleep 60"))
    assert journal_entry(HOST_PATH, journalctl=journalctl, timeout=0.5) is None


def test_endless_output_is_cut_off_and_gives_none(tmp_path: Path) -> None:
    journalctl, _ = fake_journalctl(tmp_path, f"exec yes '{json.dumps(RECORD)}'")
    assert journal_entry(HOST_PATH, journalctl=journalctl, timeout=30) is None


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is not installed")
def test_the_real_journalctl_has_no_entry_for_an_unknown_file() -> None:
    assert journal_entry("/nonexistent/core.unknown.0." + "f" * 32 + ".1.2.zst") is None


@pytest.mark.parametrize(
    ("path", "coredump_path", "host_coredump_path", "expected"),
    [
        (
            "/host/var/lib/systemd/coredump/core.x",
            "/host/var/lib/systemd/coredump",
            "/var/lib/systemd/coredump",
            "/var/lib/systemd/coredump/core.x",
        ),
        (
            "/host/var/lib/systemd/coredump/core.x",
            "/host/var/lib/systemd/coredump/",
            "/var/lib/systemd/coredump/",
            "/var/lib/systemd/coredump/core.x",
        ),
        (
            "/var/lib/systemd/coredump/core.x",
            "/var/lib/systemd/coredump",
            "/var/lib/systemd/coredump",
            "/var/lib/systemd/coredump/core.x",
        ),
        ("/host/cores/sub/core.x", "/host/cores", "/cores", "/cores/sub/core.x"),
        ("/host/cores-evil/core.x", "/host/cores", "/cores", "/host/cores-evil/core.x"),
        ("/host/cores/../etc/passwd", "/host/cores", "/cores", "/host/etc/passwd"),
        ("/host/cores", "/host/cores", "/cores", "/host/cores"),
        ("/elsewhere/core.x", "/host/cores", "/cores", "/elsewhere/core.x"),
        ("/core.x", "/", "/host", "/host/core.x"),
    ],
)
def test_host_path_for(path: str, coredump_path: str, host_coredump_path: str, expected: str) -> None:
    assert host_path_for(path, coredump_path, host_coredump_path) == expected
    assert host_path_for(Path(path), coredump_path, host_coredump_path) == expected


STATIC_UID = "5c3e5b1b9a1e6f3f0a7b8c9d0e1f2a3b"
U = POD_UID.replace("-", "_")


@pytest.mark.parametrize(
    ("cgroup", "pod_uid", "container_id"),
    [
        (f"/kubepods/burstable/pod{POD_UID}/{CONTAINER}", POD_UID, CONTAINER),
        (f"/kubepods/besteffort/pod{POD_UID}/{CONTAINER}", POD_UID, CONTAINER),
        (f"/kubepods/pod{POD_UID}/{CONTAINER}", POD_UID, CONTAINER),
        (f"/kubepods/burstable/pod{POD_UID}", POD_UID, None),
        (f"/kubepods/burstable/pod{POD_UID}/", POD_UID, None),
        (CGROUP, POD_UID, CONTAINER),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{U}.slice/docker-{CONTAINER}.scope",
            POD_UID,
            CONTAINER,
        ),
        (f"/kubepods.slice/kubepods-pod{U}.slice/crio-{CONTAINER}.scope", POD_UID, CONTAINER),
        (f"/kubepods.slice/kubepods-pod{U}.slice/crio-conmon-{CONTAINER}.scope", POD_UID, None),
        (
            f"/system.slice/containerd.service/kubepods-burstable-pod{U}.slice:cri-containerd:{CONTAINER}",
            POD_UID,
            CONTAINER,
        ),
        (f"/kubepods/burstable/pod{STATIC_UID}/{CONTAINER}", STATIC_UID, CONTAINER),
        (f"/docker/{CONTAINER}", None, CONTAINER),
        ("/system.slice/sshd.service", None, None),
        ("/user.slice/user-1000.slice/session-3.scope", None, None),
        ("/kubepods/burstable/podNOT-A-UID/abc", None, None),
        (f"/kubepods/burstable/pod{POD_UID}x/{CONTAINER}x", None, None),
        ("", None, None),
        ("/", None, None),
    ],
)
def test_cgroup_paths(cgroup: str, pod_uid: str | None, container_id: str | None) -> None:
    assert pod_uid_from_cgroup(cgroup) == pod_uid
    assert container_id_from_cgroup(cgroup) == container_id
