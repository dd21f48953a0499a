"""Local-disk and NFS backends: one folder per instance under a root folder.

Every file is written under a temporary dot-name in its final folder (mode
0640: a core holds process memory), fsync'd, verified by reading it back, then
renamed into place, and the folder is fsync'd; a failure leaves no partial
file behind. The read-back and the write-back to disk run in a second thread
while the file is still being written, so they add little to the store's time. The NFS backend never creates
its root: a missing mount must not turn into writes to the node's own disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from coredumps.compression import COPY_CHUNK, SUFFIXES, compress_file
from coredumps.errors import CoredumpError, StorageRejectedError, StorageUnavailableError
from coredumps.inputs import check_regular_file
from coredumps.storage.base import (
    ObjectInfo,
    StoredObject,
    StoreRequest,
    candidate_stems,
    instance_folder,
    is_core_name,
    is_leftover_name,
    new_record,
    same_source,
    sidecar_document,
    sidecar_name_for,
    stored_record,
)

TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.ENOLCK,
        errno.ENOENT,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
    }
)
"""Errors a retry can get past: a full disk that retention frees, an NFS server that comes back."""
FILE_MODE = 0o640
FOLDER_MODE = 0o750


def sha256_of(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


SYNC_EVERY = 32 << 20
"""Bytes written between two flushes to disk while a file is being written, so that the final fsync is short."""
READ_BACK_QUEUE = 16
"""Writes not yet read back that may wait in memory; the writer waits beyond that (memory stays bounded)."""


class _ReadBack:
    """Writes to a file while a second thread reads back each write and compares it byte for byte.

    The thread hashes what it read back (the sha256 recorded is that of the stored bytes) and,
    every SYNC_EVERY bytes (when ``sync``), asks a third thread to flush the file to disk, so that
    the fsync at the end finds little left to write while the hashing goes on meanwhile.
    ``finish`` waits for both and returns the size and sha256.
    """

    def __init__(self, out: BinaryIO, sync: bool) -> None:
        self._out = out
        self._fd = out.fileno()
        self._sync = sync
        self._written = 0
        self._writes: queue.Queue[tuple[int, bytes] | None] = queue.Queue(READ_BACK_QUEUE)
        self._result: tuple[int, str] | BaseException | None = None
        self._dirty = threading.Event()
        self._closing = False
        self._sync_error: OSError | None = None
        self._syncer = threading.Thread(target=self._flush, name="store-flush", daemon=True)
        if sync:
            self._syncer.start()
        self._thread = threading.Thread(target=self._run, name="store-read-back", daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        """Flush the file to disk each time the read-back asks, until it is done."""
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self._closing:
                return
            try:
                os.fdatasync(self._fd)
            except OSError as exc:  # raised by finish; the final fsync would meet it too
                self._sync_error = exc
                return

    def _stop_flushing(self) -> None:
        self._closing = True
        self._dirty.set()
        if self._syncer.is_alive():
            self._syncer.join()

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if isinstance(self._result, BaseException):  # the read-back failed: stop writing now
            raise self._result
        chunk = data if isinstance(data, bytes) else bytes(data)  # kept until read back: never a reused buffer
        view = memoryview(chunk)
        while view:
            count = self._out.write(view)
            view = view[count or 0 :]
        self._writes.put((self._written, chunk))
        self._written += len(chunk)
        return len(chunk)

    def _run(self) -> None:
        digest = hashlib.sha256()
        done = unsynced = 0
        ended = False
        try:
            while (item := self._writes.get()) is not None:
                offset, chunk = item
                back = os.pread(self._fd, len(chunk), offset)
                if back != chunk:
                    raise StorageUnavailableError(
                        f"the {len(chunk)} bytes written at offset {offset} read back differently; will retry"
                    )
                digest.update(back)
                done += len(back)
                unsynced += len(back)
                if self._sync and unsynced >= SYNC_EVERY:
                    self._dirty.set()
                    unsynced = 0
            ended = True
            size = os.fstat(self._fd).st_size
            if size != done:
                raise StorageUnavailableError(f"the file holds {size} bytes, {done} were written; will retry")
            self._result = (done, digest.hexdigest())
        except BaseException as exc:  # handed to finish
            self._result = exc
            while not ended and self._writes.get() is not None:  # let the writer finish; its result is discarded
                pass

    def finish(self) -> tuple[int, str]:
        """Wait for the read-back of everything written; the size and sha256 it found."""
        self._writes.put(None)
        self._thread.join()
        self._stop_flushing()
        if isinstance(self._result, BaseException):
            raise self._result
        if self._sync_error is not None:
            raise self._sync_error
        assert self._result is not None
        return self._result

    def abandon(self) -> None:
        if self._thread.is_alive():
            self._writes.put(None)
            self._thread.join()
        self._stop_flushing()


def _private(path: str, flags: int) -> int:
    """Open a new file readable by owner and group only: a core holds the process's memory, secrets included."""
    return os.open(path, flags, FILE_MODE)


