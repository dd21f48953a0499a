"""Milvus instances, their pods and their restarts, kept current in the database by the sensor."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from coredumps.db.models import MilvusInstance, Pod, RestartEvent
from coredumps.db.types import utcnow
from coredumps.kube.discovery import Instance
from coredumps.kube.pods import PodInfo, Restart
from coredumps.records import CRASH_WINDOW_SECONDS, Sessions


def upsert_instance(sessions: Sessions, instance: Instance) -> int:
    with sessions() as session:
        row = session.scalar(select(MilvusInstance).where(
            MilvusInstance.namespace == instance.namespace, MilvusInstance.name == instance.name))
        if row is None:
            row = MilvusInstance(namespace=instance.namespace, name=instance.name, labels={}, status="seen")
            session.add(row)
        row.deployment_type = instance.deployment_type
        row.release_name = instance.release_name
        row.labels = dict(instance.labels)
        row.status = instance.status
        row.pod_count = instance.pod_count
        row.last_seen = utcnow()
        row.deleted_at = None
        session.commit()
        return row.id


def instance_id(sessions: Sessions, namespace: str, name: str | None) -> int | None:
    if not name:
        return None
    with sessions() as session:
        return session.scalar(select(MilvusInstance.id).where(
            MilvusInstance.namespace == namespace, MilvusInstance.name == name))


def upsert_pod(sessions: Sessions, info: PodInfo, instance: str | None) -> None:
    owner = instance_id(sessions, info.namespace, instance)
    with sessions() as session:
        row = session.scalar(select(Pod).where(Pod.uid == info.uid))
        if row is None:
            row = Pod(uid=info.uid, namespace=info.namespace, name=info.name, phase=info.phase)
            session.add(row)
        row.instance_id = owner
        row.node_name = info.node_name
        row.containers = list(info.containers)
        row.restart_count = info.restart_count
        row.phase = info.phase
        row.status_reason = info.status_reason
        row.last_restart_at = info.last_restart_at
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def remove_pod(sessions: Sessions, uid: str) -> None:
    """A deleted pod leaves the pods table (its restarts stay in restart_events)."""
    with sessions() as session:
        session.execute(delete(Pod).where(Pod.uid == uid))
        session.commit()


def record_restart(sessions: Sessions, restart: Restart, *, node: str, instance: str | None, is_panic: bool,
                   log_excerpt: str | None) -> bool:
    """A restart_events row; False when this restart was already recorded (by this or another sensor).

    A row a core stood in for, for this crash (``count_crash``: the core was handed over before the watch saw
    the restart), is replaced by this one, so that one crash never counts twice.
    """
    owner = instance_id(sessions, restart.namespace, instance)
    with sessions() as session:
        session.add(RestartEvent(
            node_name=restart.node_name or node, namespace=restart.namespace, pod_name=restart.pod_name,
            pod_uid=restart.pod_uid, container_name=restart.container, instance_id=owner, instance_name=instance,
            restart_count=restart.restart_count, exit_code=restart.exit_code, reason=restart.reason,
            signal=restart.signal, is_panic=is_panic, log_excerpt=log_excerpt, finished_at=restart.finished_at,
        ))
        if restart.finished_at is not None:
            window = timedelta(seconds=CRASH_WINDOW_SECONDS)
            session.execute(delete(RestartEvent).where(
                RestartEvent.reason == "coredump", RestartEvent.pod_uid.like("core-%"),
                RestartEvent.namespace == restart.namespace, RestartEvent.pod_name == restart.pod_name,
                RestartEvent.finished_at >= restart.finished_at - window,
                RestartEvent.finished_at <= restart.finished_at + window,
            ))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True
