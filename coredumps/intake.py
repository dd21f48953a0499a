"""Identify a core file: identity key, name and xattr facts, compression, and whether to skip it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from coredumps.config import Config
from coredumps.corefiles import identify, parse_core_name, skip_reason
from coredumps.inputs import detect_compression
from coredumps.records import FileFacts
from coredumps.xattrs import read_xattrs


def identify_file(path: Path, node: str, cfg: Config) -> tuple[FileFacts, str | None]:
    """The file's facts and the reason to skip it (maxFileAge, maxFileSize, ignorePatterns), if any."""
    identity = identify(path, node)
    st = path.lstat()
    name = parse_core_name(path.name)
    attrs = read_xattrs(path)
    compression = detect_compression(path) if st.st_size else "none"
    mtime = datetime.fromtimestamp(st.st_mtime, tz=UTC)
    facts = FileFacts(
        idempotency_key=identity.key(),
        node_name=node,
        path=str(path.absolute()),
        file_name=path.name[:255],
        size_bytes=st.st_size,
        mtime=mtime,
        inode=st.st_ino,
        input_compression=compression,
        comm=(attrs.comm or (name.comm if name else None) or None),
        pid=attrs.pid if attrs.pid is not None else (name.pid if name else None),
        uid=attrs.uid if attrs.uid is not None else (name.uid if name else None),
        crash_time=attrs.timestamp or (name.timestamp if name else None) or mtime,
        executable=attrs.exe,
    )
    reason = skip_reason(path, st, time.time(), cfg.collector, cfg.analyzer.ignore_patterns)
    if reason is None and attrs.exe:
        for pattern in cfg.analyzer.ignore_patterns:
            if pattern and pattern in attrs.exe:
                reason = f'executable matches ignorePatterns entry "{pattern}"'
                break
    return facts, reason
