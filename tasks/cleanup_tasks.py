"""Cleanup tasks: counting, the Kubernetes calls (retried on transient errors only), helm,
alerts, and the Prefect calls that schedule, inspect and claim the per-instance flow runs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import OrchestrationResult, SetStateStatus
from prefect.deployments import run_deployment
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound
from prefect.states import Pending, Scheduled

from coredumps.cleanup import helm, incidents, live, records, scaling, webhook
from coredumps.cleanup.incidents import RestartTally, Sessions
from coredumps.cleanup.live import LiveInstance, Workload
from coredumps.cleanup.records import Row
from coredumps.cleanup.report import EVENT, message
from coredumps.config import AlertingConfig, CleanerConfig
from coredumps.kube.client import KubeClient, KubeNotFoundError
from coredumps.retrying import call_with_retries
from tasks.policies import transient_only

log = logging.getLogger(__name__)

_KUBE: dict[str, Any] = {"cache_policy": NO_CACHE, "retries": 2, "retry_delay_seconds": [1, 2],
                         "retry_condition_fn": transient_only}
_DB: dict[str, Any] = {"cache_policy": NO_CACHE, "retries": 2, "retry_delay_seconds": 1}

# ---------------------------------------------------------------- counting


@task(name="tally-restarts", **_DB)
def tally(sessions: Sessions, cfg: CleanerConfig, now: datetime) -> list[RestartTally]:
    return incidents.tally_restarts(sessions, cfg.restart_time_window, now)


@task(name="count-restarts", **_DB)
def count(sessions: Sessions, namespace: str, instance: str, window: float, now: datetime,
          pods: list[tuple[str, str]] | None = None) -> int:
    return incidents.restart_count(sessions, namespace, instance, window, now, pods=pods)


@task(name="find-incident", **_DB)
def incident(sessions: Sessions, found: RestartTally, window: float) -> tuple[str, datetime]:
    """The incident key and first restart of the instance's current crash loop."""
    previous = records.last_incident_start(sessions, found.namespace, found.instance)
    start = incidents.incident_start(sessions, found, window, previous)
    return incidents.incident_key(found.namespace, found.instance, start), start


# ---------------------------------------------------------------- Kubernetes and helm


@task(name="read-instance", **_KUBE)
def read_instance(client: KubeClient, namespace: str, name: str) -> LiveInstance:
    return live.read_instance(client, namespace, name)


@task(name="find-helm-release", **_KUBE)
def helm_release(client: KubeClient, instance: LiveInstance) -> str | None:
    """The instance's Helm release, when a Helm 3 release record of that name exists."""
    release = instance.helm_release()
    if release is None or not client.list_helm_release_secrets(instance.namespace, release):
        return None
    return release


@task(name="keep-original-replicas", **_KUBE)
def keep_original(client: KubeClient, namespace: str, w: Workload) -> None:
    scaling.keep_original(client, namespace, w)


@task(name="forget-original-replicas", **_KUBE)
def forget_original(client: KubeClient, namespace: str, w: Workload) -> None:
    scaling.forget_original(client, namespace, w)


@task(name="scale", **_KUBE)
def set_replicas(client: KubeClient, namespace: str, w: Workload, replicas: int) -> int:
    return scaling.set_replicas(client, namespace, w, replicas)


@task(name="delete-milvus-resource", **_KUBE)
def delete_milvus(client: KubeClient, namespace: str, name: str) -> bool:
    """Delete the Milvus resource; False when it was already gone."""
    try:
        client.delete_milvus_cr(namespace, name)
    except KubeNotFoundError:
        return False
    return True


@task(name="helm-uninstall", cache_policy=NO_CACHE)
def helm_uninstall(release: str, namespace: str, timeout: float) -> str:
    return helm.uninstall(release, namespace, timeout)


# ---------------------------------------------------------------- alerts


