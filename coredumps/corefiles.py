"""Core file names and file identity: what a name and an lstat() tell before the file is opened.

Recognised names (each optionally ending in ``.zst``, ``.lz4`` or ``.xz``):

    core.COMM.UID.BOOTID.PID.TIMESTAMP   systemd-coredump; COMM is escaped as ``\\xNN`` (dots, slashes,
                                         spaces, backslashes, control and non-ASCII bytes), BOOTID is
                                         32 hex digits, TIMESTAMP is microseconds since the epoch
    core                                 the kernel's default
    core.PID                             kernel.core_uses_pid=1
    core.COMM.PID.TIMESTAMP              a core_pattern of ``core.%e.%p.%t`` (TIMESTAMP in seconds)
    core.COMM.PID                        a core_pattern of ``core.%e.%p``
    core-COMM-PID-TIMESTAMP              a core_pattern of ``core-%e-%p-%t`` (TIMESTAMP in seconds)

Fields are taken from the right, so a COMM holding dots or dashes cannot shift them. Anything
else is not a core's name: ``core.txt``, ``core.``, ``core.milvus`` (no PID), names with a ``/``
or NUL, names longer than 255 bytes, and temporary names (see ``is_temporary_name``). COMM never
carries control characters: they are removed after unescaping. It may hold ``/`` or ``..`` once
unescaped, so never build a path from it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coredumps.config import CollectorConfig
from coredumps.inputs import stat_regular
from coredumps.units import format_size

NAME_MAX = 255
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SUFFIXES = {".zst": "zst", ".lz4": "lz4", ".xz": "xz"}
_TEMP_ENDINGS = ("~", ".tmp", ".part", ".swp")
_FLAGS = re.ASCII | re.DOTALL
_SYSTEMD = re.compile(
    r"core\.(?P<comm>.*)\.(?P<uid>[0-9]{1,10})\.(?P<boot>[0-9a-fA-F]{32})\.(?P<pid>[0-9]{1,10})\.(?P<us>[0-9]{1,20})",
    _FLAGS,
)
_KERNEL = (
    re.compile(r"core", _FLAGS),
    re.compile(r"core\.(?P<pid>[0-9]{1,10})", _FLAGS),
    re.compile(r"core\.(?P<comm>.+)\.(?P<pid>[0-9]{1,10})\.(?P<s>[0-9]{9,11})", _FLAGS),
    re.compile(r"core\.(?P<comm>.+)\.(?P<pid>[0-9]{1,10})", _FLAGS),
    re.compile(r"core-(?P<comm>.+)-(?P<pid>[0-9]{1,10})-(?P<s>[0-9]{9,11})", _FLAGS),
)
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CoreName:
    """What a core's file name says; fields the name does not carry are None."""

    kind: str
    comm: str | None
    uid: int | None
    boot_id: str | None
    pid: int | None
    timestamp: datetime | None
    compression: str


def clean_text(value: bytes | str, limit: int = 4096) -> str:
    """Untrusted text made safe to log and store: at most ``limit`` bytes, UTF-8, no control characters."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    text = raw[:limit].decode("utf-8", errors="replace")
    return _CONTROL.sub("", text).strip()


def datetime_from_us(microseconds: int) -> datetime | None:
    """UTC time from microseconds since the epoch; None when out of datetime's range."""
    try:
        return _EPOCH + timedelta(microseconds=microseconds)
    except OverflowError:
        return None


def unescape_comm(escaped: str) -> str:
    """systemd's ``\\xNN`` escapes undone, decoded as UTF-8 and cleaned."""
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), escaped.encode("utf-8", "surrogateescape"))
    return clean_text(raw, NAME_MAX)


def is_temporary_name(name: str) -> bool:
    """True for files still being written: systemd's ``.#core…`` and other hidden or editor/partial names."""
    return name.startswith(".") or name.lower().endswith(_TEMP_ENDINGS)


