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

from coredumps.config import load_config
from flows import node_runner
from flows.node_runner import NodeRunner, apply_deployment
from node_sensor import handover
from node_sensor.sensor import Sensor
from tests.conftest import CoreFactory
from tests.sensor.conftest import wait_for


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


def _stored_through_a_runner(
    params: Callable[[str], dict[str, Any]], node: str, before_the_run: Callable[[], object] = lambda: None
) -> FlowRun:
    """Hand a core over and execute its run in a one-worker NodeRunner of ``node``; the run stores the core."""
    outcomes: list[tuple[dict[str, Any] | None, BaseException | None]] = []
    finished = threading.Event()
    runner = NodeRunner(apply_deployment(node), workers=1,
                        on_done=lambda _run, result, error: (outcomes.append((result, error)), finished.set()))
    flow_run = handover.submit(node, f"key-{node}", {**params(f"core.{node}"), "node": node})
    before_the_run()
    assert runner.submit(flow_run) is True
    assert finished.wait(120)
    [(result, error)] = outcomes
    assert error is None and result is not None and result["status"] == "stored"
    return flow_run


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
    flow_run = _stored_through_a_runner(params, "runner-unwatched")
    assert watched == []

    # Any other flow run of a deployment in this process still gets Prefect's watch.
    with prefect.flow_engine.observe_flow_run_suspension(flow_run.id, FlowRunSuspensionRequest()):
        pass
    assert watched == [threading.current_thread().name]


def test_a_run_asks_the_server_nothing_it_does_not_need(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy
) -> None:
    # Prefect's engine asks for the server's default result storage (three requests a run) unless the flow says
    # where results go and that they are not kept; the tags added during the run use the run's own client.
    node = "runner-lean"
    flow_run = _stored_through_a_runner(params, node, before_the_run=busy_proxy.requests.clear)
    assert not [request for request in busy_proxy.requests if "/admin/storage" in request]
    assert busy_proxy.requests.count("GET /api/csrf-token") <= 1  # the worker's one client, not one per call
    with get_client(sync_client=True) as client:
        assert {f"node:{node}", "signal:SIGABRT", "agent:milvus-coredump-agent"} <= set(
            client.read_flow_run(flow_run.id).tags)


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


LOCKED = ("(sqlite3.OperationalError) database is locked\n[SQL: INSERT INTO flow_run (flow_id, deployment_id, "
          "work_queue_name) VALUES (:flow_id, :deployment_id, :work_queue_name) ON CONFLICT DO NOTHING]")
"""The error a Prefect server on SQLite reports for each run of a bulk creation whose first insert met another
write (its transaction had read before another connection wrote)."""


