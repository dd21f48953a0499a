"""This node's runner: executes the flow runs of its process-coredump deployment in-process.

A served deployment per node (``process-coredump/<node>``) keeps the Prefect
UI's runs, retries and manual runs; executing its runs in threads of the sensor
process instead of a fresh process per run keeps a burst of cores fast (a
fresh Python process costs seconds per run on a small node). Runs handed over
by the sensor start at once; runs created elsewhere (a retry from the UI, a
manual run) are found by polling. Runs left Running by a killed sensor are
rescheduled at start, and the flow's idempotency keys make re-running safe. A run
set to Cancelling (the UI's Cancel) is asked to stop at the flow's next
checkpoint (see flows.cancel) and then marked Cancelled; a Cancelling run that
nothing here executes is marked Cancelled at the next poll.

Two per-run costs of Prefect's engine are left out of the runs executed here:
the heartbeat thread (joined when the run ends, up to a second later) and the
watch for a Suspended state (a thread with its own event loop, client and
event subscription, about 0.2 s and 0.04 s of CPU per run; process-coredump
never suspends). Flows run anywhere else in the process keep both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import prefect.flow_engine
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import SettingsContext, SyncClientContext, get_settings_context
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.states import Cancelled, Completed, Scheduled

from flows.cancel import cancellable, executing_in_runner
from flows.process_coredump import process_coredump

log = logging.getLogger(__name__)
STARTED_REMEMBERED = 10_000
Done = Callable[[FlowRun, dict[str, Any] | None, BaseException | None], None]
_observe_suspension = prefect.flow_engine.observe_flow_run_suspension  # type: ignore[attr-defined]


@contextmanager
def _observe_suspension_outside_runner(*args: Any, **kwargs: Any) -> Iterator[None]:
    """Prefect's watch for a Suspended state, except for the runs executed by a NodeRunner's threads."""
    if executing_in_runner():
        yield
        return
    with _observe_suspension(*args, **kwargs):
        yield


def apply_deployment(node: str, description: str | None = None) -> UUID:
    """Create or update this node's served deployment of process-coredump."""
    deployment = process_coredump.to_deployment(
        name=node,
        tags=[f"node:{node}", "coredump"],
        parameters={"node": node},
        description=description or f"Coredumps found on node {node}; runs execute in the node's sensor.",
    )
    return UUID(str(deployment.apply()))


