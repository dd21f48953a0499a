"""Retention tasks: list what is stored, plan, delete with retries, record."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from coredumps import records
from coredumps.config import Config
from coredumps.records import Sessions
from coredumps.retention import LEFTOVER_AGE, Deletion, StoredCopy, plan_retention
from coredumps.storage import ObjectInfo, Storage
from tasks.policies import transient_only


@task(name="list-stored", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 8, 30],
      retry_condition_fn=transient_only)
def list_stored(storage: Storage, sessions: Sessions) -> list[StoredCopy]:
    objects = list(storage.list_objects())
    known = records.stored_rows(sessions)  # after the listing: a store recorded meanwhile is known
    copies = []
    for obj in objects:
        row = known.get(obj.location)
        copies.append(StoredCopy(
            location=obj.location, instance=obj.instance, size=obj.size, stored_at=obj.modified,
            score=row.score if row else 0.0, group_best=row.group_best if row else False,
            coredump_id=row.coredump_id if row else None,
        ))
    return copies


@task(name="plan-retention", cache_policy=NO_CACHE)
def plan(copies: list[StoredCopy], cfg: Config) -> list[Deletion]:
    return plan_retention(copies, cfg.storage, datetime.now(tz=UTC))


@task(name="delete-stored", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 8, 30],
      retry_jitter_factor=0.5, retry_condition_fn=transient_only)
def delete(storage: Storage, sessions: Sessions, deletion: Deletion, dry_run: bool) -> None:
    copy = deletion.copy
    if not dry_run:
        records.expire(sessions, copy.coredump_id)
        storage.delete(copy.location)
    records.record_deletion(sessions, copy.location, copy.coredump_id, backend=storage.backend,
                            status="dry-run" if dry_run else "ok", reason=deletion.reason, size=copy.size)


@task(name="clean-leftovers", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 8, 30],
      retry_jitter_factor=0.5, retry_condition_fn=transient_only)
def clean_leftovers(storage: Storage, sessions: Sessions, dry_run: bool) -> list[ObjectInfo]:
    """Remove what stores interrupted over a day ago left behind; each removal is a storage_events row."""
    found = list(storage.leftovers(datetime.now(tz=UTC) - LEFTOVER_AGE))
    for item in found:
        if not dry_run:
            storage.remove_leftover(item.location)
        records.record_deletion(sessions, item.location, None, backend=storage.backend,
                                status="dry-run" if dry_run else "ok", size=item.size,
                                reason="left by a store interrupted more than a day ago")
    return found
