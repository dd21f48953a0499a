"""The dataset on S3 (or any S3-compatible endpoint) through s3fs.

The endpoint and region are the storage's (``storage.s3``); credentials come
only from the environment, as for storage (``s3_credentials``). A part is
uploaded straight to its final key, ``part-0.parquet``: S3 makes an object
visible only when its upload completes (the single PUT of a small part, or
CompleteMultipartUpload above 8 MiB) and then replaces the old object whole,
so readers get the old partition or the new one. Publishing is completing the
upload; a failed write aborts it, and an upload a killed run left unfinished
(never visible) is aborted by the next run's sweep.
Every s3fs and botocore error comes out as ``StorageRejectedError`` or
``StorageUnavailableError``, naming the bucket and endpoint, never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

import s3fs
from botocore import exceptions as boto

from coredumps.errors import CoredumpError, StorageRejectedError, StorageUnavailableError
from coredumps.export.destinations import PART, Staged, partition_date, partition_folder
from coredumps.storage.s3 import CREDENTIALS_FILE_ENV, s3_credentials

log = logging.getLogger(__name__)
T = TypeVar("T")
BLOCK_SIZE = 8 * 2**20
"""Upload part size: memory held per part being written."""
_NO_CREDENTIALS = (boto.NoCredentialsError, boto.PartialCredentialsError, boto.CredentialRetrievalError)


class S3Destination:
    """A dataset under ``s3://bucket/prefix``."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint: str = "", region: str = "",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._fs = s3fs.S3FileSystem(
            endpoint_url=endpoint or None,
            client_kwargs={"region_name": region} if region else {},
            config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 4}},
            skip_instance_cache=True,
            use_listings_cache=False,
            **s3_credentials(environ),
        )

    @property
    def filesystem(self) -> Any:
        """The s3fs file system, e.g. for reading the dataset with pyarrow."""
        return self._fs

    @property
    def where(self) -> str:
        return f"bucket '{self.bucket}' at {self.endpoint or 'AWS S3'}"

    def partitions(self, table: str) -> set[str]:
        found = set()
        for key in self._call(self._fs.find, self._path(table)):
            folder, _, name = str(key).rpartition("/")
            date = partition_date(folder.rpartition("/")[2])
            if name == PART and date:
                found.add(date)
        return found

    @contextmanager
    def open_part(self, table: str, date: str) -> Iterator[BinaryIO]:
        handle = self._call(self._fs.open, self._part(table, date), "rb", block_size=BLOCK_SIZE)
        try:
            yield handle
        finally:
            handle.close()

    def stage(self, table: str, date: str) -> Staged:
        final = self._part(table, date)
        sink = self._call(self._fs.open, final, "wb", block_size=BLOCK_SIZE)
        return Staged(table, date, f"{final} (upload in progress)", final, sink)

    def publish(self, staged: Staged) -> None:
        self._call(staged.sink.close)

    def discard(self, staged: Staged) -> None:
        sink = staged.sink
        if sink.closed:
            return
        try:
            sink.discard()
        except Exception:  # best effort: the next run's sweep aborts what is left
            log.warning("could not abort the upload of %s", staged.final)
        finally:
            sink.closed = True

    def remove(self, table: str, date: str) -> None:
        self._call(self._fs.rm, self._part(table, date))

    def sweep(self, table: str) -> int:
        start = self._path(table).partition("/")[2] + "/"
        listed = self._call(self._fs.call_s3, "list_multipart_uploads", Bucket=self.bucket, Prefix=start)
        uploads = listed.get("Uploads", [])
        for upload in uploads:
            self._call(self._fs.call_s3, "abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"],
                       UploadId=upload["UploadId"])
        return len(uploads)

    def _path(self, relative: str) -> str:
        return "/".join(part for part in (self.bucket, self.prefix, relative) if part)

    def _part(self, table: str, date: str) -> str:
        return self._path(f"{partition_folder(table, date)}/{PART}")

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except CoredumpError:
            raise
        except Exception as exc:
            raise self._wrap(exc) from exc

    def _wrap(self, exc: Exception) -> CoredumpError:
        if isinstance(exc, _NO_CREDENTIALS):
            return StorageRejectedError(
                f"S3 {self.where}: no usable credentials in the environment; set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY or {CREDENTIALS_FILE_ENV}."
            )
        if isinstance(exc, PermissionError):
            return StorageRejectedError(
                f"S3 {self.where} denied access; check the credentials in the environment and the bucket policy."
            )
        if isinstance(exc, FileNotFoundError):
            return StorageRejectedError(f"S3 {self.where}: not found; check that the bucket exists.")
        if isinstance(exc, OSError | boto.BotoCoreError):
            return StorageUnavailableError(f"S3 {self.where} is unavailable ({type(exc).__name__}); will retry.")
        return StorageRejectedError(f"S3 {self.where}: the request failed ({type(exc).__name__}).")