class NodeRunner:
    def __init__(self, deployment_id: UUID, workers: int, on_done: Done | None = None,
                 poll_interval: float = 2.0) -> None:
        self.deployment_id = deployment_id
        self.poll_interval = poll_interval
        self.on_done = on_done
        self.workers = workers
        # A run's heartbeat thread is joined when the run ends, adding up to a second to every run;
        # crashed runs are found by this runner's recover() at start instead. The settings are derived
        # once: deriving them costs tens of milliseconds of CPU, too much to pay per run.
        context = get_settings_context()
        self._profile = context.profile
        self._settings = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        prefect.flow_engine.observe_flow_run_suspension = _observe_suspension_outside_runner  # type: ignore[attr-defined]
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow-run")
        self._lock = threading.Lock()
        self._active: dict[UUID, threading.Event] = {}  # the runs submitted here, each with its cancel event
        # The scheduled states already started here: a poll that read a run just before the sensor's
        # hand-over started it must not start it again. A retry from the UI is a new scheduled state.
        self._started: OrderedDict[tuple[UUID, UUID | None], None] = OrderedDict()
        self._local = threading.local()
        self._clients: list[SyncClientContext] = []

    def submit(self, flow_run: FlowRun) -> bool:
        """Execute a scheduled flow run unless it is executing here or this scheduled state of it was started here."""
        if flow_run.state is not None and not flow_run.state.is_scheduled():
            return False
        started = (flow_run.id, flow_run.state.id if flow_run.state else None)
        with self._lock:
            if flow_run.id in self._active or started in self._started:
                return False
            self._started[started] = None
            while len(self._started) > STARTED_REMEMBERED:
                self._started.popitem(last=False)
            self._active[flow_run.id] = cancel = threading.Event()
            self._pool.submit(self._execute, flow_run, cancel)
            return True

    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def _enter_thread_client(self) -> None:
        """This thread's Prefect client, kept for the thread's life and found by every run it executes.

        A new client per run would build an SSL context (tens of milliseconds of CPU), ask for a
        CSRF token and check the server's version, every run.
        """
        context: SyncClientContext | None = getattr(self._local, "client", None)
        if context is None:
            context = SyncClientContext()
            context.__enter__()  # left entered: this thread's later runs find it
            self._local.client = context
            with self._lock:
                self._clients.append(context)

    def _close_clients(self) -> None:
        with self._lock:
            contexts, self._clients = self._clients, []
        for context in contexts:
            try:
                context.client.__exit__(None, None, None)
            except Exception:  # closing at shutdown; nothing is left to lose
                log.debug("could not close a Prefect client", exc_info=True)

    def _execute(self, flow_run: FlowRun, cancel: threading.Event) -> None:
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            with SettingsContext(profile=self._profile, settings=self._settings), cancellable(cancel):
                self._enter_thread_client()
                result = run_flow(process_coredump, flow_run=flow_run, parameters=flow_run.parameters)
        except BaseException as exc:  # the run's own state says what happened; keep the runner alive
            error = exc
        finally:
            if cancel.is_set():
                self._settle_cancelled(flow_run.id, finished=result is not None)
            with self._lock:
                self._active.pop(flow_run.id, None)
        if self.on_done is not None:
            self.on_done(flow_run, result, error)

    def _settle_cancelled(self, flow_run_id: UUID, *, finished: bool) -> None:
        """The final state of a run cancelled while it executed: Cancelled, or Completed when its work was done."""
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
                if state is None or state.type != StateType.CANCELLING:
                    return
                if finished:  # the cancellation came after its last step: what it did stands
                    client.set_flow_run_state(flow_run_id, Completed(message="finished before the cancellation "
                                                                             "reached a step"), force=True)
                else:
                    client.set_flow_run_state(flow_run_id, Cancelled(message="stopped at its next step"))
        except Exception:  # left Cancelling: the next poll marks it Cancelled
            log.warning("could not settle the cancelled flow run %s", flow_run_id, exc_info=True)

    def poll_cancellations(self, client: SyncPrefectClient) -> int:
        """Ask the runs executing here that turned Cancelling to stop; mark the others Cancelled.

        Returns how many were asked or marked.
        """
        count = 0
        for flow_run in self._runs(client, [StateType.CANCELLING]):
            with self._lock:
                cancel = self._active.get(flow_run.id)
            if cancel is not None:
                if not cancel.is_set():
                    log.info("flow run %s was cancelled; it stops at its next step", flow_run.id)
                    cancel.set()
                    count += 1
                continue
            client.set_flow_run_state(flow_run.id, Cancelled(message="no run of it was executing on this node"))
            count += 1
        return count

    def _runs(self, client: SyncPrefectClient, states: list[StateType]) -> list[FlowRun]:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[self.deployment_id])),
            limit=200,
        )

    def poll_once(self, client: SyncPrefectClient | None = None) -> int:
        """Start scheduled runs that are due; returns how many were started.

        While every worker is busy nothing could start sooner, so the poll waits: in a burst the
        queue holds the sensor's own runs, and reading them all again would only load the server.
        ``client``: the poller's own, kept across polls; a new one by default.
        """
        if self.active() >= self.workers:
            return 0
        if client is None:
            with get_client(sync_client=True) as own:
                return self.poll_once(own)
        started = 0
        now = time.time()
        for flow_run in self._runs(client, [StateType.SCHEDULED]):
            when = flow_run.next_scheduled_start_time or flow_run.expected_start_time
            if when is not None and when.timestamp() > now:
                continue
            started += self.submit(flow_run)
        return started

    def recover(self) -> int:
        """Reschedule runs a killed runner left Pending or Running; returns how many."""
        count = 0
        with get_client(sync_client=True) as client:
            for flow_run in self._runs(client, [StateType.PENDING, StateType.RUNNING]):
                with self._lock:
                    if flow_run.id in self._active:
                        continue
                client.set_flow_run_state(flow_run.id, Scheduled(message="rescheduled after a runner restart"),
                                          force=True)
                count += 1
        return count

    def run(self, stop: threading.Event) -> None:
        """Poll for due runs until ``stop`` is set; then wait for the runs in progress."""
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                try:
                    self.poll_cancellations(client)
                except Exception:
                    log.warning("could not poll Prefect for cancelled runs", exc_info=True)
                try:
                    self.poll_once(client)
                except Exception:
                    log.warning("could not poll Prefect for scheduled runs", exc_info=True)
                stop.wait(self.poll_interval)
        self._pool.shutdown(wait=True)
        self._close_clients()
