"""The hand-over and the node runner against a real Prefect server, in this process."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import prefect.flow_engine
import pytest
from prefect._flow_run_suspension import FlowRunSuspensionRequest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import PrefectHTTPStatusError
from prefect.flow_engine import FlowRunEngine
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Scheduled

from flows import node_runner
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
    assert len(runner._clients) == 1  # the one worker's client served both runs


def test_runs_executed_here_leave_out_the_suspension_watch_and_other_flows_keep_it(
    params: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner's hook takes effect only while Prefect's engine looks the watch up by this module-level name.
    setup = FlowRunEngine.setup_flow_run_suspension_request.__wrapped__  # type: ignore[attr-defined]
    assert "observe_flow_run_suspension" in setup.__code__.co_names
    watched: list[str] = []
    original = node_runner._observe_suspension

    @contextmanager
    def recording(*args: Any, **kwargs: Any) -> Iterator[None]:
        watched.append(threading.current_thread().name)
        with original(*args, **kwargs):
            yield

    monkeypatch.setattr(node_runner, "_observe_suspension", recording)
    node = "runner-unwatched"
    outcomes: list[tuple[dict[str, Any] | None, BaseException | None]] = []
    finished = threading.Event()
    runner = NodeRunner(apply_deployment(node), workers=1,
                        on_done=lambda _run, result, error: (outcomes.append((result, error)), finished.set()))
    flow_run = handover.submit(node, "key-unwatched", {**params("core.unwatched"), "node": node})
    assert runner.submit(flow_run) is True
    assert finished.wait(120)
    [(result, error)] = outcomes
    assert error is None and result is not None and result["status"] == "stored"
    assert watched == []

    # Any other flow run of a deployment in this process still gets Prefect's watch.
    with prefect.flow_engine.observe_flow_run_suspension(flow_run.id, FlowRunSuspensionRequest()):
        pass
    assert watched == [threading.current_thread().name]


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


class BusyProxy:
    """An HTTP proxy in front of the real server that answers 503 to the next ``busy`` flow-run creations,
    as a Prefect server on SQLite does when the insert meets another write."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.busy = 0
        self.creations = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and self.path.endswith("/create_flow_run"):
                    proxy.creations += 1
                    if proxy.busy > 0:
                        proxy.busy -= 1
                        self._answer(503, json.dumps({"exception_message": "Service Unavailable"}).encode())
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(self.command, proxy.upstream + self.path.removeprefix("/api"),
                                         headers=headers, content=body)
                self._answer(upstream.status_code, upstream.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def busy_proxy(prefect_harness: str) -> Iterator[BusyProxy]:
    proxy = BusyProxy(prefect_harness)
    try:
        with temporary_settings(updates={PREFECT_API_URL: proxy.url}):
            yield proxy
    finally:
        proxy.close()


@pytest.fixture
def client_backoffs() -> Iterator[list[str]]:
    """The messages of Prefect's client about waiting before it tries a request again."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Another attempt will be made" in record.getMessage():
                found.append(record.getMessage())

    logger = logging.getLogger("prefect.client")
    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_prefects_client_announces_its_backoff_on_a_busy_answer(
    busy_proxy: BusyProxy, client_backoffs: list[str]
) -> None:
    # The signal the hand-over tests rely on: a plain client facing a 503 logs the wait it is about to make.
    busy_proxy.busy = 1
    with (temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}), get_client(sync_client=True) as client,
          pytest.raises(PrefectHTTPStatusError, match="503")):
        client.request("POST", "/deployments/{id}/create_flow_run", path_params={"id": uuid4()}, json={})
    assert len(client_backoffs) == 1 and "503" in client_backoffs[0]


def test_a_busy_server_is_tried_again_until_it_takes_the_run(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, prefect_harness: str, client_backoffs: list[str]
) -> None:
    node = "busy-server"
    apply_deployment(node)
    busy_proxy.busy = 3
    flow_run = handover.create_flow_run(node, "key-busy", {**params("core.busy"), "node": node})
    assert busy_proxy.creations == 4  # three refused, the fourth taken
    assert client_backoffs == []  # Prefect's client did not wait its seconds on any of the refusals
    with temporary_settings(updates={PREFECT_API_URL: prefect_harness}), get_client(sync_client=True) as client:
        stored = client.read_flow_run(flow_run.id)
    assert stored.idempotency_key == "key-busy" and stored.state_type == StateType.SCHEDULED


def test_a_server_busy_for_too_long_leaves_the_file_to_the_ledger(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = "always-busy"
    apply_deployment(node)
    monkeypatch.setattr(handover, "BUSY_RETRIES", 2)
    monkeypatch.setattr(handover, "FIRST_RETRY_SECONDS", 0.01)
    busy_proxy.busy = 1000
    with_credentials = busy_proxy.url.replace("http://", "http://agent:s3cret@")
    with (temporary_settings(updates={PREFECT_API_URL: with_credentials}),
          pytest.raises(handover.ServerBusyError, match=r"busy \(HTTP 503 from http://127\.0\.0\.1:\d+/api/deployments/")
          as raised):
        handover.create_flow_run(node, "key-always-busy", {**params("core.always-busy"), "node": node})
    assert "s3cret" not in str(raised.value)  # the message is logged and kept in the ledger
    # Each try is one request: Prefect's client does not add its own retries, seconds apart, to ours.
    assert busy_proxy.creations == 3


def test_a_hand_over_error_is_described_without_the_credentials_of_a_url() -> None:
    error = RuntimeError("Server error '500' for url 'https://agent:s3cret@prefect.example:4200/api/flow_runs/'")
    assert handover.describe(error) == (
        "RuntimeError: Server error '500' for url 'https://***@prefect.example:4200/api/flow_runs/'")
    assert handover.describe(ValueError("no url here")) == "ValueError: no url here"
