"""Handing a finished core to Prefect: a flow run of this node's deployment, and an event.

The flow run is created from this node's deployment with the file's key as its
idempotency key (the same key returns the same run, so a repeated hand-over
cannot make a second one), in the Scheduled state that ``run_deployment``
gives it. ``coredump.detected`` is emitted for the event feed and automations;
the ledger, not the event, is what guarantees delivery.

Each hand-over thread keeps one API client and the deployment's id: a burst of
cores costs one request per file, not a new HTTP client and a deployment lookup
each.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Scheduled

log = logging.getLogger(__name__)
FLOW_NAME = "process-coredump"


class DeploymentMissingError(LookupError):
    """This node's deployment is not on the Prefect server (deleted, or not applied yet)."""


_local = threading.local()
_deployments: dict[str, UUID] = {}


def deployment_name(node: str) -> str:
    """This node's deployment of the process-coredump flow."""
    return f"{FLOW_NAME}/{node}"


def _client() -> SyncPrefectClient:
    client: SyncPrefectClient | None = getattr(_local, "client", None)
    if client is None:
        client = get_client(sync_client=True)
        client.__enter__()
        _local.client = client
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
    def create(deployment_id: UUID) -> FlowRun:
        return client.create_flow_run_from_deployment(
            deployment_id, parameters=params, state=Scheduled(), idempotency_key=key, tags=[f"node:{node}"],
        )

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


def submit(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """Create (or find, by key) the flow run for one file; raises when Prefect cannot be reached."""
    name = deployment_name(node)
    try:
        flow_run = _create(_client(), name, node, key, params)
    except Exception:
        _drop_client()  # a client may have broken with the server; the next hand-over makes a new one
        raise
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