def parse_core_name(name: str) -> CoreName | None:
    """The facts in a core's file name, or None when the name is not a core's (see the module docstring)."""
    if (
        not name
        or "/" in name
        or "\x00" in name
        or len(name.encode("utf-8", "surrogateescape")) > NAME_MAX
        or is_temporary_name(name)
    ):
        return None
    stem, compression = name, "none"
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            stem, compression = name[: -len(suffix)], kind
            break
    match = _SYSTEMD.fullmatch(stem)
    if match:
        return CoreName(
            kind="systemd",
            comm=unescape_comm(match["comm"]) or None,
            uid=int(match["uid"]),
            boot_id=match["boot"].lower(),
            pid=int(match["pid"]),
            timestamp=datetime_from_us(int(match["us"])),
            compression=compression,
        )
    for pattern in _KERNEL:
        match = pattern.fullmatch(stem)
        if match:
            fields = match.groupdict()
            comm = clean_text(fields["comm"], NAME_MAX) if fields.get("comm") else None
            seconds = fields.get("s")
            return CoreName(
                kind="kernel",
                comm=comm or None,
                uid=None,
                boot_id=None,
                pid=int(fields["pid"]) if fields.get("pid") else None,
                timestamp=datetime_from_us(int(seconds) * 1_000_000) if seconds else None,
                compression=compression,
            )
    return None


@dataclass(frozen=True)
class FileIdentity:
    """Which file, on which node, in which state: the same key means the same bytes were seen."""

    node: str
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def from_stat(cls, node: str, st: os.stat_result) -> FileIdentity:
        return cls(node=node, device=st.st_dev, inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)

    def key(self) -> str:
        """A stable idempotency key of at most 255 characters (a long node name is replaced by its hash)."""
        tail = f"{self.device}:{self.inode}:{self.size}:{self.mtime_ns}"
        key = f"{self.node}:{tail}"
        if len(key) <= NAME_MAX:
            return key
        digest = hashlib.sha256(self.node.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return f"sha256-{digest}:{tail}"


def identify(path: Path, node: str) -> FileIdentity:
    """The identity of a regular file from lstat(); a symlink, directory, FIFO or missing file is BadInputError."""
    return FileIdentity.from_stat(node, stat_regular(path, follow_symlinks=False))


def inside_folder(path: Path, folder: Path) -> bool:
    """True when ``path`` lies inside ``folder`` once '..' and symlinked parents are resolved.

    The last component of ``path`` is not followed, so a symlink inside the folder counts as inside
    (``identify`` refuses it later); the folder itself is not inside itself.
    """
    root = os.path.realpath(folder)
    if path.name in {"", ".", ".."}:
        target = os.path.realpath(path)
    else:
        target = os.path.join(os.path.realpath(path.parent), path.name)
    return os.path.commonpath([root, target]) == root and target != root


def _format_duration(seconds: float) -> str:
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def skip_reason(
    path: Path, st: os.stat_result, now: float, collector: CollectorConfig, ignore_patterns: list[str]
) -> str | None:
    """Why a finished core is not processed, or None to process it.

    A maxFileAge or maxFileSize of 0 means no limit. ignorePatterns entries match as substrings of
    the file name or of the COMM the name carries (unescaped); empty entries are ignored.
    """
    age = now - st.st_mtime
    if collector.max_file_age > 0 and age > collector.max_file_age:
        return f"older than maxFileAge ({_format_duration(age)} > {_format_duration(collector.max_file_age)})"
    if collector.max_file_size > 0 and st.st_size > collector.max_file_size:
        size, limit = format_size(st.st_size), format_size(collector.max_file_size)
        if size == limit:
            size, limit = f"{st.st_size} B", f"{collector.max_file_size} B"
        return f"larger than maxFileSize ({size} > {limit})"
    parsed = parse_core_name(path.name)
    candidates = [path.name] + ([parsed.comm] if parsed and parsed.comm else [])
    for pattern in ignore_patterns:
        if pattern and any(pattern in text for text in candidates):
            return f'matches ignorePatterns entry "{clean_text(pattern, 200)}"'
    return None
