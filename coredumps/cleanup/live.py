"""An instance as the Kubernetes API shows it now: its pods, workloads and Milvus resource.

Objects belong to an instance when one of the instance labels (``app.kubernetes.io/instance``,
``release``, ``milvus.io/instance``) names it; each is listed with a label selector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from coredumps.kube.client import KubeClient, KubeNotFoundError, KubeObject, ScalableKind
from coredumps.kube.pods import INSTANCE_LABELS, parse_time

ORIGINAL_REPLICAS = "coredump-agent/original-replicas"
"""Annotation holding a workload's replica count from before scale-to-zero."""
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet of the instance."""

    kind: ScalableKind
    name: str
    replicas: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def original_replicas(self) -> int | None:
        """The count scale-to-zero kept, when it annotated this workload."""
        value = self.annotations.get(ORIGINAL_REPLICAS)
        return int(value) if value is not None and value.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "replicas": self.replicas}


def workload(kind: ScalableKind, obj: KubeObject) -> Workload:
    meta = _meta(obj)
    replicas = (obj.get("spec") or {}).get("replicas")
    return Workload(kind=kind, name=str(meta.get("name")), replicas=1 if replicas is None else int(replicas),
                    labels=_labels(obj), annotations=dict(meta.get("annotations") or {}))


@dataclass(frozen=True)
class LiveInstance:
    """What the API server holds for one instance right now."""

    namespace: str
    name: str
    pods: tuple[KubeObject, ...] = ()
    workloads: tuple[Workload, ...] = ()
    milvus: KubeObject | None = None

    @property
    def exists(self) -> bool:
        return bool(self.pods or self.workloads or self.milvus)

    def pod_identities(self) -> list[tuple[str, str]]:
        """(uid, name) of each pod of the instance."""
        return [(str(_meta(p).get("uid") or ""), str(_meta(p).get("name") or "")) for p in self.pods]

    def milvus_only(self, is_milvus: Callable[[KubeObject], bool]) -> LiveInstance:
        """The same instance with only the pods ``is_milvus`` accepts: what its restarts and crash loop are judged
        by (another pod that shares the instance label, e.g. a broken dependency, is not the Milvus crashing)."""
        return replace(self, pods=tuple(p for p in self.pods if is_milvus(p)))

    def protected_by(self, label: str) -> str | None:
        """What carries ``label: "true"`` (the Milvus resource, a workload or a pod), if anything does."""
        owners: list[tuple[str, Mapping[str, str]]] = []
        if self.milvus is not None:
            owners.append((f"Milvus {self.name}", _labels(self.milvus)))
        owners += [(f"{w.kind} {w.name}", w.labels) for w in self.workloads]
        owners += [(f"pod {_meta(p).get('name')}", _labels(p)) for p in self.pods]
        for what, labels in owners:
            if str(labels.get(label, "")).strip().lower() == "true":
                return what
        return None

    def crash_looping(self, now: datetime, window: float) -> bool:
        """A container waits in CrashLoopBackOff, or died within the window and is not ready."""
        since = now - timedelta(seconds=window)
        for pod in self.pods:
            status = pod.get("status") or {}
            for container in [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff":
                    return True
                finished = parse_time(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
                if finished is not None and finished >= since and not container.get("ready"):
                    return True
        return False

    def helm_release(self) -> str | None:
        """The Helm release the workloads name (their release annotation), else the release labels."""
        for w in self.workloads:
            if w.annotations.get(HELM_RELEASE_ANNOTATION):
                return w.annotations[HELM_RELEASE_ANNOTATION]
        for labels in [*(w.labels for w in self.workloads), *(_labels(p) for p in self.pods)]:
            for key in ("release", "app.kubernetes.io/instance"):
                if labels.get(key):
                    return labels[key]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "instance": self.name,
                "pods": sorted(str(_meta(p).get("name")) for p in self.pods),
                "workloads": [w.to_dict() for w in self.workloads], "milvus_resource": self.milvus is not None}


def _by_uid(objects: Iterable[KubeObject]) -> list[KubeObject]:
    found: dict[str, KubeObject] = {}
    for obj in objects:
        found.setdefault(str(_meta(obj).get("uid") or _meta(obj).get("name")), obj)
    return sorted(found.values(), key=lambda o: str(_meta(o).get("name")))


def read_instance(client: KubeClient, namespace: str, name: str) -> LiveInstance:
    """The instance's pods, Deployments, StatefulSets and Milvus resource, listed by label."""
    selectors = [f"{key}={name}" for key in INSTANCE_LABELS]
    pods = _by_uid(p for s in selectors for p in client.list_pods(namespace, label_selector=s)[0])
    deployments = _by_uid(d for s in selectors for d in client.list_deployments(namespace, s))
    statefulsets = _by_uid(d for s in selectors for d in client.list_statefulsets(namespace, s))
    try:
        milvus: KubeObject | None = client.get_milvus_cr(namespace, name)
    except KubeNotFoundError:
        milvus = None
    workloads = [workload("deployment", d) for d in deployments] + [workload("statefulset", s) for s in statefulsets]
    return LiveInstance(namespace, name, tuple(pods), tuple(workloads), milvus)
