"""The storage interface, its value types, and safe object names.

A stored core is ``<instance>/<stem><suffix>`` with its JSON sidecar at
``<instance>/<stem>.json``; the stem is ``{YYYYmmddTHHMMSSZ}_{pod}_{container}``.
Every part is sanitised: only ``[A-Za-z0-9._-]``, no leading dot or dash, bounded
length, so no input can name a place outside the instance folder or prefix.

The sidecar is written last, after the object is verified, and holds a
``stored`` record (size, sha256, compression, source size); its presence marks
a complete store, which is what makes a repeated store reuse the object.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from coredumps.compression import SUFFIXES

PART_MAX = 100
"""Longest pod or container part of a name; with the rest a name stays under 255 bytes."""
INSTANCE_MAX = 128
MAX_CANDIDATES = 100
"""Different cores that may share one stem before a store is refused."""
SIDECAR_SUFFIX = ".json"
LEFTOVER_SUFFIXES = (".tmp", ".claim")
"""A store's temporary file and its name claim: dot-names, never a stored core."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoreRequest:
    """One core to store, and what to name it by."""

    source: Path
    instance: str
    timestamp: datetime
    pod_name: str | None
    container_name: str | None
    sidecar: Mapping[str, Any]
    source_id: str | None = None
    """The source file's identity (its idempotency key): two cores with one stem and size stay two objects."""


@dataclass(frozen=True)
class StoredObject:
    """A verified stored core."""

    location: str
    sidecar_location: str
    size: int
    sha256: str
    compression: str
    reused: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    """A stored core as listed by ``Storage.list_objects``."""

    location: str
    instance: str
    size: int
    modified: datetime


class Storage(Protocol):
    """Where kept cores go: local disk, an NFS mount or an S3 bucket."""

    backend: str

    def store(self, request: StoreRequest) -> StoredObject: ...

    def delete(self, location: str) -> None: ...

    def list_objects(self) -> Iterator[ObjectInfo]: ...

    def describe(self, location: str) -> str: ...

    def leftovers(self, before: datetime) -> Iterator[ObjectInfo]:
        """What stores interrupted before ``before`` left behind (temporary files, claims, unfinished uploads)."""
        ...

    def remove_leftover(self, location: str) -> None: ...


def sanitize(text: str | None, limit: int = PART_MAX) -> str:
    """A name part of ``[A-Za-z0-9._-]`` only, not starting with '.' or '-', at most ``limit`` chars.

    Runs of other characters become one '_'; a part with nothing safe left is 'unknown'.
    """
    cleaned = _UNSAFE.sub("_", text or "").lstrip(".-")
    if not cleaned.strip("_"):
        return "unknown"
    if len(cleaned) > limit:
        digest = hashlib.sha256(cleaned.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[: limit - 9]}-{digest}"
    return cleaned


def instance_folder(instance: str) -> str:
    """The sanitised folder (or key prefix part) of an instance; 'unknown' when empty."""
    return sanitize(instance, INSTANCE_MAX)


def name_timestamp(moment: datetime) -> str:
    """``YYYYmmddTHHMMSSZ`` in UTC; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def object_stem(request: StoreRequest) -> str:
    """``{timestamp}_{pod}_{container}``, sanitised."""
    return f"{name_timestamp(request.timestamp)}_{sanitize(request.pod_name)}_{sanitize(request.container_name)}"


def object_name(request: StoreRequest, compression: str) -> str:
    """The stored file name: ``{timestamp}_{pod}_{container}.core.zst`` (``.core.gz``, ``.core``)."""
    return object_stem(request) + SUFFIXES[compression]


def candidate_stems(request: StoreRequest) -> Iterator[str]:
    """The stem, then ``stem-2``, ``stem-3``...: later names are for different cores that share the stem."""
    stem = object_stem(request)
    yield stem
    for number in range(2, MAX_CANDIDATES + 1):
        yield f"{stem}-{number}"


def is_leftover_name(name: str) -> bool:
    """True for a store's temporary file or name claim."""
    return name.startswith(".") and name.endswith(LEFTOVER_SUFFIXES)


def is_core_name(name: str) -> bool:
    """True for a stored core's file name (not a sidecar, not a temporary file)."""
    return not name.startswith(".") and name.endswith(tuple(SUFFIXES.values()))


def sidecar_name_for(name: str) -> str:
    """The sidecar's name for a stored core's name."""
    for suffix in sorted(SUFFIXES.values(), key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)] + SIDECAR_SUFFIX
    return name + SIDECAR_SUFFIX


def sidecar_document(request: StoreRequest, record: Mapping[str, Any]) -> bytes:
    """The sidecar's bytes: the analysis and the storage record."""
    document = {"stored": dict(record), "analysis": dict(request.sidecar)}
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode()


def stored_record(sidecar: bytes) -> dict[str, Any] | None:
    """The ``stored`` record of a sidecar, or None when it is not one of ours."""
    try:
        document = json.loads(sidecar)
    except (ValueError, UnicodeDecodeError):
        return None
    record = document.get("stored") if isinstance(document, dict) else None
    return record if isinstance(record, dict) else None


def same_source(record: Mapping[str, Any], request: StoreRequest, source_size: int, compression: str) -> bool:
    """True when a sidecar's record was written for this request's core."""
    if request.source_id is not None and record.get("source_id") != request.source_id:
        return False
    return record.get("source_size") == source_size and record.get("compression") == compression


def new_record(
    request: StoreRequest, *, name: str, size: int, sha256: str, compression: str, source_size: int, **extra: Any
) -> dict[str, Any]:
    """The ``stored`` record written into a sidecar."""
    return {
        "name": name,
        "size": size,
        "sha256": sha256,
        "compression": compression,
        "source_name": request.source.name,
        "source_size": source_size,
        "source_id": request.source_id,
        "stored_at": datetime.now(UTC).isoformat(),
        **extra,
    }
