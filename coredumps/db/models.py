"""The database tables as SQLAlchemy 2 declarative models.

Timestamps are aware UTC datetimes (``UTCDateTime``); constraint and index
names follow ``NAMING_CONVENTION`` so that migrations can name them exactly.
The allowed values of the string status columns are listed on each class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Double, ForeignKey, Index, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from coredumps.db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    """Declarative base: ``datetime`` maps to ``UTCDateTime``, ``float`` to ``Double``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), float: Double()}  # noqa: RUF012


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="SET NULL")


class MilvusInstance(Base):
    """A Milvus deployment. deployment_type: helm | operator | unknown."""

    __tablename__ = "milvus_instances"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    deployment_type: Mapped[str] = mapped_column(String(16), default="unknown")
    release_name: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32))
    pod_count: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class Pod(Base):
    """A pod of a Milvus instance; node_name is empty until it is scheduled."""

    __tablename__ = "pods"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(_fk("milvus_instances.id"), index=True)
    namespace: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    node_name: Mapped[str | None] = mapped_column(String(255))
    containers: Mapped[list[str]] = mapped_column(JSON, default=list)
    restart_count: Mapped[int] = mapped_column(default=0)
    phase: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(255))
    last_restart_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    instance: Mapped[MilvusInstance | None] = relationship()


class CrashGroup(Base):
    """Coredumps that share a signature (normalised top frames)."""

    __tablename__ = "crash_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    signature: Mapped[str] = mapped_column(String(512), unique=True)
    title: Mapped[str] = mapped_column(Text)
    executable: Mapped[str | None] = mapped_column(Text)
    signal_name: Mapped[str | None] = mapped_column(String(32))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(default=0)
    best_coredump_id: Mapped[int | None]
    best_score: Mapped[float | None]
    ai_analysis_id: Mapped[int | None]


class CoredumpFile(Base):
    """One core file on a node.

    input_compression: none | zst | lz4 | xz.
    status: pending | analyzed | stored | skipped | failed.
    correlation_rule: hostname | cgroup | restart-time | parameter.
    """

    __tablename__ = "coredump_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    node_name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[datetime]
    inode: Mapped[int | None] = mapped_column(BigInteger)
    input_compression: Mapped[str] = mapped_column(String(8), default="none")
    executable: Mapped[str | None] = mapped_column(Text)
    comm: Mapped[str | None] = mapped_column(String(64))
    pid: Mapped[int | None]
    uid: Mapped[int | None] = mapped_column(BigInteger)
    signal_number: Mapped[int | None]
    signal_name: Mapped[str | None] = mapped_column(String(32))
    crash_time: Mapped[datetime | None]
    pod_namespace: Mapped[str | None] = mapped_column(String(255))
    pod_name: Mapped[str | None] = mapped_column(String(255))
    pod_uid: Mapped[str | None] = mapped_column(String(64))
    container_name: Mapped[str | None] = mapped_column(String(255))
    instance_id: Mapped[int | None] = mapped_column(_fk("milvus_instances.id"), index=True)
    instance_name: Mapped[str | None] = mapped_column(String(255), index=True)
    correlation_rule: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(index=True)
    score_breakdown: Mapped[Json | None] = mapped_column(JSON(none_as_null=True))
    is_panic: Mapped[bool] = mapped_column(default=False)
    signature: Mapped[str | None] = mapped_column(String(512))
    crash_group_id: Mapped[int | None] = mapped_column(_fk("crash_groups.id"), index=True)
    stored: Mapped[bool] = mapped_column(default=False)
    storage_backend: Mapped[str | None] = mapped_column(String(32))
    storage_location: Mapped[str | None] = mapped_column(Text)
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    stored_sha256: Mapped[str | None] = mapped_column(String(64))
    source_deleted: Mapped[bool] = mapped_column(default=False)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    instance: Mapped[MilvusInstance | None] = relationship()
    crash_group: Mapped[CrashGroup | None] = relationship()
    analysis: Mapped[AnalysisResult | None] = relationship(
        back_populates="coredump", cascade="all, delete-orphan", passive_deletes=True
    )


