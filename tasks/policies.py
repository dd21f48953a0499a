"""Retry policies shared by the tasks: only transient errors are retried."""

from __future__ import annotations

from typing import Any

from coredumps.errors import retryable


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry timeouts, outages and throttling; never bad input or rejections."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # an unreadable result is not worth a retry
            return False
    return isinstance(exc, BaseException) and retryable(exc)
