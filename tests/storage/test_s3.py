"""The S3 backend against moto's S3 server on loopback, through s3fs."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from coredumps.config import StorageConfig
from coredumps.errors import ConfigError, StorageRejectedError, StorageUnavailableError, TransientError
from coredumps.storage import StoreRequest, make_storage
from coredumps.storage.s3 import CREDENTIALS_FILE_ENV, S3Storage, s3_credentials
from tests.s3server import FAKE_SECRET_KEY, FlakyProxy, MotoServer, free_port, running

PART = 5 * 2**20
MOMENT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def request(source: Path, pod: str = "querynode-0", instance: str = "milvus-a") -> StoreRequest:
    return StoreRequest(source, instance, MOMENT, pod, "querynode", {"signal": "SIGSEGV"})


def no_sleep(_: float) -> None:
    return


def storage(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    options.setdefault("sleep", no_sleep)
    return S3Storage(bucket, endpoint=endpoint, region="us-east-1", part_size=PART, **options)


def fetch(client: Any, bucket: str, location: str) -> bytes:
    key = location.removeprefix(f"s3://{bucket}/")
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys(client: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def test_round_trip_with_verified_multipart_upload(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    source = make_core(32 * 2**20)
    parts: list[int] = []
    s3 = storage(moto_server.url, bucket, on_part=lambda number, size: parts.append(size))
    stored = s3.store(request(source))
    assert stored.location == f"s3://{bucket}/coredumps/milvus-a/20250304T050607Z_querynode-0_querynode.core.zst"
    assert stored.sidecar_location.endswith("/milvus-a/20250304T050607Z_querynode-0_querynode.json")
    data = fetch(s3client, bucket, stored.location)
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert unzstd(data) == source.read_bytes()
    assert len(parts) >= 2
    assert parts[0] == PART
    sidecar = json.loads(fetch(s3client, bucket, stored.sidecar_location))
    assert sidecar["analysis"] == {"signal": "SIGSEGV"}
    assert sidecar["stored"]["sha256"] == stored.sha256


def test_small_object_uses_one_request(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    source = make_core(2**20)
    parts: list[int] = []
    stored = storage(moto_server.url, bucket, on_part=lambda n, size: parts.append(n)).store(request(source))
    assert parts == []
    assert unzstd(fetch(s3client, bucket, stored.location)) == source.read_bytes()


def test_read_back_verification(moto_server: MotoServer, bucket: str, make_core: Callable[..., Path]) -> None:
    source = make_core(12 * 2**20)
    stored = storage(moto_server.url, bucket, verify="read-back", compression="none").store(request(source))
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_storing_twice_reuses_the_object(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    source = make_core()
    s3 = storage(moto_server.url, bucket)
    first = s3.store(request(source))
    second = s3.store(request(source))
    assert second.reused
    assert (second.location, second.size, second.sha256) == (first.location, first.size, first.sha256)
    assert len(keys(s3client, bucket)) == 2


def test_hostile_names_stay_under_the_prefix(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    s3 = storage(moto_server.url, bucket)
    s3.store(request(make_core(64 * 1024), pod="../../../etc/passwd", instance="../../other"))
    for key in keys(s3client, bucket):
        parts = key.split("/")
        assert parts[0] == "coredumps"
        assert len(parts) == 3
        assert ".." not in parts


def test_list_and_delete(moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]) -> None:
    s3 = storage(moto_server.url, bucket, prefix="team/cores")
    source = make_core(256 * 1024)
    a = s3.store(request(source, instance="a"))
    b = s3.store(request(source, instance="b"))
    listed = {info.location: info for info in s3.list_objects()}
    assert set(listed) == {a.location, b.location}
    assert (listed[a.location].instance, listed[a.location].size) == ("a", a.size)
    assert listed[a.location].modified.tzinfo is not None
    s3.delete(a.location)
    s3.delete(a.location)
    assert [info.location for info in s3.list_objects()] == [b.location]
    assert len(keys(s3client, bucket)) == 2
    with pytest.raises(StorageRejectedError, match="not a stored core"):
        s3.delete(f"s3://{bucket}/elsewhere/x.core.zst")
    assert b.location in s3.describe(b.location)


def test_missing_bucket_is_a_permanent_error_naming_it(
    moto_server: MotoServer, aws_env: None, make_core: Callable[..., Path]
) -> None:
    retries: list[int] = []
    s3 = storage(moto_server.url, "no-such-bucket", on_retry=lambda n, exc, d: retries.append(n))
    with pytest.raises(StorageRejectedError, match="'no-such-bucket'") as caught:
        s3.store(request(make_core()))
    assert moto_server.url in str(caught.value)
    assert retries == []


@pytest.fixture
def moto_auth(moto_server: MotoServer) -> Iterator[None]:
    moto_server.set_auth(True)
    try:
        yield
    finally:
        moto_server.set_auth(False)


def test_bad_credentials_fail_fast_without_showing_them(
    moto_server: MotoServer, bucket: str, moto_auth: None, make_core: Callable[..., Path]
) -> None:
    retries: list[int] = []
    s3 = storage(moto_server.url, bucket, on_retry=lambda n, exc, d: retries.append(n))
    with pytest.raises(StorageRejectedError) as caught:
        s3.store(request(make_core()))
    message = str(caught.value)
    assert bucket in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert FAKE_SECRET_KEY not in message
    assert retries == []


def test_outage_during_multipart_upload_is_survived(aws_env: None, make_core: Callable[..., Path]) -> None:
    source = make_core(20 * 2**20)
    with running(MotoServer(free_port())) as server:
        direct = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
        direct.create_bucket(Bucket="outage")
        events: list[str] = []

        def on_part(number: int, size: int) -> None:
            events.append(f"part {number}")
            if number == 1:
                server.stop()
                events.append("server stopped")

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            events.append(f"retry {attempt}: {type(exc).__name__}")
            assert isinstance(exc, TransientError)
            if not server.running:
                server.start()
                events.append("server started")

        s3 = storage(server.url, "outage", on_part=on_part, on_retry=on_retry, compression="none")
        stored = s3.store(request(source))

        assert events[:4] == ["part 1", "server stopped", "retry 1: StorageUnavailableError", "server started"]
        assert "part 2" in events
        listed = direct.list_objects_v2(Bucket="outage")["Contents"]
        assert sorted(item["Key"] for item in listed) == [
            "coredumps/milvus-a/20250304T050607Z_querynode-0_querynode.core",
            "coredumps/milvus-a/20250304T050607Z_querynode-0_querynode.json",
        ]
        assert direct.list_multipart_uploads(Bucket="outage").get("Uploads", []) == []
        data = fetch(direct, "outage", stored.location)
        assert stored.sha256 == hashlib.sha256(data).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
        assert stored.size == len(data)


def test_throttling_503_is_retried_then_succeeds(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    source = make_core()
    retries: list[str] = []
    with running(FlakyProxy(moto_server.url, failures=3)) as proxy:
        s3 = storage(proxy.url, bucket, on_retry=lambda n, exc, d: retries.append(str(exc)))
        stored = s3.store(request(source))
        assert proxy.failed == 3
    assert len(retries) == 3
    assert all("SlowDown" in message for message in retries)
    assert unzstd(fetch(s3client, bucket, stored.location)) == source.read_bytes()
    assert len(keys(s3client, bucket)) == 2


def test_persistent_503_gives_up_as_unavailable(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    with running(FlakyProxy(moto_server.url, failures=1000, status=500, code="InternalError")) as proxy:
        s3 = storage(proxy.url, bucket, attempts=3)
        with pytest.raises(StorageUnavailableError, match="InternalError"):
            s3.store(request(make_core()))
        assert proxy.failed == 3
    assert keys(s3client, bucket) == []


def test_unreachable_endpoint_is_transient_and_wraps_the_library_error(
    aws_env: None, make_core: Callable[..., Path]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    s3 = storage(endpoint, "cores", attempts=2)
    with pytest.raises(StorageUnavailableError) as caught:
        s3.store(request(make_core()))
    assert endpoint in str(caught.value)
    assert "'cores'" in str(caught.value)
    assert caught.value.__cause__ is not None
    assert not isinstance(caught.value.__cause__, StorageUnavailableError)


def test_credentials_from_a_mounted_secret_file(
    moto_server: MotoServer,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_core: Callable[..., Path],
) -> None:
    secret = tmp_path / "s3-credentials"
    secret.write_text("[default]\naws_access_key_id = AKIAFROMFILE\naws_secret_access_key = from-file-secret\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv(CREDENTIALS_FILE_ENV, str(secret))
    stored = storage(moto_server.url, bucket).store(request(make_core(64 * 1024)))
    assert stored.size > 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("AWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY=SK\n", {"key": "AK", "secret": "SK"}),
        ("accessKey: AK\nsecretKey: 'SK'\nsessionToken: x\n", {"key": "AK", "secret": "SK"}),
        ("access_key = AK\nsecret_key = S=K/+\n", {"key": "AK", "secret": "S=K/+"}),
        (
            "# comment\n[default]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = T\n",
            {"key": "AK", "secret": "SK", "token": "T"},
        ),
    ],
)
def test_credentials_file_formats(tmp_path: Path, content: str, expected: dict[str, str]) -> None:
    path = tmp_path / "creds"
    path.write_text(content)
    assert s3_credentials({CREDENTIALS_FILE_ENV: str(path)}) == expected


def test_credentials_folder_from_a_whole_secret(tmp_path: Path) -> None:
    (tmp_path / "AWS_ACCESS_KEY_ID").write_text("AK\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("SK\n")
    assert s3_credentials({CREDENTIALS_FILE_ENV: str(tmp_path)}) == {"key": "AK", "secret": "SK"}


def test_environment_keys_win_and_botocore_finds_the_rest(tmp_path: Path) -> None:
    assert s3_credentials({"AWS_ACCESS_KEY_ID": "AK", CREDENTIALS_FILE_ENV: str(tmp_path / "x")}) == {}
    assert s3_credentials({}) == {}


def test_incomplete_or_missing_credentials_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "creds"
    path.write_text("aws_access_key_id = AK\n")
    with pytest.raises(ConfigError, match="must hold"):
        s3_credentials({CREDENTIALS_FILE_ENV: str(path)})
    with pytest.raises(ConfigError, match="cannot be read"):
        s3_credentials({CREDENTIALS_FILE_ENV: str(tmp_path / "missing")})


def test_make_storage_builds_s3(moto_server: MotoServer, bucket: str, make_core: Callable[..., Path]) -> None:
    cfg = StorageConfig.model_validate(
        {"backend": "s3", "s3": {"bucket": bucket, "endpoint": moto_server.url, "region": "us-east-1", "prefix": "/p/"}}
    )
    s3 = make_storage(cfg)
    assert s3.backend == "s3"
    stored = s3.store(request(make_core(64 * 1024)))
    assert stored.location.startswith(f"s3://{bucket}/p/milvus-a/")


def test_a_name_claimed_by_another_core_is_left_to_it(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    # Another node is storing a different core under the same name: its claim is in place, no object yet.
    stem = "coredumps/milvus-a/20250304T050607Z_querynode-0_querynode"
    s3client.put_object(Bucket=bucket, Key=f"coredumps/milvus-a/.{stem.rsplit('/', 1)[1]}.core.zst.claim",
                        Body=b"node-2:1:7:100:1")
    source = make_core(2**20)
    mine = StoreRequest(source, "milvus-a", MOMENT, "querynode-0", "querynode", {}, source_id="node-1:1:9:100:1")
    stored = storage(moto_server.url, bucket).store(mine)
    assert stored.location == f"s3://{bucket}/{stem}-2.core.zst"
    assert unzstd(fetch(s3client, bucket, stored.location)) == source.read_bytes()
    assert f"coredumps/milvus-a/.{stem.rsplit('/', 1)[1]}-2.core.zst.claim" not in keys(s3client, bucket)
    # Its own claim, left by an interrupted store, is this core's again.
    again = StoreRequest(source, "milvus-a", MOMENT, "querynode-0", "querynode", {}, source_id="node-2:1:7:100:1")
    assert storage(moto_server.url, bucket).store(again).location == f"s3://{bucket}/{stem}.core.zst"


def test_concurrent_stores_of_different_cores_with_one_name_never_share_a_key(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sources = [make_core(2**20, name=f"c{i}", seed=i) for i in range(6)]  # equal size and name, other bytes

    def store(index: int) -> str:
        mine = StoreRequest(sources[index], "milvus-a", MOMENT, "querynode-0", "querynode", {},
                            source_id=f"node-{index}:1:{index}:1048576:1")
        return storage(moto_server.url, bucket).store(mine).location

    with ThreadPoolExecutor(6) as pool:
        locations = list(pool.map(store, range(6)))
    assert len(set(locations)) == 6
    for index, location in enumerate(locations):
        assert unzstd(fetch(s3client, bucket, location)) == sources[index].read_bytes()
    assert not [key for key in keys(s3client, bucket) if key.endswith(".claim")]


def test_claims_and_unfinished_uploads_of_interrupted_stores_are_removed(
    moto_server: MotoServer, bucket: str, s3client: Any, make_core: Callable[..., Path]
) -> None:
    s3 = storage(moto_server.url, bucket)
    stored = s3.store(request(make_core()))
    folder = "coredumps/milvus-a"
    s3client.put_object(Bucket=bucket, Key=f"{folder}/.20250304T050607Z_x_y.core.zst.claim", Body=b"node-9:1:1:1:1")
    upload = s3client.create_multipart_upload(Bucket=bucket, Key=f"{folder}/20250304T050607Z_x_y.core.zst")
    s3client.upload_part(Bucket=bucket, Key=f"{folder}/20250304T050607Z_x_y.core.zst", UploadId=upload["UploadId"],
                         PartNumber=1, Body=b"x" * PART)

    recent = [i.location for i in s3.leftovers(datetime.now(UTC) - timedelta(days=1))]
    assert not [location for location in recent if "?uploadId=" not in location]  # the claim is recent
    # (moto dates every multipart upload 2010-11-10, so an upload here is always old enough)
    found = [info.location for info in s3.leftovers(datetime.now(UTC) + timedelta(minutes=5))]
    assert sorted(found) == sorted([f"s3://{bucket}/{folder}/.20250304T050607Z_x_y.core.zst.claim",
                                    f"s3://{bucket}/{folder}/20250304T050607Z_x_y.core.zst?uploadId={upload['UploadId']}"])
    for location in found:
        s3.remove_leftover(location)
    s3.remove_leftover(found[-1])  # already gone: nothing left to do
    assert not s3client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert keys(s3client, bucket) == sorted([stored.location.removeprefix(f"s3://{bucket}/"),
                                             stored.sidecar_location.removeprefix(f"s3://{bucket}/")])
    with pytest.raises(StorageRejectedError, match="nothing deleted"):
        s3.remove_leftover(stored.location)
