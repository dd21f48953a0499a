"""The pipeline's rows: one coredump_files row per file, keyed by its idempotency key.

Every function takes a session factory and commits its own short transaction,
so that a crash between steps leaves the rows of the steps that finished.
A retry of any step (a task retry, a flow retry, a second run for the same
file) finds its row and updates it: never a second row, never a double count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db.models import (
    AIAnalysisResult,
    AnalysisResult,
    CoredumpFile,
    CrashGroup,
    MilvusInstance,
    RestartEvent,
    StorageEvent,
)
from coredumps.db.types import utcnow
from coredumps.diagnosis import Diagnosis
from coredumps.scoring import Score
from coredumps.signatures import meaningful_frames

Sessions = sessionmaker[Session]
TERMINAL = ("stored", "skipped", "failed")
CRASH_WINDOW_SECONDS = 120.0
"""A core and a container restart this close in time on the same pod are one crash."""


@dataclass(frozen=True)
class FileFacts:
    """What is known about a core file before analysis."""

    idempotency_key: str
    node_name: str
    path: str
    file_name: str
    size_bytes: int
    mtime: datetime
    inode: int | None
    input_compression: str
    comm: str | None = None
    pid: int | None = None
    uid: int | None = None
    crash_time: datetime | None = None
    executable: str | None = None


@dataclass(frozen=True)
class Correlation:
    """Which pod, container and Milvus instance the core belongs to, and by which rule."""

    pod_namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    container_name: str | None = None
    instance_name: str | None = None
    instance_namespace: str | None = None
    deployment_type: str = "unknown"
    rule: str | None = None

    @property
    def pod_known(self) -> bool:
        return bool(self.pod_name)

    @property
    def instance_known(self) -> bool:
        return bool(self.instance_name)


@dataclass(frozen=True)
class Claim:
    coredump_id: int
    duplicate: bool
    status: str


@dataclass(frozen=True)
class GroupInfo:
    id: int
    signature: str
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class ProcessResult:
    """What ``process`` prints and the flow returns."""

    coredump_id: int
    status: str
    score: float | None
    stored: bool
    location: str | None
    skip_reason: str | None
    duplicate: bool
    flow_run_id: str | None
    error: str | None = None
    signature: str | None = None
    crash_reason: str | None = None
    group_count: int | None = None
    stored_size: int | None = None
    ai_status: str | None = None
    ai_cost_usd: float | None = None
    ai_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim(sessions: Sessions, facts: FileFacts, flow_run_id: str | None) -> Claim:
    """Create the file's row, or find the one an earlier run created.

    The row of another run that ended is a duplicate; so is a stored row even for the run that stored it
    (a retry of that run must not analyse again, spend on the LLM again, or overwrite 'stored').
    """
    with sessions() as session:
        existing = session.scalar(select(CoredumpFile).where(CoredumpFile.idempotency_key == facts.idempotency_key))
        if existing is not None:
            duplicate = existing.status == "stored" or (
                existing.status in TERMINAL and existing.flow_run_id != flow_run_id
            )
            return Claim(existing.id, duplicate, existing.status)
        row = CoredumpFile(**asdict(facts), status="pending", flow_run_id=flow_run_id)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raced = session.scalar(
                select(CoredumpFile).where(CoredumpFile.idempotency_key == facts.idempotency_key)
            )
            assert raced is not None
            return Claim(raced.id, raced.status in TERMINAL, raced.status)
        return Claim(row.id, False, "pending")


def result_of(sessions: Sessions, coredump_id: int, *, duplicate: bool = False) -> ProcessResult:
    """The result as recorded, e.g. for a file that was already processed."""
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        assert row is not None
        group_count = row.crash_group.count if row.crash_group is not None else None
        reason = row.analysis.crash_reason if row.analysis is not None else None
        ai = session.scalar(select(AIAnalysisResult).where(AIAnalysisResult.coredump_id == row.id)
                            .order_by(AIAnalysisResult.id.desc()).limit(1))
        return ProcessResult(
            coredump_id=row.id, status=row.status, score=row.score, stored=row.stored,
            location=row.storage_location, skip_reason=row.skip_reason, duplicate=duplicate,
            flow_run_id=row.flow_run_id, error=row.error, signature=row.signature, crash_reason=reason,
            group_count=group_count, stored_size=row.stored_size,
            ai_status=ai.status if ai is not None else None,
            ai_cost_usd=ai.cost_usd if ai is not None else None,
            ai_tokens=(ai.prompt_tokens + ai.completion_tokens) if ai is not None else None,
        )


def correlate(sessions: Sessions, coredump_id: int, corr: Correlation) -> int | None:
    """Record the pod and instance; returns the instance's row id (created on first sight)."""
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        assert row is not None
        instance_id = None
        if corr.instance_name:
            namespace = corr.instance_namespace or corr.pod_namespace or "default"
            instance = session.scalar(
                select(MilvusInstance).where(
                    MilvusInstance.namespace == namespace, MilvusInstance.name == corr.instance_name
                )
            )
            if instance is None:
                instance = MilvusInstance(
                    namespace=namespace, name=corr.instance_name, deployment_type=corr.deployment_type,
                    status="seen", labels={},
                )
                session.add(instance)
                session.flush()
            instance.last_seen = utcnow()
            instance_id = instance.id
        row.pod_namespace, row.pod_name, row.pod_uid = corr.pod_namespace, corr.pod_name, corr.pod_uid
        row.container_name, row.instance_name = corr.container_name, corr.instance_name
        row.instance_id, row.correlation_rule = instance_id, corr.rule
        session.commit()
        return instance_id


