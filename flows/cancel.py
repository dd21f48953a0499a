"""Cancelling a flow run that executes in a node runner's thread.

Prefect's own runners end a Cancelling run by killing its process. The node runner executes its runs in
threads of the sensor process, so it asks instead: it sets the run's event when the run turns Cancelling,
and the flow stops at its next checkpoint (before the analysis, the AI write-up and the store), leaving
the file where it is. Elsewhere (``coredump-agent process``, a Prefect worker) no event is set and the
checkpoints do nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
CANCELLED_REASON = "cancelled in Prefect while it ran; the file was left as it was"


class RunCancelled(Exception):
    """The flow run was set to Cancelling while it executed."""


@contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Runs in this thread stop at their next checkpoint once ``event`` is set."""
    _local.event = event
    try:
        yield
    finally:
        _local.event = None


def cancel_requested() -> bool:
    event: threading.Event | None = getattr(_local, "event", None)
    return event is not None and event.is_set()


def executing_in_runner() -> bool:
    """Whether this thread executes a run for a node runner (inside ``cancellable``)."""
    return getattr(_local, "event", None) is not None
