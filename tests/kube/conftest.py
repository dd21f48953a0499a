"""Fixtures: the fake API server over HTTP, the project's client on it, and the contract
fixture ``cluster``, whose ``real`` variant runs the same tests against ``$KUBECONFIG``."""

from __future__ import annotations

import os
import queue
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from coredumps.kube import KubeClient, Restart, connect
from tests.kubefake import FakeKubeServer, load_seed

WAIT = 10.0
"""Seconds any single wait for an event may take before the test fails."""

HELM_POD = "my-release-milvus-standalone-6c8d9f7b5-x2x9k"
OPERATOR_POD = "my-milvus-milvus-standalone-7d9c8b6f4-q8m2p"
NODE = "worker-1"


@pytest.fixture
def kube_server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server


@pytest.fixture
def seeded_server(kube_server: FakeKubeServer) -> FakeKubeServer:
    """The fake holding the seed: a crash-looping Helm release, an operator instance, other pods."""
    kube_server.seed(load_seed())
    return kube_server


@pytest.fixture
def kube_client(kube_server: FakeKubeServer) -> Iterator[KubeClient]:
    client = KubeClient.for_url(kube_server.url, request_timeout=WAIT, connect_timeout=2.0)
    yield client
    client.close()


@dataclass
class Cluster:
    """One API server the contract tests run against: the fake, or a real cluster."""

    kind: str
    client: KubeClient
    fake: FakeKubeServer | None

    @property
    def core(self) -> Any:
        return k8s.CoreV1Api(self.client.api_client)

    @property
    def apps(self) -> Any:
        return k8s.AppsV1Api(self.client.api_client)

    def require_fake(self) -> FakeKubeServer:
        if self.fake is None:
            pytest.skip("uses a test hook of the fake API server")
        return self.fake


@pytest.fixture(scope="module", params=[
    "fake",
    pytest.param("real", marks=[
        pytest.mark.e2e,
        pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real cluster: set KUBECONFIG to run"),
    ]),
])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if request.param == "fake":
        with FakeKubeServer() as server:
            client = KubeClient(server.api_client(), request_timeout=WAIT, connect_timeout=2.0)
            yield Cluster("fake", client, server)
            client.close()
        return
    real = connect()
    assert real is not None, "KUBECONFIG is set but names no usable cluster"
    yield Cluster("real", real, None)
    real.close()


@pytest.fixture(scope="module")
def module_namespace(cluster: Cluster) -> Iterator[str]:
    yield from _namespace(cluster)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted afterwards."""
    yield from _namespace(cluster)


def _namespace(cluster: Cluster) -> Iterator[str]:
    name = f"coredumps-test-{secrets.token_hex(4)}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    if cluster.fake is None:
        _wait_for_default_service_account(cluster, name)
    yield name
    cluster.core.delete_namespace(name)


def _wait_for_default_service_account(cluster: Cluster, namespace: str) -> None:
    """Pods are refused until the namespace's default ServiceAccount exists."""
    stream = k8s_watch.Watch()
    for event in stream.stream(cluster.core.list_namespaced_service_account, namespace, timeout_seconds=30):
        if event["object"].metadata.name == "default":
            stream.stop()
            return
    pytest.fail(f"the default ServiceAccount of {namespace} did not appear")


def pod_body(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal pod bound to ``node``; on a real cluster it stays Pending on a made-up node."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}],
                 "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0},
    }


class Recorder:
    """Collects a PodWatcher's callbacks in queues, for waiting with a timeout."""

    def __init__(self) -> None:
        self.restarts: queue.Queue[Restart] = queue.Queue()
        self.changes: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.syncs: queue.Queue[int] = queue.Queue()

    def on_restart(self, restart: Restart, pod: Any) -> None:
        self.restarts.put(restart)

    def on_change(self, kind: str, pod: Any) -> None:
        self.changes.put((kind, dict(pod)))

    def on_sync(self, count: int) -> None:
        self.syncs.put(count)

    def next_restart(self) -> Restart:
        return self.restarts.get(timeout=WAIT)

    def next_sync(self) -> int:
        return self.syncs.get(timeout=WAIT)

    def wait_change(self, predicate: Callable[[str, dict[str, Any]], bool]) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + WAIT
        while True:
            kind, pod = self.changes.get(timeout=max(0.0, deadline - time.monotonic()))
            if predicate(kind, pod):
                return kind, pod

    def flush(self, server: FakeKubeServer, namespace: str, pod: str) -> list[Restart]:
        """Restarts reported so far: a marker change to ``pod`` is seen after every earlier report."""
        token = secrets.token_hex(4)
        server.update("pods", namespace, pod, {"metadata": {"annotations": {"test/marker": token}}})
        self.wait_change(lambda _, p: (p["metadata"].get("annotations") or {}).get("test/marker") == token)
        found = []
        while not self.restarts.empty():
            found.append(self.restarts.get_nowait())
        return found
