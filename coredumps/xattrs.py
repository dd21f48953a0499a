"""systemd-coredump's ``user.coredump.*`` extended attributes of a core file.

systemd-coredump stores the crash's metadata beside the file: pid, uid, gid, signal,
timestamp (microseconds), rlimit, hostname, comm and exe. They are hints, not facts: a
filesystem without user xattrs, a file written by the kernel directly or a hostile value all
end in fields that are None, never in an error. Values are read without following symlinks,
cut to ``limit`` bytes, decoded with replacement and stripped of NULs and control characters.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from coredumps.corefiles import clean_text, datetime_from_us

log = logging.getLogger(__name__)

PREFIX = "user.coredump."
MAX_VALUE = 4096
MAX_ATTRIBUTES = 64
_QUIET_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.ENOENT, errno.EACCES, errno.EPERM}
_NUMBER = re.compile(r"[0-9]{1,20}", re.ASCII)


@dataclass(frozen=True)
class CoreXattrs:
    """The parsed attributes (None when absent or invalid) and ``raw``: every cleaned value by short name."""

    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    signal: int | None = None
    timestamp: datetime | None = None
    rlimit: int | None = None
    hostname: str | None = None
    comm: str | None = None
    exe: str | None = None
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def signal_name(self) -> str | None:
        """'SIGSEGV' for 11, or None when the signal is absent or unknown."""
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return None


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and _NUMBER.fullmatch(value) else None


def _read_raw(path: Path, limit: int) -> dict[str, str]:
    if not hasattr(os, "listxattr"):
        return {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        level = logging.DEBUG if exc.errno in _QUIET_ERRNOS else logging.INFO
        log.log(level, "no coredump xattrs on %s: %s", path, exc.strerror or exc)
        return {}
    raw: dict[str, str] = {}
    for name in [n for n in names if n.startswith(PREFIX)][:MAX_ATTRIBUTES]:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            log.debug("xattr %s of %s unreadable: %s", name, path, exc.strerror or exc)
            continue
        raw[clean_text(name[len(PREFIX) :], 64)] = clean_text(value, limit)
    return raw


def read_xattrs(path: Path, *, limit: int = MAX_VALUE) -> CoreXattrs:
    """The ``user.coredump.*`` attributes of ``path``; an empty ``CoreXattrs`` when there are none."""
    raw = _read_raw(path, limit)
    if not raw:
        return CoreXattrs()
    microseconds = _number(raw.get("timestamp"))
    return CoreXattrs(
        pid=_number(raw.get("pid")),
        uid=_number(raw.get("uid")),
        gid=_number(raw.get("gid")),
        signal=_number(raw.get("signal")),
        timestamp=datetime_from_us(microseconds) if microseconds is not None else None,
        rlimit=_number(raw.get("rlimit")),
        hostname=raw.get("hostname") or None,
        comm=raw.get("comm") or None,
        exe=raw.get("exe") or None,
        raw=raw,
    )
