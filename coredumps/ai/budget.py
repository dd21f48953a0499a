"""Cost control that holds across every node, kept in the shared ``ai_analysis_results`` table.

Reserve before calling: ``reserve`` inserts a ``pending`` row inside a
transaction that serialises all reservers (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL), so two nodes cannot both take
the last slot. ``complete`` turns the row into ``ok`` or ``failed``; ``cancel``
into ``skipped`` when no request was sent.

    maxAnalysisPerHour  rows with status ok, failed or pending created in the last
                        3600 s; a pending row left by a crash keeps counting, so the
                        cap is never exceeded
    maxCostPerMonth     cost_usd summed over the current UTC calendar month, plus
                        the average cost of a call for every pending row
    onePerCrashGroup    a group with an ok analysis (or one in flight) is not sent again
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from coredumps.ai.answer import AIAnswer, excerpt
from coredumps.config import AIAnalysisConfig, AIPricing
from coredumps.db.models import AIAnalysisResult, CrashGroup
from coredumps.db.types import utcnow
from coredumps.errors import TransientError

PENDING = "pending"
COUNTED_STATUSES = ("ok", "failed", PENDING)
WINDOW = timedelta(hours=1)
_PG_LOCK_KEY = 1668248166
_LOCKS = {"sqlite": "BEGIN IMMEDIATE", "postgresql": f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"}

log = logging.getLogger(__name__)
Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class Reservation:
    """A slot taken for one call; pass it to ``complete`` or ``cancel``."""

    id: int
    coredump_id: int | None
    crash_group_id: int | None
    provider: str
    model: str
    created_at: datetime
    pricing: AIPricing
    sessions: Sessions = field(repr=False, compare=False)


@dataclass(frozen=True)
class SkipDecision:
    """No call: ``reason`` says why; ``reuse_id`` names the group's analysis to reuse, if any."""

    reason: str
    kind: Literal["hourly", "monthly", "group"]
    reuse_id: int | None = None


@dataclass(frozen=True)
class Usage:
    analyses_last_hour: int
    spent_this_month: float
    in_flight: int


