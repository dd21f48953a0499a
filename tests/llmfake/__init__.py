"""A fake chat-completions endpoint (GLM and OpenAI shapes) for tests."""

from tests.llmfake.server import (
    GOOD_ANSWER,
    FakeLLM,
    Recorded,
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

__all__ = [
    "GOOD_ANSWER",
    "FakeLLM",
    "Recorded",
    "Reply",
    "error",
    "fenced",
    "good",
    "malformed",
    "rate_limited",
    "server_error",
    "slow",
    "unauthorized",
]
