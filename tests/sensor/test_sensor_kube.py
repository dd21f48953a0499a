"""The sensor with Kubernetes: restarts become rows and events, cores are tied to their Milvus pod."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from coredumps.db import MilvusInstance, RestartEvent, make_engine, session_factory
from coredumps.db import Pod as PodRow
from tests.conftest import CoreFactory
from tests.kubefake import FakeKubeServer, load_seed
from tests.sensor.conftest import Node, wait_for

POD = "my-release-milvus-standalone-6c8d9f7b5-x2x9k"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeServer, Path]]:
    with FakeKubeServer() as server:
        server.seed(load_seed())
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")


def table(node: Node, model: type) -> list:  # type: ignore[type-arg]
    engine = make_engine(f"sqlite:///{node.data / 'coredump_agent.db'}")
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(model)))
    finally:
        engine.dispose()


def test_restarts_and_cores_are_tied_to_the_milvus_pod(
    tmp_path: Path, prefect_harness: str, cluster: tuple[FakeKubeServer, Path], crash_cores: CoreFactory
) -> None:
    server, kubeconfig = cluster
    node = Node(tmp_path / "k", prefect_harness, node_name="worker-1")
    node.sensor.env["KUBECONFIG"] = str(kubeconfig)
    try:
        node.sensor.start()
        wait_for(lambda: any(i.name == "my-release" for i in table(node, MilvusInstance)), 60, "the Helm instance")
        goroutines = "".join(f"goroutine {n} [select]:\nmain.worker()\n\t/src/main.go:{n}\n" for n in range(300))
        server.set_log("default", POD, "standalone", "panic: runtime error: index out of range\n\n" + goroutines,
                       previous=True)  # the panic line 900 lines from the end
        server.restart_container("default", POD, "standalone", exit_code=134, reason="Error")
        # The seeded pod's restart 3 happened before the sensor started: it is caught up on (exit 139); then 4.
        caught_up = wait_for(lambda: [e for e in table(node, RestartEvent) if e.restart_count == 3], 60, "restart 3")
        assert caught_up[0].exit_code == 139 and caught_up[0].pod_name == POD
        event = wait_for(lambda: [e for e in table(node, RestartEvent) if e.restart_count == 4], 60, "restart 4")[0]
        assert event.pod_name == POD and event.instance_name == "my-release" and event.node_name == "worker-1"
        assert event.exit_code == 134 and event.signal == 6 and event.is_panic
        assert "index out of range" in (event.log_excerpt or "")

        segv, _ = crash_cores("segv")
        core = node.watched / "core.milvus.0.0123456789abcdef0123456789abcdef.77.1764150000000000"
        temp = node.watched / ".#core.tmp"
        temp.write_bytes(segv.read_bytes())
        os.setxattr(temp, "user.coredump.hostname", POD.encode())
        temp.rename(core)
        row = wait_for(lambda: next(iter(node.finished_rows()), None), 120, "the processed core")
        assert row.pod_name == POD and row.pod_namespace == "default" and row.container_name == "standalone"
        assert row.instance_name == "my-release" and row.correlation_rule == "hostname"
        assert row.score_breakdown["pod_association"] == 1.0 and row.stored
        assert "/my-release/" in row.storage_location

        assert any(p.name == POD for p in table(node, PodRow))
        server.delete("pods", "default", POD)  # a deleted pod leaves the pods table; its restarts stay
        wait_for(lambda: not any(p.name == POD for p in table(node, PodRow)), 60, "the deleted pod's row to go")
        watched = [e.restart_count for e in table(node, RestartEvent) if e.pod_name == POD and e.reason != "coredump"]
        assert watched == [3, 4]
    finally:
        node.sensor.stop()
