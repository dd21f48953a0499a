"""call_with_retries: backoff with full jitter, retrying only what may pass."""

from __future__ import annotations

import pytest

from coredumps.errors import StorageRejectedError, StorageUnavailableError
from coredumps.retrying import backoff_cap, call_with_retries


class Flaky:
    """Fails with the given errors in turn, then returns 'done'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    sleeps: list[float] = []
    fn = Flaky(StorageUnavailableError("a"), StorageUnavailableError("b"))
    assert call_with_retries(fn, sleep=sleeps.append) == "done"
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_permanent_error_fails_fast_without_sleeping() -> None:
    sleeps: list[float] = []
    fn = Flaky(StorageRejectedError("no such bucket"))
    with pytest.raises(StorageRejectedError, match="no such bucket"):
        call_with_retries(fn, sleep=sleeps.append)
    assert fn.calls == 1
    assert sleeps == []


def test_the_last_error_is_raised_after_all_attempts() -> None:
    sleeps: list[float] = []
    fn = Flaky(*(StorageUnavailableError(f"try {i}") for i in range(10)))
    with pytest.raises(StorageUnavailableError, match="try 3"):
        call_with_retries(fn, attempts=4, sleep=sleeps.append)
    assert fn.calls == 4
    assert len(sleeps) == 3


def test_sleeps_stay_within_the_exponential_cap() -> None:
    for _ in range(50):
        sleeps: list[float] = []
        fn = Flaky(*(StorageUnavailableError("x") for _ in range(7)))
        call_with_retries(fn, attempts=8, base_delay=0.5, max_delay=4.0, sleep=sleeps.append)
        caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
        assert all(0.0 <= slept <= cap for slept, cap in zip(sleeps, caps, strict=True))


def test_jitter_spreads_the_sleeps() -> None:
    sleeps: list[float] = []
    for _ in range(20):
        call_with_retries(Flaky(StorageUnavailableError("x")), base_delay=1.0, sleep=sleeps.append)
    assert len(set(sleeps)) > 1


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)])
def test_backoff_cap_doubles_up_to_the_maximum(attempt: int, expected: float) -> None:
    assert backoff_cap(attempt, 0.5, 30.0) == expected


def test_on_retry_sees_each_attempt_and_error() -> None:
    seen: list[tuple[int, str, float]] = []
    fn = Flaky(StorageUnavailableError("first"), StorageUnavailableError("second"))
    call_with_retries(fn, sleep=lambda _: None, on_retry=lambda n, exc, delay: seen.append((n, str(exc), delay)))
    assert [(n, message) for n, message, _ in seen] == [(1, "first"), (2, "second")]


def test_custom_retry_predicate() -> None:
    fn = Flaky(KeyError("k"))
    assert call_with_retries(fn, is_retryable=lambda exc: isinstance(exc, KeyError), sleep=lambda _: None) == "done"


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        call_with_retries(lambda: 1, attempts=0)
