"""Who is scheduled, and when a due cleanup stands down, as tables over plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coredumps.cleanup import (
    LiveInstance,
    RestartTally,
    Workload,
    action_refusal,
    duration,
    namespace_refusal,
    over_limit,
    propose,
    scale_order,
    stand_down,
)
from coredumps.config import CleanerConfig

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def cfg(**values: Any) -> CleanerConfig:
    return CleanerConfig(**{"namespaces": ["default"], "max_restart_count": 3, **values})


def pod(name: str = "p", *, labels: dict[str, str] | None = None, waiting: str | None = None,
        finished_minutes_ago: float | None = None, ready: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "c", "ready": ready, "restartCount": 1}
    if waiting:
        status["state"] = {"waiting": {"reason": waiting}}
    if finished_minutes_ago is not None:
        finished = NOW - timedelta(minutes=finished_minutes_ago)
        status["lastState"] = {"terminated": {"finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    return {"metadata": {"name": name, "labels": labels or {}}, "status": {"containerStatuses": [status]}}


def live(*pods: dict[str, Any], workloads: tuple[Workload, ...] = (), milvus: dict[str, Any] | None = None) -> LiveInstance:
    return LiveInstance("default", "inst", tuple(pods), workloads, milvus)


def tally(count: int, namespace: str = "default") -> RestartTally:
    return RestartTally(namespace, "inst", count, NOW - timedelta(minutes=30), NOW)


@pytest.mark.parametrize(("namespaces", "namespace", "expected"), [
    (["default"], "default", None),
    ([], "default", "cleaner.namespaces is empty, so cleanup acts nowhere; add default to it to allow cleanup there"),
    (["prod"], "default", "namespace default is not in cleaner.namespaces; add it to allow cleanup there"),
])
def test_the_namespace_allow_list(namespaces: list[str], namespace: str, expected: str | None) -> None:
    assert namespace_refusal(cfg(namespaces=namespaces), namespace) == expected


def test_instances_at_the_limit_are_scheduled_unless_their_namespace_is_not_allowed() -> None:
    c = cfg(cleanup_delay=300, action="scale-to-zero")
    assert [t.count for t in over_limit([tally(2), tally(3), tally(9)], c)] == [3, 9]
    scheduled = propose(tally(3), "k", NOW, c)
    assert scheduled.decision == "scheduled"
    assert scheduled.reason == "3 restarts within 1h (limit 3); scale-to-zero in 5m unless cancelled"
    assert propose(tally(3, "kube-system"), "k", NOW, c).decision == "skipped"


WORKLOADS = (Workload("statefulset", "etcd", 1), Workload("deployment", "milvus", 2), Workload("deployment", "idle", 0))


@pytest.mark.parametrize(("instance", "restarts", "expected"), [
    (live(pod(waiting="CrashLoopBackOff")), 3, None),
    (live(pod(finished_minutes_ago=5)), 5, None),
    (live(), 3, "default/inst no longer exists; it was deleted during the delay"),
    (live(pod(waiting="CrashLoopBackOff", labels={"coredump-agent/protect": "true"})), 3,
     'default/inst is protected: pod p is labelled coredump-agent/protect="true"'),
    (live(pod(waiting="CrashLoopBackOff"), milvus={"metadata": {"labels": {"coredump-agent/protect": "True"}}}), 3,
     'default/inst is protected: Milvus inst is labelled coredump-agent/protect="true"'),
    (live(pod(waiting="CrashLoopBackOff", labels={"coredump-agent/protect": "false"})), 3, None),
    (live(pod(waiting="CrashLoopBackOff")), 2,
     "default/inst restarted 2 times within 1h, below cleaner.maxRestartCount 3"),
    (live(pod(finished_minutes_ago=5, ready=True)), 3, "no container of default/inst is crash-looping any more"),
    (live(pod(finished_minutes_ago=90)), 3, "no container of default/inst is crash-looping any more"),
])
def test_a_due_cleanup_stands_down_when_the_live_state_says_so(instance: LiveInstance, restarts: int,
                                                                 expected: str | None) -> None:
    assert stand_down(instance, restarts, cfg(), NOW) == expected


@pytest.mark.parametrize(("action", "instance", "release", "refused"), [
    ("scale-to-zero", live(pod(), workloads=WORKLOADS), None, False),
    ("scale-to-zero", live(pod(), workloads=(Workload("deployment", "idle", 0),)), None, True),
    ("delete-cr", live(pod(), milvus={"metadata": {}}), None, False),
    ("delete-cr", live(pod()), None, True),
    ("helm-uninstall", live(pod()), "inst", False),
    ("helm-uninstall", live(pod()), None, True),
    ("helm-uninstall", live(pod()), "another-release", True),  # not this instance's own release
    ("dry-run", live(pod()), None, False),
])
def test_an_action_that_cannot_apply_is_refused(action: str, instance: LiveInstance, release: str | None,
                                                refused: bool) -> None:
    assert (action_refusal(action, instance, release) is not None) is refused


def test_deployments_are_scaled_down_before_statefulsets_and_idle_ones_left_alone() -> None:
    assert [w.name for w in scale_order(live(workloads=WORKLOADS))] == ["milvus", "etcd"]


def test_helm_release_comes_from_the_release_annotation_then_labels() -> None:
    annotated = Workload("deployment", "d", 1, annotations={"meta.helm.sh/release-name": "rel-a"})
    labelled = Workload("deployment", "d", 1, labels={"app.kubernetes.io/instance": "rel-b"})
    assert live(workloads=(labelled, annotated)).helm_release() == "rel-a"
    assert live(workloads=(labelled,)).helm_release() == "rel-b"
    assert live(pod(labels={"release": "rel-c"})).helm_release() == "rel-c"
    assert live(pod()).helm_release() is None


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (90, "1m30s"), (3600, "1h"), (90061, "1d1h1m1s")])
def test_durations_read_like_the_config(seconds: float, text: str) -> None:
    assert duration(seconds) == text
