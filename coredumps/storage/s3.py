"""S3 backend over s3fs, for AWS and any S3-compatible endpoint (MinIO, Ceph).

Keys are ``<prefix>/<instance>/<name>``. The compressed stream is cut into
parts of ``multipart_chunk_size`` and uploaded one part at a time, each with
its MD5 and its own retries, so memory stays at about two parts whatever the
size of the core. The object is verified by size and by its multipart ETag
(the MD5 of the part MD5s); when the endpoint's ETag is not an MD5 (SSE-KMS)
the object is read back and its sha256 compared. The sidecar is written last.
A free name is first claimed with a conditional write (If-None-Match), so that
two different cores that share a name, stored at once from two nodes, never
land on one key.

Credentials come only from the environment: AWS_ACCESS_KEY_ID and friends,
AWS_SHARED_CREDENTIALS_FILE or any other source botocore knows, or the file
that COREDUMP_AGENT_S3_CREDENTIALS_FILE names. They never appear in messages.

Every s3fs, botocore or OS error is wrapped: ``StorageRejectedError`` when a
retry cannot help (missing bucket, bad credentials, access denied, a rejected
request), ``StorageUnavailableError`` otherwise (connection, timeouts, 5xx,
throttling); the latter are retried here with backoff and jitter.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import s3fs
from botocore import exceptions as boto

from coredumps.compression import COPY_CHUNK, SUFFIXES, compress_file
from coredumps.errors import ConfigError, CoredumpError, StorageRejectedError, StorageUnavailableError
from coredumps.inputs import check_regular_file
from coredumps.retrying import OnRetry, call_with_retries
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

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTENT_TYPES = {"zstd": "application/zstd", "gzip": "application/gzip", "none": "application/octet-stream"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_CLAIMED = {"PreconditionFailed", "ConditionalRequestConflict"}
"""A conditional write that lost: the key exists, or another conditional write to it is in flight."""
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "NoSuchUpload",
}
CREDENTIALS_FILE_ENV = "COREDUMP_AGENT_S3_CREDENTIALS_FILE"
_KEY_NAMES = {
    "key": ("aws_access_key_id", "access_key_id", "accesskey", "access_key"),
    "secret": ("aws_secret_access_key", "secret_access_key", "secretkey", "secret_key"),
    "token": ("aws_session_token", "session_token"),
}
_KEY_VALUE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]\s*(.*?)\s*$")
_UNREACHABLE = (boto.ConnectionError, boto.HTTPClientError, boto.IncompleteReadError, aiohttp.ClientError, OSError)
"""Connection failures and timeouts (TimeoutError is an OSError); errors with an S3 code are sorted apart."""
PartCallback = Callable[[int, int], None]
"""Called as ``on_part(part_number, part_size)`` after each uploaded part."""


def s3_credentials(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Explicit s3fs credentials from COREDUMP_AGENT_S3_CREDENTIALS_FILE, or {} to let botocore find them.

    AWS_ACCESS_KEY_ID in the environment wins. The file holds ``name = value`` (or
    ``name: value``) lines, as in an AWS credentials file or a mounted Secret; a
    folder with one file per key (a Secret mounted whole) works too.
    """
    env = os.environ if environ is None else environ
    path = env.get(CREDENTIALS_FILE_ENV, "")
    if env.get("AWS_ACCESS_KEY_ID") or not path:
        return {}
    try:
        values = _read_key_values(Path(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CREDENTIALS_FILE_ENV}: {path} cannot be read ({type(exc).__name__})") from exc
    found = {
        field: next((values[name] for name in names if values.get(name)), "") for field, names in _KEY_NAMES.items()
    }
    if not found["key"] or not found["secret"]:
        raise ConfigError(f"{CREDENTIALS_FILE_ENV}: {path} must hold aws_access_key_id and aws_secret_access_key")
    return {field: value for field, value in found.items() if value}


def _read_key_values(path: Path) -> dict[str, str]:
    if path.is_dir():
        pairs = [(entry.name, entry.read_text()) for entry in path.iterdir() if entry.is_file()]
    else:
        lines = (_KEY_VALUE.match(line) for line in path.read_text().splitlines())
        pairs = [(match[1], match[2]) for match in lines if match]
    return {name.strip().lower().replace("-", "_"): value.strip().strip("\"'") for name, value in pairs}


def _client_error(exc: BaseException) -> tuple[str, int] | None:
    """The (code, HTTP status) of the ClientError behind ``exc``, if any."""
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            break
        if isinstance(seen, boto.ClientError):
            response: Mapping[str, Any] = seen.response
            code = str(response.get("Error", {}).get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            return code, status
        seen = seen.__cause__ or seen.__context__
    return None


def _is_not_found(exc: BaseException) -> bool:
    """A missing key (s3fs raises a bare FileNotFoundError from cat_file); a missing bucket is not this."""
    found = _client_error(exc)
    if found is None:
        return isinstance(exc, FileNotFoundError)
    return found[0] in _NOT_FOUND


class S3Storage:
    """Cores under ``s3://bucket/prefix/<instance>/``."""

    backend = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "coredumps",
        endpoint: str = "",
        region: str = "",
        part_size: int = 16 * 2**20,
        compression: str = "zstd",
        level: int = 1,
        threads: int = 0,
        verify: Literal["etag", "read-back"] = "etag",
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        sleep: Callable[[float], object] = time.sleep,
        on_retry: OnRetry | None = None,
        on_part: PartCallback | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.part_size = part_size
        self.compression = compression
        self.level = level
        self.threads = threads
        self.verify = verify
        self._retry = {"attempts": attempts, "base_delay": base_delay, "max_delay": max_delay, "sleep": sleep}
        self._on_retry = on_retry
        self._on_part = on_part
        self._fs = s3fs.S3FileSystem(
            endpoint_url=endpoint or None,
            client_kwargs={"region_name": region} if region else {},
            config_kwargs={
                "retries": {"mode": "standard", "total_max_attempts": 1},
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            },
            skip_instance_cache=True,
            use_listings_cache=False,
            **s3_credentials(environ),
        )
        self._fs.retries = 1

    @property
    def where(self) -> str:
        """The bucket and endpoint, for messages."""
        return f"bucket '{self.bucket}' at {self.endpoint or 'AWS S3'}"

    def store(self, request: StoreRequest) -> StoredObject:
        source_size = check_regular_file(request.source).st_size
        folder = instance_folder(request.instance)
        for stem in candidate_stems(request):
            key = self._key(folder, stem + SUFFIXES[self.compression])
            found = self._probe(key, request, source_size)
            if found == "taken" or (found == "free" and not self._claim(key, request)):
                continue
            if isinstance(found, StoredObject):
                return found
            try:
                return self._write(request, key, source_size)
            finally:
                self._release_claim(key)
        raise StorageRejectedError(f"{self.where}: too many different cores share the name {key}; not stored")

    def delete(self, location: str) -> None:
        key = self._own_key(location)
        for name in (key, self._sidecar_key(key)):
            self._call("delete_object", Key=name)

    def presign(self, location: str, expires: int) -> str:
        """A time-limited GET URL for one stored core (the dashboard's viewer fetches it)."""
        key = self._own_key(location)
        try:
            return str(self._fs.sign(f"{self.bucket}/{key}", expiration=int(expires)))
        except Exception as exc:
            raise StorageUnavailableError(f"{location}: cannot sign a download URL: {exc}") from exc

    def list_objects(self) -> Iterator[ObjectInfo]:
        return (info for info in self._listing() if is_core_name(info.location.rpartition("/")[2]))

    def _listing(self) -> Iterator[ObjectInfo]:
        """Every object one folder below the prefix, page by page."""
        start = f"{self.prefix}/" if self.prefix else ""
        token: str | None = None
        while True:
            page = self._call("list_objects_v2", Prefix=start, **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", []):
                parts = str(item["Key"])[len(start) :].split("/")
                if len(parts) == 2:
                    modified = item["LastModified"].astimezone(UTC)
                    yield ObjectInfo(self._location(item["Key"]), parts[0], int(item["Size"]), modified)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def describe(self, location: str) -> str:
        return f"{location} at {self.endpoint}" if self.endpoint else location

    def leftovers(self, before: datetime) -> Iterator[ObjectInfo]:
        """Name claims and unfinished multipart uploads from before ``before``: a store killed midway leaves them.

        An unfinished upload's parts are billed like objects but never listed as objects; its location
        is ``s3://bucket/key?uploadId=ID`` and its size is not counted (0).
        """
        for info in self._listing():
            if is_leftover_name(info.location.rpartition("/")[2]) and info.modified < before:
                yield info
        start = f"{self.prefix}/" if self.prefix else ""
        markers: dict[str, str] = {}
        while True:
            page = self._call("list_multipart_uploads", Prefix=start, **markers)
            for upload in page.get("Uploads", []):
                parts = str(upload["Key"])[len(start) :].split("/")
                initiated = upload["Initiated"].astimezone(UTC)
                if len(parts) == 2 and initiated < before:
                    location = f"{self._location(upload['Key'])}?uploadId={upload['UploadId']}"
                    yield ObjectInfo(location, parts[0], 0, initiated)
            if not page.get("IsTruncated"):
                return
            markers = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def remove_leftover(self, location: str) -> None:
        where, _, upload_id = location.partition("?uploadId=")
        key = self._own_key(where, lambda name: bool(upload_id) or is_leftover_name(name), "a leftover of a store")
        if not upload_id:
            self._call("delete_object", Key=key)
            return

        def abort() -> None:
            try:
                self._fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as exc:
                found = _client_error(exc)
                if found is None or found[0] != "NoSuchUpload":  # already completed or aborted: nothing left
                    raise

        call_with_retries(lambda: self._translated(abort), **self._retry_options("abort_multipart_upload"))

    def _key(self, folder: str, name: str) -> str:
        return f"{self.prefix}/{folder}/{name}" if self.prefix else f"{folder}/{name}"

    def _location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @staticmethod
    def _sidecar_key(key: str) -> str:
        folder, _, name = key.rpartition("/")
        return f"{folder}/{sidecar_name_for(name)}"

    def _own_key(self, location: str, wanted: Callable[[str], bool] = is_core_name,
                 what: str = "a stored core") -> str:
        """The key of ``location`` if it is one of ours (one folder below the prefix, a name ``wanted`` accepts)."""
        head = f"s3://{self.bucket}/"
        start = f"{self.prefix}/" if self.prefix else ""
        key = location.removeprefix(head)
        parts = key.removeprefix(start).split("/")
        if (
            not location.startswith(head + start)
            or len(parts) != 2
            or parts[0] in ("", ".", "..")
            or not wanted(parts[1])
        ):
            raise StorageRejectedError(f"{location}: not {what} in {self.where}; nothing deleted")
        return key

    @staticmethod
    def _claim_key(key: str) -> str:
        folder, _, name = key.rpartition("/")
        return f"{folder}/.{name}.claim"

    def _claim(self, key: str, request: StoreRequest) -> bool:
        """Reserve a free name for this core: a write that succeeds only if nobody has claimed it.

        A name claimed by this same core (a store interrupted before) is ours again. The claim is read
        back, so that an endpoint that ignores If-None-Match still hands the name to one writer at a time.
        """
        claim = self._claim_key(key)
        owner = (request.source_id or "").encode()

        def put() -> None:
            try:
                self._fs.call_s3("put_object", Bucket=self.bucket, Key=claim, Body=owner, IfNoneMatch="*",
                                 **_md5_header(owner))
            except Exception as exc:
                found = _client_error(exc)
                if found is None or not (found[0] in _CLAIMED or found[1] in (409, 412)):
                    raise

        call_with_retries(lambda: self._translated(put), **self._retry_options("put_object"))
        return self._get_optional(claim) == owner

    def _release_claim(self, key: str) -> None:
        try:
            self._call("delete_object", Key=self._claim_key(key))
        except CoredumpError as exc:  # a claim left behind holds only a name this core already has
            log.warning("could not remove the claim of %s: %s", self._location(key), exc)

    def _probe(self, key: str, request: StoreRequest, source_size: int) -> StoredObject | str:
        """'free' to write here, 'taken' by another core, or the complete earlier store of this core."""
        sidecar = self._get_optional(self._sidecar_key(key))
        if sidecar is None:
            return "free"
        record = stored_record(sidecar)
        if record is None or not same_source(record, request, source_size, self.compression):
            return "taken"
        head = self._head_optional(key)
        if head is None or head["ContentLength"] != record.get("size") or _etag(head) != record.get("etag"):
            return "free"
        location = self._location(key)
        sidecar_location = self._location(self._sidecar_key(key))
        return StoredObject(
            location, sidecar_location, int(record["size"]), str(record["sha256"]), self.compression, True
        )

    def _write(self, request: StoreRequest, key: str, source_size: int) -> StoredObject:
        sink = _PartSink(self, key)
        try:
            size, sha256 = compress_file(request.source, sink, self.compression, self.level, self.threads)
            etag = sink.finish()
        except BaseException:
            sink.abort()
            raise
        self._verify(key, size, etag, sha256)
        record = new_record(
            request,
            name=key.rpartition("/")[2],
            size=size,
            sha256=sha256,
            compression=self.compression,
            source_size=source_size,
            etag=etag,
        )
        document = sidecar_document(request, record)
        sidecar_key = self._sidecar_key(key)
        self._call(
            "put_object", Key=sidecar_key, Body=document, ContentType="application/json", **_md5_header(document)
        )
        return StoredObject(self._location(key), self._location(sidecar_key), size, sha256, self.compression)

    def _verify(self, key: str, size: int, etag: str, sha256: str) -> None:
        head = self._call("head_object", Key=key)
        if head["ContentLength"] != size:
            raise StorageUnavailableError(
                f"{self._location(key)}: verification failed: stored {head['ContentLength']} bytes, "
                f"wrote {size}; will retry"
            )
        if self.verify == "etag" and _etag(head) == etag:
            return
        stored = call_with_retries(
            lambda: self._translated(lambda: self._read_back(key)), **self._retry_options("read-back")
        )
        if stored != sha256:
            raise StorageUnavailableError(f"{self._location(key)}: verification failed: sha256 differs; will retry")

    def _read_back(self, key: str) -> str:
        digest = hashlib.sha256()
        with self._fs.open(f"{self.bucket}/{key}", "rb", block_size=COPY_CHUNK, cache_type="none") as handle:
            while chunk := handle.read(COPY_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _get_optional(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            try:
                return bytes(self._fs.cat_file(f"{self.bucket}/{key}", max_concurrency=1))
            except Exception as exc:
                if _is_not_found(exc):
                    return None
                raise

        return call_with_retries(lambda: self._translated(get), **self._retry_options("get_object"))

    def _head_optional(self, key: str) -> dict[str, Any] | None:
        def head() -> dict[str, Any] | None:
            try:
                return dict(self._fs.call_s3("head_object", Bucket=self.bucket, Key=key))
            except Exception as exc:
                if _is_not_found(exc):
                    return None
                raise

        return call_with_retries(lambda: self._translated(head), **self._retry_options("head_object"))

    def _call_with_body(self, body: io.RawIOBase, method: str, **kwargs: Any) -> dict[str, Any]:
        """Like ``_call``, rewinding the streamed body before each attempt."""

        def once() -> dict[str, Any]:
            body.seek(0)
            return dict(self._fs.call_s3(method, Bucket=self.bucket, Body=body, **kwargs))

        return call_with_retries(lambda: self._translated(once), **self._retry_options(method))

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One S3 request with retries; errors come out as the project's storage errors."""

        def once() -> dict[str, Any]:
            return dict(self._fs.call_s3(method, Bucket=self.bucket, **kwargs))

        return call_with_retries(lambda: self._translated(once), **self._retry_options(method))

    def _translated(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except CoredumpError:
            raise
        except Exception as exc:
            raise self._wrap(exc) from exc

    def _retry_options(self, what: str) -> dict[str, Any]:
        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            log.warning("S3 %s failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc)
            if self._on_retry is not None:
                self._on_retry(attempt, exc, delay)

        return {**self._retry, "on_retry": on_retry}

    def _denied(self, code: str) -> StorageRejectedError:
        return StorageRejectedError(
            f"S3 {self.where} denied access ({code}); check the credentials in the environment (AWS_ACCESS_KEY_ID "
            f"and AWS_SECRET_ACCESS_KEY, or {CREDENTIALS_FILE_ENV}) and the bucket policy"
        )

    def _wrap(self, exc: Exception) -> CoredumpError:
        """The storage error for a library exception; the message names bucket and endpoint only."""
        found = _client_error(exc)
        if found is not None:
            code, status = found
            if code == "NoSuchBucket":
                return StorageRejectedError(
                    f"S3 {self.where}: the bucket does not exist; create it or fix storage.s3.bucket"
                )
            if code in _CREDENTIALS:
                return StorageRejectedError(
                    f"S3 {self.where} rejected the credentials ({code}); check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or COREDUMP_AGENT_S3_CREDENTIALS_FILE) in the environment"
                )
            if code == "AccessDenied" or status == 403:
                return self._denied(code or str(status))
            if code in _THROTTLED or status == 429 or status >= 500:
                return StorageUnavailableError(f"S3 {self.where} is unavailable ({code or status}); will retry")
            return StorageRejectedError(f"S3 {self.where} rejected the request ({code or status})")
        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError):
            return StorageRejectedError(
                f"S3 {self.where}: no usable credentials in the environment ({type(exc).__name__}); set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or COREDUMP_AGENT_S3_CREDENTIALS_FILE"
            )
        if isinstance(exc, PermissionError):
            return self._denied("403")
        if isinstance(exc, FileNotFoundError):
            return StorageRejectedError(f"S3 {self.where}: not found ({exc}); check storage.s3.bucket and the prefix")
        if isinstance(exc, _UNREACHABLE):
            return StorageUnavailableError(f"S3 {self.where} is unreachable ({type(exc).__name__}); will retry")
        return StorageRejectedError(f"S3 {self.where}: the request failed ({type(exc).__name__}: {exc})")


def _etag(head: Mapping[str, Any]) -> str:
    return str(head.get("ETag", "")).strip('"')


def _md5_header(data: bytes) -> dict[str, str]:
    return {"ContentMD5": base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()}


class _Part(io.RawIOBase):
    """A readable, seekable view of a list of byte strings: one part's body, without joining them."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._starts = list(itertools.accumulate((len(chunk) for chunk in chunks), initial=0))
        self.size = self._starts[-1]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        while written < target.nbytes and self._position < self.size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            offset = self._position - self._starts[index]
            chunk = self._chunks[index][offset : offset + target.nbytes - written]
            target[written : written + len(chunk)] = chunk
            written += len(chunk)
            self._position += len(chunk)
        return written


class _PartSink:
    """A write-only stream that uploads itself as a multipart object, one part at a time.

    Written chunks are kept as they come (no joined copy) and streamed to S3 as
    one part once ``part_size`` bytes are held, so memory stays near one part.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._chunks: list[bytes] = []
        self._held = 0
        self._digests: list[bytes] = []
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        view = memoryview(data).cast("B")
        size = self._storage.part_size
        offset = 0
        while offset < view.nbytes:
            take = min(view.nbytes - offset, size - self._held)
            self._chunks.append(
                data if take == view.nbytes and isinstance(data, bytes) else bytes(view[offset : offset + take])
            )
            self._held += take
            offset += take
            if self._held == size:
                self._upload()
        return view.nbytes

    def finish(self) -> str:
        """Complete the object; return its expected ETag."""
        storage = self._storage
        if self._upload_id is None:
            body = b"".join(self._chunks)
            self._chunks, self._held = [], 0
            storage._call("put_object", Key=self._key, Body=body, ContentType=self._content_type(), **_md5_header(body))
            return hashlib.md5(body, usedforsecurity=False).hexdigest()
        if self._held:
            self._upload()
        storage._call(
            "complete_multipart_upload",
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None
        return f"{hashlib.md5(b''.join(self._digests), usedforsecurity=False).hexdigest()}-{len(self._digests)}"

    def abort(self) -> None:
        """Best effort: drop the parts of an unfinished upload (a bucket lifecycle rule catches the rest)."""
        if self._upload_id is None:
            return
        try:
            self._storage._fs.call_s3(
                "abort_multipart_upload", Bucket=self._storage.bucket, Key=self._key, UploadId=self._upload_id
            )
        except Exception as exc:
            log.warning("could not abort the multipart upload of %s: %s", self._key, type(exc).__name__)
        self._upload_id = None

    def _content_type(self) -> str:
        return CONTENT_TYPES[self._storage.compression]

    def _upload(self) -> None:
        storage = self._storage
        chunks, self._chunks, self._held = self._chunks, [], 0
        if self._upload_id is None:
            created = storage._call("create_multipart_upload", Key=self._key, ContentType=self._content_type())
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        md5 = hashlib.md5(usedforsecurity=False)
        for chunk in chunks:
            md5.update(chunk)
        body = _Part(chunks)
        response = storage._call_with_body(
            body,
            "upload_part",
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            ContentLength=body.size,
            ContentMD5=base64.b64encode(md5.digest()).decode(),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._digests.append(md5.digest())
        if storage._on_part is not None:
            storage._on_part(number, body.size)
