"""Pure functions over pod dicts: instance, restarts, signals, panics, the pods row."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from coredumps.config import DiscoveryConfig
from coredumps.kube.pods import (
    crash_excerpt,
    instance_of,
    is_panic,
    last_restarts,
    parse_time,
    pod_info,
    restarts,
    signal_of,
)
from tests.kube.conftest import HELM_POD, OPERATOR_POD
from tests.kubefake import load_seed

SEED = {obj["metadata"]["name"]: obj for obj in load_seed() if obj["kind"] == "Pod"}


def pod(labels: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": namespace, "labels": labels}}


def bumped(base: dict[str, Any], container: str, *, exit_code: int = 139, signal: int | None = None,
           by: int = 1) -> dict[str, Any]:
    new = copy.deepcopy(base)
    for status in new["status"]["containerStatuses"]:
        if status["name"] == container:
            status["restartCount"] += by
            terminated = {"exitCode": exit_code, "reason": "Error", "finishedAt": "2024-05-02T09:00:00Z"}
            if signal is not None:
                terminated["signal"] = signal
            status["lastState"] = {"terminated": terminated}
    return new


@pytest.mark.parametrize(("labels", "namespace", "expected"), [
    ({"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "r1", "component": "proxy"}, "default",
     ("r1", "helm")),
    ({"helm.sh/chart": "milvus-4.2.1", "app.kubernetes.io/instance": "r2"}, "default", ("r2", "helm")),
    ({"app.kubernetes.io/managed-by": "milvus-operator", "app.kubernetes.io/instance": "m1"}, "default",
     ("m1", "operator")),
    ({"milvus.io/instance": "m2"}, "default", ("m2", "operator")),
    ({"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "crs-own"}, "ops", ("crs-own", "operator")),
    ({"app.kubernetes.io/name": "milvus", "release": "old-chart"}, "default", ("old-chart", "helm")),
    ({"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "r1"}, "default", None),
    ({"app.kubernetes.io/name": "milvus"}, "default", None),
    ({}, "default", None),
])
def test_instance_of_a_pod(labels: dict[str, str], namespace: str, expected: tuple[str, str] | None) -> None:
    found = instance_of(pod(labels, namespace), DiscoveryConfig(), operator_instances={("ops", "crs-own")})
    assert found == expected


def test_instance_labels_follow_the_config() -> None:
    cfg = DiscoveryConfig(helm_release_labels=["team=search"], operator_labels=["app.kubernetes.io/component"])
    assert instance_of(pod({"team": "search", "release": "r"}), cfg) == ("r", "helm")
    assert instance_of(pod({"app.kubernetes.io/component": "proxy", "app.kubernetes.io/instance": "m"}), cfg) \
        == ("m", "operator")
    assert instance_of(pod({"app.kubernetes.io/name": "milvus", "release": "r"}), cfg) is None


def test_seeded_pods_are_classified() -> None:
    cfg = DiscoveryConfig()
    assert instance_of(SEED[HELM_POD], cfg) == ("my-release", "helm")
    assert instance_of(SEED[OPERATOR_POD], cfg, operator_instances={("milvus-system", "my-milvus")}) \
        == ("my-milvus", "operator")
    assert instance_of(SEED["my-release-etcd-0"], cfg) is None
    assert instance_of(SEED["web-6b7f9c5d8-kx7tz"], cfg) is None


def test_a_rise_in_restart_count_is_one_restart() -> None:
    old = SEED[HELM_POD]
    [restart] = restarts(old, bumped(old, "standalone"))
    assert restart.namespace == "default"
    assert restart.pod_name == HELM_POD
    assert restart.pod_uid == old["metadata"]["uid"]
    assert restart.container == "standalone"
    assert restart.restart_count == 4
    assert (restart.exit_code, restart.reason, restart.signal) == (139, "Error", 11)
    assert restart.finished_at == datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
    assert restart.node_name == "worker-1"


@pytest.mark.parametrize(("old", "new", "counts"), [
    (None, "bumped", []),
    ("seed", "seed", []),
    ("bumped", "seed", []),
    ("seed", "bumped", [4]),
    ("seed", "bumped-twice", [5]),
    ({}, "seed", [3]),
    ("other-uid", "seed", [3]),
])
def test_restarts_between_two_views(old: Any, new: str, counts: list[int]) -> None:
    base = SEED[HELM_POD]
    views: dict[str, Any] = {
        "seed": base,
        "bumped": bumped(base, "standalone"),
        "bumped-twice": bumped(base, "standalone", by=2),
        "other-uid": {**base, "metadata": {**base["metadata"], "uid": "another"}},
    }
    before = views[old] if isinstance(old, str) else old
    assert [r.restart_count for r in restarts(before, views[new])] == counts


def test_only_the_container_that_restarted_is_reported() -> None:
    base = copy.deepcopy(SEED[HELM_POD])
    base["status"]["containerStatuses"].append({"name": "sidecar", "restartCount": 0, "state": {"running": {}}})
    found = restarts(base, bumped(base, "sidecar", exit_code=137))
    assert [(r.container, r.restart_count, r.signal) for r in found] == [("sidecar", 1, 9)]


@pytest.mark.parametrize(("exit_code", "signal", "expected"), [
    (139, None, 11),
    (134, None, 6),
    (137, None, 9),
    (136, None, 8),
    (139, 6, 6),
    (2, 11, 11),
    (0, None, None),
    (1, None, None),
    (128, None, None),
    (255, None, None),
    (None, None, None),
])
def test_signal_from_the_signal_field_or_exit_code(exit_code: int | None, signal: int | None,
                                                   expected: int | None) -> None:
    assert signal_of(exit_code, signal) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-02T08:06:11Z", datetime(2024, 5, 2, 8, 6, 11, tzinfo=UTC)),
    ("2024-05-02T10:06:11+02:00", datetime(2024, 5, 2, 8, 6, 11, tzinfo=UTC)),
    ("2024-05-02T08:06:11.123456Z", datetime(2024, 5, 2, 8, 6, 11, 123456, tzinfo=UTC)),
    ("", None),
    (None, None),
    ("yesterday", None),
])
def test_parse_api_timestamps(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(("log", "keywords", "expected"), [
    ("panic: runtime error: invalid memory address or nil pointer dereference\n", (), True),
    ("[INFO] ok\nfatal error: concurrent map writes\n", (), True),
    ("[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1c5e4a2]\n", (), True),
    ("SIGSEGV: segmentation violation\nPC=0x7f\n", (), True),
    ("terminate called after throwing an instance of 'std::runtime_error'\n", (), True),
    ("milvus: segcore.cpp:42: void f(): Assertion `ptr != nullptr' failed.\n", (), True),
    ('[2024/05/02 08:06:11.123 +00:00] [INFO] ["recovered from a panic earlier"]\n', (), False),
    ("[WARN] slow query\n", (), False),
    ("[2024/05/02] [FATAL] [\"failed to start\"]\n", ("fatal",), True),
    ("[2024/05/02] [FATAL] [\"failed to start\"]\n", ("", "oom"), False),
    ("", ("panic",), False),
    ("[WARN] a non-fatal error, retrying\n", ("fatal",), False),  # a keyword counts as a word of its own
    ("[INFO] fatalism is not a crash\n", ("fatal",), False),
])
def test_panic_in_a_log_tail(log: str, keywords: tuple[str, ...], expected: bool) -> None:
    assert is_panic(log, keywords) is expected


def test_the_excerpt_starts_at_the_crash_even_thousands_of_lines_up() -> None:
    goroutines = "".join(f"goroutine {n} [select]:\nmain.worker()\n\t/src/main.go:{n}\n" for n in range(1500))
    log = "[INFO] serving\n" * 100 + "fatal error: concurrent map writes\n\n" + goroutines
    excerpt = crash_excerpt(log)
    assert excerpt.startswith("[INFO] serving\n") and "fatal error: concurrent map writes" in excerpt[:400]
    assert len(excerpt) == 4000
    assert crash_excerpt("[INFO] ok\n" * 1000) == ("[INFO] ok\n" * 1000)[-4000:]  # no crash line: the end


def test_pod_info_of_a_crash_looping_pod() -> None:
    info = pod_info(SEED[HELM_POD])
    assert (info.namespace, info.name, info.node_name) == ("default", HELM_POD, "worker-1")
    assert info.containers == ("standalone",)
    assert info.restart_count == 3
    assert (info.phase, info.status_reason) == ("Running", "CrashLoopBackOff")
    assert info.last_restart_at == datetime(2024, 5, 2, 8, 6, 11, tzinfo=UTC)
    assert info.labels["app.kubernetes.io/instance"] == "my-release"


def test_pod_info_of_a_healthy_pod_has_no_reason() -> None:
    info = pod_info(SEED[OPERATOR_POD])
    assert (info.restart_count, info.status_reason, info.last_restart_at) == (0, None, None)


def test_last_restarts_recover_what_the_pod_already_shows() -> None:
    [restart] = last_restarts(SEED[HELM_POD])
    assert (restart.restart_count, restart.exit_code, restart.signal) == (3, 139, 11)
    assert last_restarts(SEED[OPERATOR_POD]) == []
