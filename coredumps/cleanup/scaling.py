"""Scale-to-zero and its undo, one API call per function so that each can be retried on its own.

The original replica count is written to the workload (``coredump-agent/original-replicas``)
before it is scaled down, so that a failure half-way, a crash or a person can always put it back.
"""

from __future__ import annotations

from coredumps.cleanup.errors import NothingToRestoreError
from coredumps.cleanup.live import ORIGINAL_REPLICAS, LiveInstance, Workload
from coredumps.kube.client import KubeClient


def keep_original(client: KubeClient, namespace: str, w: Workload) -> None:
    """Annotate the workload with its current replica count, unless an earlier count is kept already."""
    if w.original_replicas is None:
        client.patch_annotations(w.kind, namespace, w.name, {ORIGINAL_REPLICAS: str(w.replicas)})


def forget_original(client: KubeClient, namespace: str, w: Workload) -> None:
    """Remove the annotation."""
    client.patch_annotations(w.kind, namespace, w.name, {ORIGINAL_REPLICAS: None})


def set_replicas(client: KubeClient, namespace: str, w: Workload, replicas: int) -> int:
    """Scale through the scale subresource; returns the count the server stored."""
    return client.patch_scale(w.kind, namespace, w.name, replicas)


def restore_order(live: LiveInstance) -> list[Workload]:
    """Annotated workloads, StatefulSets (the dependencies) before Deployments."""
    found = [w for w in live.workloads if w.original_replicas is not None]
    if not found:
        raise NothingToRestoreError(
            f"nothing to restore: no Deployment or StatefulSet of {live.namespace}/{live.name} carries the "
            f"{ORIGINAL_REPLICAS} annotation that scale-to-zero writes."
        )
    return sorted(found, key=lambda w: (w.kind != "statefulset", w.name))
