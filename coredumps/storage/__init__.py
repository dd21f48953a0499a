"""Storage backends for kept cores: local disk, NFS and S3, behind one small interface.

``make_storage(cfg.storage)`` builds the configured backend. The S3 backend
(and with it s3fs and botocore) is imported only when it is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coredumps.config import StorageConfig
from coredumps.errors import ConfigError
from coredumps.storage.base import ObjectInfo, Storage, StoredObject, StoreRequest, object_name
from coredumps.storage.local import LocalStorage, NfsStorage

__all__ = [
    "LocalStorage",
    "NfsStorage",
    "ObjectInfo",
    "Storage",
    "StoreRequest",
    "StoredObject",
    "make_storage",
    "object_name",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MIN_PART = 5 * 2**20
MAX_PART = 5 * 2**30


def make_storage(cfg: StorageConfig, **options: Any) -> Storage:
    """The backend ``cfg`` selects; ``options`` go to its constructor. Bad settings raise ConfigError."""
    common: dict[str, Any] = {
        "compression": cfg.compression if cfg.compression_enabled else "none",
        "level": cfg.compression_level,
        "threads": cfg.compression_threads,
        **options,
    }
    if cfg.backend == "local":
        if not cfg.local_path.strip():
            raise ConfigError("storage.localPath: must name a folder when storage.backend is local")
        return LocalStorage(Path(cfg.local_path), **common)
    if cfg.backend == "nfs":
        if not cfg.nfs_path.strip():
            raise ConfigError("storage.nfsPath: must name the mounted NFS folder when storage.backend is nfs")
        return NfsStorage(Path(cfg.nfs_path), **common)
    s3 = cfg.s3
    if not _BUCKET.match(s3.bucket) or ".." in s3.bucket:
        raise ConfigError(
            f"storage.s3.bucket: {s3.bucket!r} is not a valid bucket name "
            "(3-63 characters: lower-case letters, digits, dots and dashes)"
        )
    if not MIN_PART <= s3.multipart_chunk_size <= MAX_PART:
        raise ConfigError("storage.s3.multipartChunkSize: must be between 5MiB and 5GiB (S3's part size limits)")
    if any(part in ("", ".", "..") for part in s3.prefix.strip("/").split("/")) and s3.prefix.strip("/"):
        raise ConfigError(f"storage.s3.prefix: {s3.prefix!r} must not contain empty, '.' or '..' segments")
    from coredumps.storage.s3 import S3Storage

    return S3Storage(
        s3.bucket,
        prefix=s3.prefix,
        endpoint=s3.endpoint,
        region=s3.region,
        part_size=s3.multipart_chunk_size,
        **common,
    )
