"""Where the dataset goes: a local folder or ``s3://bucket/prefix``, behind one small interface.

A partition holds exactly one published file, ``<table>/date=YYYY-MM-DD/part-0.parquet``.
A new version is staged where readers cannot see it and then published over
the old one in one step. Locally: a temporary name in the same folder
(``.part-0.parquet.<token>.tmp``; readers skip names starting with a dot),
fsync, then ``os.replace``. On S3: an upload to the final key, which S3 makes
visible only when it completes (see ``s3``). So a reader sees the old
partition or the new one, never both and never half of one. What a killed
run left staged is swept by the next run.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlparse

from coredumps.config import S3Config
from coredumps.errors import ConfigError, CoredumpError, StorageRejectedError, StorageUnavailableError

PART = "part-0.parquet"
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_TEMP = re.compile(r"^\.part-0\.parquet\.[0-9a-f]+\.tmp$")
_PERMANENT = (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def partition_folder(table: str, date: str) -> str:
    """``<table>/date=YYYY-MM-DD``, relative to the dataset's root."""
    return f"{table}/date={date}"


def temp_name() -> str:
    """A fresh temporary name for a part being written."""
    return f".{PART}.{secrets.token_hex(8)}.tmp"


def is_temp(name: str) -> bool:
    return bool(_TEMP.match(name))


def partition_date(folder: str) -> str | None:
    """The date of a ``date=YYYY-MM-DD`` folder name, or None for anything else."""
    match = _PARTITION.match(folder)
    return match[1] if match else None


@dataclass
class Staged:
    """A part written under a temporary name, not yet visible to readers."""

    table: str
    date: str
    temp: str
    """Where the part is staged (for messages)."""
    final: str
    sink: Any
    """What the Parquet writer writes to: a local path, or an open file object."""


Publish = Callable[[Staged], None]
"""How a staged part is published; the destination's own ``publish`` unless a caller passes another."""


class Destination(Protocol):
    """A dataset root that partitions are read from, staged in, published to and removed from."""

    url: str

    def partitions(self, table: str) -> set[str]:
        """Dates of the table's published partitions."""

    def open_part(self, table: str, date: str) -> AbstractContextManager[BinaryIO | str]:
        """The published part of a partition, for reading."""

    def stage(self, table: str, date: str) -> Staged:
        """A temporary file in the partition's folder, ready for writing."""

    def publish(self, staged: Staged) -> None:
        """Make the staged part the partition's published part, in one step."""

    def discard(self, staged: Staged) -> None:
        """Drop a staged part (best effort)."""

    def remove(self, table: str, date: str) -> None:
        """Delete a partition's published part."""

    def sweep(self, table: str) -> int:
        """Delete temporary parts that an interrupted run left; returns how many."""


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``."""

    bucket: str
    prefix: str


def parse_destination(dest: str) -> S3Location | Path:
    """The bucket and prefix of ``s3://bucket/prefix``, else the local folder. Bad values raise ConfigError."""
    text = dest.strip()
    if not text:
        raise ConfigError("export.dest: the destination is empty; give a folder or s3://bucket/prefix.")
    if "://" not in text:
        return Path(text).expanduser()
    url = urlparse(text)
    if "@" in url.netloc:
        raise ConfigError("export.dest: the URL must not hold credentials; S3 credentials come from the environment.")
    if url.scheme != "s3":
        raise ConfigError(f"export.dest: {text!r} is neither a folder nor an s3://bucket/prefix URL.")
    bucket, prefix = url.netloc, url.path.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"export.dest: {bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, dots, dashes)."
        )
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ConfigError(f"export.dest: the prefix {prefix!r} must not contain empty, '.' or '..' segments.")
    if url.query or url.fragment or url.params:
        raise ConfigError(f"export.dest: {text!r} must not have a query or fragment.")
    return S3Location(bucket, prefix)


def open_destination(dest: str, s3: S3Config, environ: Mapping[str, str] | None = None) -> Destination:
    """The destination ``dest`` names; S3 uses the storage's endpoint, region and credential settings."""
    parsed = parse_destination(dest)
    if isinstance(parsed, Path):
        return LocalDestination(parsed)
    from coredumps.export.s3 import S3Destination

    return S3Destination(parsed.bucket, parsed.prefix, endpoint=s3.endpoint, region=s3.region, environ=environ)


class LocalDestination:
    """A dataset in a local (or mounted) folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def partitions(self, table: str) -> set[str]:
        folder = self.root / table
        with self._errors(f"list {folder}"):
            if not folder.is_dir():
                return set()
            return {
                date
                for entry in os.scandir(folder)
                if (date := partition_date(entry.name)) and os.path.isfile(os.path.join(entry.path, PART))
            }

    @contextmanager
    def open_part(self, table: str, date: str) -> Iterator[BinaryIO | str]:
        yield str(self.root / partition_folder(table, date) / PART)

    def stage(self, table: str, date: str) -> Staged:
        folder = self.root / partition_folder(table, date)
        with self._errors(f"create {folder}"):
            folder.mkdir(parents=True, exist_ok=True)
        temp = folder / temp_name()
        return Staged(table, date, str(temp), str(folder / PART), str(temp))

    def publish(self, staged: Staged) -> None:
        with self._errors(f"publish {staged.final}"):
            _fsync(staged.temp, os.O_RDONLY)
            os.replace(staged.temp, staged.final)
            _fsync(os.path.dirname(staged.final), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def discard(self, staged: Staged) -> None:
        Path(staged.temp).unlink(missing_ok=True)

    def remove(self, table: str, date: str) -> None:
        folder = self.root / partition_folder(table, date)
        with self._errors(f"remove {folder / PART}"):
            (folder / PART).unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()

    def sweep(self, table: str) -> int:
        folder = self.root / table
        removed = 0
        with self._errors(f"clean {folder}"):
            if not folder.is_dir():
                return 0
            for partition in folder.iterdir():
                if partition.is_dir() and partition_date(partition.name):
                    for entry in partition.iterdir():
                        if is_temp(entry.name):
                            entry.unlink(missing_ok=True)
                            removed += 1
        return removed

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise io_error(exc, what) from exc


def io_error(exc: OSError, what: str) -> CoredumpError:
    """The project's error for a failed read or write of the dataset."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, _PERMANENT) or exc.errno == errno.EROFS:
        return StorageRejectedError(f"export: cannot {what}: {reason}; check export.dest and its permissions.")
    return StorageUnavailableError(f"export: cannot {what}: {reason}; will retry.")


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
