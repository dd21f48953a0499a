"""The instance as the fake API server shows it, and scale-to-zero's steps, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coredumps.cleanup import ORIGINAL_REPLICAS, NothingToRestoreError, read_instance
from coredumps.cleanup.scaling import forget_original, keep_original, restore_order, set_replicas
from coredumps.kube import KubeClient, KubeNotFoundError, connect
from tests.cleanup.conftest import HELM, OPERATOR
from tests.kubefake import FakeKubeServer


@pytest.fixture
def client(kube: FakeKubeServer) -> Iterator[KubeClient]:
    found = connect()
    assert found is not None
    yield found
    found.close()


def test_a_helm_instance_is_found_by_its_labels(kube: FakeKubeServer, client: KubeClient) -> None:
    live = read_instance(client, *HELM)
    assert live.exists and live.milvus is None
    assert sorted(live.to_dict()["pods"]) == ["my-release-etcd-0", "my-release-milvus-standalone-6c8d9f7b5-x2x9k"]
    assert {(w.kind, w.name, w.replicas) for w in live.workloads} == {
        ("deployment", "my-release-milvus-standalone", 1), ("statefulset", "my-release-etcd", 1)}
    assert live.helm_release() == "my-release"
    selectors = {r.query.get("labelSelector") for r in kube.requests if r.path.endswith("/pods")}
    assert "app.kubernetes.io/instance=my-release" in selectors and "release=my-release" in selectors


def test_an_operator_instance_has_its_milvus_resource(client: KubeClient) -> None:
    live = read_instance(client, *OPERATOR)
    assert live.milvus is not None and live.milvus["metadata"]["name"] == "my-milvus"
    assert [w.name for w in live.workloads] == ["my-milvus-milvus-standalone"]


def test_an_unknown_instance_does_not_exist(client: KubeClient) -> None:
    assert not read_instance(client, "default", "nobody").exists


def test_scale_to_zero_keeps_the_count_and_restore_puts_it_back(kube: FakeKubeServer, client: KubeClient) -> None:
    kube.update("deployments", "default", "my-release-milvus-standalone", {"spec": {"replicas": 3}})
    live = read_instance(client, *HELM)
    for w in live.workloads:
        keep_original(client, "default", w)
        assert set_replicas(client, "default", w, 0) == 0
    deployment = kube.get("deployments", "default", "my-release-milvus-standalone")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0 and deployment["metadata"]["annotations"][ORIGINAL_REPLICAS] == "3"
    assert any(r.method == "PATCH" and r.path.endswith("/my-release-etcd/scale") for r in kube.requests)

    order = restore_order(read_instance(client, *HELM))
    assert [(w.kind, w.original_replicas) for w in order] == [("statefulset", 1), ("deployment", 3)]
    for w in order:
        set_replicas(client, "default", w, w.original_replicas or 0)
        forget_original(client, "default", w)
    deployment = kube.get("deployments", "default", "my-release-milvus-standalone")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3 and ORIGINAL_REPLICAS not in deployment["metadata"]["annotations"]
    with pytest.raises(NothingToRestoreError, match="nothing to restore"):
        restore_order(read_instance(client, *HELM))


def test_deleting_a_milvus_resource_twice_is_a_404(client: KubeClient) -> None:
    client.delete_milvus_cr(*OPERATOR)
    with pytest.raises(KubeNotFoundError):
        client.delete_milvus_cr(*OPERATOR)
    assert read_instance(client, *OPERATOR).milvus is None
