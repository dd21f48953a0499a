"""The hand-over and the node runner against a real Prefect server, in this process."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Scheduled

from flows.node_runner import NodeRunner, apply_deployment
from node_sensor import handover
from tests.conftest import CoreFactory


@pytest.fixture
def params(
    prefect_harness: str, agent_config: Callable[..., Path], crash_cores: CoreFactory, tmp_path: Path
) -> Callable[[str], dict[str, Any]]:
    config = agent_config()
    core, _exe = crash_cores("abort")

    def make(name: str) -> dict[str, Any]:
        path = tmp_path / "incoming" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(core, path)
        return {"path": str(path), "config_path": str(config)}

    return make


def test_a_run_starts_once_per_scheduled_state(params: Callable[[str], dict[str, Any]]) -> None:
    node = "runner-once"
    runner_done: list[FlowRun] = []
    finished = threading.Event()

    def on_done(flow_run: FlowRun, result: dict[str, Any] | None, error: BaseException | None) -> None:
        assert error is None and result is not None and result["status"] == "stored"
        runner_done.append(flow_run)
        finished.set()

    runner = NodeRunner(apply_deployment(node), workers=1, on_done=on_done)
    flow_run = handover.submit(node, "key-once", {**params("core.once"), "node": node})
    as_polled = flow_run.model_copy(deep=True)  # what a poll read while the run was still scheduled
    assert runner.submit(flow_run) is True
    assert finished.wait(120)

    # A poll that read the run while it was still scheduled hands it in again: it must not run twice.
    finished.clear()
    assert runner.submit(as_polled) is False
    assert runner.submit(flow_run) is False  # now Running or Completed: not a run to start
    assert runner.poll_once() == 0
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run.id).state_type == StateType.COMPLETED

        # A retry from the UI is a new scheduled state of the same run: that one runs.
        client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
        retried = client.read_flow_run(flow_run.id)
    assert runner.submit(retried) is True
    assert finished.wait(120)
    assert [run.id for run in runner_done] == [flow_run.id, flow_run.id]


def test_hand_over_follows_a_deployment_applied_again(params: Callable[[str], dict[str, Any]]) -> None:
    node = "redeployed"
    first_id = apply_deployment(node)
    first = handover.submit(node, "key-before", {**params("core.before"), "node": node})
    assert first.deployment_id == first_id

    with get_client(sync_client=True) as client:
        client.delete_deployment(first_id)
    second_id = apply_deployment(node)
    assert second_id != first_id

    second = handover.submit(node, "key-after", {**params("core.after"), "node": node})
    assert second.deployment_id == second_id
    assert second.parameters["node"] == node and second.state_type == StateType.SCHEDULED

    # The same key finds the same run instead of making a second one.
    again = handover.submit(node, "key-after", {**params("core.after"), "node": node})
    assert again.id == second.id


def test_hand_over_raises_when_the_deployment_is_gone(params: Callable[[str], dict[str, Any]]) -> None:
    node = "never-deployed"
    with pytest.raises(handover.DeploymentMissingError, match="process-coredump/never-deployed does not exist"):
        handover.submit(node, "key-lost", {**params("core.lost"), "node": node})
