"""Small calls to the Prefect API that flows make besides running tasks."""

from __future__ import annotations

import logging
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

log = logging.getLogger(__name__)


def add_flow_run_tags(flow_run_id: str | None, tags: list[str]) -> None:
    """Add tags to a running flow run (node, instance, signal are only known as the run goes)."""
    if not flow_run_id or not tags:
        return
    try:
        current = list(flow_run.tags or [])
        merged = list(dict.fromkeys([*current, *tags]))
        if merged != current:
            context = FlowRunContext.get()
            if context is not None and isinstance(context.client, SyncPrefectClient):
                context.client.update_flow_run(UUID(flow_run_id), tags=merged)  # the run's own client
            else:
                with get_client(sync_client=True) as client:
                    client.update_flow_run(UUID(flow_run_id), tags=merged)
    except Exception:  # tags help people find runs; never fail a run over them
        log.warning("could not tag flow run %s with %s", flow_run_id, tags, exc_info=True)
