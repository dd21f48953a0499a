"""One small chat-completions client over httpx for GLM, OpenAI and compatible endpoints.

The only module that imports httpx. The API key goes only into the
``Authorization: Bearer`` header; no message, log line or exception carries
the key or the prompt. Errors map onto the project's tree:

    AIRejectedError     400, 401, 403, 404 and other 4xx, an exhausted quota: fail at once
    AIUnavailableError  timeouts, connection errors, 408, 429 and 5xx after the retries
    AIAnswerError       a 200 reply that is not a chat completion
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from coredumps.ai.answer import AIAnswerError, clean_text, loads_untrusted
from coredumps.ai.redact import Redactor, redactor_for
from coredumps.ai.secrets import key_env_name, key_hint
from coredumps.config import AIAnalysisConfig, url_problem
from coredumps.errors import AIRejectedError, AIUnavailableError, ConfigError

GLM_URL = "https://open.bigmodel.cn/api/paas/v4/chat/completions"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
DEFAULT_URLS = {"glm": GLM_URL, "openai": OPENAI_URL}
MAX_REPLY_BYTES = 4 * 2**20
_QUOTA_CODES = {"1113", "insufficient_quota"}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """The answer text and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    usage_reported: bool = True
    finish_reason: str | None = None

    @property
    def note(self) -> str | None:
        """Why the token counts may be wrong, if they may."""
        if self.usage_reported:
            return None
        return "the endpoint reported no token usage; tokens and cost are recorded as 0"


def endpoint_url(cfg: AIAnalysisConfig) -> str:
    """The chat-completions URL: ``baseURL`` (``/v1`` gets ``/chat/completions``) or the provider's."""
    url = cfg.base_url.strip()
    if not url:
        if cfg.provider not in DEFAULT_URLS:
            raise ConfigError("aiAnalysis: provider openai-compatible needs baseURL, the endpoint's URL.")
        return DEFAULT_URLS[cfg.provider]
    if problem := url_problem(url):
        raise ConfigError(f"aiAnalysis.baseURL: {problem}.")
    if url.rstrip("/").endswith("/v1"):
        return url.rstrip("/") + "/chat/completions"
    return url


