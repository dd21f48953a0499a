"""Which pod, container and Milvus instance a core belongs to, and by which rule.

Rules, first match wins:
  hostname      the core's hostname (xattr or journal COREDUMP_HOSTNAME) is a pod's name:
                a container's hostname is its pod's name unless the pod sets hostNetwork;
  cgroup        the pod UID in the crashed process's cgroup path (journal COREDUMP_CGROUP);
  restart-time  a Milvus container on this node terminated within ``window`` seconds of the crash.
The container is the pod's only one, else the one whose restart is closest to the crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    uid: str
    containers: tuple[str, ...]
    instance: str | None
    deployment_type: str


@dataclass(frozen=True)
class RestartView:
    pod_uid: str
    container: str
    finished_at: datetime | None


@dataclass(frozen=True)
class Match:
    pod: PodView
    container: str | None
    rule: str

    def params(self) -> dict[str, str | None]:
        """The flow parameters that carry the correlation."""
        return {
            "pod": f"{self.pod.namespace}/{self.pod.name}",
            "pod_uid": self.pod.uid,
            "container": self.container,
            "instance": self.pod.instance,
            "instance_namespace": self.pod.namespace if self.pod.instance else None,
            "deployment_type": self.pod.deployment_type,
            "correlation_rule": self.rule,
        }


def _container(pod: PodView, restarts: Sequence[RestartView], crash_time: datetime | None) -> str | None:
    if len(pod.containers) == 1:
        return pod.containers[0]
    own = [r for r in restarts if r.pod_uid == pod.uid and r.finished_at is not None]
    if own and crash_time is not None:
        return min(own, key=lambda r: abs((r.finished_at - crash_time).total_seconds())).container  # type: ignore[operator]
    return pod.containers[0] if pod.containers else None


def correlate(
    pods: Sequence[PodView],
    restarts: Sequence[RestartView],
    *,
    hostname: str | None,
    pod_uid: str | None,
    crash_time: datetime | None,
    window: float = 120.0,
) -> Match | None:
    """The pod a core belongs to, or None when no rule matches.

    The pod UID from the cgroup is exact and comes first; a hostname counts only when one pod has that
    name (the same release in two namespaces has two); then the nearest Milvus restart in time.
    """
    if pod_uid:
        for pod in pods:
            if pod.uid == pod_uid:
                return Match(pod, _container(pod, restarts, crash_time), "cgroup")
    if hostname:
        named = [pod for pod in pods if pod.name == hostname]
        if len(named) == 1:
            return Match(named[0], _container(named[0], restarts, crash_time), "hostname")
    if crash_time is not None:
        by_uid = {pod.uid: pod for pod in pods if pod.instance}
        near = [
            r for r in restarts
            if r.pod_uid in by_uid and r.finished_at is not None
            and abs((r.finished_at - crash_time).total_seconds()) <= window
        ]
        if near:
            best = min(near, key=lambda r: abs((r.finished_at - crash_time).total_seconds()))  # type: ignore[operator]
            return Match(by_uid[best.pod_uid], best.container, "restart-time")
    return None