def finish(sessions: Sessions, coredump_id: int, status: str, *, skip_reason: str | None = None,
           error: str | None = None) -> None:
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        assert row is not None
        row.status, row.skip_reason, row.error = status, skip_reason, error
        session.commit()


def record_analysis(sessions: Sessions, coredump_id: int, d: Diagnosis) -> None:
    """Store the diagnosis (replacing one from an earlier attempt)."""
    data = d.to_dict()
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        assert row is not None
        analysis = row.analysis or AnalysisResult(coredump_id=coredump_id)
        analysis.crash_reason = d.crash_reason
        analysis.signal_number = d.signal_number or None
        analysis.signal_name = d.signal_name if d.signal_number else None
        analysis.si_code, analysis.fault_address = d.si_code, d.fault_address
        analysis.thread_count, analysis.crashing_thread = d.thread_count, d.crashing_thread
        analysis.frames, analysis.threads = data["frames"], data["threads"]
        analysis.stack_trace, analysis.registers, analysis.libraries = d.stack_trace, d.registers, data["libraries"]
        analysis.is_panic, analysis.truncated, analysis.signature = d.is_panic, d.truncated, d.signature
        analysis.omitted_frames, analysis.gdb_seconds, analysis.warnings = d.omitted_frames, d.gdb_seconds, d.warnings
        session.add(analysis)
        row.executable = d.executable or row.executable
        row.comm = row.comm or (d.comm or None)
        row.pid = row.pid if row.pid is not None else d.pid
        row.signal_number = d.signal_number or None
        row.signal_name = d.signal_name if d.signal_number else None
        row.is_panic, row.signature, row.status = d.is_panic, d.signature, "analyzed"
        session.commit()


def join_group(sessions: Sessions, coredump_id: int, d: Diagnosis, seen_at: datetime) -> GroupInfo:
    """Add the core to its crash group (once, whatever the retries)."""
    for _attempt in range(3):
        with sessions() as session:
            row = session.get(CoredumpFile, coredump_id)
            assert row is not None
            group = session.scalar(select(CrashGroup).where(CrashGroup.signature == d.signature))
            if group is None:
                title = " < ".join(meaningful_frames(d.frames)) or d.crash_reason
                group = CrashGroup(signature=d.signature, title=title, executable=d.executable,
                                   signal_name=d.signal_name, first_seen=seen_at, last_seen=seen_at, count=0)
                session.add(group)
                try:
                    session.flush()
                except IntegrityError:
                    session.rollback()
                    continue
            if row.crash_group_id != group.id:
                row.crash_group_id = group.id
                group.count += 1
                group.first_seen = min(group.first_seen, seen_at)
                group.last_seen = max(group.last_seen, seen_at)
            session.commit()
            return GroupInfo(group.id, group.signature, group.count, group.first_seen, group.last_seen)
    raise RuntimeError(f"could not create or find the crash group '{d.signature}'")


def record_score(sessions: Sessions, coredump_id: int, result: Score) -> None:
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        assert row is not None
        row.score, row.score_breakdown = result.total, dict(result.breakdown)
        group = row.crash_group
        if group is not None and (group.best_score is None or result.total > group.best_score):
            group.best_score, group.best_coredump_id = result.total, row.id
        session.commit()


