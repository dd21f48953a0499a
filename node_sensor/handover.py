"""Handing a finished core to Prefect: a flow run of this node's deployment, and an event.

The flow run is created from this node's deployment with the file's key as its
idempotency key (the same key returns the same run, so a repeated hand-over
cannot make a second one), in the Scheduled state that ``run_deployment``
gives it. ``coredump.detected`` is emitted for the event feed and automations;
the ledger, not the event, is what guarantees delivery.

Each hand-over thread keeps one API client and the deployment's id: a burst of
cores costs one request per file, not a new HTTP client and a deployment lookup
each.

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
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.objects import FlowRun
from prefect.context import SettingsContext, get_settings_context
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, Settings
from prefect.states import Scheduled, to_state_create

from coredumps.retrying import call_with_retries

log = logging.getLogger(__name__)
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


def describe(exc: BaseException) -> str:
    """A hand-over error for the log and the ledger: user info in a URL (Prefect's errors quote the URL) masked."""
    return _URL_CREDENTIALS.sub(r"\1***@", f"{type(exc).__name__}: {exc}")


def _refuse_busy(response: Any) -> None:
    """The client's response hook: a busy answer raises here, before Prefect's client sleeps on it."""
    if response.status_code in BUSY_STATUSES:
        url = response.request.url  # without user info or query: the message goes to the log and the ledger
        raise ServerBusyError(response.status_code, str(url.copy_with(username=None, password=None, query=None)))


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


def _create(client: SyncPrefectClient, name: str, node: str, key: str, params: dict[str, Any]) -> FlowRun:
    body = DeploymentFlowRunCreate(
        parameters=params, state=to_state_create(Scheduled()), idempotency_key=key, tags=[f"node:{node}"],
        enforce_parameter_schema=False,
    ).model_dump(mode="json", exclude_unset=True)

    def create(deployment_id: UUID) -> FlowRun:
        response = client.request("POST", "/deployments/{id}/create_flow_run", path_params={"id": deployment_id},
                                  json=body)
        return FlowRun.model_validate(response.json())

    deployment_id = _deployments.get(name)
    if deployment_id is not None:
        try:
            return create(deployment_id)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
            # deleted, or deleted and applied again under a new id: look it up by name
    try:
        deployment_id = _deployments[name] = client.read_deployment_by_name(name).id
    except ObjectNotFound as exc:
        raise DeploymentMissingError(f"the deployment {name} does not exist on the Prefect server") from exc
    return create(deployment_id)


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


def create_flow_run(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """The flow run of one file, created or found by its key; a busy server is tried again soon."""
    name = deployment_name(node)

    def attempt() -> FlowRun:
        try:
            with _client_retries_off():
                return _create(_client(), name, node, key, params)
        except (PrefectHTTPStatusError, ServerBusyError):
            raise  # the server answered: the client is fine
        except Exception:
            _drop_client()  # the client may have broken with the server; the next try makes a new one
            raise

    return call_with_retries(attempt, attempts=BUSY_RETRIES + 1, base_delay=FIRST_RETRY_SECONDS,
                             max_delay=LAST_RETRY_SECONDS, is_retryable=_busy)


def submit(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """Create (or find, by key) the flow run for one file; raises when Prefect cannot be reached."""
    flow_run = create_flow_run(node, key, params)
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
    return flow_run