@task(name="notify", cache_policy=NO_CACHE)
def notify(row: Row, alerting: AlertingConfig) -> None:
    """The ``milvus.instance.cleanup`` event, and the webhook when alerting is on; never fails the run."""
    e = row.entry
    body = message(row)
    related = [{"prefect.resource.id": f"prefect.flow-run.{e.flow_run_id}", "prefect.resource.role": "flow-run"}] \
        if e.flow_run_id else []
    try:
        emit_event(
            event=EVENT,
            resource={"prefect.resource.id": f"milvus.instance.{e.namespace}.{e.instance}",
                      "prefect.resource.name": f"{e.namespace}/{e.instance}", "milvus.namespace": e.namespace,
                      "cleanup.decision": e.decision, "cleanup.action": e.action},
            related=related, payload=body,
        )
    except Exception:  # the row is the record; the event only feeds automations
        log.warning("could not emit %s for %s/%s", EVENT, e.namespace, e.instance, exc_info=True)
    if alerting.enabled and alerting.webhook_url:
        try:
            call_with_retries(lambda: webhook.post(alerting.webhook_url, body), attempts=3, base_delay=1.0)
        except Exception as exc:
            log.warning("cleanup alert for %s/%s not delivered: %s", e.namespace, e.instance, exc)


# ---------------------------------------------------------------- per-instance flow runs


@dataclass(frozen=True)
class RunView:
    """A flow run as the Prefect API shows it."""

    id: str
    state: str
    state_name: str
    scheduled_time: datetime | None
    deployment_id: str | None
    message: str | None

    @property
    def cancelled(self) -> bool:
        return self.state in ("CANCELLED", "CANCELLING")

    @property
    def final(self) -> bool:
        return self.state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _view(run: FlowRun) -> RunView:
    state = run.state
    return RunView(
        id=str(run.id), state=state.type.value if state else "UNKNOWN",
        state_name=(state.name or state.type.value) if state else "Unknown",
        scheduled_time=state.state_details.scheduled_time if state else None,
        deployment_id=str(run.deployment_id) if run.deployment_id else None,
        message=state.message if state else None,
    )


def incident_tag(incident_key: str) -> str:
    return "cleanup-incident:" + hashlib.sha256(incident_key.encode()).hexdigest()[:16]


@task(name="schedule-cleanup", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def schedule(flow: Any, deployment: str, parameters: dict[str, Any], at: datetime, incident_key: str,
             tags: Iterable[str]) -> RunView:
    """A Scheduled flow run at ``at``: from the deployment when it exists, else of the flow itself.

    The same incident key finds the same run (the deployment's idempotency key, else a tag).
    """
    all_tags = [*tags, incident_tag(incident_key)]
    name = f"cleanup-{parameters['namespace']}-{parameters['instance']}"
    with get_client(sync_client=True) as client:
        try:
            deployment_id = client.read_deployment_by_name(deployment).id
        except ObjectNotFound:
            deployment_id = None
        if deployment_id is None:
            found = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[incident_tag(incident_key)])), limit=1)
            if found:
                return _view(found[0])
            return _view(client.create_flow_run(flow, name=name, parameters=parameters, tags=all_tags,
                                                state=Scheduled(scheduled_time=at)))
    run = run_deployment(deployment_id, parameters=parameters, scheduled_time=at, timeout=0,
                         idempotency_key=incident_key, as_subflow=False, tags=all_tags, flow_run_name=name)
    assert isinstance(run, FlowRun)
    return _view(run)


def view_run(flow_run_id: str) -> RunView | None:
    """The run's state now; ``None`` when it was deleted."""
    with get_client(sync_client=True) as client:
        try:
            return _view(client.read_flow_run(UUID(flow_run_id)))
        except ObjectNotFound:
            return None


def claim_run(flow_run_id: str) -> bool:
    """Move a Scheduled run to Pending, as a worker does; False when it was cancelled or taken meanwhile."""
    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(UUID(flow_run_id), Pending())
    return result.status == SetStateStatus.ACCEPT


def read_run(flow_run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))
