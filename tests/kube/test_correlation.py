"""Which pod a core belongs to: the cgroup's pod UID first, a hostname only when one pod has it, then time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coredumps.correlation import PodView, RestartView, correlate

CRASH = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
A = PodView("ns-a", "rel-milvus-standalone-0", "uid-a", ("standalone",), "rel", "helm")
B = PodView("ns-b", "rel-milvus-standalone-0", "uid-b", ("standalone",), "rel", "helm")
OTHER = PodView("ns-a", "rel-milvus-querynode-0", "uid-q", ("querynode",), "rel", "helm")


def test_the_pod_uid_decides_between_two_pods_of_one_name() -> None:
    found = correlate([A, B, OTHER], [], hostname="rel-milvus-standalone-0", pod_uid="uid-b", crash_time=CRASH)
    assert found is not None and (found.pod, found.rule) == (B, "cgroup")


def test_a_hostname_two_pods_share_is_no_answer_by_itself() -> None:
    assert correlate([A, B], [], hostname="rel-milvus-standalone-0", pod_uid=None, crash_time=CRASH) is None
    near = [RestartView("uid-b", "standalone", CRASH + timedelta(seconds=5))]
    found = correlate([A, B], near, hostname="rel-milvus-standalone-0", pod_uid=None, crash_time=CRASH)
    assert found is not None and (found.pod, found.rule) == (B, "restart-time")


def test_a_hostname_one_pod_has_is_that_pod() -> None:
    found = correlate([A, OTHER], [], hostname="rel-milvus-querynode-0", pod_uid=None, crash_time=CRASH)
    assert found is not None and (found.pod, found.container, found.rule) == (OTHER, "querynode", "hostname")
