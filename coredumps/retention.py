"""Retention: which stored cores to delete, and why. Value-aware and explainable.

Rules, in order, each adding deletions with their reason:
  1. age: older than storage.retentionDays; a high-value core (score at or above
     storage.highValueScore) or the best core of its crash group is kept twice as long;
  2. count: more than storage.keepPerInstance cores of one instance; the least valuable go first;
  3. size: the store is larger than storage.maxStorageSize; the least valuable go first.
Least valuable first means: not a group's best, then lowest score, then oldest.
Objects the database does not know (e.g. left by a crashed run) count with score 0; one younger than
UNKNOWN_GRACE is left to the age rule alone, since a run may have stored it and not yet written its row.
What an interrupted store left behind (a temporary file, a name claim, an unfinished multipart upload)
is removed once it is LEFTOVER_AGE old.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from coredumps.config import StorageConfig

DAY = timedelta(days=1)
UNKNOWN_GRACE = DAY
"""How long a stored object the database does not know is safe from the count and size rules."""
LEFTOVER_AGE = DAY
"""A store's temporary file, claim or unfinished upload this old belongs to a store that was interrupted."""


@dataclass(frozen=True)
class StoredCopy:
    location: str
    instance: str
    size: int
    stored_at: datetime
    score: float
    group_best: bool
    coredump_id: int | None = None


@dataclass(frozen=True)
class Deletion:
    copy: StoredCopy
    reason: str


def _value(copy: StoredCopy) -> tuple[bool, float, datetime]:
    return (copy.group_best, copy.score, copy.stored_at)


def _high_value(copy: StoredCopy, cfg: StorageConfig) -> bool:
    return copy.group_best or copy.score >= cfg.high_value_score


def _settling(copy: StoredCopy, now: datetime) -> bool:
    """An object without a row, stored so recently that its run may still be recording it."""
    return copy.coredump_id is None and now - copy.stored_at < UNKNOWN_GRACE


def plan_retention(copies: list[StoredCopy], cfg: StorageConfig, now: datetime) -> list[Deletion]:
    """The deletions the policy asks for, each once, with the first rule that asked."""
    chosen: dict[str, Deletion] = {}

    def delete(copy: StoredCopy, reason: str) -> None:
        chosen.setdefault(copy.location, Deletion(copy, reason))

    if cfg.retention_days > 0:
        for copy in copies:
            days = cfg.retention_days * (2 if _high_value(copy, cfg) else 1)
            age = now - copy.stored_at
            if age > days * DAY:
                kind = " (kept twice as long as a high-value core)" if _high_value(copy, cfg) else ""
                delete(copy, f"older than {days} days ({age.days} days){kind}")

    if cfg.keep_per_instance > 0:
        by_instance: dict[str, list[StoredCopy]] = defaultdict(list)
        for copy in copies:
            if copy.location not in chosen and not _settling(copy, now):
                by_instance[copy.instance].append(copy)
        for instance, members in by_instance.items():
            members.sort(key=_value, reverse=True)
            for copy in members[cfg.keep_per_instance :]:
                delete(copy, f"instance {instance} has more than {cfg.keep_per_instance} stored cores")

    if cfg.max_storage_size > 0:
        remaining = [c for c in copies if c.location not in chosen]
        total = sum(c.size for c in remaining)
        for copy in sorted((c for c in remaining if not _settling(c, now)), key=_value):
            if total <= cfg.max_storage_size:
                break
            delete(copy, f"the store exceeds storage.maxStorageSize ({total} > {cfg.max_storage_size} bytes)")
            total -= copy.size
    return list(chosen.values())
