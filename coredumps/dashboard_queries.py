"""Read-only queries behind the dashboard's pages; plain SQLAlchemy on a ``Session``.

Every function takes the session first and returns frozen dataclasses or plain values, so the
pages only render. Day buckets are UTC dates. Nothing here writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from coredumps.db.models import (
    AIAnalysisResult,
    AnalysisResult,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    MilvusInstance,
    Pod,
    StorageEvent,
)

SortKey = Literal["created", "crash_time", "score", "instance", "signal", "size", "status"]
SORT_KEYS: tuple[str, ...] = ("created", "crash_time", "score", "instance", "signal", "size", "status")
SCORE_BUCKETS = 10
PENDING_DECISION = "scheduled"

_SORT_COLUMNS: dict[str, Any] = {
    "created": CoredumpFile.created_at,
    "crash_time": CoredumpFile.crash_time,
    "score": CoredumpFile.score,
    "instance": CoredumpFile.instance_name,
    "signal": CoredumpFile.signal_name,
    "size": CoredumpFile.size_bytes,
    "status": CoredumpFile.status,
}


def _day_range(days: int, now: datetime) -> tuple[datetime, list[date]]:
    today = now.astimezone(UTC).date()
    dates = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    start = datetime(dates[0].year, dates[0].month, dates[0].day, tzinfo=UTC)
    return start, dates


# ---------------------------------------------------------------- overview


@dataclass(frozen=True)
class Overview:
    instances: int
    coredumps: int
    high_value: int
    crash_groups: int
    stored: int
    failed: int


def overview(session: Session, value_threshold: float) -> Overview:
    """Headline counts; high-value means a score at or above ``analyzer.valueThreshold``."""
    row = session.execute(select(
        func.count(CoredumpFile.id),
        func.count(case((CoredumpFile.score >= value_threshold, 1))),
        func.count(case((CoredumpFile.stored.is_(True), 1))),
        func.count(case((CoredumpFile.status == "failed", 1))),
    )).one()
    instance_names = set(session.scalars(
        select(MilvusInstance.name).where(MilvusInstance.deleted_at.is_(None))))
    instance_names.update(n for n in session.scalars(
        select(CoredumpFile.instance_name).distinct()) if n)
    groups = session.scalar(select(func.count(CrashGroup.id))) or 0
    return Overview(len(instance_names), int(row[0]), int(row[1]), int(groups), int(row[2]), int(row[3]))


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int
    high_value: int = 0


def trend_per_day(session: Session, value_threshold: float, *, days: int = 30,
                  now: datetime | None = None) -> list[DayCount]:
    """Coredumps processed per UTC day over the last ``days`` days (zero days included)."""
    start, dates = _day_range(days, now or datetime.now(UTC))
    counts: Counter[date] = Counter()
    high: Counter[date] = Counter()
    rows = session.execute(select(CoredumpFile.created_at, CoredumpFile.score)
                           .where(CoredumpFile.created_at >= start))
    for created, score in rows:
        day = created.astimezone(UTC).date()
        counts[day] += 1
        if score is not None and score >= value_threshold:
            high[day] += 1
    return [DayCount(d, counts[d], high[d]) for d in dates]


@dataclass(frozen=True)
class ScoreBucket:
    low: int
    high: int
    count: int


def score_distribution(session: Session) -> list[ScoreBucket]:
    """Scored coredumps per unit score band: [0,1), [1,2) ... [9,10]."""
    bucket = case(*((CoredumpFile.score < n, n - 1) for n in range(1, SCORE_BUCKETS)),
                  else_=SCORE_BUCKETS - 1)
    rows = session.execute(select(bucket, func.count()).where(CoredumpFile.score.is_not(None)).group_by(bucket))
    found = {int(b): int(c) for b, c in rows}
    return [ScoreBucket(n, n + 1, found.get(n, 0)) for n in range(SCORE_BUCKETS)]


@dataclass(frozen=True)
class Activity:
    at: datetime
    kind: str
    text: str
    coredump_id: int | None = None
    instance: str | None = None


def recent_activity(session: Session, limit: int = 20) -> list[Activity]:
    """The newest coredumps, cleanup decisions and storage deletions, newest first."""
    items: list[Activity] = []
    for c in session.scalars(select(CoredumpFile).order_by(CoredumpFile.created_at.desc()).limit(limit)):
        score = f", score {c.score:.1f}" if c.score is not None else ""
        items.append(Activity(c.created_at, "coredump",
                              f"{c.file_name}: {c.status}{score}", c.id, c.instance_name))
    for e in session.scalars(select(CleanupEvent).order_by(CleanupEvent.created_at.desc()).limit(limit)):
        items.append(Activity(e.created_at, "cleanup", f"{e.action} {e.decision}: {e.reason}",
                              None, e.instance_name))
    deletions = select(StorageEvent).where(StorageEvent.action == "delete") \
        .order_by(StorageEvent.created_at.desc()).limit(limit)
    for s in session.scalars(deletions):
        items.append(Activity(s.created_at, "retention", f"deleted {s.location or ''}: {s.reason or s.status}",
                              s.coredump_id))
    items.sort(key=lambda a: a.at, reverse=True)
    return items[:limit]


# ---------------------------------------------------------------- instances


@dataclass(frozen=True)
class PodRow:
    name: str
    node_name: str | None
    phase: str
    restart_count: int
    last_restart_at: datetime | None


@dataclass(frozen=True)
class InstanceRow:
    name: str
    namespace: str | None
    deployment_type: str
    status: str
    pods: list[PodRow]
    restarts: int
    coredumps: int
    pending_cleanups: int
    last_seen: datetime | None
    deleted: bool


def instances(session: Session) -> list[InstanceRow]:
    """Known Milvus instances, plus instance names seen only on coredumps, by name."""
    per_name: dict[str, int] = {}
    for instance_name, count in session.execute(
            select(CoredumpFile.instance_name, func.count()).where(CoredumpFile.instance_name.is_not(None))
            .group_by(CoredumpFile.instance_name)):
        per_name[str(instance_name)] = int(count)
    pending = Counter[str]()
    for name, namespace in session.execute(
            select(CleanupEvent.instance_name, CleanupEvent.namespace)
            .where(CleanupEvent.decision == PENDING_DECISION)):
        pending[f"{namespace}/{name}"] += 1
    pods_by_instance: dict[int, list[PodRow]] = {}
    for pod in session.scalars(select(Pod).where(Pod.instance_id.is_not(None)).order_by(Pod.name)):
        assert pod.instance_id is not None
        pods_by_instance.setdefault(pod.instance_id, []).append(
            PodRow(pod.name, pod.node_name, pod.phase, pod.restart_count, pod.last_restart_at))
    rows: list[InstanceRow] = []
    seen: set[str] = set()
    for inst in session.scalars(select(MilvusInstance).order_by(MilvusInstance.name, MilvusInstance.namespace)):
        pods = pods_by_instance.get(inst.id, [])
        seen.add(inst.name)
        rows.append(InstanceRow(inst.name, inst.namespace, inst.deployment_type, inst.status, pods,
                                sum(p.restart_count for p in pods), int(per_name.get(inst.name, 0)),
                                pending[f"{inst.namespace}/{inst.name}"], inst.last_seen,
                                inst.deleted_at is not None))
    for name, count in sorted(per_name.items()):
        if name not in seen:
            rows.append(InstanceRow(name, None, "unknown", "not discovered", [], 0, int(count), 0, None, False))
    return rows


# ---------------------------------------------------------------- coredumps


@dataclass(frozen=True)
class CoredumpFilter:
    instance: str | None = None
    signal: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    crash_group_id: int | None = None
    since: date | None = None
    until: date | None = None
    status: str | None = None


@dataclass(frozen=True)
class CoredumpRow:
    id: int
    file_name: str
    node_name: str
    instance: str | None
    pod_name: str | None
    signal: str | None
    score: float | None
    status: str
    crash_group_id: int | None
    size_bytes: int
    crash_time: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Page:
    items: list[CoredumpRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _filtered(query: Select[Any], f: CoredumpFilter) -> Select[Any]:
    if f.instance:
        query = query.where(CoredumpFile.instance_name == f.instance)
    if f.signal:
        query = query.where(CoredumpFile.signal_name == f.signal)
    if f.min_score is not None:
        query = query.where(CoredumpFile.score >= f.min_score)
    if f.max_score is not None:
        query = query.where(CoredumpFile.score <= f.max_score)
    if f.crash_group_id is not None:
        query = query.where(CoredumpFile.crash_group_id == f.crash_group_id)
    if f.status:
        query = query.where(CoredumpFile.status == f.status)
    if f.since is not None:
        query = query.where(or_(
            CoredumpFile.crash_time >= _midnight(f.since),
            (CoredumpFile.crash_time.is_(None)) & (CoredumpFile.created_at >= _midnight(f.since))))
    if f.until is not None:
        end = _midnight(f.until + timedelta(days=1))
        query = query.where(or_(
            CoredumpFile.crash_time < end, (CoredumpFile.crash_time.is_(None)) & (CoredumpFile.created_at < end)))
    return query


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def list_coredumps(session: Session, filters: CoredumpFilter | None = None, *, sort: str = "created",
                   descending: bool = True, page: int = 1, per_page: int = 25) -> Page:
    """One page of coredumps matching ``filters``, sorted by one of ``SORT_KEYS`` (id breaks ties)."""
    f = filters or CoredumpFilter()
    column = _SORT_COLUMNS.get(sort, CoredumpFile.created_at)
    total = session.scalar(_filtered(select(func.count(CoredumpFile.id)), f)) or 0
    per_page = max(1, min(per_page, 200))
    page = max(1, page)
    order = [column.desc().nulls_last() if descending else column.asc().nulls_last(),
             CoredumpFile.id.desc() if descending else CoredumpFile.id.asc()]
    query = _filtered(select(CoredumpFile), f).order_by(*order).offset((page - 1) * per_page).limit(per_page)
    items = [_row(c) for c in session.scalars(query)]
    return Page(items, int(total), page, per_page)


def _row(c: CoredumpFile) -> CoredumpRow:
    return CoredumpRow(c.id, c.file_name, c.node_name, c.instance_name, c.pod_name, c.signal_name, c.score,
                       c.status, c.crash_group_id, c.size_bytes, c.crash_time, c.created_at)


def filter_choices(session: Session) -> dict[str, list[str]]:
    """Distinct instance names and signals, for the filter form."""
    names = sorted(n for n in session.scalars(select(CoredumpFile.instance_name).distinct()) if n)
    signals = sorted(s for s in session.scalars(select(CoredumpFile.signal_name).distinct()) if s)
    return {"instances": names, "signals": signals}


@dataclass(frozen=True)
class AIInsight:
    status: str
    provider: str
    model: str
    summary: str | None
    root_cause: str | None
    impact: str | None
    recommendations: list[str]
    confidence: float | None
    skip_reason: str | None
    error: str | None
    shared_with_group: bool
    created_at: datetime


@dataclass(frozen=True)
class CoredumpDetail:
    row: CoredumpRow
    path: str
    executable: str | None
    comm: str | None
    pid: int | None
    pod_namespace: str | None
    container_name: str | None
    correlation_rule: str | None
    skip_reason: str | None
    error: str | None
    score_breakdown: dict[str, Any]
    is_panic: bool
    signature: str | None
    stored: bool
    storage_backend: str | None
    storage_location: str | None
    stored_size: int | None
    stored_sha256: str | None
    flow_run_id: str | None
    crash_reason: str | None = None
    signal_number: int | None = None
    fault_address: str | None = None
    thread_count: int = 0
    crashing_thread: int | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    stack_trace: str = ""
    warnings: list[str] = field(default_factory=list)
    ai: list[AIInsight] = field(default_factory=list)
    group_title: str | None = None
    group_count: int = 0
    group_members: list[CoredumpRow] = field(default_factory=list)
    storage_events: list[tuple[datetime, str, str, str | None]] = field(default_factory=list)


def coredump_detail(session: Session, coredump_id: int, *, members: int = 20) -> CoredumpDetail | None:
    """Everything known about one coredump, or ``None`` when there is no such row."""
    c = session.get(CoredumpFile, coredump_id)
    if c is None:
        return None
    detail = CoredumpDetail(
        _row(c), c.path, c.executable, c.comm, c.pid, c.pod_namespace, c.container_name, c.correlation_rule,
        c.skip_reason, c.error, dict(c.score_breakdown or {}), c.is_panic, c.signature, c.stored,
        c.storage_backend, c.storage_location, c.stored_size, c.stored_sha256, c.flow_run_id,
    )
    extra: dict[str, Any] = {}
    analysis = session.scalar(select(AnalysisResult).where(AnalysisResult.coredump_id == c.id))
    if analysis is not None:
        extra.update(crash_reason=analysis.crash_reason, signal_number=analysis.signal_number,
                     fault_address=analysis.fault_address, thread_count=analysis.thread_count,
                     crashing_thread=analysis.crashing_thread, frames=list(analysis.frames or []),
                     stack_trace=analysis.stack_trace, warnings=list(analysis.warnings or []))
    ai_query = select(AIAnalysisResult).where(AIAnalysisResult.coredump_id == c.id)
    if c.crash_group_id is not None:
        ai_query = select(AIAnalysisResult).where(or_(
            AIAnalysisResult.coredump_id == c.id,
            (AIAnalysisResult.crash_group_id == c.crash_group_id) & (AIAnalysisResult.status == "ok")))
    extra["ai"] = [
        AIInsight(a.status, a.provider, a.model, a.summary, a.root_cause, a.impact, list(a.recommendations or []),
                  a.confidence, a.skip_reason, a.error, a.coredump_id != c.id, a.created_at)
        for a in session.scalars(ai_query.order_by(AIAnalysisResult.created_at.desc()).limit(10))
    ]
    if c.crash_group_id is not None:
        group = session.get(CrashGroup, c.crash_group_id)
        if group is not None:
            extra.update(group_title=group.title, group_count=group.count)
        others = select(CoredumpFile).where(CoredumpFile.crash_group_id == c.crash_group_id,
                                            CoredumpFile.id != c.id) \
            .order_by(CoredumpFile.created_at.desc()).limit(members)
        extra["group_members"] = [_row(m) for m in session.scalars(others)]
    extra["storage_events"] = [
        (e.created_at, e.action, e.status, e.location)
        for e in session.scalars(select(StorageEvent).where(StorageEvent.coredump_id == c.id)
                                 .order_by(StorageEvent.created_at))
    ]
    return _replace(detail, extra)


def _replace(detail: CoredumpDetail, values: dict[str, Any]) -> CoredumpDetail:
    return replace(detail, **values)


# ---------------------------------------------------------------- crash groups


@dataclass(frozen=True)
class CrashGroupRow:
    id: int
    title: str
    signature: str
    executable: str | None
    signal: str | None
    first_seen: datetime
    last_seen: datetime
    count: int
    best_score: float | None
    best_coredump_id: int | None
    trend: list[DayCount]


def crash_groups(session: Session, *, days: int = 14, now: datetime | None = None, page: int = 1,
                 per_page: int = 50) -> tuple[list[CrashGroupRow], int]:
    """One page of crash groups, most recently seen first, each with its coredumps per day over ``days`` days;
    and how many groups there are."""
    start, dates = _day_range(days, now or datetime.now(UTC))
    total = session.scalar(select(func.count()).select_from(CrashGroup)) or 0
    groups = list(session.scalars(select(CrashGroup).order_by(CrashGroup.last_seen.desc(), CrashGroup.id)
                                  .offset((max(page, 1) - 1) * per_page).limit(per_page)))
    per_group: dict[int, Counter[date]] = {}
    for group_id, created in session.execute(
            select(CoredumpFile.crash_group_id, CoredumpFile.created_at)
            .where(CoredumpFile.crash_group_id.in_([g.id for g in groups]), CoredumpFile.created_at >= start)):
        if group_id is not None:
            per_group.setdefault(group_id, Counter())[created.astimezone(UTC).date()] += 1
    rows = []
    for g in groups:
        counts = per_group.get(g.id, Counter())
        rows.append(CrashGroupRow(g.id, g.title, g.signature, g.executable, g.signal_name, g.first_seen,
                                  g.last_seen, g.count, g.best_score, g.best_coredump_id,
                                  [DayCount(d, counts[d]) for d in dates]))
    return rows, total
