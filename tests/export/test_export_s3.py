"""The export to moto's S3 server through s3fs: the same dataset, objects published only when complete."""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs
import pytest
from sqlalchemy.orm import Session, sessionmaker

from coredumps.config import S3Config
from coredumps.errors import StorageRejectedError
from coredumps.export import TABLE_NAMES, Staged, export_dataset, open_destination, read_watermark
from coredumps.export.s3 import S3Destination
from tests.export.compare import assert_matches_database, dataset_rows
from tests.export.generate import Generated, fill
from tests.export.test_export import SimulatedCrash, change_coredumps, ids_on_distinct_dates, written
from tests.s3server import MotoServer

Sessions = sessionmaker[Session]


def destination(moto_server: MotoServer, bucket: str, prefix: str = "analytics/parquet") -> S3Destination:
    dest = open_destination(f"s3://{bucket}/{prefix}", S3Config(endpoint=moto_server.url, region="us-east-1"))
    assert isinstance(dest, S3Destination)
    return dest


@pytest.fixture
def small(sessions: Sessions) -> Generated:
    """Fewer partitions than the local tests: every object is a few requests to moto."""
    return fill(sessions, coredumps=600, days=6)


def keys(s3client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_export_to_s3_reads_back_row_for_row_and_reruns_write_nothing(
    sessions: Sessions, small: Generated, moto_server: MotoServer, bucket: str, s3client: Any
) -> None:
    dest = destination(moto_server, bucket)

    export_dataset(sessions, dest, batch_rows=1000)

    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(dest.filesystem))
    for table in TABLE_NAMES:
        assert_matches_database(f"{bucket}/analytics/parquet", sessions, table, filesystem)
    names = keys(s3client, bucket)
    assert names and all(name.startswith("analytics/parquet/") and name.endswith("/part-0.parquet") for name in names)
    assert export_dataset(sessions, dest, batch_rows=1000).rows_written == 0
    assert sorted(keys(s3client, bucket)) == sorted(names)


def test_failed_publication_on_s3_publishes_nothing_and_the_rerun_completes(
    sessions: Sessions, small: Generated, moto_server: MotoServer, bucket: str, s3client: Any
) -> None:
    dest = destination(moto_server, bucket, prefix="")
    export_dataset(sessions, dest, tables=("coredumps",), batch_rows=1000)
    mark = read_watermark(sessions, "coredumps")
    change_coredumps(sessions, ids_on_distinct_dates(sessions, 3))
    done: list[str] = []

    def publish_one_then_crash(staged: Staged) -> None:
        if done:
            raise SimulatedCrash("the process died before publishing")
        dest.publish(staged)
        done.append(staged.date)

    with pytest.raises(SimulatedCrash):
        export_dataset(sessions, dest, tables=("coredumps",), publish=publish_one_then_crash)

    assert read_watermark(sessions, "coredumps") == mark
    assert all(name.endswith("/part-0.parquet") for name in keys(s3client, bucket))
    assert not s3client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(dest.filesystem))
    rows = dataset_rows(bucket, "coredumps", filesystem)
    assert len(rows) == len({row["id"] for row in rows}) == small.coredumps

    assert written(export_dataset(sessions, dest, tables=("coredumps",)))["coredumps"] == 2
    assert_matches_database(bucket, sessions, "coredumps", filesystem)


def test_an_upload_a_killed_run_left_unfinished_is_aborted_by_the_next_run(
    sessions: Sessions, small: Generated, moto_server: MotoServer, bucket: str, s3client: Any
) -> None:
    dest = destination(moto_server, bucket)
    key = "analytics/parquet/coredumps/date=2026-03-02/part-0.parquet"
    upload = s3client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"PAR1 half a part")

    result = export_dataset(sessions, dest, tables=("coredumps",))

    assert result.tables[0].swept == 1
    assert not s3client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(dest.filesystem))
    assert_matches_database(f"{bucket}/analytics/parquet", sessions, "coredumps", filesystem)


def test_a_missing_bucket_is_one_clear_error(sessions: Sessions, small: Generated, moto_server: MotoServer,
                                             aws_env: None) -> None:
    dest = destination(moto_server, "no-such-bucket")
    with pytest.raises(StorageRejectedError, match=r"^S3 bucket 'no-such-bucket' at http://.*: not found; check"):
        export_dataset(sessions, dest, tables=("coredumps",))
