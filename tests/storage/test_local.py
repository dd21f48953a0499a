"""Local and NFS backends on a real file system."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard

from coredumps.config import StorageConfig
from coredumps.errors import BadInputError, ConfigError, StorageRejectedError, StorageUnavailableError
from coredumps.inputs import open_decompressed
from coredumps.storage import LocalStorage, NfsStorage, StoreRequest, make_storage
from coredumps.storage import local as local_storage
from coredumps.storage.base import is_core_name
from coredumps.storage.local import _ReadBack

MOMENT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ANALYSIS = {"signal": "SIGSEGV", "score": 8.5, "frames": ["a", "b"]}


def request(
    source: Path, pod: str | None = "querynode-0", container: str | None = "querynode", **kw: Any
) -> StoreRequest:
    return StoreRequest(
        source=source,
        instance=kw.pop("instance", "milvus-a"),
        timestamp=kw.pop("timestamp", MOMENT),
        pod_name=pod,
        container_name=container,
        sidecar=kw.pop("sidecar", ANALYSIS),
        source_id=kw.pop("source_id", None),
    )


def plain_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    with open_decompressed(path) as reader:
        return reader.read()


def all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture(params=["local", "nfs"])
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., LocalStorage]:
    root = tmp_path / "store"

    def make(**options: Any) -> LocalStorage:
        if request.param == "nfs":
            root.mkdir(exist_ok=True)
            return NfsStorage(root, **options)
        return LocalStorage(root, **options)

    return make


def test_round_trip_stores_a_verified_zstd_copy(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    source = make_core()
    stored = storage_factory().store(request(source))
    path = Path(stored.location)
    assert path.name == "20250304T050607Z_querynode-0_querynode.core.zst"
    assert path.parent.name == "milvus-a"
    assert stored.size == path.stat().st_size < source.stat().st_size
    assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (stored.compression, stored.reused) == ("zstd", False)
    assert plain_bytes(path) == source.read_bytes()


def test_stored_files_are_not_world_readable(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    stored = storage_factory().store(request(make_core()))
    for location in (stored.location, stored.sidecar_location):
        assert os.stat(location).st_mode & 0o007 == 0


def test_sidecar_holds_the_analysis_and_the_record(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    source = make_core()
    stored = storage_factory().store(request(source))
    document = json.loads(Path(stored.sidecar_location).read_text())
    assert Path(stored.sidecar_location).name == "20250304T050607Z_querynode-0_querynode.json"
    assert document["analysis"] == ANALYSIS
    assert document["stored"]["sha256"] == stored.sha256
    assert document["stored"]["size"] == stored.size
    assert document["stored"]["source_size"] == source.stat().st_size


@pytest.mark.parametrize(
    "pod", ["../../etc", "../../../../tmp/evil", "pod name with spaces", "line\nbreak", "ünïcødé-pød", "..", "/"]
)
def test_hostile_pod_names_stay_inside_the_instance_folder(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path], tmp_path: Path, pod: str
) -> None:
    storage = storage_factory()
    stored = storage.store(request(make_core(64 * 1024), pod=pod, container=pod, instance="../" + pod))
    path = Path(stored.location)
    assert path.parent.parent == storage.root
    assert Path(stored.sidecar_location).parent == path.parent
    assert not path.parent.name.startswith(".")
    assert all(file.is_relative_to(storage.root) for file in all_files(tmp_path) if file.suffix in (".zst", ".json"))


def test_empty_instance_goes_to_unknown(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    stored = storage_factory().store(request(make_core(), instance="", pod=None, container=None))
    path = Path(stored.location)
    assert path.parent.name == "unknown"
    assert path.name == "20250304T050607Z_unknown_unknown.core.zst"


def test_storing_twice_reuses_the_first_copy(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    storage = storage_factory()
    source = make_core()
    first = storage.store(request(source))
    mtime = os.stat(first.location).st_mtime_ns
    second = storage.store(request(source))
    assert second.reused
    assert (second.location, second.size, second.sha256) == (first.location, first.size, first.sha256)
    assert os.stat(first.location).st_mtime_ns == mtime
    assert len(list(storage.list_objects())) == 1
    assert len(all_files(storage.root)) == 2


def test_a_different_core_with_the_same_name_is_kept_apart(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    storage = storage_factory()
    first = storage.store(request(make_core(2**20, name="one")))
    other = storage.store(request(make_core(2**20 + 4096, name="two", seed=9)))
    assert not other.reused
    assert Path(other.location).name == "20250304T050607Z_querynode-0_querynode-2.core.zst"
    assert {info.location for info in storage.list_objects()} == {first.location, other.location}


def test_two_files_of_equal_size_and_name_are_two_objects_when_their_identities_differ(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    storage = storage_factory()
    first = storage.store(request(make_core(2**20, name="one"), source_id="node:1:100:1048576:1"))
    second = storage.store(request(make_core(2**20, name="two"), source_id="node:1:200:1048576:1"))
    again = storage.store(request(make_core(2**20, name="two"), source_id="node:1:200:1048576:1"))
    assert not second.reused and second.location != first.location
    assert again.reused and again.location == second.location


def test_a_copy_without_its_sidecar_is_rewritten(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    storage = storage_factory()
    source = make_core()
    first = storage.store(request(source))
    Path(first.sidecar_location).unlink()
    Path(first.location).write_bytes(b"half a file")
    again = storage.store(request(source))
    assert not again.reused
    assert again.location == first.location
    assert plain_bytes(Path(again.location)) == source.read_bytes()


@pytest.mark.parametrize(("method", "suffix"), [("gzip", ".core.gz"), ("none", ".core")])
def test_gzip_and_uncompressed_methods(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path], method: str, suffix: str
) -> None:
    source = make_core()
    stored = storage_factory(compression=method).store(request(source))
    assert stored.location.endswith(suffix)
    assert stored.compression == method
    assert plain_bytes(Path(stored.location)) == source.read_bytes()


def test_zst_input_is_stored_byte_identical(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_core()
    packed = tmp_path / "core.systemd.zst"
    subprocess.run(["zstd", "-q", "-3", str(source), "-o", str(packed)], check=True)
    stored = storage_factory().store(request(packed))
    assert Path(stored.location).read_bytes() == packed.read_bytes()
    assert stored.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["xz", "lz4"])
def test_xz_and_lz4_inputs_are_recompressed_to_zstd(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    raw = make_core().read_bytes()
    packed = tmp_path / f"core.{kind}"
    packed.write_bytes(lzma.compress(raw) if kind == "xz" else lz4.frame.compress(raw))
    stored = storage_factory().store(request(packed))
    data = Path(stored.location).read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    assert zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read() == raw


def test_list_and_delete(storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]) -> None:
    storage = storage_factory()
    source = make_core()
    a = storage.store(request(source, instance="a"))
    b = storage.store(request(source, instance="b"))
    listed = {info.location: info for info in storage.list_objects()}
    assert set(listed) == {a.location, b.location}
    assert listed[a.location].instance == "a"
    assert listed[a.location].size == a.size
    assert listed[a.location].modified.tzinfo is not None
    storage.delete(a.location)
    storage.delete(a.location)
    assert not Path(a.sidecar_location).exists()
    assert [info.location for info in storage.list_objects()] == [b.location]


def test_delete_refuses_paths_outside_the_store(storage_factory: Callable[..., LocalStorage], tmp_path: Path) -> None:
    victim = tmp_path / "victim.core.zst"
    victim.write_bytes(b"x")
    storage = storage_factory()
    with pytest.raises(StorageRejectedError, match="not a stored core"):
        storage.delete(str(victim))
    with pytest.raises(StorageRejectedError, match="not a stored core"):
        storage.delete(str(storage.root / "a" / ".." / ".." / "victim.core.zst"))
    assert victim.exists()


def test_missing_source_is_bad_input(storage_factory: Callable[..., LocalStorage], tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        storage_factory().store(request(tmp_path / "gone"))


def test_failed_rename_leaves_no_temporary_file(make_core: Callable[..., Path], tmp_path: Path) -> None:
    root = tmp_path / "nfs"
    root.mkdir()
    storage = NfsStorage(root)
    source = make_core()
    blocker = root / "milvus-a" / "20250304T050607Z_querynode-0_querynode.core.zst"
    blocker.mkdir(parents=True)
    with pytest.raises(StorageRejectedError, match="cannot write"):
        storage.store(request(source))
    assert [path.name for path in (root / "milvus-a").iterdir()] == [blocker.name]
    assert blocker.is_dir()
    assert list(blocker.iterdir()) == []


def test_nfs_never_creates_a_missing_mount(make_core: Callable[..., Path], tmp_path: Path) -> None:
    storage = NfsStorage(tmp_path / "not-mounted")
    with pytest.raises(StorageUnavailableError, match="is the share mounted"):
        storage.store(request(make_core()))
    assert not (tmp_path / "not-mounted").exists()


def test_without_fsync_the_store_still_verifies(make_core: Callable[..., Path], tmp_path: Path) -> None:
    source = make_core()
    stored = LocalStorage(tmp_path / "store", fsync=False).store(request(source))
    assert plain_bytes(Path(stored.location)) == source.read_bytes()


def test_unserialisable_analysis_values_are_written_as_text(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    stored = storage_factory().store(request(make_core(), sidecar={"when": MOMENT, "path": Path("/x")}))
    document = json.loads(Path(stored.sidecar_location).read_text())
    assert document["analysis"] == {"when": str(MOMENT), "path": "/x"}


def test_describe_names_the_backend(storage_factory: Callable[..., LocalStorage]) -> None:
    storage = storage_factory()
    assert storage.describe("/x/y.core.zst").startswith("/x/y.core.zst (")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "local", "localPath": " "}, "storage.localPath"),
        ({"backend": "nfs"}, "storage.nfsPath"),
        ({"backend": "s3"}, "storage.s3.bucket"),
        ({"backend": "s3", "s3": {"bucket": "Bad_Bucket"}}, "storage.s3.bucket"),
        ({"backend": "s3", "s3": {"bucket": "cores", "multipartChunkSize": "1MiB"}}, "storage.s3.multipartChunkSize"),
        ({"backend": "s3", "s3": {"bucket": "cores", "prefix": "a/../b"}}, "storage.s3.prefix"),
    ],
)
def test_make_storage_rejects_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_storage(StorageConfig.model_validate(settings))


def test_make_storage_builds_the_configured_backend(tmp_path: Path) -> None:
    local = make_storage(StorageConfig.model_validate({"localPath": str(tmp_path), "compressionEnabled": False}))
    assert isinstance(local, LocalStorage)
    assert (local.backend, local.compression) == ("local", "none")
    nfs = make_storage(
        StorageConfig.model_validate({"backend": "nfs", "nfsPath": str(tmp_path), "compression": "gzip"})
    )
    assert (nfs.backend, nfs.compression) == ("nfs", "gzip")


def test_concurrent_stores_of_different_cores_with_one_name_never_share_an_object(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    storage = storage_factory()
    sources = [make_core(2**20, name=f"c{i}") for i in range(8)]  # equal size, equal stem

    def store(index: int) -> str:
        return storage.store(request(sources[index], source_id=f"node:1:{index}:1048576:1")).location

    with ThreadPoolExecutor(8) as pool:
        locations = list(pool.map(store, range(8)))
    assert len(set(locations)) == 8
    assert len(list(storage.list_objects())) == 8
    assert not [p for p in Path(locations[0]).parent.iterdir() if p.name.endswith(".claim")]


class _FlippingFile(io.FileIO):
    """A file layer that corrupts the first byte of every write: what a bad disk or driver would do."""

    def write(self, data: Any, /) -> int:
        chunk = bytes(data)
        return super().write(bytes([chunk[0] ^ 0xFF]) + chunk[1:])


def test_read_back_returns_the_size_and_sha256_of_what_is_on_disk(tmp_path: Path) -> None:
    chunks = [os.urandom(1 << 20) for _ in range(5)] + [b"tail"]
    with open(tmp_path / "f", "xb+", buffering=0) as out:
        read_back = _ReadBack(out, sync=True)
        for chunk in chunks:
            read_back.write(memoryview(chunk))
        size, sha256 = read_back.finish()
    assert size == sum(map(len, chunks)) == (tmp_path / "f").stat().st_size
    assert sha256 == hashlib.sha256(b"".join(chunks)).hexdigest() == hashlib.sha256((tmp_path / "f").read_bytes()).hexdigest()


def test_read_back_finds_bytes_that_differ_from_what_was_written(tmp_path: Path) -> None:
    with _FlippingFile(tmp_path / "f", "x+") as out:
        read_back = _ReadBack(out, sync=False)
        read_back.write(b"coredump bytes")
        with pytest.raises(StorageUnavailableError, match="read back differently"):
            read_back.finish()


def test_read_back_finds_a_file_longer_than_what_was_written(tmp_path: Path) -> None:
    with open(tmp_path / "f", "xb+", buffering=0) as out:
        read_back = _ReadBack(out, sync=False)
        read_back.write(b"written")
        with open(tmp_path / "f", "ab") as intruder:
            intruder.write(b" and more")
        with pytest.raises(StorageUnavailableError, match="were written"):
            read_back.finish()



def test_read_back_flushes_to_disk_beside_the_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_storage, "SYNC_EVERY", 1 << 20)
    flushed_by: list[str] = []
    flushed = threading.Event()
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        flushed_by.append(threading.current_thread().name)
        real_fdatasync(fd)
        flushed.set()

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    chunks = [os.urandom(1 << 20) for _ in range(6)]
    with open(tmp_path / "f", "xb+", buffering=0) as out:
        read_back = _ReadBack(out, sync=True)
        for chunk in chunks[:2]:
            read_back.write(chunk)
        assert flushed.wait(30), "2 MB written with SYNC_EVERY at 1 MB and nothing flushed while writing"
        for chunk in chunks[2:]:
            read_back.write(chunk)
        size, sha256 = read_back.finish()
    assert (size, sha256) == (6 << 20, hashlib.sha256(b"".join(chunks)).hexdigest())
    assert set(flushed_by) == {"store-flush"}  # never on the thread that reads back and hashes
    assert not [thread for thread in threading.enumerate() if thread.name == "store-flush"]


def test_a_failed_flush_fails_the_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_storage, "SYNC_EVERY", 1 << 16)
    failed = threading.Event()

    def fdatasync(fd: int) -> None:
        failed.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    with open(tmp_path / "f", "xb+", buffering=0) as out:
        read_back = _ReadBack(out, sync=True)
        read_back.write(os.urandom(1 << 17))
        assert failed.wait(30), "128 KB written with SYNC_EVERY at 64 KB and no flush tried"
        with pytest.raises(OSError, match="Input/output error"):
            read_back.finish()


def test_a_disk_that_fails_to_flush_fails_the_store_and_leaves_nothing(
    make_core: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_storage, "SYNC_EVERY", 1 << 16)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)  # the flushes while writing
    monkeypatch.setattr(os, "fsync", failing)  # the last one
    source = make_core(size=1 << 20)
    storage = LocalStorage(tmp_path / "store", compression="none")
    with pytest.raises(StorageUnavailableError, match="Input/output error"):
        storage.store(request(source))
    assert not [path for path in all_files(tmp_path / "store") if is_core_name(path.name)]


def test_leftovers_of_interrupted_stores_are_found_once_old_and_removed(
    storage_factory: Callable[..., LocalStorage], make_core: Callable[..., Path]
) -> None:
    storage = storage_factory()
    stored = Path(storage.store(request(make_core())).location)
    folder = stored.parent
    old_tmp = folder / f".{stored.name}.1a2b3c4d.tmp"  # a store killed while it wrote
    old_claim = folder / ".20250304T050607Z_querynode-0_querynode-2.core.zst.claim"
    fresh_tmp = folder / f".{stored.name}.99999999.tmp"  # a store writing right now
    for path in (old_tmp, old_claim, fresh_tmp):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 86400
    for path in (old_tmp, old_claim):
        os.utime(path, (two_days_ago, two_days_ago))

    cutoff = datetime.now(UTC) - timedelta(days=1)
    found = {Path(info.location) for info in storage.leftovers(cutoff)}
    assert found == {old_tmp, old_claim}
    for path in found:
        storage.remove_leftover(str(path))
    assert not old_tmp.exists() and not old_claim.exists() and fresh_tmp.exists() and stored.exists()
    outside = storage.root.parent / "other" / ".x.tmp"
    for location in (str(stored), str(outside), f"{folder}/../../.x.tmp", "/etc/.passwd.tmp"):
        with pytest.raises(StorageRejectedError, match="nothing deleted"):
            storage.remove_leftover(location)
    assert stored.exists()
