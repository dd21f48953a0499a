"""Handing a finished core to Prefect: a flow run of this node's deployment, and an event.

The flow run is created from this node's deployment with the file's key as its
idempotency key (the same key returns the same run, so a repeated hand-over
cannot make a second one), in the Scheduled state that ``run_deployment``
gives it. ``coredump.detected`` is emitted for the event feed and automations;
the ledger, not the event, is what guarantees delivery.

The files due at once are handed over together: one request creates all their
flow runs (Prefect's bulk endpoint, one transaction, each run with its own
idempotency key) and one more reads them back for the node runner. On SQLite a
creation that meets another write fails as a whole and is tried again, so a
burst of a hundred cores costs a few requests instead of a hundred creations,
most of them refused and repeated while the server is busy running the flows
already created. The dispatcher keeps one API client and the deployment's id.
A server without the bulk endpoint, or one that refuses a batch as a whole, gets
one creation per file: a file it cannot take then holds up only itself.

A Prefect server on SQLite answers 503 when a flow run's insert meets another
write ("database is locked"); Prefect's client would wait 2, 4, 8... seconds
before trying again (and 2 s even with its retries off, before returning the
answer), and a burst of cores would queue behind those waits. The hand-over's
client ends a request at the busy answer itself (a response hook raising
``ServerBusyError``), turns the client's own retries off, and retries a busy
server after tens of milliseconds at first; the idempotency key makes a retry
of a request that did succeed return the same run. A server that still refuses
after that, or cannot be reached, leaves the file to the ledger's backoff.

The runs are created without the server checking their parameters against the
deployment's schema (half of the creation's server time): the parameters
are this module's own, and the flow validates them when it starts. Runs made
in the UI are still checked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.context import SettingsContext, get_settings_context
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, Settings
from prefect.states import Scheduled, to_state_create

from coredumps.retrying import call_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")
FLOW_NAME = "process-coredump"
BUSY_STATUSES = frozenset({429, 502, 503, 504})
"""Answers of a server that is busy or restarting: worth another try soon."""
BUSY_RETRIES = 10
FIRST_RETRY_SECONDS = 0.05
LAST_RETRY_SECONDS = 1.0
"""A busy server is tried again after up to 0.05 s, doubling up to 1 s (full jitter): at most about 6.5 s in all
before the ledger's backoff."""


class DeploymentMissingError(LookupError):
    """This node's deployment is not on the Prefect server (deleted, or not applied yet)."""


class ServerBusyError(RuntimeError):
    """The Prefect server answered that it is busy or restarting (429, 502, 503, 504)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"the Prefect server is busy (HTTP {status} from {url})")
        self.status = status


_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


def _masked(text: str) -> str:
    """Text with the user info of any URL in it masked."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def describe(exc: BaseException) -> str:
    """A hand-over error for the log and the ledger: user info in a URL (Prefect's errors quote the URL) masked."""
    return _masked(f"{type(exc).__name__}: {exc}")


def _refuse_busy(response: Any) -> None:
    """The client's response hook: a busy answer raises here, before Prefect's client sleeps on it."""
    if response.status_code in BUSY_STATUSES:
        raise ServerBusyError(response.status_code, _shown_url(response.request.url))


def _shown_url(url: Any) -> str:
    """A request's URL for the log and the ledger: without user info or query."""
    return str(url.copy_with(username=None, password=None, query=None))


_local = threading.local()
_deployments: dict[str, UUID] = {}


def deployment_name(node: str) -> str:
    """This node's deployment of the process-coredump flow."""
    return f"{FLOW_NAME}/{node}"


def _client() -> SyncPrefectClient:
    """This thread's client of the configured API (a new one when the API URL changed)."""
    client: SyncPrefectClient | None = getattr(_local, "client", None)
    url = PREFECT_API_URL.value()
    if client is not None and getattr(_local, "url", None) != url:
        _drop_client()
        client = None
    if client is None:
        client = get_client(httpx_settings={"event_hooks": {"response": [_refuse_busy]}}, sync_client=True)
        client.__enter__()
        _local.client, _local.url = client, url
    return client