def cost_usd(pricing: AIPricing, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one call at the configured per-million-token prices."""
    return prompt_tokens / 1e6 * pricing.input_per_million + completion_tokens / 1e6 * pricing.output_per_million


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of ``now``'s month."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(session: Session, now: datetime | None = None) -> Usage:
    """Calls counted against the hour, and money spent (or in flight) this month."""
    now = now or utcnow()
    rows = AIAnalysisResult
    hour = session.scalar(
        select(func.count()).where(rows.status.in_(COUNTED_STATUSES), rows.created_at >= now - WINDOW)
    )
    spent, done, pending = session.execute(
        select(
            func.coalesce(func.sum(rows.cost_usd), 0.0),
            func.count(case((rows.status.in_(("ok", "failed")), 1))),
            func.count(case((rows.status == PENDING, 1))),
        ).where(rows.status.in_(COUNTED_STATUSES), rows.created_at >= month_start(now))
    ).one()
    average = float(spent) / done if done else 0.0
    return Usage(analyses_last_hour=int(hour or 0), spent_this_month=float(spent) + pending * average,
                 in_flight=int(pending))


def reserve(
    session_factory: Sessions,
    cfg: AIAnalysisConfig,
    *,
    coredump_id: int | None,
    crash_group_id: int | None,
    provider: str,
    model: str,
    now: datetime | None = None,
) -> Reservation | SkipDecision:
    """Take a slot for one call, or say why there is none; safe against every other node."""
    now = now or utcnow()
    try:
        with session_factory() as session:
            _lock(session)
            skip = _group_skip(session, cfg, crash_group_id, now) or _budget_skip(session, cfg, now)
            if skip is not None:
                session.rollback()
                return skip
            row = AIAnalysisResult(
                coredump_id=coredump_id, crash_group_id=crash_group_id, provider=provider, model=model,
                status=PENDING, created_at=now,
            )
            session.add(row)
            session.commit()
            return Reservation(
                id=row.id, coredump_id=coredump_id, crash_group_id=crash_group_id, provider=provider,
                model=model, created_at=now, pricing=cfg.pricing, sessions=session_factory,
            )
    except OperationalError as exc:
        raise TransientError(f"database: cannot reserve an AI analysis slot ({_first_line(exc)}).") from exc


def complete(
    reservation: Reservation,
    *,
    answer: AIAnswer | None = None,
    error: BaseException | str | None = None,
    raw_reply: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: float | None = None,
    duration_seconds: float | None = None,
) -> float:
    """Record the call's outcome (ok with an answer, else failed); returns its cost in USD."""
    if cost is None:
        cost = cost_usd(reservation.pricing, prompt_tokens, completion_tokens)
    values: dict[str, Any] = {
        "status": "ok" if answer is not None and error is None else "failed",
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": cost,
        "duration_seconds": duration_seconds,
        "raw_reply_excerpt": excerpt(raw_reply) if raw_reply else None,
    }
    if answer is not None and error is None:
        values.update(answer.to_row())
    elif error is not None:
        values["error"] = str(error) or type(error).__name__
    else:
        values["error"] = "no answer was recorded"
    _update(reservation, values)
    return cost


def cancel(reservation: Reservation, reason: str) -> None:
    """Release the slot of a call that was never sent: the row becomes ``skipped``."""
    _update(reservation, {"status": "skipped", "skip_reason": reason})


def group_result(session: Session, crash_group_id: int | None) -> AIAnalysisResult | None:
    """The latest ok analysis of the crash group, to reuse for its other members."""
    if crash_group_id is None:
        return None
    rows = AIAnalysisResult
    return session.scalars(
        select(rows).where(rows.crash_group_id == crash_group_id, rows.status == "ok")
        .order_by(rows.created_at.desc(), rows.id.desc()).limit(1)
    ).first()


def record_reused(
    session_factory: Sessions, source: AIAnalysisResult, *, coredump_id: int | None, now: datetime | None = None
) -> int:
    """A ``reused`` row for ``coredump_id`` holding a copy of ``source``'s analysis; no call, no cost."""
    row = AIAnalysisResult(
        coredump_id=coredump_id, crash_group_id=source.crash_group_id, provider=source.provider,
        model=source.model, status="reused",
        skip_reason=f"reused analysis #{source.id} of crash group {source.crash_group_id}",
        summary=source.summary, root_cause=source.root_cause, impact=source.impact,
        recommendations=list(source.recommendations or []), confidence=source.confidence,
        code_suggestions=list(source.code_suggestions or []), related_issues=list(source.related_issues or []),
        created_at=now or utcnow(),
    )
    return _insert(session_factory, row)


def record_skipped(
    session_factory: Sessions,
    *,
    coredump_id: int | None,
    crash_group_id: int | None,
    provider: str,
    model: str,
    reason: str,
    now: datetime | None = None,
) -> int:
    """A ``skipped`` row saying why no call was made (a cap, the budget, AI turned off...)."""
    row = AIAnalysisResult(
        coredump_id=coredump_id, crash_group_id=crash_group_id, provider=provider, model=model,
        status="skipped", skip_reason=reason, created_at=now or utcnow(),
    )
    return _insert(session_factory, row)


def abandon_stale(session_factory: Sessions, *, older_than: timedelta = WINDOW, now: datetime | None = None) -> int:
    """Mark pending rows older than ``older_than`` (a node died mid-call) as failed; returns how many."""
    cutoff = (now or utcnow()) - older_than
    rows = AIAnalysisResult
    with session_factory() as session:
        result = session.execute(
            update(rows).where(rows.status == PENDING, rows.created_at < cutoff)
            .values(status="failed", error="the analysis never finished (the node stopped mid-call)")
        )
        session.commit()
        return int(getattr(result, "rowcount", 0) or 0)


def _lock(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    statement = _LOCKS.get(dialect)
    if statement is None:
        raise TransientError(f"database: {dialect} cannot serialise AI budget reservations.")
    session.execute(text(statement))


def _group_skip(session: Session, cfg: AIAnalysisConfig, group: int | None, now: datetime) -> SkipDecision | None:
    if not cfg.one_per_crash_group or group is None:
        return None
    rows = AIAnalysisResult
    found = session.execute(
        select(rows.id, rows.status).where(
            rows.crash_group_id == group,
            (rows.status == "ok") | ((rows.status == PENDING) & (rows.created_at >= now - WINDOW)),
        ).order_by(case((rows.status == "ok", 0), else_=1), rows.created_at.desc()).limit(1)
    ).first()
    if found is None:
        return None
    if found.status == "ok":
        return SkipDecision(f"crash group {group} already has analysis #{found.id}", "group", reuse_id=found.id)
    return SkipDecision(f"an analysis of crash group {group} is already in flight (#{found.id})", "group")


def _budget_skip(session: Session, cfg: AIAnalysisConfig, now: datetime) -> SkipDecision | None:
    if not cfg.enable_cost_control:
        return None
    used = usage(session, now)
    cap = cfg.max_analysis_per_hour
    if used.analyses_last_hour >= cap:
        noun = "analysis" if cap == 1 else "analyses"
        return SkipDecision(f"hourly cap of {cap} {noun} reached", "hourly")
    limit = cfg.max_cost_per_month
    if used.spent_this_month >= limit:
        return SkipDecision(
            f"monthly budget of {_usd(limit)} reached ({_usd(used.spent_this_month)} spent)", "monthly"
        )
    return None


def _update(reservation: Reservation, values: dict[str, Any]) -> None:
    rows = AIAnalysisResult
    try:
        with reservation.sessions() as session:
            result = session.execute(update(rows).where(rows.id == reservation.id).values(**values))
            if not getattr(result, "rowcount", 1):
                log.warning("AI analysis row #%d is gone; its outcome was not recorded", reservation.id)
            if values.get("status") == "ok" and reservation.crash_group_id is not None:
                session.execute(
                    update(CrashGroup).where(CrashGroup.id == reservation.crash_group_id)
                    .values(ai_analysis_id=reservation.id)
                )
            session.commit()
    except OperationalError as exc:
        raise TransientError(f"database: cannot record AI analysis #{reservation.id} ({_first_line(exc)}).") from exc


def _insert(session_factory: Sessions, row: AIAnalysisResult) -> int:
    try:
        with session_factory() as session:
            session.add(row)
            session.commit()
            return row.id
    except OperationalError as exc:
        raise TransientError(f"database: cannot record an AI analysis row ({_first_line(exc)}).") from exc


def _usd(amount: float) -> str:
    text = f"{amount:.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]
