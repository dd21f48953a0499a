"""The whole AI step against a real HTTP endpoint and a real database: what is sent, what is recorded."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coredumps.ai import ChatClient, Outcome, analyze
from coredumps.ai.prompt import DATA_BEGIN, DATA_END
from coredumps.config import AIAnalysisConfig, AIPricing
from coredumps.db import AIAnalysisResult
from coredumps.diagnosis import Diagnosis
from coredumps.errors import AIRejectedError, AIUnavailableError, retryable
from tests.ai.conftest import API_KEY, INJECTION, MINIO_SECRET, OPENAI_SECRET, STACK_TRACE, ai_config, make_diagnosis
from tests.llmfake import GOOD_ANSWER, FakeLLM, Reply, good, malformed, server_error, slow, unauthorized

Sessions = sessionmaker[Session]
MakeClient = Callable[..., ChatClient]
MakeGroups = Callable[[int], list[int]]


def run(cfg: AIAnalysisConfig, sessions: Sessions, client: ChatClient, group: int | None,
        diagnosis: Diagnosis | None = None) -> Outcome:
    return analyze(diagnosis or make_diagnosis(), cfg=cfg, sessions=sessions, client=client, coredump_id=None,
                   crash_group_id=group, pod="milvus/querynode-0", instance="my-milvus", group_count=2,
                   recent_restarts=[("2024-05-01T12:00:00Z", 139, "Error")])


def rows(sessions: Sessions) -> list[AIAnalysisResult]:
    with sessions() as session:
        return list(session.scalars(select(AIAnalysisResult).order_by(AIAnalysisResult.id)))


def test_the_endpoint_gets_the_trace_but_no_secret(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.base_url)
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0])
    assert outcome.status == "ok"
    [sent] = llm.requests
    assert STACK_TRACE in sent.prompt
    for secret in (MINIO_SECRET, OPENAI_SECRET, API_KEY):
        assert secret not in sent.prompt
        assert secret.encode() not in sent.raw
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def test_a_good_answer_is_recorded_with_tokens_and_cost(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url, pricing=AIPricing(input_per_million=1.0, output_per_million=2.0))
    llm.queue(good(usage=(1000, 500)))
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0])
    assert outcome.answer is not None and outcome.answer.summary == GOOD_ANSWER["summary"]
    assert outcome.cost_usd == pytest.approx(0.002)
    [row] = rows(sessions)
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 1000, 500)
    assert row.cost_usd == pytest.approx(0.002)
    assert row.root_cause == GOOD_ANSWER["rootCause"]
    assert row.duration_seconds is not None and row.duration_seconds >= 0


def test_planted_instructions_do_not_change_the_result(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url)
    diagnosis = make_diagnosis(crash_reason=INJECTION, command_line=INJECTION)
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0], diagnosis)
    prompt = llm.requests[0].body["messages"][1]["content"]
    data = prompt[prompt.index(DATA_BEGIN):prompt.index(DATA_END)]
    assert prompt.count(INJECTION) == data.count(INJECTION) == 2
    assert outcome.answer is not None
    assert outcome.answer.summary == GOOD_ANSWER["summary"] != "all fine"
    assert outcome.answer.confidence == pytest.approx(0.82)


def test_a_malformed_answer_is_a_failed_row_with_a_short_excerpt(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url)
    llm.queue(malformed('{"summary": "cut off", "rootCause": ' + "x" * 5000))
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0])
    assert outcome.status == "failed"
    assert outcome.error is not None and not retryable(outcome.error)
    [row] = rows(sessions)
    assert row.status == "failed"
    assert row.error is not None and "no valid JSON object" in row.error
    assert row.raw_reply_excerpt is not None and 0 < len(row.raw_reply_excerpt) <= 2000
    assert row.prompt_tokens == 1200


def test_a_cut_off_reply_says_so(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url)
    llm.queue(Reply(content='{"summary": "half', finish_reason="length"))
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0])
    assert outcome.reason is not None and "cut off at maxTokens" in outcome.reason


def test_a_rejected_key_is_a_failed_row_without_the_key(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url)
    llm.default = unauthorized()
    outcome = run(cfg, sessions, make_client(cfg), make_groups(1)[0])
    assert isinstance(outcome.error, AIRejectedError)
    [row] = rows(sessions)
    assert row.status == "failed"
    assert row.error is not None and "401" in row.error and "OPENAI_API_KEY" in row.error
    assert all(API_KEY not in str(value) for value in vars(row).values())


def test_an_unavailable_endpoint_is_a_retryable_failure(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url, timeout=0.2)
    llm.queue(slow(30), server_error(503))
    outcome = run(cfg, sessions, make_client(cfg, attempts=2), make_groups(1)[0])
    assert isinstance(outcome.error, AIUnavailableError) and retryable(outcome.error)
    assert [row.status for row in rows(sessions)] == ["failed"]


def test_five_crashes_with_a_cap_of_two_make_exactly_two_calls(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url, max_analysis_per_hour=2)
    client = make_client(cfg)
    outcomes = [run(cfg, sessions, client, group) for group in make_groups(5)]
    assert len(llm.requests) == 2
    assert [o.status for o in outcomes] == ["ok", "ok", "skipped", "skipped", "skipped"]
    assert [row.status for row in rows(sessions)] == ["ok", "ok", "skipped", "skipped", "skipped"]
    assert outcomes[-1].reason == "hourly cap of 2 analyses reached"


def test_a_monthly_budget_below_one_call_skips_the_second(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url, max_cost_per_month=0.01,
                    pricing=AIPricing(input_per_million=6.0, output_per_million=16.0))
    client = make_client(cfg)
    first, second = (run(cfg, sessions, client, group) for group in make_groups(2))
    assert (first.status, second.status) == ("ok", "skipped")
    assert second.reason == "monthly budget of $0.01 reached ($0.012 spent)"
    assert len(llm.requests) == 1


def test_later_members_of_a_crash_group_reuse_its_analysis(
    llm: FakeLLM, sessions: Sessions, make_client: MakeClient, make_groups: MakeGroups
) -> None:
    cfg = ai_config(base_url=llm.url)
    client = make_client(cfg)
    [group] = make_groups(1)
    first, second = run(cfg, sessions, client, group), run(cfg, sessions, client, group)
    assert (first.status, second.status) == ("ok", "reused")
    assert len(llm.requests) == 1
    original, copy = rows(sessions)
    assert copy.summary == original.summary and copy.cost_usd == 0
    assert json.dumps(copy.recommendations) == json.dumps(original.recommendations)
