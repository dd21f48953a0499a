"""Core inputs: raw ELF cores and systemd-coredump's .zst, .lz4 and .xz files.

The compression is told by the file's magic bytes, not its name. Compressed
cores are stream-decompressed into a scratch file next to nothing else the
agent owns and removed afterwards; nothing is ever read whole into memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from coredumps.errors import BadInputError

Compression = Literal["none", "zst", "lz4", "xz"]

CHUNK = 1 << 20
_MAGIC: dict[bytes, Compression] = {
    b"\x28\xb5\x2f\xfd": "zst",
    b"\x04\x22\x4d\x18": "lz4",
    b"\xfd7zXZ\x00": "xz",
}
ELF_MAGIC = b"\x7fELF"


def shown(path: Path | str) -> str:
    """A path as it may appear in a message: control characters escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(path))


def is_utf8(text: str) -> bool:
    """Whether text (a file name decoded with surrogate escapes) can go into JSON, a row or a run's parameters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stat_regular(path: Path, *, follow_symlinks: bool = True) -> os.stat_result:
    """stat() (or lstat()) the path and insist on a regular file; anything else is one clear BadInputError."""
    try:
        st = path.stat() if follow_symlinks else path.lstat()
    except FileNotFoundError as exc:
        raise BadInputError(f"{shown(path)}: no such file") from exc
    except PermissionError as exc:
        raise BadInputError(f"{shown(path)}: permission denied; the agent cannot read it") from exc
    except OSError as exc:
        raise BadInputError(f"{shown(path)}: cannot be read: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise BadInputError(f"{shown(path)}: is a symbolic link; only regular core files are read, never a link")
    if stat.S_ISDIR(st.st_mode):
        raise BadInputError(f"{shown(path)}: is a directory, not a core file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(
            f"{shown(path)}: is not a regular file (a FIFO, socket or device); only core files are read"
        )
    return st


def check_regular_file(path: Path) -> os.stat_result:
    """stat() the path and insist on a readable, non-empty regular file."""
    st = stat_regular(path)
    if st.st_size == 0:
        raise BadInputError(
            f"{shown(path)}: is empty (0 bytes); the core was not written, check the core size limits"
        )
    if not os.access(path, os.R_OK):
        raise BadInputError(f"{shown(path)}: permission denied; the agent cannot read it")
    return st


def detect_compression(path: Path) -> Compression:
    """'zst', 'lz4', 'xz' by magic bytes, or 'none' for anything else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return "none"


class _ZstdReader(io.RawIOBase):
    """Streams every frame of a .zst file and fails on a frame cut short (zstandard's reader stops silently)."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard  # the codecs load only when a compressed core is read

        self._error = zstandard.ZstdError
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = b""
        self._fed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                if self._fed and not self._obj.eof:
                    raise self._error("the last zstd frame is incomplete")
                return 0
            while chunk:
                if self._obj.eof:
                    self._obj = self._dctx.decompressobj()
                self._fed = True
                self._pending += self._obj.decompress(chunk)
                chunk = self._obj.unused_data if self._obj.eof else b""
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@contextlib.contextmanager
def open_decompressed(path: Path, compression: Compression | None = None) -> Iterator[BinaryIO]:
    """A streaming reader of the core's plain bytes, whatever its compression."""
    kind = compression or detect_compression(path)
    with open(path, "rb") as raw:
        if kind == "none":
            yield raw
        elif kind == "zst":
            with io.BufferedReader(_ZstdReader(raw), CHUNK) as reader:
                yield reader
        elif kind == "lz4":
            import lz4.frame

            with lz4.frame.open(raw, "rb") as reader:
                yield reader
        else:
            import lzma

            with lzma.open(raw, "rb") as reader:
                yield reader  # type: ignore[misc]


def _copy_decompressed(path: Path, kind: Compression, dest: BinaryIO) -> int:
    import lzma

    import zstandard

    copied = 0
    try:
        with open_decompressed(path, kind) as reader:
            while chunk := reader.read(CHUNK):
                dest.write(chunk)
                copied += len(chunk)
    except (zstandard.ZstdError, lzma.LZMAError, RuntimeError, EOFError, ValueError) as exc:
        raise BadInputError(
            f"{path}: the {kind} archive is corrupt or cut short ({exc}); it cannot be decompressed"
        ) from exc
    return copied


@contextlib.contextmanager
def plain_core(path: Path, scratch_dir: Path | None = None) -> Iterator[tuple[Path, Compression]]:
    """The path of an uncompressed copy of the core, and the input's compression.

    A raw core is used in place. A compressed one is decompressed into a scratch
    file that is removed when the block ends, whatever happens inside it.
    """
    check_regular_file(path)
    kind = detect_compression(path)
    if kind == "none":
        yield path, kind
        return
    directory = scratch_dir or Path(tempfile.gettempdir())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="core-", suffix=".scratch", dir=directory)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot create a scratch file in {directory}: {exc.strerror or exc}") from exc
    scratch = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as dest:
                written = _copy_decompressed(path, kind, dest)
        except OSError as exc:
            raise BadInputError(f"{path}: cannot decompress into {directory}: {exc.strerror or exc}") from exc
        if written == 0:
            raise BadInputError(f"{path}: the {kind} archive holds no data")
        yield scratch, kind
    finally:
        scratch.unlink(missing_ok=True)
