"""Discovery of the seeded Helm and operator instances through the fake API server."""

from __future__ import annotations

import pytest

from coredumps.config import DiscoveryConfig
from coredumps.kube import Instance, KubeClient, KubeUnavailableError, discover_instances, group_instances
from tests.kube.conftest import HELM_POD, OPERATOR_POD
from tests.kubefake import FakeKubeServer

pytestmark = pytest.mark.timeout(60)


def by_name(instances: list[Instance]) -> dict[str, Instance]:
    return {instance.name: instance for instance in instances}


def test_discovers_the_helm_release_and_the_operator_instance(seeded_server: FakeKubeServer,
                                                              kube_client: KubeClient) -> None:
    found = by_name(discover_instances(kube_client, DiscoveryConfig()))
    assert sorted(found) == ["my-milvus", "my-release"]

    helm = found["my-release"]
    assert (helm.namespace, helm.deployment_type, helm.release_name) == ("default", "helm", "my-release")
    assert helm.pod_names == (HELM_POD,)
    assert helm.status == "crash-looping"
    assert helm.labels == {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "my-release",
                           "component": "standalone"}

    operator = found["my-milvus"]
    assert (operator.namespace, operator.deployment_type, operator.release_name) == \
        ("milvus-system", "operator", None)
    assert operator.pod_names == (OPERATOR_POD,)
    assert operator.status == "running"
    assert operator.labels["milvus.io/operator-version"] == "1.0.0"
    assert operator.pod_count == 1


def test_only_configured_namespaces_are_searched(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    found = discover_instances(kube_client, DiscoveryConfig(namespaces=["milvus-system", "absent"]))
    assert [(i.namespace, i.name) for i in found] == [("milvus-system", "my-milvus")]
    paths = {r.path for r in seeded_server.requests}
    assert "/api/v1/namespaces/default/pods" not in paths
    assert "/api/v1/pods" not in paths


def test_a_milvus_resource_without_pods_is_still_an_instance(seeded_server: FakeKubeServer,
                                                             kube_client: KubeClient) -> None:
    seeded_server.delete("pods", "milvus-system", OPERATOR_POD)
    [instance] = discover_instances(kube_client, DiscoveryConfig(namespaces=["milvus-system"]))
    assert (instance.name, instance.deployment_type, instance.pod_names, instance.status) == \
        ("my-milvus", "operator", (), "no-pods")


def test_without_the_operator_crd_pods_are_classified_by_labels(seeded_server: FakeKubeServer,
                                                                kube_client: KubeClient) -> None:
    seeded_server.fail_next(1, status=404, path_prefix="/apis/milvus.io/")
    cfg = DiscoveryConfig(namespaces=["milvus-system"], operator_labels=["app.kubernetes.io/component"])
    [instance] = discover_instances(kube_client, cfg)
    assert (instance.name, instance.deployment_type, instance.pod_names) == ("my-milvus", "operator", (OPERATOR_POD,))


def test_an_unreachable_api_server_fails_discovery(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    seeded_server.fail_next(1, status=503, path_prefix="/api/v1/namespaces/default/pods")
    with pytest.raises(KubeUnavailableError):
        discover_instances(kube_client, DiscoveryConfig())


def test_instances_of_a_namespace_group_their_pods() -> None:
    def pod(name: str, phase: str, **labels: str) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "ns", "labels": labels}, "status": {"phase": phase}}

    pods = [
        pod("q-1", "Running", **{"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "a",
                                 "component": "querynode", "pod-template-hash": "1"}),
        pod("p-1", "Pending", **{"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "a",
                                 "component": "proxy", "pod-template-hash": "2"}),
        pod("b-1", "Failed", **{"app.kubernetes.io/managed-by": "milvus-operator", "app.kubernetes.io/instance": "b"}),
        pod("x-1", "Running", app="nginx"),
    ]
    found = by_name(group_instances("ns", pods, [], DiscoveryConfig()))
    assert sorted(found) == ["a", "b"]
    assert found["a"].pod_names == ("p-1", "q-1")
    assert found["a"].labels == {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "a"}
    assert found["a"].status == "pending"
    assert (found["b"].deployment_type, found["b"].status) == ("operator", "failed")
