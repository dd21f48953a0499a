"""compress_file: one streaming pass, the sha256 of what was written, zstd inputs kept as they are."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import subprocess
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from coredumps.compression import MAX_THREADS, HashingWriter, compress_file, zstd_threads
from coredumps.errors import BadInputError


def plain(data: bytes, method: str) -> bytes:
    if method == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    if method == "gzip":
        return gzip.decompress(data)
    return data


@pytest.mark.parametrize("method", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("threads", [1, 2])
def test_round_trip_and_hash_of_written_bytes(make_core: Callable[..., Path], method: str, threads: int) -> None:
    source = make_core(3 * 2**20)
    out = io.BytesIO()
    size, sha256 = compress_file(source, out, method, level=3, threads=threads)
    stored = out.getvalue()
    assert size == len(stored)
    assert sha256 == hashlib.sha256(stored).hexdigest()
    assert plain(stored, method) == source.read_bytes()


def test_gzip_is_the_original_agents_level_6_whatever_the_zstd_level(make_core: Callable[..., Path]) -> None:
    source = make_core(2**20)
    out = io.BytesIO()
    compress_file(source, out, "gzip", level=1)
    expected = io.BytesIO()
    with gzip.GzipFile(fileobj=expected, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(source.read_bytes())
    assert out.getvalue() == expected.getvalue()


def test_the_default_zstd_level_is_the_fastest(make_core: Callable[..., Path]) -> None:
    source = make_core(4 * 2**20)
    default, level_1, level_3 = io.BytesIO(), io.BytesIO(), io.BytesIO()
    compress_file(source, default, "zstd", threads=1)
    compress_file(source, level_1, "zstd", level=1, threads=1)
    compress_file(source, level_3, "zstd", level=3, threads=1)
    assert default.getvalue() == level_1.getvalue() != level_3.getvalue()


def test_zstd_shrinks_a_core_like_file(make_core: Callable[..., Path]) -> None:
    source = make_core(4 * 2**20)
    size, _ = compress_file(source, io.BytesIO(), "zstd")
    assert size < source.stat().st_size / 2


def test_zst_input_is_copied_byte_for_byte(make_core: Callable[..., Path], tmp_path: Path) -> None:
    source = make_core()
    packed = tmp_path / "core.zst"
    subprocess.run(["zstd", "-q", "-3", str(source), "-o", str(packed)], check=True)
    out = io.BytesIO()
    size, sha256 = compress_file(packed, out, "zstd")
    assert out.getvalue() == packed.read_bytes()
    assert (size, sha256) == (packed.stat().st_size, hashlib.sha256(packed.read_bytes()).hexdigest())


@pytest.mark.parametrize("kind", ["xz", "lz4", "zst"])
@pytest.mark.parametrize("method", ["zstd", "gzip", "none"])
def test_compressed_inputs_are_recompressed(
    make_core: Callable[..., Path], tmp_path: Path, kind: str, method: str
) -> None:
    source = make_core(2**20)
    raw = source.read_bytes()
    packed = tmp_path / f"core.{kind}"
    if kind == "xz":
        packed.write_bytes(lzma.compress(raw))
    elif kind == "lz4":
        packed.write_bytes(lz4.frame.compress(raw))
    else:
        packed.write_bytes(zstandard.ZstdCompressor().compress(raw))
    out = io.BytesIO()
    compress_file(packed, out, method)
    if kind == "zst" and method == "zstd":
        assert out.getvalue() == packed.read_bytes()
    else:
        assert out.getvalue()[:4] != packed.read_bytes()[:4]
    assert plain(out.getvalue(), method) == raw


def test_corrupt_archive_is_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "core.xz"
    broken.write_bytes(lzma.compress(b"x" * 100_000)[:-40])
    with pytest.raises(BadInputError, match="corrupt or cut short"):
        compress_file(broken, io.BytesIO(), "zstd")


def test_missing_source_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot be read"):
        compress_file(tmp_path / "gone", io.BytesIO(), "zstd")


def test_errors_of_the_sink_are_not_blamed_on_the_input(make_core: Callable[..., Path]) -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        compress_file(make_core(), Full(), "zstd")


def test_unknown_method_is_refused(make_core: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        compress_file(make_core(), io.BytesIO(), "brotli")


def test_hashing_writer_counts_and_hashes() -> None:
    sink = io.BytesIO()
    writer = HashingWriter(sink)
    writer.write(b"abc")
    writer.write(memoryview(b"def"))
    assert (writer.size, writer.hexdigest()) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert sink.getvalue() == b"abcdef"


def test_thread_count_is_bounded() -> None:
    assert zstd_threads(1) == 1
    assert 1 <= zstd_threads(0) <= MAX_THREADS == 4
    assert zstd_threads(64) == MAX_THREADS
