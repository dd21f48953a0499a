"""Find the Milvus instances in the configured namespaces: Helm releases and operator resources.

Per namespace: one list of the operator's Milvus resources (none when its CRD is not
installed) and one list of pods. Pods are grouped by instance with ``pods.instance_of``; a
Milvus resource without pods is still an instance (scaled down, or still starting).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from coredumps.config import DiscoveryConfig
from coredumps.kube.client import KubeClient, KubeNotFoundError, KubeObject
from coredumps.kube.pods import DeploymentType, Pod, instance_of, labels_of

InstanceStatus = Literal["running", "crash-looping", "pending", "failed", "no-pods"]

POD_ONLY_LABELS = frozenset({
    "pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index", "pod-template-generation",
})


@dataclass(frozen=True)
class Instance:
    """One Milvus deployment, as the ``milvus_instances`` table records it."""

    namespace: str
    name: str
    deployment_type: DeploymentType
    release_name: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_names: tuple[str, ...] = ()
    status: InstanceStatus = "no-pods"

    @property
    def pod_count(self) -> int:
        return len(self.pod_names)


def instance_status(pods: Sequence[Pod]) -> InstanceStatus:
    """crash-looping if any container waits in CrashLoopBackOff, else from the pods' phases."""
    if not pods:
        return "no-pods"
    phases = [str((pod.get("status") or {}).get("phase") or "") for pod in pods]
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if ((status.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                return "crash-looping"
    if "Failed" in phases:
        return "failed"
    if all(phase == "Running" for phase in phases):
        return "running"
    return "pending"


def _common_labels(label_sets: Iterable[Mapping[str, str]]) -> dict[str, str]:
    sets = list(label_sets)
    if not sets:
        return {}
    common = {k: v for k, v in sets[0].items() if k not in POD_ONLY_LABELS}
    for labels in sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common


def group_instances(namespace: str, pods: Iterable[Pod], crs: Iterable[KubeObject],
                    cfg: DiscoveryConfig) -> list[Instance]:
    """Instances of one namespace from its pods and Milvus resources (pure)."""
    cr_labels = {str(cr["metadata"]["name"]): labels_of(cr) for cr in crs if (cr.get("metadata") or {}).get("name")}
    operator = {(namespace, name) for name in cr_labels}
    grouped: dict[str, tuple[DeploymentType, list[Pod]]] = {name: ("operator", []) for name in cr_labels}
    for pod in pods:
        found = instance_of(pod, cfg, operator_instances=operator)
        if found is None:
            continue
        name, kind = found
        grouped.setdefault(name, (kind, []))[1].append(pod)
    instances = []
    for name, (kind, members) in sorted(grouped.items()):
        members.sort(key=lambda pod: str((pod.get("metadata") or {}).get("name")))
        labels = {**_common_labels(labels_of(pod) for pod in members), **cr_labels.get(name, {})}
        instances.append(Instance(
            namespace=namespace,
            name=name,
            deployment_type=kind,
            release_name=name if kind == "helm" else None,
            labels=labels,
            pod_names=tuple(str(pod["metadata"]["name"]) for pod in members),
            status=instance_status(members),
        ))
    return instances


def discover_instances(client: KubeClient, cfg: DiscoveryConfig) -> list[Instance]:
    """Every Milvus instance in ``cfg.namespaces``; a namespace that does not exist has none."""
    instances: list[Instance] = []
    for namespace in dict.fromkeys(cfg.namespaces):
        try:
            crs = client.list_milvus_crs(namespace)
        except KubeNotFoundError:
            crs = []
        pods, _ = client.list_pods(namespace)
        instances.extend(group_instances(namespace, pods, crs, cfg))
    return instances
