"""The API behaviour the project relies on, checked on the fake and (with KUBECONFIG) a real cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from coredumps.kube import KubeConflictError, KubeNotFoundError, WatchExpired
from tests.kube.conftest import WAIT, Cluster, pod_body

pytestmark = pytest.mark.timeout(60)

PODS = {
    "a": ("node-a", {"app": "milvus", "tier": "db"}),
    "b": ("node-a", {"app": "milvus", "tier": "cache"}),
    "c": ("node-b", {"app": "web", "tier": "front"}),
    "d": ("node-b", {}),
}


@pytest.fixture(scope="module")
def labelled(cluster: Cluster, module_namespace: str) -> str:
    for name, (node, labels) in PODS.items():
        cluster.core.create_namespaced_pod(module_namespace, pod_body(name, f"kubefake-{node}", labels))
    return module_namespace


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=milvus", "ab"),
    ("app==milvus", "ab"),
    ("app!=milvus", "cd"),
    ("tier in (db,front)", "ac"),
    ("tier notin (db)", "bcd"),
    ("tier", "abc"),
    ("!tier", "d"),
    ("app=milvus,tier!=db", "b"),
])
def test_label_selectors_filter_lists(cluster: Cluster, labelled: str, selector: str, expected: str) -> None:
    pods, _ = cluster.client.list_pods(labelled, label_selector=selector)
    assert sorted(p["metadata"]["name"] for p in pods) == list(expected)


@pytest.mark.parametrize(("selector", "expected"), [
    ("spec.nodeName=kubefake-node-a", "ab"),
    ("spec.nodeName!=kubefake-node-a", "cd"),
    ("metadata.name=c", "c"),
])
def test_field_selectors_filter_lists(cluster: Cluster, labelled: str, selector: str, expected: str) -> None:
    pods, _ = cluster.client.list_pods(labelled, field_selector=selector)
    assert sorted(p["metadata"]["name"] for p in pods) == list(expected)


def test_all_namespaces_list_narrowed_by_namespace_field(cluster: Cluster, labelled: str) -> None:
    pods, version = cluster.client.list_pods(None, field_selector=f"metadata.namespace={labelled}")
    assert sorted(p["metadata"]["name"] for p in pods) == list("abcd")
    assert int(version) > 0


def test_create_answers_201_with_uid_timestamp_and_version(cluster: Cluster, namespace: str) -> None:
    response = cluster.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s1"}, "stringData": {"k": "v"}}, _preload_content=False)
    body = json.loads(response.data)
    assert response.status == 201
    assert body["metadata"]["uid"]
    assert body["metadata"]["creationTimestamp"].endswith("Z")
    assert int(body["metadata"]["resourceVersion"]) > 0


def test_duplicate_create_is_409_already_exists(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as caught:
        cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "dup"}})
    status = json.loads(caught.value.body)
    assert (caught.value.status, status["kind"], status["reason"]) == (409, "Status", "AlreadyExists")


def test_missing_object_is_404_status_and_kube_not_found(cluster: Cluster, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        cluster.core.read_namespaced_pod("missing", namespace)
    status = json.loads(caught.value.body)
    assert status["kind"] == "Status"
    assert status["code"] == 404
    assert status["reason"] == "NotFound"
    assert status["details"] == {"name": "missing", "kind": "pods"}
    with pytest.raises(KubeNotFoundError, match='pods "missing" not found'):
        cluster.client.get_pod(namespace, "missing")


def test_replace_with_a_stale_version_is_409_conflict(cluster: Cluster, namespace: str) -> None:
    secret = cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "cas"}})
    cluster.core.patch_namespaced_secret("cas", namespace, {"metadata": {"labels": {"x": "1"}}})
    stale = {"metadata": {"name": "cas", "resourceVersion": secret.metadata.resource_version}}
    with pytest.raises(ApiException) as caught:
        cluster.core.replace_namespaced_secret("cas", namespace, stale)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (409, "Conflict")


def test_every_write_raises_the_resource_version(cluster: Cluster, namespace: str) -> None:
    _, listed = cluster.client.list_pods(namespace)
    created = cluster.core.create_namespaced_pod(namespace, pod_body("rv", "kubefake-node-a"))
    patched = cluster.client.patch_annotations("pod", namespace, "rv", {"note": "x"})
    _, relisted = cluster.client.list_pods(namespace)
    versions = [int(listed), int(created.metadata.resource_version),
                int(patched["metadata"]["resourceVersion"]), int(relisted)]
    assert versions[0] < versions[1] < versions[2] <= versions[3]
    assert patched["metadata"]["annotations"] == {"note": "x"}


def test_json_patch_edits_in_place(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_pod(namespace, pod_body("jp", "kubefake-node-a", {"keep": "1", "drop": "1"}))
    patched = cluster.core.patch_namespaced_pod("jp", namespace, [
        {"op": "remove", "path": "/metadata/labels/drop"},
        {"op": "add", "path": "/metadata/labels/new", "value": "2"},
    ])
    assert patched.metadata.labels == {"keep": "1", "new": "2"}


def test_watch_delivers_added_modified_deleted_in_order(cluster: Cluster, namespace: str) -> None:
    _, since = cluster.client.list_pods(namespace)
    cluster.core.create_namespaced_pod(namespace, pod_body("w", "kubefake-node-a"))
    cluster.client.patch_annotations("pod", namespace, "w", {"step": "2"})
    cluster.core.delete_namespaced_pod("w", namespace, grace_period_seconds=0)
    events: list[tuple[str, dict[str, Any]]] = []
    with cluster.client.watch_pods(namespace, resource_version=since, timeout_seconds=int(WAIT)) as stream:
        for kind, pod in stream:
            events.append((kind, pod))
            if kind == "DELETED":
                break
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "ADDED" and kinds[-1] == "DELETED"
    assert any(pod["metadata"].get("annotations", {}).get("step") == "2" for kind, pod in events if kind == "MODIFIED")
    versions = [int(pod["metadata"]["resourceVersion"]) for _, pod in events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_watch_from_an_expired_version_raises_watch_expired(cluster: Cluster, namespace: str) -> None:
    _, since = cluster.client.list_pods(namespace)
    cluster.core.create_namespaced_pod(namespace, pod_body("x", "kubefake-node-a"))
    if cluster.fake is not None:
        cluster.fake.compact()
    else:
        since = "1"
    with pytest.raises(WatchExpired) as caught, cluster.client.watch_pods(
            namespace, resource_version=since, timeout_seconds=int(WAIT)) as stream:
        list(stream)
    assert caught.value.status == 410


def test_scale_subresource_reads_and_patches_replicas(cluster: Cluster, namespace: str) -> None:
    labels = {"app": "scaled"}
    cluster.apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "scaled", "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}},
    })
    assert cluster.client.read_scale("deployment", namespace, "scaled") == 0
    assert cluster.client.patch_scale("deployment", namespace, "scaled", 2) == 2
    assert cluster.client.read_scale("deployment", namespace, "scaled") == 2
    assert cluster.client.list_deployments(namespace, "app=scaled")[0]["spec"]["replicas"] == 2
    assert cluster.client.patch_scale("deployment", namespace, "scaled", 0) == 0


def test_delete_of_a_missing_milvus_resource_is_not_found(cluster: Cluster, namespace: str) -> None:
    cluster.require_fake()
    with pytest.raises(KubeNotFoundError, match=r'milvuses\.milvus\.io "gone" not found'):
        cluster.client.delete_milvus_cr(namespace, "gone")


def test_conflict_maps_to_kube_conflict_error(cluster: Cluster, namespace: str) -> None:
    fake = cluster.require_fake()
    fake.fail_next(1, status=409, path_prefix=f"/api/v1/namespaces/{namespace}/pods/")
    cluster.core.create_namespaced_pod(namespace, pod_body("c", "kubefake-node-a"))
    with pytest.raises(KubeConflictError):
        cluster.client.patch_annotations("pod", namespace, "c", {"a": "b"})
