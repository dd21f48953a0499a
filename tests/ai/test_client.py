"""The chat client against a real HTTP endpoint: shapes, headers, retries and failures."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from coredumps.ai.answer import AIAnswerError
from coredumps.ai.client import GLM_URL, OPENAI_URL, ChatClient, endpoint_url
from coredumps.config import AIAnalysisConfig, load_config
from coredumps.errors import AIRejectedError, AIUnavailableError, ConfigError, retryable
from tests.ai.conftest import API_KEY, ai_config
from tests.llmfake import (
    FakeLLM,
    Reply,
    error,
    fenced,
    good,
    malformed,
    rate_limited,
    server_error,
    slow,
    unauthorized,
)

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what crashed?"}]
MakeClient = Callable[..., ChatClient]


def test_openai_shape_request_and_answer(llm: FakeLLM, make_client: MakeClient) -> None:
    client = make_client(ai_config(base_url=llm.base_url, model="gpt-4o-mini"))
    completion = client.complete(MESSAGES)
    assert json.loads(completion.text)["summary"]
    assert (completion.prompt_tokens, completion.completion_tokens) == (1200, 300)
    assert completion.model == "gpt-4o-mini"
    assert completion.usage_reported and completion.note is None
    [sent] = llm.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.3, "max_tokens": 2000,
                         "stream": False}


def test_glm_shape_at_its_full_url(glm_llm: FakeLLM, make_client: MakeClient) -> None:
    client = make_client(ai_config(provider="glm", model="glm-4.5-flash", base_url=glm_llm.url))
    glm_llm.queue(good(usage=(900, 100)))
    completion = client.complete(MESSAGES)
    assert json.loads(completion.text)["rootCause"]
    assert (completion.prompt_tokens, completion.completion_tokens) == (900, 100)
    assert glm_llm.requests[0].path == "/api/paas/v4/chat/completions"
    assert glm_llm.requests[0].body["model"] == "glm-4.5-flash"


def test_fenced_answer_text_is_returned_as_sent(llm: FakeLLM, make_client: MakeClient) -> None:
    llm.queue(fenced())
    assert "```json" in make_client(ai_config(base_url=llm.url)).complete(MESSAGES).text


def test_the_key_goes_only_into_the_authorization_header(llm: FakeLLM, make_client: MakeClient) -> None:
    make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    [sent] = llm.requests
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY.encode() not in sent.raw
    assert all(API_KEY not in value for name, value in sent.headers.items() if name != "authorization")
    assert API_KEY not in sent.path


def test_a_self_hosted_endpoint_without_a_key_gets_no_authorization(llm: FakeLLM, make_client: MakeClient) -> None:
    make_client(ai_config(base_url=llm.url), key=None).complete(MESSAGES)
    assert "authorization" not in llm.requests[0].headers


@pytest.mark.parametrize("provider", ["glm", "openai"])
def test_public_providers_need_a_key(provider: str) -> None:
    with pytest.raises(ConfigError, match="GLM_API_KEY" if provider == "glm" else "OPENAI_API_KEY"):
        ChatClient(ai_config(provider=provider), None)


def test_missing_usage_counts_as_zero_and_says_so(llm: FakeLLM, make_client: MakeClient) -> None:
    llm.queue(good(usage=None))
    completion = make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)
    assert not completion.usage_reported
    assert completion.note and "no token usage" in completion.note


@pytest.mark.parametrize(
    ("provider", "base_url", "expected"),
    [
        ("glm", "", GLM_URL),
        ("openai", "", OPENAI_URL),
        ("openai-compatible", "http://vllm:8000/v1", "http://vllm:8000/v1/chat/completions"),
        ("openai-compatible", "http://vllm:8000/v1/", "http://vllm:8000/v1/chat/completions"),
        ("glm", "https://open.bigmodel.cn/api/paas/v4/chat/completions", GLM_URL),
        ("openai-compatible", "http://ollama:11434/api/chat", "http://ollama:11434/api/chat"),
    ],
)
def test_endpoint_url(provider: str, base_url: str, expected: str) -> None:
    assert endpoint_url(ai_config(provider=provider, base_url=base_url)) == expected


@pytest.mark.parametrize(
    ("provider", "base_url", "reason"),
    [
        ("openai-compatible", "", "needs baseURL, the endpoint's URL"),
        ("openai-compatible", "ftp://host/v1", "not an http"),
        ("openai-compatible", "http://user:pw@host/v1", "must not hold credentials"),
    ],
)
def test_unusable_endpoint_url_is_refused_when_the_config_loads(
    provider: str, base_url: str, reason: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"analyzer:\n  aiAnalysis:\n    enabled: true\n    provider: {provider}\n"
                      f"    baseURL: '{base_url}'\n")
    with pytest.raises(ConfigError, match=reason) as caught:
        load_config(config)
    assert "analyzer.aiAnalysis" in str(caught.value)
    assert "pw" not in str(caught.value)
    # A config built without validation still never reaches the endpoint.
    with pytest.raises(ConfigError, match=reason):
        endpoint_url(AIAnalysisConfig.model_construct(enabled=True, provider=provider, base_url=base_url))


def test_429_honours_retry_after_seconds(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    llm.queue(rate_limited("7"))
    completion = make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert completion.text
    assert sleeps == [7.0]
    assert len(llm.requests) == 2


def test_429_honours_retry_after_http_date(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    llm.queue(rate_limited(format_datetime(when, usegmt=True)))
    make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    [delay] = sleeps
    assert 20 <= delay <= 30


def test_retry_after_is_capped(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    llm.queue(rate_limited("86400"))
    make_client(ai_config(base_url=llm.url), max_retry_after=45).complete(MESSAGES)
    assert sleeps == [45.0]


def test_429_without_retry_after_backs_off(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    llm.queue(rate_limited(None), rate_limited(None))
    make_client(ai_config(base_url=llm.url), base_delay=2.0).complete(MESSAGES)
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 2.0
    assert 2.0 <= sleeps[1] <= 4.0


def test_exhausted_quota_fails_fast(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    llm.queue(rate_limited("1", code="insufficient_quota"))
    with pytest.raises(AIRejectedError, match="no quota left"):
        make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert sleeps == []


def test_a_5xx_is_retried(llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    llm.queue(server_error(500), server_error(503))
    assert make_client(ai_config(base_url=llm.url)).complete(MESSAGES).text
    assert len(llm.requests) == 3
    assert len(sleeps) == 2


def test_persistent_5xx_is_unavailable_after_the_attempts(
    llm: FakeLLM, make_client: MakeClient, sleeps: list[float]
) -> None:
    llm.default = server_error(502)
    with pytest.raises(AIUnavailableError, match="HTTP 502") as caught:
        make_client(ai_config(base_url=llm.url), attempts=4).complete(MESSAGES)
    assert len(llm.requests) == 4
    assert len(sleeps) == 3
    assert retryable(caught.value)


def test_401_fails_fast_naming_the_variable(glm_llm: FakeLLM, make_client: MakeClient, sleeps: list[float]) -> None:
    glm_llm.default = unauthorized()
    client = make_client(ai_config(provider="glm", base_url=glm_llm.url))
    with pytest.raises(AIRejectedError) as caught:
        client.complete(MESSAGES)
    message = str(caught.value)
    assert "rejected the API key (401)" in message
    assert "GLM_API_KEY" in message
    assert API_KEY not in message and "what crashed" not in message
    assert len(glm_llm.requests) == 1
    assert sleeps == []
    assert not retryable(caught.value)


def test_401_without_a_key_says_to_set_one(llm: FakeLLM, make_client: MakeClient) -> None:
    llm.default = unauthorized()
    with pytest.raises(AIRejectedError, match=r"requires an API key \(401\); set OPENAI_API_KEY"):
        make_client(ai_config(base_url=llm.url), key=None).complete(MESSAGES)


@pytest.mark.parametrize(("status", "reason"), [(400, "invalid \\(400\\): model_not_supported bad model"),
                                                (403, "refused the request \\(403\\)"),
                                                (404, "404 Not Found"), (422, "rejected the request \\(422\\)"),
                                                (307, "redirected the request \\(307\\)")])
def test_other_4xx_fail_fast(llm: FakeLLM, make_client: MakeClient, sleeps: list[float], status: int,
                             reason: str) -> None:
    llm.default = error(status, "model_not_supported", "bad model")
    with pytest.raises(AIRejectedError, match=reason):
        make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert len(llm.requests) == 1
    assert sleeps == []


def test_server_error_text_cannot_leak_the_key(llm: FakeLLM, make_client: MakeClient) -> None:
    llm.default = error(400, "bad", f"Incorrect API key provided: {API_KEY}")
    with pytest.raises(AIRejectedError) as caught:
        make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert API_KEY not in str(caught.value)


def test_a_slow_answer_times_out_and_is_unavailable_after_retries(
    llm: FakeLLM, make_client: MakeClient, sleeps: list[float]
) -> None:
    llm.default = slow(30)
    with pytest.raises(AIUnavailableError, match=r"no answer within 0\.2s") as caught:
        make_client(ai_config(base_url=llm.url, timeout=0.2), attempts=2).complete(MESSAGES)
    assert len(llm.requests) == 2
    assert len(sleeps) == 1
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_refused_connection_is_unavailable(make_client: MakeClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AIUnavailableError, match="cannot reach"):
        make_client(ai_config(base_url=f"http://127.0.0.1:{port}/v1"), attempts=2).complete(MESSAGES)


@pytest.mark.parametrize(("body", "reason"), [(b"<html>gateway</html>", "not JSON"),
                                              ({"object": "list", "data": []}, "no choices"),
                                              (b'{"choices": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                                               "not JSON")])
def test_a_200_that_is_not_a_chat_completion(llm: FakeLLM, make_client: MakeClient, body: object,
                                             reason: str) -> None:
    llm.default = Reply(body=body)  # type: ignore[arg-type]
    with pytest.raises(AIAnswerError, match=reason) as caught:
        make_client(ai_config(base_url=llm.url)).complete(MESSAGES)
    assert caught.value.raw_excerpt


def test_malformed_answer_text_is_returned_for_the_parser(llm: FakeLLM, make_client: MakeClient) -> None:
    llm.queue(malformed())
    assert make_client(ai_config(base_url=llm.url)).complete(MESSAGES).text.startswith('{"summary": "cut off"')


def test_the_client_repr_hides_the_key(make_client: MakeClient) -> None:
    client = make_client(ai_config(base_url="http://127.0.0.1:9/v1"))
    assert API_KEY not in repr(client) and API_KEY not in repr(client.__dict__.get("cfg"))