def _drop_client() -> None:
    client: SyncPrefectClient | None = getattr(_local, "client", None)
    _local.client = None
    if client is not None:
        try:
            client.__exit__(None, None, None)
        except Exception:  # a broken client is being replaced anyway
            log.debug("could not close a Prefect client", exc_info=True)


Item = tuple[str, dict[str, Any]]
"""One file to hand over: its key (the flow run's idempotency key) and the flow's parameters."""
Outcome = FlowRun | Exception
"""The flow run of one file, or why the server did not create it."""
BATCH_LIMIT = 50
"""Flow runs created by one request (Prefect's bulk endpoint takes up to 100): a bigger batch holds SQLite's
write lock longer."""
_no_bulk: set[str] = set()
"""API URLs whose server has no bulk creation endpoint (an older Prefect): one creation per file there."""


def _locked(result: dict[str, Any]) -> bool:
    return result.get("status") != "CREATED" and "database is locked" in str(result.get("error"))


class RunRefusedError(RuntimeError):
    """The server did not create the flow run of one file of a batch; the others were created."""


def _body(node: str, key: str, params: dict[str, Any]) -> dict[str, Any]:
    return DeploymentFlowRunCreate(
        parameters=params, state=to_state_create(Scheduled()), idempotency_key=key, tags=[f"node:{node}"],
        enforce_parameter_schema=False,
    ).model_dump(mode="json", exclude_unset=True)


def _deployment_id(client: SyncPrefectClient, name: str) -> UUID:
    try:
        deployment_id = _deployments[name] = client.read_deployment_by_name(name).id
    except ObjectNotFound as exc:
        raise DeploymentMissingError(f"the deployment {name} does not exist on the Prefect server") from exc
    return deployment_id


def _on_deployment(client: SyncPrefectClient, name: str, create: Callable[[UUID], T]) -> T:
    """``create(deployment_id)``; a 404 for a remembered id (deleted, or applied again under a new id) looks it up."""
    deployment_id = _deployments.get(name)
    if deployment_id is not None:
        try:
            return create(deployment_id)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
    return create(_deployment_id(client, name))


def _create(client: SyncPrefectClient, name: str, node: str, key: str, params: dict[str, Any]) -> FlowRun:
    body = _body(node, key, params)

    def create(deployment_id: UUID) -> FlowRun:
        response = client.request("POST", "/deployments/{id}/create_flow_run", path_params={"id": deployment_id},
                                  json=body)
        return FlowRun.model_validate(response.json())

    return _on_deployment(client, name, create)


def _one_by_one(client: SyncPrefectClient, name: str, node: str, items: list[Item]) -> list[Outcome]:
    """The flow runs of ``items``, a request each: a file the server refuses, or that cannot be sent, is its
    own outcome; a busy or unreachable server fails them all."""
    outcomes: list[Outcome] = []
    for key, params in items:
        try:
            outcomes.append(_create(client, name, node, key, params))
        except (PrefectHTTPStatusError, ValueError, TypeError) as exc:
            outcomes.append(RunRefusedError(f"the flow run was not created: {describe(exc)}"))
    return outcomes


