"""cleanup_events rows: every decision and every outcome, one row each.

An incident has at most two keyed rows: the decision (``incident_key``) and its outcome
(``incident_key#outcome``). The column is UNIQUE, so a second decision or a second outcome for
one incident is refused by the database itself: nothing is ever done twice for one incident.
An outcome is claimed before anything is done (as 'failed', "interrupted"), then completed. A run
that failed cleanly (its changes put back) may be retried: the retry takes over its outcome row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import exists, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from coredumps.cleanup.incidents import Sessions
from coredumps.db.models import CleanupEvent
from coredumps.db.types import utcnow

Decision = Literal["scheduled", "executed", "skipped", "failed", "cancelled", "dry-run"]
OUTCOME_SUFFIX = "#outcome"
INTERRUPTED = "the cleanup run stopped before it recorded an outcome"


def outcome_key(incident_key: str) -> str:
    return incident_key + OUTCOME_SUFFIX


@dataclass(frozen=True)
class Entry:
    """What one row says."""

    namespace: str
    instance: str
    action: str
    decision: Decision
    reason: str
    restart_count: int | None = None
    window_seconds: float | None = None
    incident_key: str | None = None
    flow_run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    instance_id: int | None = None


@dataclass(frozen=True)
class Row:
    """A stored row."""

    id: int
    entry: Entry
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {"id": self.id, "namespace": e.namespace, "instance": e.instance, "action": e.action,
                "decision": e.decision, "reason": e.reason, "restart_count": e.restart_count,
                "window_seconds": e.window_seconds, "incident_key": e.incident_key, "flow_run_id": e.flow_run_id,
                "details": e.details, "created_at": self.created_at.isoformat()}


def _row(model: CleanupEvent) -> Row:
    entry = Entry(
        namespace=model.namespace, instance=model.instance_name, action=model.action,
        decision=model.decision,  # type: ignore[arg-type]
        reason=model.reason, restart_count=model.restart_count, window_seconds=model.window_seconds,
        incident_key=model.incident_key, flow_run_id=model.flow_run_id, details=dict(model.details or {}),
        instance_id=model.instance_id,
    )
    return Row(model.id, entry, model.created_at)


def add(sessions: Sessions, entry: Entry) -> Row | None:
    """Insert a row; ``None`` when its incident key is taken already."""
    model = CleanupEvent(
        instance_id=entry.instance_id, namespace=entry.namespace, instance_name=entry.instance, action=entry.action,
        decision=entry.decision, reason=entry.reason, restart_count=entry.restart_count,
        window_seconds=entry.window_seconds, incident_key=entry.incident_key, flow_run_id=entry.flow_run_id,
        details=entry.details, created_at=utcnow(),
    )
    with sessions() as session:
        session.add(model)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if entry.incident_key is None:
                raise
            return None
        return _row(model)


def update(sessions: Sessions, row_id: int, **changes: Any) -> Row:
    """Change a row: decision, reason, action, flow_run_id, restart_count or details."""
    with sessions() as session:
        model = session.get_one(CleanupEvent, row_id)
        for name, value in changes.items():
            setattr(model, name, value)
        session.commit()
        return _row(model)


def retake(sessions: Sessions, incident_key: str, flow_run_id: str | None) -> Row | None:
    """Claim a finished 'failed' outcome for a retry; ``None`` unless exactly that row was there to take."""
    key = outcome_key(incident_key)
    stmt = (sql_update(CleanupEvent)
            .where(CleanupEvent.incident_key == key, CleanupEvent.decision == "failed",
                   CleanupEvent.reason != INTERRUPTED)
            .values(reason=INTERRUPTED, flow_run_id=flow_run_id))
    with sessions() as session:
        taken = session.execute(stmt).rowcount  # type: ignore[attr-defined]
        session.commit()
    return find(sessions, key) if taken == 1 else None


def remove(sessions: Sessions, row_id: int) -> None:
    """Drop a decision whose flow run could not be created, so that the next pass tries again."""
    with sessions() as session:
        model = session.get(CleanupEvent, row_id)
        if model is not None:
            session.delete(model)
            session.commit()


def find(sessions: Sessions, incident_key: str) -> Row | None:
    with sessions() as session:
        model = session.scalar(select(CleanupEvent).where(CleanupEvent.incident_key == incident_key))
        return _row(model) if model is not None else None


def pending(sessions: Sessions) -> list[Row]:
    """Scheduled cleanups without an outcome yet, oldest first."""
    outcome = aliased(CleanupEvent)
    stmt = (
        select(CleanupEvent)
        .where(CleanupEvent.decision == "scheduled", CleanupEvent.incident_key.is_not(None))
        .where(~exists().where(outcome.incident_key == CleanupEvent.incident_key + OUTCOME_SUFFIX))
        .order_by(CleanupEvent.id)
    )
    with sessions() as session:
        return [_row(model) for model in session.scalars(stmt)]


def last_incident_start(sessions: Sessions, namespace: str, instance: str) -> datetime | None:
    """The first restart of the instance's latest incident, as its decision row recorded it."""
    stmt = (
        select(CleanupEvent)
        .where(CleanupEvent.namespace == namespace, CleanupEvent.instance_name == instance,
               CleanupEvent.incident_key.is_not(None), CleanupEvent.incident_key.not_like(f"%{OUTCOME_SUFFIX}"))
        .order_by(CleanupEvent.id.desc()).limit(1)
    )
    with sessions() as session:
        model = session.scalar(stmt)
    started = (model.details or {}).get("incident_start") if model is not None else None
    return datetime.fromisoformat(started) if isinstance(started, str) else None


def history(sessions: Sessions, *, namespace: str | None = None, instance: str | None = None,
            limit: int = 50) -> list[Row]:
    """The latest rows, newest first."""
    stmt = select(CleanupEvent).order_by(CleanupEvent.id.desc()).limit(limit)
    if namespace is not None:
        stmt = stmt.where(CleanupEvent.namespace == namespace)
    if instance is not None:
        stmt = stmt.where(CleanupEvent.instance_name == instance)
    with sessions() as session:
        return [_row(model) for model in session.scalars(stmt)]
