"""Retry a call with exponential backoff and full jitter.

Attempt ``n`` (counting from 1) that fails with a retryable error is followed by
a sleep drawn uniformly from ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``.
The last error, or the first one that is not retryable, is raised unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from coredumps.errors import retryable

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""Called as ``on_retry(attempt, error, delay)`` before each sleep."""


def backoff_cap(attempt: int, base_delay: float, max_delay: float) -> float:
    """Upper bound of the sleep that follows failed attempt ``attempt`` (1-based)."""
    return min(max_delay, base_delay * 2.0 ** (attempt - 1))


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    is_retryable: Callable[[BaseException], bool] = retryable,
    sleep: Callable[[float], object] = time.sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Return ``fn()``, retrying retryable errors up to ``attempts`` calls in all."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            delay = random.uniform(0.0, backoff_cap(attempt, base_delay, max_delay))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
