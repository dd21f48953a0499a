"""viewer: a short-lived GDB web terminal for one stored coredump; reap_viewers: remove expired ones.

``viewer`` creates the Pod that ``coredumps.viewer`` describes in ``dashboard.viewerNamespace`` and
publishes how to reach its terminal (a ``kubectl port-forward`` to the pod's loopback) as a link
artifact. A viewer that already runs for the same coredump is returned as it is. ``reap_viewers``
(scheduled) deletes viewer pods whose expiry has passed or whose pod has finished, and any viewer
Service left without its pod.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from coredumps import viewer as v
from coredumps.config import Config, load_config
from coredumps.db.models import CoredumpFile
from coredumps.errors import ConfigError
from coredumps.kube.client import KubeClient, KubeNotFoundError, connect
from coredumps.storage import make_storage
from tasks.runtime import sessions_for

NO_CLUSTER = ("no Kubernetes cluster is configured; run the agent in the cluster or set KUBECONFIG so that "
              "viewer pods can be created.")


def _kube() -> KubeClient:
    client = connect()
    if client is None:
        raise ConfigError(NO_CLUSTER)
    return client


def _source(cfg: Config, row: CoredumpFile, minutes: int) -> v.ViewerSource:
    fetch_url = None
    if row.storage_backend == "s3" and row.storage_location:
        presign = getattr(make_storage(cfg.storage), "presign", None)
        if callable(presign):
            fetch_url = str(presign(row.storage_location, expires=minutes * 60))
    return v.source_for(row.storage_backend if row.stored else None, row.storage_location,
                        node_name=row.node_name, size_bytes=row.size_bytes, fetch_url=fetch_url)


def _delete_quietly(kube: KubeClient, namespace: str, name: str) -> None:
    for delete in (kube.delete_pod, kube.delete_service):
        with contextlib.suppress(KubeNotFoundError):
            delete(namespace, name)


def _result(cfg: Config, coredump_id: int, namespace: str, expires: datetime | None, created: bool) -> dict[str, Any]:
    vc = cfg.dashboard.viewer
    return {
        "coredump_id": coredump_id,
        "name": v.viewer_name(coredump_id),
        "namespace": namespace,
        "url": v.terminal_url(vc),
        "port_forward": v.port_forward_command(vc, coredump_id, namespace),
        "expires_at": v.format_time(expires) if expires else None,
        "created": created,
    }


@flow(name="viewer", log_prints=False)
def viewer(coredump_id: int, minutes: int | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Start a GDB web terminal (ttyd) on one stored coredump for ``minutes`` (default dashboard.viewer.defaultDuration,
    capped at maxDuration)."""
    cfg = load_config(config_path)
    vc = cfg.dashboard.viewer
    if not vc.enabled:
        raise ConfigError("dashboard.viewer.enabled is false; set it to true to launch viewer pods")
    logger = get_run_logger()
    namespace = cfg.dashboard.viewer_namespace
    minutes = v.duration_minutes(minutes, vc)
    with sessions_for(cfg)() as session:
        row = session.get(CoredumpFile, coredump_id)
        if row is None:
            raise v.ViewerUnavailableError(f"there is no coredump with id {coredump_id}")
        source = _source(cfg, row, minutes)
    kube = _kube()
    try:
        now = datetime.now(UTC)
        pods, _ = kube.list_pods(namespace, label_selector=v.SELECTOR)
        running = v.viewers(pods, vc)
        mine = [x for x in running if x.coredump_id == coredump_id]
        if mine and not mine[0].expired(now):
            logger.info("a viewer for coredump %d already runs until %s", coredump_id, mine[0].expires_at)
            result = _result(cfg, coredump_id, namespace, mine[0].expires_at, False)
        else:
            v.check_limit(running, vc, now)
            if mine:
                _delete_quietly(kube, namespace, v.viewer_name(coredump_id))
            expires = now + timedelta(minutes=minutes)
            kube.create_pod(namespace, v.build_pod(vc, coredump_id, source, minutes, now, namespace))
            logger.info("viewer %s for coredump %d runs until %s", v.viewer_name(coredump_id), coredump_id,
                        v.format_time(expires))
            result = _result(cfg, coredump_id, namespace, expires, True)
    finally:
        kube.close()
    create_link_artifact(
        link=result["url"], link_text=f"GDB terminal for coredump {coredump_id}", key=f"viewer-{coredump_id}",
        description=f"Until {result['expires_at']}. The terminal listens on the pod's loopback only: run "
        f"`{result['port_forward']}`, then open {result['url']}",
    )
    return result


@flow(name="reap-viewers", log_prints=False)
def reap_viewers(config_path: str | None = None) -> dict[str, Any]:
    """Delete viewer pods and services that have expired or finished."""
    cfg = load_config(config_path)
    namespace = cfg.dashboard.viewer_namespace
    logger = get_run_logger()
    kube = _kube()
    try:
        now = datetime.now(UTC)
        pods, _ = kube.list_pods(namespace, label_selector=v.SELECTOR)
        services = kube.list_services(namespace, label_selector=v.SELECTOR)
        doomed_pods = v.expired_names(pods, now)
        live_pods = {str(p["metadata"]["name"]) for p in pods} - set(doomed_pods)
        doomed_services = sorted(
            name for s in services if (name := str(s["metadata"]["name"])) not in live_pods
            or name in v.expired_names([s], now))
        for name in doomed_pods:
            with contextlib.suppress(KubeNotFoundError):
                kube.delete_pod(namespace, name)
        for name in doomed_services:
            with contextlib.suppress(KubeNotFoundError):
                kube.delete_service(namespace, name)
    finally:
        kube.close()
    logger.info("reaped %d viewer pods and %d services", len(doomed_pods), len(doomed_services))
    return {"pods": sorted(doomed_pods), "services": doomed_services}