class AnalysisResult(Base):
    """What GDB found in one coredump; deleted with it."""

    __tablename__ = "analysis_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    coredump_id: Mapped[int] = mapped_column(ForeignKey("coredump_files.id", ondelete="CASCADE"), unique=True)
    crash_reason: Mapped[str] = mapped_column(Text, default="")
    signal_number: Mapped[int | None]
    signal_name: Mapped[str | None] = mapped_column(String(32))
    si_code: Mapped[int | None]
    fault_address: Mapped[str | None] = mapped_column(String(32))
    thread_count: Mapped[int] = mapped_column(default=0)
    crashing_thread: Mapped[int | None]
    frames: Mapped[list[Json]] = mapped_column(JSON, default=list)
    threads: Mapped[list[Json]] = mapped_column(JSON, default=list)
    stack_trace: Mapped[str] = mapped_column(Text, default="")
    registers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    libraries: Mapped[list[Json]] = mapped_column(JSON, default=list)
    is_panic: Mapped[bool] = mapped_column(default=False)
    truncated: Mapped[bool] = mapped_column(default=False)
    signature: Mapped[str | None] = mapped_column(String(512))
    omitted_frames: Mapped[int] = mapped_column(default=0)
    gdb_seconds: Mapped[float | None]
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    coredump: Mapped[CoredumpFile] = relationship(back_populates="analysis")


class AIAnalysisResult(Base):
    """An LLM write-up of a coredump or a crash group. status: ok | failed | skipped | reused."""

    __tablename__ = "ai_analysis_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    coredump_id: Mapped[int | None] = mapped_column(_fk("coredump_files.id"), index=True)
    crash_group_id: Mapped[int | None] = mapped_column(_fk("crash_groups.id"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    root_cause: Mapped[str | None] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    recommendations: Mapped[list[str]] = mapped_column(JSON, default=list)
    confidence: Mapped[float | None]
    code_suggestions: Mapped[list[Json]] = mapped_column(JSON, default=list)
    related_issues: Mapped[list[Json]] = mapped_column(JSON, default=list)
    raw_reply_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    duration_seconds: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    coredump: Mapped[CoredumpFile | None] = relationship()
    crash_group: Mapped[CrashGroup | None] = relationship()


class RestartEvent(Base):
    """One restart of a Milvus container, recorded once per restart count."""

    __tablename__ = "restart_events"
    __table_args__ = (
        UniqueConstraint("pod_uid", "container_name", "restart_count"),
        Index("ix_restart_events_instance_name_detected_at", "instance_name", "detected_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node_name: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(255))
    pod_name: Mapped[str] = mapped_column(String(255))
    pod_uid: Mapped[str] = mapped_column(String(64))
    container_name: Mapped[str] = mapped_column(String(255))
    instance_id: Mapped[int | None] = mapped_column(_fk("milvus_instances.id"), index=True)
    instance_name: Mapped[str | None] = mapped_column(String(255))
    restart_count: Mapped[int]
    exit_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(255))
    signal: Mapped[int | None]
    is_panic: Mapped[bool] = mapped_column(default=False)
    log_excerpt: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)

    instance: Mapped[MilvusInstance | None] = relationship()


class StorageEvent(Base):
    """One storage action. action: store | verify | delete | skip; status: ok | failed | dry-run."""

    __tablename__ = "storage_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    coredump_id: Mapped[int | None] = mapped_column(_fk("coredump_files.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    location: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(default=1)
    duration_seconds: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    coredump: Mapped[CoredumpFile | None] = relationship()


class CleanupEvent(Base):
    """A cleanup decision. decision: scheduled | executed | skipped | failed | cancelled | dry-run."""

    __tablename__ = "cleanup_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(_fk("milvus_instances.id"), index=True)
    namespace: Mapped[str] = mapped_column(String(255))
    instance_name: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    restart_count: Mapped[int | None]
    window_seconds: Mapped[float | None]
    incident_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[Json] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    instance: Mapped[MilvusInstance | None] = relationship()


class ExportWatermark(Base):
    """How far the incremental Parquet export of one table has got."""

    __tablename__ = "export_watermarks"

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