def record_storage(
    sessions: Sessions, coredump_id: int, *, backend: str, action: str, status: str,
    location: str | None = None, size: int | None = None, sha256: str | None = None, reason: str | None = None,
    attempt: int = 1, duration: float | None = None,
) -> None:
    """A storage_events row; a verified store also marks the file stored."""
    with sessions() as session:
        session.add(StorageEvent(
            coredump_id=coredump_id, action=action, backend=backend, location=location, size_bytes=size,
            sha256=sha256, status=status, reason=reason, attempt=attempt, duration_seconds=duration,
        ))
        row = session.get(CoredumpFile, coredump_id)
        if row is not None and action == "store" and status == "ok":
            row.stored, row.storage_backend, row.storage_location = True, backend, location
            row.stored_size, row.stored_sha256, row.status = size, sha256, "stored"
        session.commit()


def mark_source_deleted(sessions: Sessions, coredump_id: int) -> None:
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        if row is not None:
            row.source_deleted = True
            session.commit()


def set_flow_run(sessions: Sessions, coredump_id: int, flow_run_id: str | None) -> None:
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        if row is not None and flow_run_id:
            row.flow_run_id = flow_run_id
            session.commit()


@dataclass(frozen=True)
class StoredRow:
    coredump_id: int
    score: float
    group_best: bool


def stored_bytes(sessions: Sessions) -> int:
    """Bytes of every stored copy the database knows."""
    with sessions() as session:
        total = session.scalar(select(func.coalesce(func.sum(CoredumpFile.stored_size), 0))
                               .where(CoredumpFile.stored.is_(True)))
    return int(total or 0)


def stored_rows(sessions: Sessions) -> dict[str, StoredRow]:
    """Rows of stored cores by location, with whether each is its crash group's best stored core.

    The best is the highest score among the group's stored cores (the earliest of equals): a better core
    that was never stored, or has expired, does not leave the group without one.
    """
    with sessions() as session:
        rows = session.execute(
            select(CoredumpFile.id, CoredumpFile.storage_location, CoredumpFile.score, CoredumpFile.crash_group_id)
            .where(CoredumpFile.stored.is_(True))
        ).all()
    best: dict[int, tuple[float, int]] = {}
    for cid, _location, score, group in rows:
        if group is not None:
            rank = (float(score or 0.0), -cid)
            best[group] = max(best.get(group, rank), rank)
    return {
        str(location): StoredRow(cid, float(score or 0.0), group is not None and best[group][1] == -cid)
        for cid, location, score, group in rows
        if location
    }


def expire(sessions: Sessions, coredump_id: int | None) -> None:
    """The row stops saying stored: done before its stored copy is deleted, so that it never claims a copy
    that is gone (a copy left behind by a failed deletion is an object without a row, which retention
    removes later)."""
    if coredump_id is None:
        return
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        if row is not None:
            row.stored, row.status = False, "expired"
            session.commit()


def record_deletion(sessions: Sessions, location: str, coredump_id: int | None, *, backend: str, status: str,
                    reason: str, size: int | None = None) -> None:
    """A storage_events row for a retention deletion (the row itself was expired first, by ``expire``)."""
    with sessions() as session:
        session.add(StorageEvent(coredump_id=coredump_id, action="delete", backend=backend, location=location,
                                 size_bytes=size, status=status, reason=reason))
        session.commit()


def count_crash(sessions: Sessions, coredump_id: int, window: float = CRASH_WINDOW_SECONDS) -> bool:
    """Count a correlated core's crash for its instance, unless the sensor already saw that restart.

    Cleanup counts restarts per instance from restart_events; where no pod watch recorded the restart
    (no cluster access, or a restart the watch missed), the core itself is the evidence. A restart row
    within ``window`` seconds of the crash on the same pod (or instance, when the pod is unknown) means
    it was counted already. Returns True when a row was added.
    """
    with sessions() as session:
        row = session.get(CoredumpFile, coredump_id)
        if row is None or not row.instance_name or not row.pod_namespace:
            return False  # an instance whose namespace is not known is not counted against any namespace's
        crash = row.crash_time or row.mtime
        near = select(RestartEvent.id).where(
            RestartEvent.finished_at >= crash - timedelta(seconds=window),
            RestartEvent.finished_at <= crash + timedelta(seconds=window),
        )
        near = near.where(RestartEvent.pod_name == row.pod_name) if row.pod_name else near.where(
            RestartEvent.instance_name == row.instance_name)
        if session.scalar(near.limit(1)) is not None:
            return False
        signal = row.signal_number
        session.add(RestartEvent(
            node_name=row.node_name, namespace=row.pod_namespace, pod_name=row.pod_name or "unknown",
            pod_uid=f"core-{row.id}", container_name=row.container_name or "unknown",
            instance_id=row.instance_id, instance_name=row.instance_name, restart_count=0,
            exit_code=128 + signal if signal else None, reason="coredump", signal=signal, is_panic=row.is_panic,
            finished_at=crash,
        ))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True
