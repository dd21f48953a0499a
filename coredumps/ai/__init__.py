"""LLM root-cause analysis of a coredump: prompt, redaction, client, answer, budget.

``analyze`` is the whole step for one coredump: reuse the crash group's
analysis when there is one, reserve a slot within the hourly and monthly
budget, send the redacted prompt, parse the answer and record the outcome in
``ai_analysis_results``. It never raises for an LLM failure: the outcome
carries the error, and ``retryable(outcome.error)`` says whether a retry may help.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from coredumps.ai.answer import AIAnswer, AIAnswerError, CodeSuggestion, parse_answer
from coredumps.ai.budget import (
    Reservation,
    Sessions,
    SkipDecision,
    Usage,
    abandon_stale,
    cancel,
    complete,
    cost_usd,
    group_result,
    record_reused,
    record_skipped,
    reserve,
    usage,
)
from coredumps.ai.client import ChatClient, Completion, endpoint_url
from coredumps.ai.prompt import Restart, build_messages
from coredumps.ai.redact import REDACTED, Redactor, redactor_for
from coredumps.ai.secrets import api_key, key_env_name
from coredumps.config import AIAnalysisConfig
from coredumps.db.models import AIAnalysisResult
from coredumps.diagnosis import Diagnosis
from coredumps.errors import AIRejectedError, AIUnavailableError, CoredumpError

__all__ = [
    "REDACTED",
    "AIAnswer",
    "AIAnswerError",
    "ChatClient",
    "CodeSuggestion",
    "Completion",
    "Outcome",
    "Redactor",
    "Reservation",
    "Restart",
    "SkipDecision",
    "Usage",
    "abandon_stale",
    "analyze",
    "api_key",
    "build_messages",
    "cancel",
    "complete",
    "cost_usd",
    "endpoint_url",
    "group_result",
    "key_env_name",
    "parse_answer",
    "record_reused",
    "record_skipped",
    "redactor_for",
    "reserve",
    "usage",
]


@dataclass(frozen=True)
class Outcome:
    """What ``analyze`` did; ``row_id`` is the ``ai_analysis_results`` row it wrote."""

    status: Literal["ok", "failed", "skipped", "reused"]
    row_id: int
    answer: AIAnswer | None = None
    reason: str | None = None
    error: CoredumpError | None = None
    cost_usd: float = 0.0
    note: str | None = None


def analyze(
    diagnosis: Diagnosis,
    *,
    cfg: AIAnalysisConfig,
    sessions: Sessions,
    client: ChatClient,
    coredump_id: int | None,
    crash_group_id: int | None,
    pod: str | None = None,
    instance: str | None = None,
    group_count: int = 1,
    recent_restarts: Sequence[Restart] = (),
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Analyse one coredump within the budget and record the outcome."""
    names = {"coredump_id": coredump_id, "crash_group_id": crash_group_id}
    if cfg.one_per_crash_group and crash_group_id is not None:
        with sessions() as session:
            prior = group_result(session, crash_group_id)
        if prior is not None:
            return _reused(sessions, prior, coredump_id, now)
    decision = reserve(sessions, cfg, **names, provider=cfg.provider, model=cfg.model, now=now)
    if isinstance(decision, SkipDecision):
        if decision.reuse_id is not None:
            with sessions() as session:
                prior = group_result(session, crash_group_id)
            if prior is not None:
                return _reused(sessions, prior, coredump_id, now)
        row = record_skipped(sessions, **names, provider=cfg.provider, model=cfg.model, reason=decision.reason,
                             now=now)
        return Outcome("skipped", row, reason=decision.reason)
    return _call(diagnosis, decision, client, pod=pod, instance=instance, group_count=group_count,
                 recent_restarts=recent_restarts, clock=clock)


def _call(
    diagnosis: Diagnosis,
    reservation: Reservation,
    client: ChatClient,
    *,
    pod: str | None,
    instance: str | None,
    group_count: int,
    recent_restarts: Sequence[Restart],
    clock: Callable[[], float],
) -> Outcome:
    started = clock()
    try:
        messages = build_messages(diagnosis, pod=pod, instance=instance, group_count=group_count,
                                  recent_restarts=recent_restarts, redactor=client.redactor)
        completion = client.complete(messages)
    except AIAnswerError as exc:
        complete(reservation, error=exc, raw_reply=exc.raw_excerpt, duration_seconds=clock() - started)
        return Outcome("failed", reservation.id, reason=str(exc), error=exc)
    except (AIRejectedError, AIUnavailableError) as exc:
        complete(reservation, error=exc, duration_seconds=clock() - started)
        return Outcome("failed", reservation.id, reason=str(exc), error=exc)
    except BaseException as exc:
        complete(reservation, error=f"the analysis stopped: {type(exc).__name__}", duration_seconds=clock() - started)
        raise
    duration = clock() - started
    tokens = (completion.prompt_tokens, completion.completion_tokens)
    try:
        answer = parse_answer(completion.text)
    except AIAnswerError as exc:
        error = exc
        if completion.finish_reason == "length":
            error = AIAnswerError(f"{exc.reason} (the reply was cut off at maxTokens)", completion.text)
        cost = complete(reservation, error=error, raw_reply=completion.text, prompt_tokens=tokens[0],
                        completion_tokens=tokens[1], duration_seconds=duration)
        return Outcome("failed", reservation.id, reason=str(error), error=error, cost_usd=cost, note=completion.note)
    cost = complete(reservation, answer=answer, raw_reply=completion.text, prompt_tokens=tokens[0],
                    completion_tokens=tokens[1], duration_seconds=duration)
    return Outcome("ok", reservation.id, answer=answer, cost_usd=cost, note=completion.note)


def _reused(sessions: Sessions, prior: AIAnalysisResult, coredump_id: int | None, now: datetime | None) -> Outcome:
    row = record_reused(sessions, prior, coredump_id=coredump_id, now=now)
    return Outcome("reused", row, reason=f"reused analysis #{prior.id} of crash group {prior.crash_group_id}")
