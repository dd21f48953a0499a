"""Initial schema: instances, pods, coredumps, analyses, events, export watermarks.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _fk(column: str, table: str, target: str, ondelete: str = "SET NULL") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _index(table: str, *columns: str, unique: bool = False) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns), unique=unique)


def upgrade() -> None:
    op.create_table(
        "milvus_instances",
        _id(),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("deployment_type", sa.String(16), nullable=False),
        sa.Column("release_name", sa.String(NAME), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("pod_count", sa.Integer(), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("deleted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milvus_instances")),
        sa.UniqueConstraint("namespace", "name", name=op.f("uq_milvus_instances_namespace_name")),
    )
    op.create_table(
        "crash_groups",
        _id(),
        sa.Column("signature", sa.String(512), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("executable", sa.Text(), nullable=True),
        sa.Column("signal_name", sa.String(32), nullable=True),
        _ts("first_seen"),
        _ts("last_seen"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("best_coredump_id", sa.Integer(), nullable=True),
        sa.Column("best_score", sa.Double(), nullable=True),
        sa.Column("ai_analysis_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crash_groups")),
        sa.UniqueConstraint("signature", name=op.f("uq_crash_groups_signature")),
    )
    op.create_table(
        "pods",
        _id(),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("node_name", sa.String(NAME), nullable=True),
        sa.Column("containers", sa.JSON(), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(NAME), nullable=True),
        _ts("last_restart_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _fk("instance_id", "pods", "milvus_instances"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pods")),
        sa.UniqueConstraint("uid", name=op.f("uq_pods_uid")),
    )
    _index("pods", "instance_id")
    op.create_table(
        "coredump_files",
        _id(),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("node_name", sa.String(NAME), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(NAME), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _ts("mtime"),
        sa.Column("inode", sa.BigInteger(), nullable=True),
        sa.Column("input_compression", sa.String(8), nullable=False),
        sa.Column("executable", sa.Text(), nullable=True),
        sa.Column("comm", sa.String(64), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("signal_number", sa.Integer(), nullable=True),
        sa.Column("signal_name", sa.String(32), nullable=True),
        _ts("crash_time", nullable=True),
        sa.Column("pod_namespace", sa.String(NAME), nullable=True),
        sa.Column("pod_name", sa.String(NAME), nullable=True),
        sa.Column("pod_uid", sa.String(64), nullable=True),
        sa.Column("container_name", sa.String(NAME), nullable=True),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("instance_name", sa.String(NAME), nullable=True),
        sa.Column("correlation_rule", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("score_breakdown", sa.JSON(), nullable=True),
        sa.Column("is_panic", sa.Boolean(), nullable=False),
        sa.Column("signature", sa.String(512), nullable=True),
        sa.Column("crash_group_id", sa.Integer(), nullable=True),
        sa.Column("stored", sa.Boolean(), nullable=False),
        sa.Column("storage_backend", sa.String(32), nullable=True),
        sa.Column("storage_location", sa.Text(), nullable=True),
        sa.Column("stored_size", sa.BigInteger(), nullable=True),
        sa.Column("stored_sha256", sa.String(64), nullable=True),
        sa.Column("source_deleted", sa.Boolean(), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _fk("instance_id", "coredump_files", "milvus_instances"),
        _fk("crash_group_id", "coredump_files", "crash_groups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coredump_files")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_coredump_files_idempotency_key")),
    )
    for column in ("instance_id", "instance_name", "status", "score", "crash_group_id", "created_at"):
        _index("coredump_files", column)
    op.create_table(
        "analysis_results",
        _id(),
        sa.Column("coredump_id", sa.Integer(), nullable=False),
        sa.Column("crash_reason", sa.Text(), nullable=False),
        sa.Column("signal_number", sa.Integer(), nullable=True),
        sa.Column("signal_name", sa.String(32), nullable=True),
        sa.Column("si_code", sa.Integer(), nullable=True),
        sa.Column("fault_address", sa.String(32), nullable=True),
        sa.Column("thread_count", sa.Integer(), nullable=False),
        sa.Column("crashing_thread", sa.Integer(), nullable=True),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.Column("threads", sa.JSON(), nullable=False),
        sa.Column("stack_trace", sa.Text(), nullable=False),
        sa.Column("registers", sa.JSON(), nullable=False),
        sa.Column("libraries", sa.JSON(), nullable=False),
        sa.Column("is_panic", sa.Boolean(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("signature", sa.String(512), nullable=True),
        sa.Column("omitted_frames", sa.Integer(), nullable=False),
        sa.Column("gdb_seconds", sa.Double(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        _ts("created_at"),
        _fk("coredump_id", "analysis_results", "coredump_files", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_results")),
        sa.UniqueConstraint("coredump_id", name=op.f("uq_analysis_results_coredump_id")),
    )
    op.create_table(
        "ai_analysis_results",
        _id(),
        sa.Column("coredump_id", sa.Integer(), nullable=True),
        sa.Column("crash_group_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("impact", sa.Text(), nullable=True),
        sa.Column("recommendations", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("code_suggestions", sa.JSON(), nullable=False),
        sa.Column("related_issues", sa.JSON(), nullable=False),
        sa.Column("raw_reply_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=False),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        _ts("created_at"),
        _fk("coredump_id", "ai_analysis_results", "coredump_files"),
        _fk("crash_group_id", "ai_analysis_results", "crash_groups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_analysis_results")),
    )
    for column in ("coredump_id", "crash_group_id", "created_at"):
        _index("ai_analysis_results", column)
    op.create_table(
        "restart_events",
        _id(),
        sa.Column("node_name", sa.String(NAME), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("pod_name", sa.String(NAME), nullable=False),
        sa.Column("pod_uid", sa.String(64), nullable=False),
        sa.Column("container_name", sa.String(NAME), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("instance_name", sa.String(NAME), nullable=True),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(NAME), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("is_panic", sa.Boolean(), nullable=False),
        sa.Column("log_excerpt", sa.Text(), nullable=True),
        _ts("finished_at", nullable=True),
        _ts("detected_at"),
        _fk("instance_id", "restart_events", "milvus_instances"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restart_events")),
        sa.UniqueConstraint(
            "pod_uid",
            "container_name",
            "restart_count",
            name=op.f("uq_restart_events_pod_uid_container_name_restart_count"),
        ),
    )
    _index("restart_events", "instance_id")
    _index("restart_events", "instance_name", "detected_at")
    op.create_table(
        "storage_events",
        _id(),
        sa.Column("coredump_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        _ts("created_at"),
        _fk("coredump_id", "storage_events", "coredump_files"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_events")),
    )
    _index("storage_events", "coredump_id")
    op.create_table(
        "cleanup_events",
        _id(),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("instance_name", sa.String(NAME), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=True),
        sa.Column("window_seconds", sa.Double(), nullable=True),
        sa.Column("incident_key", sa.String(255), nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("created_at"),
        _fk("instance_id", "cleanup_events", "milvus_instances"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleanup_events")),
        sa.UniqueConstraint("incident_key", name=op.f("uq_cleanup_events_incident_key")),
    )
    _index("cleanup_events", "instance_id")
    op.create_table(
        "export_watermarks",
        sa.Column("table_name", sa.String(64), nullable=False),
        _ts("watermark", nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_export_watermarks")),
    )


def downgrade() -> None:
    for table in (
        "export_watermarks",
        "cleanup_events",
        "storage_events",
        "restart_events",
        "ai_analysis_results",
        "analysis_results",
        "coredump_files",
        "pods",
        "crash_groups",
        "milvus_instances",
    ):
        op.drop_table(table)
