"""Node-local slots: at most N holders at once across every process on this node.

Each slot is a lock file held with flock(); the kernel releases it when its
holder exits, so a killed flow run never leaks a slot. Used to bound GDB runs
per node (analyzer.maxConcurrentAnalyses) so that a crash loop cannot starve
the Milvus pods sharing the node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from coredumps.errors import TransientError

POLL_SECONDS = 0.05


class SlotTimeoutError(TransientError):
    """No slot became free in time."""


@contextlib.contextmanager
def node_slot(folder: Path, name: str, slots: int, timeout: float) -> Iterator[int]:
    """Hold one of ``slots`` slots named ``name``; yields the slot number."""
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for number in range(slots):
            fd = os.open(folder / f"{name}.{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield number
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() >= deadline:
            raise SlotTimeoutError(f"no free {name} slot of {slots} within {timeout:g}s; the node is busy")
        time.sleep(POLL_SECONDS)
