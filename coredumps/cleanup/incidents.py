"""Restarts per Milvus instance within a window, and the incidents they make.

A restart's time is when its container finished (``finished_at``, from the kubelet), else when a
sensor saw it. Every node's restart_events count: the database is shared across the cluster.

An incident is one crash loop of one instance: the run of restarts, ending at the latest one, in
which no two neighbours are more than a window apart. Its key names the instance and the loop's
first restart. At first sight that is the window's first restart; a loop that goes on for hours
keeps its key while its oldest restarts age out of the window, and a loop that comes back after a
quiet window is a new incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db.models import RestartEvent

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class RestartTally:
    """Restarts of one instance within the window."""

    namespace: str
    instance: str
    count: int
    first: datetime
    last: datetime
    instance_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "instance": self.instance, "restarts": self.count,
                "first": self.first.isoformat(), "last": self.last.isoformat()}


def _restart_time() -> Any:
    return func.coalesce(RestartEvent.finished_at, RestartEvent.detected_at)


def tally_restarts(sessions: Sessions, window: float, now: datetime, *, namespace: str | None = None,
                   instance: str | None = None, pods: Collection[tuple[str, str]] | None = None) -> list[RestartTally]:
    """Restart counts per (namespace, instance) since ``now - window``, most restarts first.

    ``pods`` (uid, name) limits the count to restarts of those pods (a core counted for its pod by name).
    """
    since = now - timedelta(seconds=window)
    at = _restart_time()
    stmt = (
        select(RestartEvent.namespace, RestartEvent.instance_name, func.count(), func.min(at), func.max(at),
               func.max(RestartEvent.instance_id))
        .where(RestartEvent.instance_name.is_not(None), RestartEvent.detected_at >= since, at >= since)
        .group_by(RestartEvent.namespace, RestartEvent.instance_name)
    )
    if namespace is not None:
        stmt = stmt.where(RestartEvent.namespace == namespace)
    if instance is not None:
        stmt = stmt.where(RestartEvent.instance_name == instance)
    if pods is not None:
        stmt = stmt.where(or_(
            RestartEvent.pod_uid.in_([uid for uid, _name in pods]),
            and_(RestartEvent.pod_uid.like("core-%"), RestartEvent.pod_name.in_([name for _uid, name in pods])),
        ))
    with sessions() as session:
        rows = session.execute(stmt).all()
    tallies = [RestartTally(ns, str(name), int(count), first, last, owner)
               for ns, name, count, first, last, owner in rows]
    return sorted(tallies, key=lambda t: (-t.count, t.namespace, t.instance))


def restart_count(sessions: Sessions, namespace: str, instance: str, window: float, now: datetime,
                  pods: Collection[tuple[str, str]] | None = None) -> int:
    """Restarts of one instance within the window (of ``pods`` only, when given)."""
    found = tally_restarts(sessions, window, now, namespace=namespace, instance=instance, pods=pods)
    return found[0].count if found else 0


def restart_times(sessions: Sessions, namespace: str, instance: str, since: datetime) -> list[datetime]:
    """The times of one instance's restarts since ``since``, oldest first."""
    at = _restart_time()
    stmt = (select(at).where(RestartEvent.namespace == namespace, RestartEvent.instance_name == instance,
                             RestartEvent.detected_at >= since, at >= since).order_by(at))
    with sessions() as session:
        return list(session.scalars(stmt))


def loop_start(times: Sequence[datetime], window: float) -> datetime:
    """The first restart of the loop that ends at the last of ``times`` (sorted, not empty)."""
    gap = timedelta(seconds=window)
    start = times[-1]
    for earlier in reversed(times[:-1]):
        if start - earlier > gap:
            break
        start = earlier
    return start


def incident_start(sessions: Sessions, tally: RestartTally, window: float,
                   previous_start: datetime | None) -> datetime:
    """The first restart of the tallied instance's current loop, looking back to the previous incident."""
    since = tally.first if previous_start is None else min(previous_start, tally.first)
    times = restart_times(sessions, tally.namespace, tally.instance, since)
    return loop_start(times, window) if times else tally.first


def incident_key(namespace: str, instance: str, start: datetime) -> str:
    """``namespace/instance@first-restart``; over-long names are hashed to fit the column."""
    who = f"{namespace}/{instance}"
    if len(who) > 200:
        who = "sha256:" + hashlib.sha256(who.encode()).hexdigest()[:40]
    return f"{who}@{start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
