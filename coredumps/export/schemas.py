"""The dataset's contract: one explicit pyarrow schema per exported table.

Timestamps are ``timestamp[us, tz=UTC]``, counts and ids typed integers, money
and durations float64, and a coredump's score breakdown a struct of float64
fields, one per scoring dimension. Every file carries ``SCHEMA_VERSION`` and
its table's name in its key-value metadata; a change to any schema here bumps
the version, and a dataset written with another version is rewritten by a
full export.
"""

from __future__ import annotations

import pyarrow as pa

from coredumps.scoring import DIMENSIONS

SCHEMA_VERSION = 1
VERSION_KEY = b"coredump_export.schema_version"
TABLE_KEY = b"coredump_export.table"

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
SCORE_BREAKDOWN = pa.struct([pa.field(name, pa.float64()) for name in DIMENSIONS])
LABELS = pa.map_(pa.string(), pa.string())


def _id(name: str = "id") -> pa.Field:
    return pa.field(name, pa.int64(), nullable=False)


def _at(name: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, UTC_TIMESTAMP, nullable=nullable)


def _text(*names: str) -> list[pa.Field]:
    return [pa.field(name, pa.string()) for name in names]


def _schema(table: str, *fields: pa.Field | list[pa.Field]) -> pa.Schema:
    flat: list[pa.Field] = []
    for item in fields:
        flat.extend(item if isinstance(item, list) else [item])
    metadata = {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()}
    return pa.schema(flat, metadata=metadata)


COREDUMPS = _schema(
    "coredumps",
    _id(),
    _at("created_at"),
    _at("updated_at"),
    _text("node_name", "path", "file_name"),
    pa.field("size_bytes", pa.int64()),
    _at("mtime", nullable=True),
    pa.field("inode", pa.int64()),
    _text("input_compression", "executable", "comm"),
    pa.field("pid", pa.int64()),
    pa.field("uid", pa.int64()),
    pa.field("signal_number", pa.int32()),
    pa.field("signal_name", pa.string()),
    _at("crash_time", nullable=True),
    _text("pod_namespace", "pod_name", "pod_uid", "container_name"),
    pa.field("instance_id", pa.int64()),
    _text("instance_name", "correlation_rule", "status", "skip_reason", "error"),
    pa.field("score", pa.float64()),
    pa.field("score_breakdown", SCORE_BREAKDOWN),
    pa.field("is_panic", pa.bool_()),
    pa.field("crash_reason", pa.string()),
    pa.field("si_code", pa.int32()),
    pa.field("fault_address", pa.string()),
    pa.field("thread_count", pa.int32()),
    pa.field("crashing_thread", pa.int32()),
    pa.field("omitted_frames", pa.int32()),
    pa.field("truncated", pa.bool_()),
    pa.field("gdb_seconds", pa.float64()),
    pa.field("signature", pa.string()),
    pa.field("crash_group_id", pa.int64()),
    pa.field("stored", pa.bool_()),
    _text("storage_backend", "storage_location"),
    pa.field("stored_size", pa.int64()),
    pa.field("stored_sha256", pa.string()),
    pa.field("source_deleted", pa.bool_()),
    pa.field("flow_run_id", pa.string()),
)

CRASH_GROUPS = _schema(
    "crash_groups",
    _id(),
    _at("first_seen"),
    _at("last_seen"),
    _text("signature", "title", "executable", "signal_name"),
    pa.field("count", pa.int64()),
    pa.field("best_coredump_id", pa.int64()),
    pa.field("best_score", pa.float64()),
    pa.field("ai_analysis_id", pa.int64()),
)

AI_ANALYSES = _schema(
    "ai_analyses",
    _id(),
    _at("created_at"),
    pa.field("coredump_id", pa.int64()),
    pa.field("crash_group_id", pa.int64()),
    _text("provider", "model", "status", "skip_reason", "summary", "root_cause", "impact"),
    pa.field("recommendations", pa.list_(pa.string())),
    pa.field("confidence", pa.float64()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("total_tokens", pa.int64()),
    pa.field("cost_usd", pa.float64()),
    pa.field("duration_seconds", pa.float64()),
    pa.field("error", pa.string()),
)

RESTART_EVENTS = _schema(
    "restart_events",
    _id(),
    _at("detected_at"),
    _at("finished_at", nullable=True),
    _text("node_name", "namespace", "pod_name", "pod_uid", "container_name"),
    pa.field("instance_id", pa.int64()),
    pa.field("instance_name", pa.string()),
    pa.field("restart_count", pa.int32()),
    pa.field("exit_code", pa.int32()),
    pa.field("reason", pa.string()),
    pa.field("signal", pa.int32()),
    pa.field("is_panic", pa.bool_()),
)

STORAGE_EVENTS = _schema(
    "storage_events",
    _id(),
    _at("created_at"),
    pa.field("coredump_id", pa.int64()),
    _text("action", "backend", "location"),
    pa.field("size_bytes", pa.int64()),
    _text("sha256", "status", "reason"),
    pa.field("attempt", pa.int32()),
    pa.field("duration_seconds", pa.float64()),
)

CLEANUP_EVENTS = _schema(
    "cleanup_events",
    _id(),
    _at("created_at"),
    pa.field("instance_id", pa.int64()),
    _text("namespace", "instance_name", "action", "decision", "reason"),
    pa.field("restart_count", pa.int32()),
    pa.field("window_seconds", pa.float64()),
    _text("incident_key", "flow_run_id"),
)

INSTANCES = _schema(
    "instances",
    _id(),
    _at("first_seen"),
    _at("last_seen"),
    _at("deleted_at", nullable=True),
    _text("namespace", "name", "deployment_type", "release_name"),
    pa.field("labels", LABELS),
    pa.field("status", pa.string()),
    pa.field("pod_count", pa.int32()),
)

SCHEMAS: dict[str, pa.Schema] = {
    schema.metadata[TABLE_KEY].decode(): schema
    for schema in (COREDUMPS, CRASH_GROUPS, AI_ANALYSES, RESTART_EVENTS, STORAGE_EVENTS, CLEANUP_EVENTS, INSTANCES)
}


def schema_version(metadata: dict[bytes, bytes] | None) -> int | None:
    """The schema version recorded in a file's metadata, or None when it has none."""
    raw = (metadata or {}).get(VERSION_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