class BusyProxy:
    """An HTTP proxy in front of the real server that answers 503 to the next ``busy`` flow-run creations,
    as a Prefect server on SQLite does when the insert meets another write.

    Bulk creations: the next ``locked`` ones answer what the server answers when their transaction met another
    write (every run FAILED, database locked); ``refuse`` names idempotency keys whose runs the server does not
    create (the others are created); ``no_bulk`` answers 404, as a server without the endpoint does;
    ``reject_batches`` answers 422, a batch refused as a whole.

    ``creations`` and ``bulk_creations`` count the requests the proxy answered and those the server took. The
    server's own busy answers (its SQLite met another write: the session's other work can cause one at any
    time) are counted apart, in ``server_refusals``, so that the counts a test sets up are exact.
    ``created_keys``: the idempotency keys of the runs the server created one at a time (a batch retried after
    such a busy answer creates its first runs again, found by their keys).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.busy = 0
        self.creations = 0
        self.bulk_creations = 0
        self.server_refusals = 0
        self.created_keys: set[str] = set()
        self.requests: list[str] = []
        self.locked = 0
        self.refuse: set[str] = set()
        self.no_bulk = False
        self.reject_batches = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append(f"{self.command} {self.path.split('?')[0]}")
                if self.command == "POST" and self.path.endswith("/create_flow_run"):
                    proxy.creations += 1
                    if proxy.busy > 0:
                        proxy.busy -= 1
                        self._answer(503, json.dumps({"exception_message": "Service Unavailable"}).encode())
                        return
                if self.command == "POST" and self.path.endswith("/create_flow_run/bulk"):
                    self._bulk(json.loads(body))
                    return
                status, answer = self._upstream(body)
                if self.command == "POST" and self.path.endswith("/create_flow_run"):
                    if status == 503:
                        proxy.creations -= 1  # the server's own refusal: counted apart
                        proxy.server_refusals += 1
                    elif status < 300:
                        proxy.created_keys.add(json.loads(body)["idempotency_key"])
                self._answer(status, answer)

            def _upstream(self, body: bytes) -> tuple[int, bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(self.command, proxy.upstream + self.path.removeprefix("/api"),
                                         headers=headers, content=body)
                return upstream.status_code, upstream.content

            def _bulk(self, runs: list[dict[str, Any]]) -> None:
                proxy.bulk_creations += 1
                if proxy.no_bulk:
                    self._answer(404, json.dumps({"detail": "Not Found"}).encode())
                    return
                if proxy.reject_batches:
                    self._answer(422, json.dumps({"exception_message": "Invalid request received."}).encode())
                    return
                if proxy.locked > 0:
                    proxy.locked -= 1
                    failed = {"flow_run_id": None, "status": "FAILED", "error": LOCKED}
                    self._answer(200, json.dumps({"results": [failed] * len(runs)}).encode())
                    return
                taken = [run for run in runs if run["idempotency_key"] not in proxy.refuse]
                status, answer = self._upstream(json.dumps(taken).encode())
                if status != 200:
                    self._answer(status, answer)
                    return
                created_or_not = json.loads(answer)["results"]
                if any("database is locked" in str(result.get("error")) for result in created_or_not):
                    proxy.bulk_creations -= 1  # the server's own refusal: counted apart
                    proxy.server_refusals += 1
                created = iter(created_or_not)
                results = [{"flow_run_id": None, "status": "FAILED", "error": "Parameter validation failed: no"}
                           if run["idempotency_key"] in proxy.refuse else next(created) for run in runs]
                self._answer(200, json.dumps({"results": results}).encode())

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


def _items(params: Callable[[str], dict[str, Any]], node: str, *names: str) -> list[handover.Item]:
    return [(f"key-{name}", {**params(name), "node": node}) for name in names]


@pytest.mark.parametrize("batch", [False, True], ids=["one file, 503", "a batch, database locked"])
def test_a_server_busy_for_too_long_leaves_the_files_to_the_ledger(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    node = f"always-busy-{batch}"
    apply_deployment(node)
    monkeypatch.setattr(handover, "BUSY_RETRIES", 2)
    monkeypatch.setattr(handover, "FIRST_RETRY_SECONDS", 0.01)
    busy_proxy.busy = busy_proxy.locked = 1000
    items = _items(params, node, *(["core.ab1", "core.ab2"] if batch else ["core.ab"]))
    with_credentials = busy_proxy.url.replace("http://", "http://agent:s3cret@")
    with (temporary_settings(updates={PREFECT_API_URL: with_credentials}),
          pytest.raises(handover.ServerBusyError, match=r"busy \(HTTP 503 from http://127\.0\.0\.1:\d+/api/deployments/")
          as raised):
        handover.submit_many(node, items)
    assert "s3cret" not in str(raised.value)  # the message is logged and kept in the ledger
    # Each try is one request: Prefect's client does not add its own retries, seconds apart, to ours.
    assert (busy_proxy.bulk_creations, busy_proxy.creations) == ((3, 0) if batch else (0, 3))


def _stored(prefect_harness: str, flow_run_id: Any) -> FlowRun:
    with temporary_settings(updates={PREFECT_API_URL: prefect_harness}), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def test_files_handed_over_together_share_one_creation(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, prefect_harness: str
) -> None:
    node = "batch"
    deployment_id = apply_deployment(node)
    items = _items(params, node, "core.b1", "core.b2", "core.b3")
    outcomes = handover.submit_many(node, items)
    assert busy_proxy.bulk_creations == 1 and busy_proxy.creations == 0
    runs = [outcome for outcome in outcomes if isinstance(outcome, FlowRun)]
    assert len(runs) == 3 and len({run.id for run in runs}) == 3
    for (key, item_params), run in zip(items, runs, strict=True):  # in the order of the files
        stored = _stored(prefect_harness, run.id)
        assert stored.idempotency_key == key and stored.parameters["path"] == item_params["path"]
        assert stored.deployment_id == deployment_id and stored.state_type == StateType.SCHEDULED
        assert f"node:{node}" in stored.tags

    # Handed over again (a restart before the ledger recorded them), with a new file: no second run of the first.
    again = handover.submit_many(node, [*items, *_items(params, node, "core.b4")])
    assert [run.id for run in again[:3] if isinstance(run, FlowRun)] == [run.id for run in runs]
    assert isinstance(again[3], FlowRun) and again[3].id not in {run.id for run in runs}


def test_a_batch_that_met_a_locked_database_is_tried_again_whole(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, client_backoffs: list[str]
) -> None:
    node = "batch-locked"
    apply_deployment(node)
    busy_proxy.locked = 2
    outcomes = handover.submit_many(node, _items(params, node, "core.l1", "core.l2"))
    assert busy_proxy.bulk_creations == 3  # two refused, the third taken
    assert all(isinstance(outcome, FlowRun) for outcome in outcomes)
    assert client_backoffs == []


@pytest.mark.parametrize("answer", ["no_bulk", "reject_batches"])
def test_a_batch_the_server_does_not_take_whole_is_handed_over_file_by_file(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, answer: str
) -> None:
    node = f"one-by-one-{answer}"
    apply_deployment(node)
    setattr(busy_proxy, answer, True)
    outcomes = handover.submit_many(node, _items(params, node, "core.n1", "core.n2"))
    assert all(isinstance(outcome, FlowRun) for outcome in outcomes)
    # (A creation the session's real server refuses as busy makes the whole batch go again: one more request.)
    retried = busy_proxy.server_refusals if answer == "reject_batches" else 0
    assert busy_proxy.bulk_creations == 1 + retried
    assert busy_proxy.created_keys == {"key-core.n1", "key-core.n2"}
    handover.submit_many(node, _items(params, node, "core.n3", "core.n4"))
    assert busy_proxy.created_keys == {"key-core.n1", "key-core.n2", "key-core.n3", "key-core.n4"}
    # A server without the endpoint (404) is remembered; a batch refused whole (422) does not make the next one
    # go file by file.
    retried = busy_proxy.server_refusals if answer == "reject_batches" else 0
    assert busy_proxy.bulk_creations == (1 if answer == "no_bulk" else 2 + retried)


def test_a_file_that_cannot_be_sent_holds_up_only_itself(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy
) -> None:
    node = "batch-unsendable"
    apply_deployment(node)
    good, unsendable, other = _items(params, node, "core.u1", "core.u2", "core.u3")
    unsendable[1]["pod"] = "milvus/\udcff"  # not UTF-8: no request can carry it
    outcomes = handover.submit_many(node, [good, unsendable, other])
    assert isinstance(outcomes[0], FlowRun) and isinstance(outcomes[2], FlowRun)
    assert isinstance(outcomes[1], handover.RunRefusedError) and "UnicodeEncodeError" in str(outcomes[1])
    # the two others, one by one, after the batch could not be sent
    assert busy_proxy.created_keys == {"key-core.u1", "key-core.u3"}


def test_a_run_the_server_refuses_is_retried_alone_and_the_others_go_on(
    params: Callable[[str], dict[str, Any]], busy_proxy: BusyProxy, agent_config: Callable[..., Path]
) -> None:
    node = "batch-refused"
    apply_deployment(node)
    sensor = Sensor(load_config(agent_config(f"agent:\n  nodeName: {node}\n")))
    assert sensor.node == node
    items = _items(params, node, "core.r1", "core.r2", "core.r3")
    for key, item_params in items:
        assert sensor.ledger.add(key, item_params["path"], json.dumps(item_params))
    busy_proxy.refuse = {"key-core.r2"}
    assert sensor.dispatch_once() == 2
    assert [sensor.ledger.state(key) for key, _ in items] == ["submitted", "pending", "submitted"]
    [waiting] = [entry for entry in sensor.ledger.in_state("pending")]
    assert waiting.key == "key-core.r2" and waiting.attempts == 1 and waiting.flow_run_id is None
    assert sensor.prefect_reachable

    # Once the server takes it, the next due hand-over creates it; the others are not handed over again.
    busy_proxy.refuse = set()
    handed: list[int] = []
    wait_for(lambda: handed.append(sensor.dispatch_once()) or sum(handed) > 0, 30, "the refused file's next try")
    assert sum(handed) == 1 and sensor.ledger.state("key-core.r2") == "submitted"
    assert busy_proxy.bulk_creations == 1 and busy_proxy.created_keys == {"key-core.r2"}  # a single file: plain
    sensor.ledger.close()


def test_a_hand_over_error_is_described_without_the_credentials_of_a_url() -> None:
    error = RuntimeError("Server error '500' for url 'https://agent:s3cret@prefect.example:4200/api/flow_runs/'")
    assert handover.describe(error) == (
        "RuntimeError: Server error '500' for url 'https://***@prefect.example:4200/api/flow_runs/'")
    assert handover.describe(ValueError("no url here")) == "ValueError: no url here"
