"""Where each exported table's columns come from in the database, and how it is exported.

Each ``TableSpec`` maps every field of its schema to a SQL expression, names
the timestamp whose UTC date is the row's partition, and the timestamp that
marks a change (the watermark's column). Incremental tables re-read what
changed since ``watermark - lookback``: the look-back covers rows stamped
before a slower transaction committed, and rows that change after they are
created without a change timestamp (an AI call finishing, a cleanup carried
out). ``snapshot`` tables are small and change in place without one (a crash
group's best score and analysis, an instance's status), so every run reads
them whole and rewrites only the partitions whose rows differ; a row whose
date moved (a crash group's first_seen moving earlier) is written into its
new partition first and then dropped from its old one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import JSON, ColumnElement, FromClause, Select, Text, select, type_coerce

from coredumps.db.models import (
    AIAnalysisResult,
    AnalysisResult,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    MilvusInstance,
    RestartEvent,
    StorageEvent,
)
from coredumps.db.types import UTCDateTime
from coredumps.export import schemas

SETTLE = timedelta(minutes=15)
"""Look-back for rows that are written once: commit delays and clock skew between nodes."""
MUTABLE_WINDOW = timedelta(days=1)
"""Look-back for rows that change within hours of their creation without a change timestamp."""


@dataclass(frozen=True)
class TableSpec:
    """One exported table: its schema, its SQL, its partition and change columns."""

    name: str
    schema: pa.Schema
    source: FromClause
    columns: Mapping[str, ColumnElement[Any]]
    partition_by: str
    changed_by: str
    snapshot: bool = False
    lookback: timedelta = field(default=SETTLE)

    def query(self, since: datetime | None = None, *, raw: bool = True) -> Select[Any]:
        """The rows to export, by partition timestamp then id; only those changed at or after ``since``.

        With ``raw``, timestamps and JSON come as the driver gives them (SQLite: text), for
        ``reading.to_batch`` to convert column by column instead of value by value.
        """
        chosen = (self.columns[f.name] for f in self.schema)
        exprs = (_raw(expr) if raw else expr for expr in chosen)
        stmt = select(*(expr.label(f.name) for expr, f in zip(exprs, self.schema, strict=True)))
        stmt = stmt.select_from(self.source)
        if since is not None and not self.snapshot:
            stmt = stmt.where(self.columns[self.changed_by] >= since)
        return stmt.order_by(self.columns[self.partition_by], self.columns["id"])


def _raw(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    return type_coerce(expr, Text()) if isinstance(expr.type, UTCDateTime | JSON) else expr


def _columns(model: Any, schema: pa.Schema, **overrides: ColumnElement[Any]) -> dict[str, ColumnElement[Any]]:
    return {f.name: overrides[f.name] if f.name in overrides else getattr(model, f.name) for f in schema}


_cf, _ar, _ai = CoredumpFile, AnalysisResult, AIAnalysisResult
_ANALYSIS_FIELDS = (
    "crash_reason", "si_code", "fault_address", "thread_count", "crashing_thread", "omitted_frames", "truncated",
    "gdb_seconds",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "coredumps",
            schemas.COREDUMPS,
            _cf.__table__.outerjoin(_ar.__table__, _ar.coredump_id == _cf.id),
            _columns(_cf, schemas.COREDUMPS, **{name: getattr(_ar, name) for name in _ANALYSIS_FIELDS}),
            partition_by="created_at",
            changed_by="updated_at",
        ),
        TableSpec(
            "crash_groups",
            schemas.CRASH_GROUPS,
            CrashGroup.__table__,
            _columns(CrashGroup, schemas.CRASH_GROUPS),
            partition_by="first_seen",
            changed_by="last_seen",
            snapshot=True,
        ),
        TableSpec(
            "ai_analyses",
            schemas.AI_ANALYSES,
            _ai.__table__,
            _columns(_ai, schemas.AI_ANALYSES, total_tokens=_ai.prompt_tokens + _ai.completion_tokens),
            partition_by="created_at",
            changed_by="created_at",
            lookback=MUTABLE_WINDOW,
        ),
        TableSpec(
            "restart_events",
            schemas.RESTART_EVENTS,
            RestartEvent.__table__,
            _columns(RestartEvent, schemas.RESTART_EVENTS),
            partition_by="detected_at",
            changed_by="detected_at",
        ),
        TableSpec(
            "storage_events",
            schemas.STORAGE_EVENTS,
            StorageEvent.__table__,
            _columns(StorageEvent, schemas.STORAGE_EVENTS),
            partition_by="created_at",
            changed_by="created_at",
        ),
        TableSpec(
            "cleanup_events",
            schemas.CLEANUP_EVENTS,
            CleanupEvent.__table__,
            _columns(CleanupEvent, schemas.CLEANUP_EVENTS),
            partition_by="created_at",
            changed_by="created_at",
            lookback=MUTABLE_WINDOW,
        ),
        TableSpec(
            "instances",
            schemas.INSTANCES,
            MilvusInstance.__table__,
            _columns(MilvusInstance, schemas.INSTANCES),
            partition_by="first_seen",
            changed_by="last_seen",
            snapshot=True,
        ),
    )
}
TABLE_NAMES = tuple(TABLES)
