"""Streaming compression of a core into any writable sink, hashing what is written.

``compress_file`` reads the core once, in chunks, and writes the stored form:
zstd (multi-threaded, bounded job size), gzip or the plain bytes. A zstd input
stored as zstd is copied as it is. Errors reading the source become
``BadInputError``; errors of the sink propagate unchanged for the caller to wrap.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Literal, Protocol, cast

import zstandard

from coredumps.errors import BadInputError
from coredumps.inputs import CHUNK, Compression, detect_compression, open_decompressed

Bytes = bytes | bytearray | memoryview
Method = Literal["zstd", "gzip", "none"]
METHODS: tuple[Method, ...] = ("zstd", "gzip", "none")
SUFFIXES: dict[str, str] = {"zstd": ".core.zst", "gzip": ".core.gz", "none": ".core"}

MAX_THREADS = 4
"""zstd workers at most, whatever the core count: each holds about two jobs in memory, and the
node's CPUs belong to Milvus first."""
JOB_SIZE = 8 << 20
"""zstd job size per worker; bounds memory at roughly MAX_THREADS * 3 * JOB_SIZE."""
COPY_CHUNK = 4 << 20
GZIP_LEVEL = 6
"""gzip's own default, the original agent's format; storage.compressionLevel is the zstd level."""


class Sink(Protocol):
    """Anything with a binary ``write``."""

    def write(self, data: Bytes, /) -> object: ...


class HashingWriter:
    """Forwards writes to a sink while counting bytes and (unless ``hashed`` is False) hashing them with sha256."""

    def __init__(self, sink: Sink, hashed: bool = True) -> None:
        self._sink = sink
        self._hash = hashlib.sha256() if hashed else None
        self.size = 0

    def write(self, data: Bytes, /) -> int:
        self._sink.write(data)
        if self._hash is not None:
            self._hash.update(data)
        count = data.nbytes if isinstance(data, memoryview) else len(data)
        self.size += count
        return count

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""


class _SourceReader:
    """Reads the core, turning read and decompression failures into BadInputError."""

    def __init__(self, reader: BinaryIO, path: Path, kind: Compression) -> None:
        self._reader = reader
        self._path = path
        self._kind = kind

    def read(self, size: int = -1) -> bytes:
        try:
            return self._reader.read(size)
        except OSError as exc:
            raise BadInputError(f"{self._path}: cannot be read: {exc.strerror or exc}") from exc
        except (zstandard.ZstdError, lzma.LZMAError, EOFError, RuntimeError, ValueError) as exc:
            raise BadInputError(
                f"{self._path}: the {self._kind} archive is corrupt or cut short ({exc}); it cannot be decompressed"
            ) from exc


@contextlib.contextmanager
def _open_source(path: Path, kind: Compression) -> Iterator[_SourceReader]:
    stack = contextlib.ExitStack()
    try:
        reader = stack.enter_context(open_decompressed(path, kind))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    with stack:
        yield _SourceReader(reader, path, kind)


def zstd_threads(threads: int) -> int:
    """zstd worker count for a configured value (0 means every core), capped at MAX_THREADS."""
    wanted = threads or os.cpu_count() or 1
    return min(wanted, MAX_THREADS)


def _copy_raw(path: Path, writer: HashingWriter) -> None:
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(open(path, "rb", buffering=0))
        except OSError as exc:
            raise BadInputError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
        while True:
            try:
                chunk = source.read(COPY_CHUNK)
            except OSError as exc:
                raise BadInputError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
            if not chunk:
                return
            writer.write(chunk)


def _copy_plain(source: _SourceReader, sink: Sink) -> None:
    while chunk := source.read(CHUNK):
        sink.write(chunk)


def compress_file(
    src: Path, dest: Sink, method: str, level: int = 1, threads: int = 0, *, hashed: bool = True
) -> tuple[int, str]:
    """Write ``src`` to ``dest`` in the stored form; return (bytes written, their sha256).

    ``level`` is the zstd level (gzip is always level GZIP_LEVEL); ``threads`` 0 means one zstd
    worker per core, at most MAX_THREADS. The source may be raw, .zst, .lz4 or .xz.
    ``hashed`` False skips the sha256 (returned empty) for a sink that hashes what it stores.
    """
    if method not in METHODS:
        raise ValueError(f"unknown compression method {method!r}; expected one of {', '.join(METHODS)}")
    kind = detect_compression(src)
    writer = HashingWriter(dest, hashed)
    if method == "zstd" and kind == "zst":
        _copy_raw(src, writer)
    elif method == "zstd":
        workers = zstd_threads(threads)
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=workers if workers > 1 else 0, job_size=JOB_SIZE, write_checksum=1
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        with _open_source(src, kind) as source:
            compressor.copy_stream(
                cast(IO[bytes], source), cast(IO[bytes], writer), read_size=COPY_CHUNK, write_size=CHUNK
            )
    elif method == "gzip":
        with (
            _open_source(src, kind) as source,
            gzip.GzipFile(fileobj=cast(IO[bytes], writer), mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz,
        ):
            _copy_plain(source, gz)
    else:
        with _open_source(src, kind) as source:
            _copy_plain(source, writer)
    writer.flush()
    return writer.size, writer.hexdigest()
