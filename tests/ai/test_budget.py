"""The hourly cap and the monthly budget hold across processes sharing one database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coredumps.ai import budget
from coredumps.ai.answer import parse_answer
from coredumps.ai.budget import Reservation, SkipDecision, complete, reserve
from coredumps.config import AIPricing
from coredumps.db import AIAnalysisResult, CrashGroup
from tests.ai.conftest import ai_config
from tests.llmfake import GOOD_ANSWER

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
Sessions = sessionmaker[Session]
MakeGroups = Callable[[int], list[int]]


def take(sessions: Sessions, group: int | None, now: datetime = NOW, **cfg: object) -> Reservation | SkipDecision:
    return reserve(sessions, ai_config(**cfg), coredump_id=None, crash_group_id=group, provider="openai-compatible",
                   model="test-model", now=now)


def statuses(sessions: Sessions) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(AIAnalysisResult.status).order_by(AIAnalysisResult.id)))


def test_hourly_cap_of_two_lets_two_of_five_through(sessions: Sessions, make_groups: MakeGroups) -> None:
    results = [take(sessions, group, max_analysis_per_hour=2) for group in make_groups(5)]
    assert [isinstance(r, Reservation) for r in results] == [True, True, False, False, False]
    skips = [r for r in results if isinstance(r, SkipDecision)]
    assert {s.reason for s in skips} == {"hourly cap of 2 analyses reached"}
    assert {s.kind for s in skips} == {"hourly"}


def test_completed_and_failed_calls_count_against_the_hour(sessions: Sessions, make_groups: MakeGroups) -> None:
    first, second, third = make_groups(3)
    ok = take(sessions, first, max_analysis_per_hour=2)
    failed = take(sessions, second, max_analysis_per_hour=2)
    assert isinstance(ok, Reservation) and isinstance(failed, Reservation)
    complete(ok, answer=parse_answer('{"summary": "s"}'))
    complete(failed, error="the LLM endpoint failed 3 times")
    assert isinstance(take(sessions, third, max_analysis_per_hour=2), SkipDecision)
    assert statuses(sessions) == ["ok", "failed"]


def test_a_pending_row_left_by_a_crash_counts_until_the_hour_passes(
    sessions: Sessions, make_groups: MakeGroups
) -> None:
    first, second = make_groups(2)
    assert isinstance(take(sessions, first, max_analysis_per_hour=1), Reservation)
    assert isinstance(take(sessions, second, now=NOW + timedelta(minutes=59), max_analysis_per_hour=1), SkipDecision)
    assert isinstance(take(sessions, second, now=NOW + timedelta(minutes=61), max_analysis_per_hour=1), Reservation)


def test_a_cancelled_reservation_frees_its_slot(sessions: Sessions, make_groups: MakeGroups) -> None:
    first, second = make_groups(2)
    reservation = take(sessions, first, max_analysis_per_hour=1)
    assert isinstance(reservation, Reservation)
    budget.cancel(reservation, "the prompt could not be built")
    assert isinstance(take(sessions, second, max_analysis_per_hour=1), Reservation)


@pytest.mark.timeout(60)
def test_concurrent_reservers_never_exceed_the_cap(sessions: Sessions, make_groups: MakeGroups) -> None:
    groups = make_groups(12)
    start = threading.Barrier(len(groups))
    results: list[Reservation | SkipDecision | BaseException] = []
    lock = threading.Lock()

    def run(group: int) -> None:
        start.wait()
        try:
            outcome: Reservation | SkipDecision | BaseException = take(sessions, group, max_analysis_per_hour=3)
        except BaseException as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(isinstance(r, Reservation) for r in results) == 3
    assert statuses(sessions) == ["pending"] * 3


def test_monthly_budget_smaller_than_one_call_stops_the_second(sessions: Sessions, make_groups: MakeGroups) -> None:
    first, second = make_groups(2)
    prices: dict[str, Any] = {"max_cost_per_month": 0.01,
                              "pricing": AIPricing(input_per_million=6.0, output_per_million=16.0)}
    reservation = take(sessions, first, **prices)
    assert isinstance(reservation, Reservation)
    cost = complete(reservation, answer=parse_answer('{"summary": "s"}'), prompt_tokens=1200, completion_tokens=300)
    assert cost == pytest.approx(1200 / 1e6 * 6 + 300 / 1e6 * 16)
    decision = take(sessions, second, now=NOW + timedelta(hours=2), **prices)
    assert isinstance(decision, SkipDecision)
    assert decision.kind == "monthly"
    assert decision.reason == "monthly budget of $0.01 reached ($0.012 spent)"


def test_the_budget_starts_again_each_utc_month(sessions: Sessions, make_groups: MakeGroups) -> None:
    first, second = make_groups(2)
    prices: dict[str, Any] = {"max_cost_per_month": 0.01, "pricing": AIPricing(input_per_million=10.0)}
    reservation = take(sessions, first, now=datetime(2024, 5, 31, 23, 0, tzinfo=UTC), **prices)
    assert isinstance(reservation, Reservation)
    complete(reservation, answer=parse_answer('{"summary": "s"}'), prompt_tokens=5000)
    assert isinstance(take(sessions, second, now=datetime(2024, 5, 31, 23, 59, tzinfo=UTC), **prices), SkipDecision)
    assert isinstance(take(sessions, second, now=datetime(2024, 6, 1, 0, 1, tzinfo=UTC), **prices), Reservation)


def test_in_flight_calls_are_counted_at_the_average_cost(sessions: Sessions, make_groups: MakeGroups) -> None:
    first, second, third = make_groups(3)
    prices: dict[str, Any] = {"max_cost_per_month": 0.015, "pricing": AIPricing(input_per_million=10.0)}
    done = take(sessions, first, **prices)
    assert isinstance(done, Reservation)
    complete(done, answer=parse_answer('{"summary": "s"}'), prompt_tokens=1000)
    assert isinstance(take(sessions, second, **prices), Reservation)
    decision = take(sessions, third, **prices)
    assert isinstance(decision, SkipDecision) and decision.reason.endswith("($0.02 spent)")


def test_without_cost_control_nothing_is_capped(sessions: Sessions, make_groups: MakeGroups) -> None:
    results = [take(sessions, g, enable_cost_control=False, max_analysis_per_hour=1) for g in make_groups(3)]
    assert all(isinstance(r, Reservation) for r in results)


def test_a_group_with_an_analysis_is_not_sent_again(sessions: Sessions, make_groups: MakeGroups) -> None:
    [group] = make_groups(1)
    reservation = take(sessions, group)
    assert isinstance(reservation, Reservation)
    in_flight = take(sessions, group)
    assert isinstance(in_flight, SkipDecision) and in_flight.kind == "group" and in_flight.reuse_id is None
    assert "in flight" in in_flight.reason
    complete(reservation, answer=parse_answer('{"summary": "s"}'))
    again = take(sessions, group)
    assert isinstance(again, SkipDecision) and again.reuse_id == reservation.id
    assert isinstance(take(sessions, group, one_per_crash_group=False), Reservation)


def test_complete_records_the_answer_and_links_the_group(sessions: Sessions, make_groups: MakeGroups) -> None:
    [group] = make_groups(1)
    reservation = take(sessions, group)
    assert isinstance(reservation, Reservation)
    answer = parse_answer(str(GOOD_ANSWER).replace("'", '"'))
    complete(reservation, answer=answer, raw_reply="x" * 5000, prompt_tokens=10, completion_tokens=5,
             duration_seconds=1.5)
    with sessions() as session:
        row = session.get(AIAnalysisResult, reservation.id)
        assert row is not None
        assert (row.status, row.summary, row.prompt_tokens, row.completion_tokens) == ("ok", answer.summary, 10, 5)
        assert row.recommendations == GOOD_ANSWER["recommendations"]
        assert row.code_suggestions[0]["line"] == 120
        assert row.raw_reply_excerpt is not None and len(row.raw_reply_excerpt) <= 2000
        assert session.get(CrashGroup, group).ai_analysis_id == reservation.id  # type: ignore[union-attr]
        assert budget.group_result(session, group) is not None


def test_reused_and_skipped_rows(sessions: Sessions, make_groups: MakeGroups) -> None:
    [group] = make_groups(1)
    reservation = take(sessions, group)
    assert isinstance(reservation, Reservation)
    complete(reservation, answer=parse_answer('{"summary": "the summary", "confidence": 0.5}'), prompt_tokens=9)
    with sessions() as session:
        source = budget.group_result(session, group)
    assert source is not None
    reused = budget.record_reused(sessions, source, coredump_id=None, now=NOW)
    skipped = budget.record_skipped(sessions, coredump_id=None, crash_group_id=group, provider="glm",
                                    model="glm-4.5-flash", reason="hourly cap of 2 analyses reached", now=NOW)
    with sessions() as session:
        copy, skip = session.get(AIAnalysisResult, reused), session.get(AIAnalysisResult, skipped)
        assert copy is not None and skip is not None
        assert (copy.status, copy.summary, copy.confidence, copy.cost_usd) == ("reused", "the summary", 0.5, 0.0)
        assert copy.skip_reason == f"reused analysis #{reservation.id} of crash group {group}"
        assert (skip.status, skip.skip_reason) == ("skipped", "hourly cap of 2 analyses reached")


def test_stale_pending_rows_are_marked_failed(sessions: Sessions, make_groups: MakeGroups) -> None:
    [group] = make_groups(1)
    assert isinstance(take(sessions, group), Reservation)
    assert budget.abandon_stale(sessions, now=NOW + timedelta(minutes=30)) == 0
    assert budget.abandon_stale(sessions, now=NOW + timedelta(hours=2)) == 1
    assert statuses(sessions) == ["failed"]
