"""Finding finished cores in collector.coredumpPath.

A file is finished when it was closed after writing (inotify's close-write),
renamed into the folder (systemd-coredump writes a hidden temporary and renames
it), or its size and mtime stayed the same for collector.stableFor (filesystems
without events, such as NFS, and files found by the sweep). Symlinks,
non-regular files, temporary names and anything outside the folder are ignored.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from coredumps.corefiles import inside_folder, is_temporary_name
from coredumps.inputs import shown

log = logging.getLogger(__name__)
Finished = Callable[[Path], None]


def candidate(path: Path, folder: Path) -> os.stat_result | None:
    """lstat of a file worth looking at, or None (symlink, not regular, temporary, outside)."""
    if is_temporary_name(path.name) or not inside_folder(path, folder) or path.parent != folder:
        return None
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st


class Tracker:
    """Files seen but not yet finished, checked for a stable size."""

    def __init__(self, folder: Path, stable_for: float, on_finished: Finished) -> None:
        self.folder = folder
        self.stable_for = stable_for
        self.on_finished = on_finished
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[int, int, float]] = {}

    def finished(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)
        if candidate(path, self.folder) is not None:
            self._take(path)

    def _take(self, path: Path) -> None:
        """Hand a finished file on; an error with one file never stops the watch, the sweep or the others."""
        try:
            self.on_finished(path)
        except Exception as exc:
            log.error("could not take %s (%s: %s); it is looked at again at the next sweep", shown(path),
                      type(exc).__name__, exc)

    def touch(self, path: Path) -> None:
        st = candidate(path, self.folder)
        if st is None:
            return
        with self._lock:
            previous = self._seen.get(path)
            if previous is None or previous[:2] != (st.st_size, st.st_mtime_ns):
                self._seen[path] = (st.st_size, st.st_mtime_ns, time.monotonic())

    def forget(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)

    def check_stable(self) -> None:
        """Hand over tracked files whose size has not changed for stable_for seconds."""
        now = time.monotonic()
        ready = []
        with self._lock:
            for path, (size, mtime_ns, since) in list(self._seen.items()):
                st = candidate(path, self.folder)
                if st is None:
                    del self._seen[path]
                elif (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                    self._seen[path] = (st.st_size, st.st_mtime_ns, now)
                elif now - since >= self.stable_for and time.time() - st.st_mtime >= self.stable_for:
                    del self._seen[path]
                    ready.append(path)
        for path in ready:
            self._take(path)

    def sweep(self, is_known: Callable[[Path, os.stat_result], bool]) -> int:
        """Look at every file in the folder (at start and every watchInterval); returns files tracked."""
        tracked = 0
        try:
            entries = list(os.scandir(self.folder))
        except OSError as exc:
            log.warning("cannot list %s: %s", self.folder, exc)
            return 0
        for entry in entries:
            path = Path(entry.path)
            st = candidate(path, self.folder)
            if st is None or is_known(path, st):
                continue
            if time.time() - st.st_mtime >= self.stable_for:
                self.finished(path)
            else:
                self.touch(path)
                tracked += 1
        return tracked


class _Handler(FileSystemEventHandler):
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        try:
            if isinstance(event, FileClosedEvent):
                self.tracker.finished(Path(os.fsdecode(event.src_path)))
            elif isinstance(event, FileMovedEvent):
                self.tracker.forget(Path(os.fsdecode(event.src_path)))
                self.tracker.finished(Path(os.fsdecode(event.dest_path)))
            elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
                self.tracker.touch(Path(os.fsdecode(event.src_path)))
        except Exception:  # a bad event must never stop the watcher
            log.exception("error handling %s", event)


def start_observer(tracker: Tracker) -> Observer:  # type: ignore[valid-type]
    """Start watchdog on the tracker's folder (not recursive: systemd-coredump's folder is flat)."""
    observer = Observer()
    observer.schedule(_Handler(tracker), str(tracker.folder), recursive=False)
    observer.daemon = True
    observer.start()
    return observer
