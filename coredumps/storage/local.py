"""Local-disk and NFS backends: one folder per instance under a root folder.

Every file is written under a temporary dot-name in its final folder (mode
0640: a core holds process memory), fsync'd, verified by reading it back, then
renamed into place, and the folder is fsync'd; a failure leaves no partial
file behind. The NFS backend never creates
its root: a missing mount must not turn into writes to the node's own disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

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


def _private(path: str, flags: int) -> int:
    """Open a new file readable by owner and group only: a core holds the process's memory, secrets included."""
    return os.open(path, flags, FILE_MODE)


def _write_bytes(out: BinaryIO, data: bytes) -> tuple[int, str]:
    out.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


class LocalStorage:
    """Cores under ``root/<instance>/`` on a local disk."""

    backend = "local"

    def __init__(
        self, root: Path, *, compression: str = "zstd", level: int = 3, threads: int = 0, fsync: bool = True
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
        with self._errors(f"cannot list {self.root}"):
            if not self.root.is_dir():
                return
            for folder in sorted(self.root.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                for entry in sorted(os.scandir(folder), key=lambda item: item.name):
                    if is_core_name(entry.name) and entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        modified = datetime.fromtimestamp(info.st_mtime, UTC)
                        yield ObjectInfo(entry.path, folder.name, info.st_size, modified)

    def describe(self, location: str) -> str:
        return f"{location} (local disk)"

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
        size, sha256 = self._write_atomic(
            path, lambda out: compress_file(request.source, out, self.compression, self.level, self.threads)
        )
        sidecar = path.with_name(sidecar_name_for(path.name))
        record = new_record(
            request, name=path.name, size=size, sha256=sha256, compression=self.compression, source_size=source_size
        )
        document = sidecar_document(request, record)
        self._write_atomic(sidecar, lambda out: _write_bytes(out, document))
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

    def _write_atomic(self, path: Path, fill: Callable[[BinaryIO], tuple[int, str]]) -> tuple[int, str]:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temporary, "xb", opener=_private) as out:
                written, sha256 = fill(out)
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            stored = sha256_of(temporary)
            if stored != (written, sha256):
                raise StorageUnavailableError(
                    f"{path}: verification failed (wrote {written} bytes, read back {stored[0]}); will retry"
                )
            os.replace(temporary, path)
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

    def _own_path(self, location: str) -> Path:
        path = Path(location).absolute()
        if path.parent.parent != self.root or not is_core_name(path.name):
            raise StorageRejectedError(f"{location}: not a stored core under {self.root}; nothing deleted")
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
