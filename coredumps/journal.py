"""The journal's record of a core dump, and the pod and container named in its cgroup.

systemd-coredump logs every dump with MESSAGE_ID fc2e22bc6ee647b6b90729ab34a250b1 and the
core's host path in COREDUMP_FILENAME. ``journal_entry`` asks ``journalctl`` for the latest such
entry under a time limit and an output limit; any failure (no journalctl, a non-zero exit, bad
JSON, a timeout) is logged at debug level and gives None. The agent sees the core folder at
``collector.coredumpPath`` while the journal names it by ``collector.hostCoredumpPath``:
``host_path_for`` maps one to the other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from coredumps.corefiles import clean_text, datetime_from_us

log = logging.getLogger(__name__)

COREDUMP_MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
MAX_OUTPUT = 1 << 20
MAX_FIELD = 4096
_NUMBER = re.compile(r"[0-9]{1,20}", re.ASCII)
_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
_POD = re.compile(rf"(?:^|[/\-])pod({_UID})(?=\.slice|/|:|$)")
_CONTAINER = re.compile(r"(?:^|[/\-:])([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True)
class JournalEntry:
    """The COREDUMP_* fields of one journal entry; None where the entry lacks a field."""

    hostname: str | None
    cgroup: str | None
    container_cmdline: str | None
    exe: str | None
    signal: int | None
    pid: int | None
    uid: int | None
    timestamp: datetime | None
    comm: str | None

    @property
    def pod_uid(self) -> str | None:
        return pod_uid_from_cgroup(self.cgroup) if self.cgroup else None

    @property
    def container_id(self) -> str | None:
        return container_id_from_cgroup(self.cgroup) if self.cgroup else None


def host_path_for(path: Path | str, coredump_path: str, host_coredump_path: str) -> str:
    """The host's name for ``path``: its place under coredump_path moved to host_coredump_path.

    The mapping is lexical (the host path need not exist here); a path outside coredump_path
    is returned normalised but otherwise unchanged.
    """
    local = posixpath.normpath(str(path))
    root = posixpath.normpath(coredump_path)
    if local == root or not local.startswith(root.rstrip("/") + "/"):
        return local
    return posixpath.join(posixpath.normpath(host_coredump_path), local[len(root.rstrip("/")) + 1 :])


def pod_uid_from_cgroup(cgroup: str) -> str | None:
    """The pod UID (with dashes) in a kubelet cgroup path, cgroupfs or systemd driver; None if absent."""
    matches = _POD.findall(cgroup[:MAX_FIELD])
    return matches[-1].replace("_", "-") if matches else None


def container_id_from_cgroup(cgroup: str) -> str | None:
    """The 64-hex container ID ending a cgroup path (``<id>``, ``cri-containerd-<id>.scope``, ...)."""
    last = cgroup[:MAX_FIELD].rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("crio-conmon-"):
        return None
    match = _CONTAINER.search(last)
    return match.group(1) if match else None


def _text(value: Any) -> str | None:
    """A journal JSON value as clean text: strings, numbers, byte arrays, the first of repeated values."""
    if isinstance(value, list):
        if not (value and all(isinstance(b, int) and 0 <= b <= 255 for b in value)):
            return next((text for text in map(_text, value) if text), None)
        value = bytes(value[:MAX_FIELD])
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, (str, bytes)):
        return clean_text(value, MAX_FIELD) or None
    return None


def _number(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text is not None and _NUMBER.fullmatch(text) else None


def parse_entry(record: dict[str, Any]) -> JournalEntry:
    """A JournalEntry from one decoded ``journalctl -o json`` object."""
    microseconds = _number(record.get("COREDUMP_TIMESTAMP"))
    return JournalEntry(
        hostname=_text(record.get("COREDUMP_HOSTNAME")),
        cgroup=_text(record.get("COREDUMP_CGROUP")),
        container_cmdline=_text(record.get("COREDUMP_CONTAINER_CMDLINE")),
        exe=_text(record.get("COREDUMP_EXE")),
        signal=_number(record.get("COREDUMP_SIGNAL")),
        pid=_number(record.get("COREDUMP_PID")),
        uid=_number(record.get("COREDUMP_UID")),
        timestamp=datetime_from_us(microseconds) if microseconds is not None else None,
        comm=_text(record.get("COREDUMP_COMM")),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run(argv: list[str], timeout: float, limit: int) -> bytes | None:
    """stdout of argv when it exits 0 within timeout having printed at most limit bytes, else None."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        log.debug("cannot run %s: %s", argv[0], exc.strerror or exc)
        return None
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.debug("%s ran past %.1fs and was stopped", argv[0], timeout)
                    return None
                if not selector.select(remaining):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    log.debug("%s printed more than %d bytes; ignored", argv[0], limit)
                    return None
                chunks.append(chunk)
        code = proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        log.debug("%s did not exit within %.1fs and was stopped", argv[0], timeout)
        return None
    finally:
        _stop(proc)
        proc.stdout.close()
    if code != 0:
        log.debug("%s exited with %d", argv[0], code)
        return None
    return b"".join(chunks)


def journal_entry(host_path: str, *, journalctl: str = "journalctl", timeout: float = 5.0) -> JournalEntry | None:
    """The latest systemd-coredump journal entry for ``host_path``, or None when there is none or no journal."""
    argv = [
        journalctl, "-o", "json", "--no-pager", "-n", "1",
        f"MESSAGE_ID={COREDUMP_MESSAGE_ID}", f"COREDUMP_FILENAME={host_path}",
    ]
    output = _run(argv, timeout, MAX_OUTPUT)
    if not output:
        return None
    record: dict[str, Any] | None = None
    for line in output.splitlines():
        try:
            decoded = json.loads(line)
        except ValueError:
            continue
        if isinstance(decoded, dict):
            record = decoded
    if record is None:
        log.debug("%s printed no JSON entry for %s", journalctl, host_path)
        return None
    return parse_entry(record)
