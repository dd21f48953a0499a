"""Handing a finished core to Prefect: a flow run of this node's deployment, and an event.

``run_deployment(..., timeout=0, idempotency_key=<file key>)`` creates the flow
run (the same key returns the same run, so a repeated hand-over cannot make a
second one). ``coredump.detected`` is emitted for the event feed and
automations; the ledger, not the event, is what guarantees delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events import emit_event

log = logging.getLogger(__name__)
FLOW_NAME = "process-coredump"


def deployment_name(node: str) -> str:
    """This node's deployment of the process-coredump flow."""
    return f"{FLOW_NAME}/{node}"


def submit(node: str, key: str, params: dict[str, Any]) -> FlowRun:
    """Create (or find, by key) the flow run for one file; raises when Prefect cannot be reached."""
    flow_run: FlowRun = run_deployment(
        deployment_name(node), parameters=params, timeout=0, idempotency_key=key,
        tags=[f"node:{node}"],
    )
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