class ChatClient:
    """Sends chat messages to one endpoint and returns the first choice.

    Proxies (``HTTPS_PROXY``, ``NO_PROXY``) and extra CAs (``SSL_CERT_FILE``) come
    from the environment; redirects are not followed, so the key goes nowhere else.

    ``redactor`` applies the built-in rules, ``aiAnalysis.redactPatterns`` and the
    key itself; use it on every prompt sent through this client.
    """

    def __init__(
        self,
        cfg: AIAnalysisConfig,
        api_key: str | None,
        *,
        attempts: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 20.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not api_key and cfg.provider != "openai-compatible":
            raise ConfigError(f"aiAnalysis: provider {cfg.provider} needs an API key; set {key_hint(cfg)}.")
        self.cfg = cfg
        self.url = endpoint_url(cfg)
        self._key = api_key or None
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self.redactor: Redactor = redactor_for(cfg, [self._key])
        host = urlsplit(self.url).hostname or ""
        if self._key and self.url.startswith("http://") and host not in _LOOPBACK:
            log.warning("aiAnalysis.baseURL uses plain http to %s: the API key crosses the network unencrypted", host)
        self._http = httpx.Client(timeout=httpx.Timeout(cfg.timeout), follow_redirects=False)

    def __repr__(self) -> str:
        return f"ChatClient({self.cfg.provider}, {self.url}, key={'set' if self._key else 'none'})"

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[dict[str, str]]) -> Completion:
        """The first choice's text; retries timeouts, 429 and 5xx, fails fast on other 4xx."""
        body = {
            "model": self.cfg.model,
            "messages": list(messages),
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "stream": False,
        }
        for attempt in range(1, self._attempts + 1):
            wait: float | None = None
            try:
                status, headers, content = self._post(body)
            except _Unreachable as exc:
                reason = str(exc)
            else:
                if status == 200:
                    return self._completion(content)
                error = _error_fields(content)
                if status == 429 and error[0] in _QUOTA_CODES:
                    raise AIRejectedError(
                        f"the LLM account behind {key_env_name(self.cfg)} has no quota left (429 {error[0]}); "
                        "top it up or use another key."
                    )
                if status not in {408, 429} and status < 500:
                    raise AIRejectedError(self._rejected(status, error))
                reason = f"HTTP {status}" + (" (rate limited)" if status == 429 else "")
                wait = _retry_after(headers, self._max_retry_after)
            if attempt == self._attempts:
                raise AIUnavailableError(
                    f"the LLM endpoint {self._host()} failed {self._attempts} times, last with {reason}; "
                    "a later retry may succeed."
                )
            delay = wait if wait is not None else self._backoff(attempt)
            log.warning("LLM request %d/%d to %s failed (%s); retrying in %.1fs",
                        attempt, self._attempts, self._host(), reason, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, body: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "milvus-coredump-agent"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        deadline = time.monotonic() + self.cfg.timeout
        try:
            with self._http.stream("POST", self.url, json=body, headers=headers) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_REPLY_BYTES:
                        raise _Unreachable(f"the reply is larger than {MAX_REPLY_BYTES // 2**20} MiB")
                    if time.monotonic() > deadline:
                        raise _Unreachable(f"no complete answer within {self.cfg.timeout:g}s")
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise _Unreachable(f"no answer within {self.cfg.timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Unreachable(f"cannot reach {self._host()} ({type(exc).__name__})") from None

    def _completion(self, content: bytes) -> Completion:
        raw = content.decode("utf-8", errors="replace")
        try:
            data = loads_untrusted(raw)
        except ValueError:
            raise AIAnswerError("the endpoint's reply is not JSON, so not a chat completion", raw) from None
        if not isinstance(data, dict):
            raise AIAnswerError("the endpoint's reply is not a chat completion object", raw)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            code, message = _error_fields(content)
            if code or message:
                raise AIRejectedError(self._rejected(200, (code, message)))
            raise AIAnswerError("the endpoint's reply has no choices", raw)
        choice = choices[0]
        reply = choice.get("message")
        text = reply.get("content") if isinstance(reply, dict) else None
        finish = choice.get("finish_reason")
        usage = data.get("usage")
        prompt_tokens = _count(usage, "prompt_tokens")
        completion_tokens = _count(usage, "completion_tokens")
        reported = prompt_tokens is not None and completion_tokens is not None
        if not reported:
            log.warning("the LLM endpoint %s reported no token usage; cost is counted as 0", self._host())
        model = data.get("model")
        return Completion(
            text=text if isinstance(text, str) else "",
            prompt_tokens=prompt_tokens or 0,
            completion_tokens=completion_tokens or 0,
            model=model if isinstance(model, str) and model else self.cfg.model,
            usage_reported=reported,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    def _rejected(self, status: int, error: tuple[str, str]) -> str:
        detail = self._detail(error)
        if status == 401:
            if not self._key:
                return f"the LLM endpoint {self._host()} requires an API key (401); set {key_hint(self.cfg)}."
            return f"the LLM endpoint rejected the API key (401); check {key_hint(self.cfg)}."
        if status == 403:
            return (f"the LLM endpoint refused the request (403){detail}: the key may not use model "
                    f"'{self.cfg.model}'; check {key_hint(self.cfg)} and the account.")
        if status == 404:
            return (f"the LLM endpoint answered 404 Not Found{detail}; check aiAnalysis.baseURL "
                    f"({self.url}) and aiAnalysis.model ('{self.cfg.model}').")
        if status == 400:
            return (f"the LLM endpoint rejected the request as invalid (400){detail}; check aiAnalysis.model "
                    f"('{self.cfg.model}'), maxTokens and temperature.")
        if 300 <= status < 400:
            return f"the LLM endpoint redirected the request ({status}); set aiAnalysis.baseURL to the final URL."
        return f"the LLM endpoint rejected the request ({status}){detail}."

    def _detail(self, error: tuple[str, str]) -> str:
        code, message = error
        text = " ".join(part for part in (code, message) if part)
        text = clean_text(self.redactor(" ".join(text.split())), 160)
        return f": {text}" if text else ""

    def _backoff(self, attempt: int) -> float:
        cap = min(self._max_delay, self._base_delay * 2.0 ** (attempt - 1))
        return cap * (0.5 + random.random() / 2)

    def _host(self) -> str:
        return urlsplit(self.url).netloc


class _Unreachable(Exception):
    """The request got no complete answer; worth retrying."""


def _count(usage: Any, name: str) -> int | None:
    if not isinstance(usage, dict):
        return None
    value = usage.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _error_fields(content: bytes) -> tuple[str, str]:
    """(code, message) of an OpenAI- or GLM-shaped error body; empty strings when absent."""
    try:
        data = loads_untrusted(content.decode("utf-8", errors="replace"))
    except ValueError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = error.get("code") or error.get("type") or ""
    message = error.get("message") or ""
    return (str(code) if isinstance(code, (str, int)) else "", message if isinstance(message, str) else "")


def _retry_after(headers: httpx.Headers, cap: float) -> float | None:
    """Seconds the server asked us to wait (Retry-After seconds or HTTP-date, or retry-after-ms), capped."""
    millis = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    seconds: float | None = None
    if millis:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            seconds = None
    if seconds is None and value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or math.isnan(seconds):
        return None
    return min(cap, max(0.0, seconds))

