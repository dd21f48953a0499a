"""AI analysis inside the flow: a real HTTP endpoint, budget, one call per crash group, failures harmless."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coredumps.db import AIAnalysisResult
from flows.process_coredump import process_coredump
from tests.conftest import CoreFactory, run_cli
from tests.flows.test_process_coredump import rows
from tests.llmfake.server import FakeLLM, Reply, good, server_error

KEY = "sk-test-key-0123456789abcdef"


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLM() as server:
        yield server


def ai_config(agent_config: Callable[..., Path], llm: FakeLLM, extra: str = "") -> Path:
    return agent_config(
        "analyzer:\n  aiAnalysis:\n    enabled: true\n    provider: openai\n    model: gpt-test\n"
        f"    baseURL: {llm.base_url}\n    maxAnalysisPerHour: 10\n    timeout: 5s\n"
        "    pricing: {inputPerMillion: 1.0, outputPerMillion: 2.0}\n" + extra
    )


def process(core: Path, tmp: Path, tag: str, config: Path, exe: Path, **params: Any) -> dict[str, Any]:
    source = tmp / tag / "core"
    source.parent.mkdir()
    shutil.copyfile(core, source)
    return process_coredump(path=str(source), exe=str(exe), config_path=str(config), **params)


def test_kept_core_gets_one_analysis_per_crash_group(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path, llm: FakeLLM
) -> None:
    config = ai_config(agent_config, llm)
    llm.queue(good({"summary": "NULL segment", "rootCause": "segment_rows reads next of the last segment",
                    "impact": "query node restarts", "recommendations": ["check next"], "confidence": 1.7,
                    "codeSuggestions": [], "relatedIssues": []}))
    first_core, exe = crash_cores("segv", tag="ai-1")
    second_core, _ = crash_cores("segv", tag="ai-2")
    first = process(first_core, tmp_path, "a", config, exe, pod="milvus/qn-0", instance="rel")
    second = process(second_core, tmp_path, "b", config, exe, pod="milvus/qn-0", instance="rel")
    assert first["stored"] and second["stored"]
    assert len(llm.requests) == 1
    request = llm.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(request.body)
    assert "segment_rows" in request.prompt and "COREDUMP ANALYSIS REQUEST" in request.prompt
    statuses = sorted(r.status for r in rows(config, AIAnalysisResult))
    assert statuses == ["ok", "reused"]
    ok = next(r for r in rows(config, AIAnalysisResult) if r.status == "ok")
    assert ok.confidence == 1.0 and ok.prompt_tokens == 1200 and ok.cost_usd == pytest.approx(0.0018)
    assert first["score"] == second["score"] == 10.0
    assert first["ai_status"] == "ok" and second["ai_status"] == "reused"
    assert first["ai_cost_usd"] == pytest.approx(0.0018) and first["ai_tokens"] == 1500


def test_llm_failure_never_fails_the_run(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path, llm: FakeLLM
) -> None:
    config = ai_config(agent_config, llm)
    llm.queue(server_error(), server_error(), server_error(), server_error())
    core, exe = crash_cores("fpe", tag="ai-fail")
    result = process(core, tmp_path, "c", config, exe)
    assert result["stored"] is True and result["score"] is not None
    [row] = rows(config, AIAnalysisResult)
    assert row.status == "failed" and "500" in (row.error or "")


def test_a_reply_nested_too_deeply_for_python_is_a_failed_analysis_and_the_core_is_stored(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path, llm: FakeLLM
) -> None:
    config = ai_config(agent_config, llm)
    llm.default = Reply(body=b'{"choices": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    core, exe = crash_cores("segv", tag="ai-deep")
    result = process(core, tmp_path, "deep", config, exe)
    assert result["stored"] is True and result["error"] is None
    [row] = rows(config, AIAnalysisResult)
    assert row.status == "failed" and "not JSON" in (row.error or "")


def test_missing_key_is_a_skipped_analysis(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path, llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    config = ai_config(agent_config, llm)
    core, exe = crash_cores("abort", tag="ai-nokey")
    result = process(core, tmp_path, "d", config, exe)
    assert result["stored"] is True and llm.requests == []
    [row] = rows(config, AIAnalysisResult)
    assert row.status == "skipped" and "OPENAI_API_KEY" in (row.skip_reason or "")


def test_analyze_cli_with_ai(crash_cores: CoreFactory, agent_config: Callable[..., Path], llm: FakeLLM) -> None:
    config = ai_config(agent_config, llm)
    llm.queue(good({"summary": "divide by zero in average_rows", "rootCause": "segments is 0",
                    "impact": "crash", "recommendations": [], "confidence": 0.8, "codeSuggestions": [],
                    "relatedIssues": []}))
    core, exe = crash_cores("fpe")
    result = run_cli("--config", str(config), "analyze", str(core), "--exe", str(exe), "--ai", "--json",
                     env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ai"]["status"] == "ok" and "divide by zero in average" in data["ai"]["text"]
    assert data["score"]["total"] == 10.0
    assert KEY not in result.stdout + result.stderr


def test_analyze_cli_with_ai_says_a_failure_once_in_plain_text(
    crash_cores: CoreFactory, agent_config: Callable[..., Path], llm: FakeLLM
) -> None:
    config = ai_config(agent_config, llm)
    llm.default = server_error()
    core, exe = crash_cores("fpe")
    result = run_cli("--config", str(config), "analyze", str(core), "--exe", str(exe), "--ai",
                     env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    report = result.stdout.split("\nAI analysis:\n", 1)[1]
    assert report.startswith("failed: ") and "failed: failed" not in report
    assert "127.0.0.1" in report and "\\." not in report, "plain text on a terminal, not markdown escapes"
