"""The dataset as pyarrow reads it, and the rows the database says it should hold, built independently."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db import (
    AIAnalysisResult,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    MilvusInstance,
    RestartEvent,
    StorageEvent,
)
from coredumps.export import SCHEMAS
from coredumps.scoring import DIMENSIONS

PARTITIONING = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
MODELS: dict[str, tuple[Any, str]] = {
    "coredumps": (CoredumpFile, "created_at"),
    "crash_groups": (CrashGroup, "first_seen"),
    "ai_analyses": (AIAnalysisResult, "created_at"),
    "restart_events": (RestartEvent, "detected_at"),
    "storage_events": (StorageEvent, "created_at"),
    "cleanup_events": (CleanupEvent, "created_at"),
    "instances": (MilvusInstance, "first_seen"),
}
ANALYSIS_FIELDS = (
    "crash_reason", "si_code", "fault_address", "thread_count", "crashing_thread", "omitted_frames", "truncated",
    "gdb_seconds",
)


def dataset_rows(root: str, table: str, filesystem: Any = None) -> list[dict[str, Any]]:
    """Every row of one table of the dataset, read with hive partitioning, sorted by id."""
    dataset = ds.dataset(f"{root}/{table}", format="parquet", partitioning=PARTITIONING, filesystem=filesystem)
    assert dataset.schema.remove_metadata() == SCHEMAS[table].append(pa.field("date", pa.date32())).remove_metadata()
    return sorted(dataset.to_table().to_pylist(), key=lambda row: row["id"])


def database_rows(sessions: sessionmaker[Session], table: str) -> list[dict[str, Any]]:
    """What the table's dataset rows should be, from the ORM objects, sorted by id."""
    model, partition = MODELS[table]
    names = SCHEMAS[table].names
    with sessions() as session:
        return [_expected(table, names, row, partition) for row in session.scalars(select(model).order_by(model.id))]


def _expected(table: str, names: list[str], row: Any, partition: str) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in names if hasattr(type(row), name)}
    if table == "coredumps":
        for name in ANALYSIS_FIELDS:
            values[name] = getattr(row.analysis, name) if row.analysis is not None else None
        breakdown = row.score_breakdown
        values["score_breakdown"] = (
            {dim: breakdown.get(dim) for dim in DIMENSIONS} if isinstance(breakdown, dict) else None
        )
    if table == "ai_analyses":
        values["total_tokens"] = row.prompt_tokens + row.completion_tokens
    if table == "instances":
        values["labels"] = list(row.labels.items())
    assert set(values) == set(names), set(names) ^ set(values)
    values["date"] = getattr(row, partition).date()
    return values


def assert_matches_database(root: str, sessions: sessionmaker[Session], table: str, filesystem: Any = None) -> int:
    """The dataset holds the database's rows, row for row, each once, in its date's partition."""
    found = dataset_rows(root, table, filesystem)
    ids = Counter(row["id"] for row in found)
    assert [key for key, seen in ids.items() if seen > 1] == [], f"{table}: ids exported twice"
    expected = database_rows(sessions, table)
    assert len(found) == len(expected), f"{table}: {len(found)} rows in the dataset, {len(expected)} in the database"
    for got, want in zip(found, expected, strict=True):
        assert got == want, f"{table} id {want['id']}: {_diff(got, want)}"
    return len(found)


def _diff(got: dict[str, Any], want: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (got.get(key), want.get(key)) for key in want if got.get(key) != want.get(key)}
