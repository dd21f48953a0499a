"""Cancelling a run that executes in the node runner: it stops at its next step, the file left as it was."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling, Running

from coredumps.config import load_config
from coredumps.db import CoredumpFile, make_engine, session_factory
from flows.cancel import CANCELLED_REASON, RunCancelled
from flows.node_runner import NodeRunner, apply_deployment
from node_sensor import handover
from tests.conftest import CoreFactory
from tests.flows.test_ai_in_flow import ai_config, llm  # noqa: F401  (the fake LLM fixture)
from tests.llmfake import FakeLLM
from tests.llmfake.server import slow


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_run_cancelled_while_it_executes_stops_before_storing_and_ends_cancelled(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path,
    llm: FakeLLM,  # noqa: F811
) -> None:
    config = ai_config(agent_config, llm)
    llm.queue(slow(4))  # holds the run in its AI step while the cancellation comes
    core, exe = crash_cores("segv", tag="cancelled")
    source = tmp_path / "incoming" / "core.cancelled"
    source.parent.mkdir()
    shutil.copyfile(core, source)
    node = "cancel-node"
    outcomes: list[tuple[dict[str, Any] | None, BaseException | None]] = []
    finished = threading.Event()

    def on_done(_run: FlowRun, result: dict[str, Any] | None, error: BaseException | None) -> None:
        outcomes.append((result, error))
        finished.set()

    runner = NodeRunner(apply_deployment(node), workers=1, on_done=on_done)
    flow_run = handover.submit(node, "key-cancelled", {"path": str(source), "exe": str(exe),
                                                      "config_path": str(config), "node": node})
    assert runner.submit(flow_run) is True
    _wait(lambda: len(llm.requests) == 1, "the run's AI step")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling())
        assert runner.poll_cancellations(client) == 1
        assert finished.wait(120)
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.type == StateType.CANCELLED

    [(result, error)] = outcomes
    assert result is None and isinstance(error, RunCancelled)
    assert source.exists()  # nothing was stored, so nothing was deleted
    cfg = load_config(config)
    assert not list(Path(cfg.storage.local_path).rglob("*.core*"))
    with session_factory(make_engine(cfg.database_url()))() as session:
        [row] = session.query(CoredumpFile).all()
    assert (row.status, row.error) == ("failed", CANCELLED_REASON)


def _cancelling_run(node: str, config: Path, tmp_path: Path) -> tuple[NodeRunner, FlowRun]:
    """A run of this node's deployment left Running by a sensor that was killed, then cancelled in the UI."""
    runner = NodeRunner(apply_deployment(node), workers=1)
    flow_run = handover.submit(node, f"key-{node}", {"path": str(tmp_path / f"core.{node}"),
                                                    "config_path": str(config), "node": node})
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(), force=True)
        client.set_flow_run_state(flow_run.id, Cancelling())
    return runner, flow_run


def test_a_cancelling_run_that_nothing_here_executes_is_marked_cancelled(
    prefect_harness: str, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    runner, flow_run = _cancelling_run("cancel-stale", agent_config(), tmp_path)
    with get_client(sync_client=True) as client:
        assert runner.poll_cancellations(client) == 1
        state = client.read_flow_run(flow_run.id).state
        assert state is not None and state.type == StateType.CANCELLED
        assert runner.poll_cancellations(client) == 0


def test_a_run_that_finished_before_the_cancellation_reached_a_step_ends_completed(
    prefect_harness: str, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    runner, flow_run = _cancelling_run("cancel-late", agent_config(), tmp_path)
    runner._settle_cancelled(flow_run.id, finished=True)  # what the worker does after such a run
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.type == StateType.COMPLETED
    assert state.message == "finished before the cancellation reached a step"


pytestmark = pytest.mark.timeout(300)