class LocalStorage:
    """Cores under ``root/<instance>/`` on a local disk."""

    backend = "local"

    def __init__(
        self, root: Path, *, compression: str = "zstd", level: int = 1, threads: int = 0, fsync: bool = True
    ) -> None:
        self.root = Path(root).absolute()
        self.compression = compression
        self.level = level
        self.threads = threads
        self.fsync = fsync

    def store(self, request: StoreRequest) -> StoredObject:
        source_size = check_regular_file(request.source).st_size
        folder = self.root / instance_folder(request.instance)
        with self._errors(f"cannot write to {folder}"):
            self._prepare(folder)
            for stem in candidate_stems(request):
                path = folder / (stem + SUFFIXES[self.compression])
                found = self._probe(path, request, source_size)
                if found == "taken" or (found == "free" and not self._claim(path, request)):
                    continue
                if isinstance(found, StoredObject):
                    return found
                try:
                    return self._write(request, path, source_size)
                finally:
                    self._claim_path(path).unlink(missing_ok=True)
        raise StorageRejectedError(f"{folder}: too many different cores share the name {path.name}; not stored")

    def delete(self, location: str) -> None:
        path = self._own_path(location)
        with self._errors(f"cannot delete {path}"):
            path.unlink(missing_ok=True)
            path.with_name(sidecar_name_for(path.name)).unlink(missing_ok=True)

    def list_objects(self) -> Iterator[ObjectInfo]:
        return self._files(is_core_name)

    def describe(self, location: str) -> str:
        return f"{location} (local disk)"

    def leftovers(self, before: datetime) -> Iterator[ObjectInfo]:
        """Temporary files and claims last written before ``before``: a store killed midway leaves them."""
        return (info for info in self._files(is_leftover_name) if info.modified < before)

    def _files(self, wanted: Callable[[str], bool]) -> Iterator[ObjectInfo]:
        """The regular files one folder below the root whose names ``wanted`` accepts, in name order."""
        with self._errors(f"cannot list {self.root}"):
            if not self.root.is_dir():
                return
            for folder in sorted(self.root.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                for entry in sorted(os.scandir(folder), key=lambda item: item.name):
                    if wanted(entry.name) and entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        modified = datetime.fromtimestamp(info.st_mtime, UTC)
                        yield ObjectInfo(entry.path, folder.name, info.st_size, modified)

    def remove_leftover(self, location: str) -> None:
        path = self._own_path(location, is_leftover_name, "a leftover of a store")
        with self._errors(f"cannot delete {path}"):
            path.unlink(missing_ok=True)

    def _prepare(self, folder: Path) -> None:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)

    def _probe(self, path: Path, request: StoreRequest, source_size: int) -> StoredObject | str:
        """'free' to write here, 'taken' by another core, or the complete earlier store of this core."""
        sidecar = path.with_name(sidecar_name_for(path.name))
        try:
            record = stored_record(sidecar.read_bytes())
        except FileNotFoundError:
            return "free"
        if record is None or not same_source(record, request, source_size, self.compression):
            return "taken"
        try:
            size, sha256 = sha256_of(path)
        except (FileNotFoundError, IsADirectoryError):
            return "free"
        if size != record.get("size") or sha256 != record.get("sha256"):
            return "free"
        return StoredObject(str(path), str(sidecar), size, sha256, self.compression, reused=True)

    def _write(self, request: StoreRequest, path: Path, source_size: int) -> StoredObject:
        size, sha256 = self._write_atomic(  # the sidecar's write below syncs the folder for both
            path,
            lambda out: compress_file(request.source, out, self.compression, self.level, self.threads, hashed=False)[0],
            sync_folder=False,
        )
        sidecar = path.with_name(sidecar_name_for(path.name))
        record = new_record(
            request, name=path.name, size=size, sha256=sha256, compression=self.compression, source_size=source_size
        )
        document = sidecar_document(request, record)
        self._write_atomic(sidecar, lambda out: out.write(document))
        return StoredObject(str(path), str(sidecar), size, sha256, self.compression)

    @staticmethod
    def _claim_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.claim")

    def _claim(self, path: Path, request: StoreRequest) -> bool:
        """Reserve a free name for this core, so that two stores running at once never pick the same one."""
        claim = self._claim_path(path)
        owner = (request.source_id or "").encode()
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                return claim.read_bytes() == owner  # our own claim, left by an interrupted store
            except FileNotFoundError:
                return self._claim(path, request)
        try:
            os.write(descriptor, owner)
        finally:
            os.close(descriptor)
        return True

    def _write_atomic(
        self, path: Path, fill: Callable[[BinaryIO], int], sync_folder: bool = True
    ) -> tuple[int, str]:
        """Write, verify and rename into place; ``sync_folder`` False leaves the folder's fsync to a later write."""
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temporary, "xb+", buffering=0, opener=_private) as out:
                read_back = _ReadBack(out, self.fsync)
                try:
                    written = fill(cast(BinaryIO, read_back))
                    stored, sha256 = read_back.finish()
                except BaseException:
                    read_back.abandon()
                    raise
                if self.fsync:
                    os.fsync(out.fileno())
            if stored != written:
                raise StorageUnavailableError(
                    f"{path}: verification failed (wrote {written} bytes, read back {stored}); will retry"
                )
            os.replace(temporary, path)
            if sync_folder:
                self._sync_folder(path.parent)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        return written, sha256

    def _sync_folder(self, folder: Path) -> None:
        if not self.fsync:
            return
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(descriptor)

    def _own_path(self, location: str, wanted: Callable[[str], bool] = is_core_name,
                  what: str = "a stored core") -> Path:
        """The path of ``location`` if it is one of ours (one folder below the root, a name ``wanted`` accepts)."""
        path = Path(location).absolute()
        if path.parent.parent != self.root or not wanted(path.name):
            raise StorageRejectedError(f"{location}: not {what} under {self.root}; nothing deleted")
        return path

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except CoredumpError:
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in TRANSIENT_ERRNOS:
                raise StorageUnavailableError(f"{doing}: {reason}; will retry") from exc
            raise StorageRejectedError(
                f"{doing}: {reason}; check that {self.root} is a writable folder for the agent"
            ) from exc


class NfsStorage(LocalStorage):
    """Cores under ``root/<instance>/`` on a mounted NFS share; the root must already exist."""

    backend = "nfs"

    def describe(self, location: str) -> str:
        return f"{location} (NFS share {self.root})"

    def _prepare(self, folder: Path) -> None:
        if not self.root.is_dir():
            raise StorageUnavailableError(
                f"the NFS path {self.root} does not exist or is not a folder; is the share mounted? (storage.nfsPath)"
            )
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