def _create_many(client: SyncPrefectClient, name: str, node: str, items: list[Item]) -> list[Outcome]:
    """The flow runs of ``items``, in order, created in one request and read back in another."""
    url = str(PREFECT_API_URL.value())
    if url in _no_bulk or len(items) == 1:
        return _one_by_one(client, name, node, items)
    bodies = [_body(node, key, params) for key, params in items]

    def create(deployment_id: UUID) -> list[dict[str, Any]]:
        response = client.request(
            "POST", "/deployments/{id}/create_flow_run/bulk",  # type: ignore[arg-type]  # not in Prefect's route list
            path_params={"id": deployment_id}, json=bodies,
        )
        results = list(response.json()["results"])
        if any(_locked(result) for result in results):
            # SQLite refused the transaction's first insert (another write came between its reads and the
            # insert): the server is merely busy, and a run that was created is found again by its key
            raise ServerBusyError(503, _shown_url(response.request.url))
        return results

    try:
        results = _on_deployment(client, name, create)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code in (404, 405):
            # the deployment was just found by name: it is the endpoint that is missing
            log.info("the Prefect server at %s cannot create flow runs in bulk; creating them one by one",
                     _masked(url))
            _no_bulk.add(url)
        # else the server refused the batch as a whole: one by one, a file it cannot take holds up only itself
        return _one_by_one(client, name, node, items)
    except (ValueError, TypeError):  # a file's parameters cannot be sent: the same
        return _one_by_one(client, name, node, items)
    if len(results) != len(items):
        raise RuntimeError(f"the Prefect server answered {len(results)} results for {len(items)} flow runs")
    ids = [UUID(result["flow_run_id"]) for result in results if result.get("status") == "CREATED"]
    runs = {run.id: run for run in client.read_flow_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))} if ids else {}
    outcomes: list[Outcome] = []
    for result in results:
        if result.get("status") != "CREATED":
            outcomes.append(RunRefusedError(
                f"the Prefect server did not create the flow run: {result.get('error') or 'no reason given'}"))
        else:
            run = runs.get(UUID(result["flow_run_id"]))
            outcomes.append(run if run is not None else RunRefusedError(
                f"the flow run {result['flow_run_id']} was created but could not be read back"))
    return outcomes


def _client_retries_off() -> SettingsContext:
    """The current settings with the client's own retries off (derived once per thread and settings: it costs CPU)."""
    context = get_settings_context()
    derived: tuple[Settings, Settings] | None = getattr(_local, "retries_off", None)
    if derived is None or derived[0] is not context.settings:
        derived = (context.settings, context.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0}))
        _local.retries_off = derived
    return SettingsContext(profile=context.profile, settings=derived[1])


def _busy(exc: BaseException) -> bool:
    """Only a busy server is tried again here; a connection that failed is left to the ledger."""
    return isinstance(exc, ServerBusyError)


def _with_busy_retries(node: str, create: Callable[[SyncPrefectClient, str], T]) -> T:
    """``create(client, deployment name)``; a busy server is tried again soon."""
    name = deployment_name(node)

    def attempt() -> T:
        try:
            with _client_retries_off():
                return create(_client(), name)
        except (PrefectHTTPStatusError, ServerBusyError):
            raise  # the server answered: the client is fine
        except Exception:
            _drop_client()  # the client may have broken with the server; the next try makes a new one
            raise

    return call_with_retries(attempt, attempts=BUSY_RETRIES + 1, base_delay=FIRST_RETRY_SECONDS,
                             max_delay=LAST_RETRY_SECONDS, is_retryable=_busy)


def create_flow_run(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """The flow run of one file, created or found by its key; a busy server is tried again soon."""
    return _with_busy_retries(node, lambda client, name: _create(client, name, node, key, params))


def create_flow_runs(node: str, items: list[Item]) -> list[Outcome]:
    """The flow runs of several files (at most BATCH_LIMIT), created or found by their keys, in order."""
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"at most {BATCH_LIMIT} flow runs are created at once")
    return _with_busy_retries(node, lambda client, name: _create_many(client, name, node, items))


def _detected(node: str, key: str, params: dict[str, Any], flow_run: FlowRun) -> None:
    try:
        emit_event(
            event="coredump.detected",
            resource={"prefect.resource.id": f"coredump.{key}", "prefect.resource.name": str(params["path"]),
                      "node": node},
            related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run"}],
            payload={"path": str(params["path"]), "pod": params.get("pod"), "instance": params.get("instance")},
        )
    except Exception:  # the event is informational; the flow run already exists
        log.debug("could not emit coredump.detected for %s", key, exc_info=True)


def submit_many(node: str, items: list[Item]) -> list[Outcome]:
    """Create (or find, by key) the flow runs of several files; raises when Prefect cannot be reached."""
    outcomes = create_flow_runs(node, items)
    for (key, params), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, FlowRun):
            _detected(node, key, params, outcome)
    return outcomes


def submit(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """Create (or find, by key) the flow run for one file; raises when Prefect cannot be reached."""
    flow_run = create_flow_run(node, key, params)
    _detected(node, key, params, flow_run)
    return flow_run
