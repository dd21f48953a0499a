"""The dataset's contract: explicit schemas, their SQL mapping, and what a destination string may be."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from coredumps.errors import ConfigError
from coredumps.export import SCHEMA_VERSION, SCHEMAS, TABLE_NAMES, TABLES, parse_destination
from coredumps.export.destinations import S3Location
from coredumps.export.schemas import SCORE_BREAKDOWN, TABLE_KEY, VERSION_KEY, schema_version
from coredumps.scoring import DIMENSIONS

NEVER_EXPORTED = {"log_excerpt", "raw_reply_excerpt", "details", "stack_trace", "registers", "idempotency_key"}


def test_the_dataset_has_the_seven_tables() -> None:
    assert TABLE_NAMES == (
        "coredumps", "crash_groups", "ai_analyses", "restart_events", "storage_events", "cleanup_events", "instances",
    )


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_each_schema_is_explicit_with_utc_timestamps_and_its_version(table: str) -> None:
    schema = SCHEMAS[table]
    assert schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode() and schema.metadata[TABLE_KEY] == table.encode()
    assert schema.field("id").type == pa.int64() and not schema.field("id").nullable
    for field in schema:
        assert not pa.types.is_timestamp(field.type) or field.type == pa.timestamp("us", tz="UTC")
        assert field.type != pa.null() and not pa.types.is_dictionary(field.type)
    assert not NEVER_EXPORTED & set(schema.names), "columns that may carry secrets or raw core text stay out"
    spec = TABLES[table]
    assert list(spec.columns) == schema.names
    assert spec.partition_by in schema.names and spec.changed_by in schema.names


def test_score_breakdown_is_a_struct_of_float64_per_dimension() -> None:
    assert SCHEMAS["coredumps"].field("score_breakdown").type == SCORE_BREAKDOWN
    assert [(f.name, f.type) for f in SCORE_BREAKDOWN] == [(name, pa.float64()) for name in DIMENSIONS]


def test_ai_analyses_carry_tokens_and_cost() -> None:
    schema = SCHEMAS["ai_analyses"]
    assert {name: schema.field(name).type for name in ("prompt_tokens", "completion_tokens", "total_tokens",
                                                        "cost_usd")} == {
        "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "total_tokens": pa.int64(),
        "cost_usd": pa.float64(),
    }


@pytest.mark.parametrize(("metadata", "version"), [({VERSION_KEY: b"1"}, 1), ({VERSION_KEY: b"x"}, None), (None, None)])
def test_schema_version_is_read_from_file_metadata(metadata: dict[bytes, bytes] | None, version: int | None) -> None:
    assert schema_version(metadata) == version


@pytest.mark.parametrize(
    ("dest", "parsed"),
    [
        ("data/parquet", Path("data/parquet")),
        ("/srv/analytics", Path("/srv/analytics")),
        ("s3://coredump-analytics", S3Location("coredump-analytics", "")),
        ("s3://coredump-analytics/prod/parquet/", S3Location("coredump-analytics", "prod/parquet")),
    ],
)
def test_destinations_that_are_accepted(dest: str, parsed: object) -> None:
    assert parse_destination(dest) == parsed


@pytest.mark.parametrize(
    ("dest", "message"),
    [
        ("  ", "export.dest: the destination is empty; give a folder or s3://bucket/prefix."),
        ("ftp://host/x", "export.dest: 'ftp://host/x' is neither a folder nor an s3://bucket/prefix URL."),
        ("s3://Bad_Bucket/x", "export.dest: 'Bad_Bucket' is not a valid bucket name"),
        ("s3://bucket-one/a//b", "export.dest: the prefix 'a//b' must not contain empty, '.' or '..' segments."),
        ("s3://bucket-one/../x", "export.dest: the prefix '../x' must not contain empty"),
        ("s3://bucket-one/x?versionId=1", "export.dest: 's3://bucket-one/x?versionId=1' must not have a query"),
        ("s3://AKIAEXAMPLE:s3cr3t@bucket-one/x", "export.dest: the URL must not hold credentials"),
        ("https://user:s3cr3t@host/x", "export.dest: the URL must not hold credentials"),
    ],
)
def test_destinations_that_are_refused_with_one_sentence(dest: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_destination(dest)
    assert str(raised.value).startswith(message) and str(raised.value).count(". ") == 0
    assert "s3cr3t" not in str(raised.value)
