"""KubeClient over HTTP against the fake: its calls, its errors, its watch stream, and connect()."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coredumps.errors import ConfigError, PermanentError, TransientError, retryable
from coredumps.kube import (
    KubeClient,
    KubeConflictError,
    KubeNotFoundError,
    KubeRejectedError,
    KubeUnavailableError,
    WatchExpired,
    connect,
)
from tests.kube.conftest import HELM_POD, WAIT
from tests.kubefake import FakeKubeServer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("status", "error"), [
    (500, KubeUnavailableError),
    (503, KubeUnavailableError),
    (429, KubeUnavailableError),
    (504, KubeUnavailableError),
    (400, KubeRejectedError),
    (401, KubeRejectedError),
    (403, KubeRejectedError),
    (404, KubeNotFoundError),
    (409, KubeConflictError),
    (410, WatchExpired),
])
def test_http_failures_map_onto_the_error_tree(kube_server: FakeKubeServer, kube_client: KubeClient,
                                               status: int, error: type[Exception]) -> None:
    kube_server.fail_next(1, status=status)
    with pytest.raises(error) as caught:
        kube_client.list_pods("default")
    assert type(caught.value) is error
    assert retryable(caught.value) == (status >= 429 and status != 410 and status not in (400, 401, 403, 404, 409))
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert "list pods in default" in str(caught.value)


def test_forbidden_says_to_check_rbac(kube_server: FakeKubeServer, kube_client: KubeClient) -> None:
    kube_server.fail_next(1, status=403)
    with pytest.raises(KubeRejectedError, match="RBAC"):
        kube_client.list_milvus_crs("default")


def test_injected_500_fails_only_the_next_matching_request(kube_server: FakeKubeServer,
                                                            kube_client: KubeClient) -> None:
    kube_server.fail_next(2, status=500, path_prefix="/api/v1/namespaces/default/pods")
    kube_client.list_milvus_crs("default")
    for _ in range(2):
        with pytest.raises(KubeUnavailableError, match="500"):
            kube_client.list_pods("default")
    assert kube_client.list_pods("default") == ([], str(kube_server.resource_version))
    assert [r.path for r in kube_server.requests].count("/api/v1/namespaces/default/pods") == 3


def test_stopped_server_is_unavailable_and_transient(kube_server: FakeKubeServer, kube_client: KubeClient) -> None:
    kube_server.stop()
    with pytest.raises(KubeUnavailableError) as caught:
        kube_client.list_pods()
    assert isinstance(caught.value, TransientError)
    assert caught.value.__cause__ is not None
    kube_server.start()
    assert kube_client.list_pods()[0] == []


def test_rejections_are_permanent_errors() -> None:
    assert issubclass(KubeRejectedError, PermanentError)
    assert issubclass(KubeNotFoundError, KubeRejectedError)
    assert issubclass(KubeConflictError, KubeRejectedError)
    assert issubclass(KubeUnavailableError, TransientError)


def test_previous_log_tail(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    seeded_server.set_log("default", HELM_POD, "standalone", "one\ntwo\npanic: boom\n", previous=True)
    seeded_server.set_log("default", HELM_POD, "standalone", "starting\n")
    assert kube_client.read_pod_log("default", HELM_POD, "standalone", tail_lines=2) == "two\npanic: boom\n"
    assert kube_client.read_pod_log("default", HELM_POD, "standalone", previous=False) == "starting\n"
    request = seeded_server.requests[-1]
    assert request.path.endswith(f"/pods/{HELM_POD}/log")
    assert request.query["container"] == "standalone"


def test_missing_previous_log_is_rejected(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    with pytest.raises(KubeRejectedError, match="previous terminated container"):
        kube_client.read_pod_log("default", "web-6b7f9c5d8-kx7tz", "nginx")


def test_helm_release_secrets_by_release(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    secrets = kube_client.list_helm_release_secrets("default", "my-release")
    assert [s["metadata"]["name"] for s in secrets] == ["sh.helm.release.v1.my-release.v1"]
    assert secrets[0]["type"] == "helm.sh/release.v1"
    assert kube_client.list_helm_release_secrets("default", "other") == []


def test_milvus_resource_get_annotate_delete(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    [cr] = kube_client.list_milvus_crs("milvus-system")
    assert (cr["apiVersion"], cr["kind"], cr["metadata"]["name"]) == ("milvus.io/v1beta1", "Milvus", "my-milvus")
    annotated = kube_client.patch_annotations("milvus", "milvus-system", "my-milvus", {"coredump-agent/cleanup": "due"})
    assert annotated["metadata"]["annotations"]["coredump-agent/cleanup"] == "due"
    assert seeded_server.requests[-1].content_type == "application/merge-patch+json"
    removed = kube_client.patch_annotations("milvus", "milvus-system", "my-milvus", {"coredump-agent/cleanup": None})
    assert "coredump-agent/cleanup" not in removed["metadata"]["annotations"]
    kube_client.delete_milvus_cr("milvus-system", "my-milvus")
    with pytest.raises(KubeNotFoundError):
        kube_client.get_milvus_cr("milvus-system", "my-milvus")


def test_statefulset_scale_and_selector_lists(seeded_server: FakeKubeServer, kube_client: KubeClient) -> None:
    [sts] = kube_client.list_statefulsets("default", "app.kubernetes.io/instance=my-release")
    assert sts["metadata"]["name"] == "my-release-etcd"
    assert kube_client.patch_scale("statefulset", "default", "my-release-etcd", 0) == 0
    assert kube_client.read_scale("statefulset", "default", "my-release-etcd") == 0
    assert kube_client.list_deployments("default", "helm.sh/chart=milvus-4.1.0")[0]["metadata"]["name"] \
        == "my-release-milvus-standalone"


def test_close_unblocks_a_thread_reading_a_watch(kube_client: KubeClient) -> None:
    stream = kube_client.watch_pods("default", timeout_seconds=int(WAIT) * 6)
    done = threading.Event()

    def read() -> None:
        list(stream)
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stream.close()
    assert done.wait(WAIT)


def test_watch_cut_by_a_server_stop_is_unavailable(kube_server: FakeKubeServer, kube_client: KubeClient) -> None:
    stream = kube_client.watch_pods("default", timeout_seconds=int(WAIT) * 6)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            list(stream)
        except KubeUnavailableError as exc:
            failures.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    kube_server.stop()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert len(failures) == 1


def test_watch_without_a_version_starts_with_the_current_pods(seeded_server: FakeKubeServer,
                                                               kube_client: KubeClient) -> None:
    with kube_client.watch_pods(field_selector="spec.nodeName=worker-2", timeout_seconds=1) as stream:
        events = list(stream)
    assert [(kind, pod["metadata"]["name"]) for kind, pod in events] == [("ADDED", "coredns-76f75df574-9zq4w")]
    assert stream.resource_version == events[0][1]["metadata"]["resourceVersion"]


def test_watch_reports_a_pod_leaving_the_selector_as_deleted(seeded_server: FakeKubeServer,
                                                             kube_client: KubeClient) -> None:
    _, since = kube_client.list_pods("default", label_selector="app=web")
    seeded_server.update("pods", "default", "web-6b7f9c5d8-kx7tz", {"metadata": {"labels": {"app": "api"}}})
    with kube_client.watch_pods("default", label_selector="app=web", resource_version=since,
                                timeout_seconds=1) as stream:
        events = list(stream)
    assert [(kind, pod["metadata"]["labels"]["app"]) for kind, pod in events] == [("DELETED", "web")]


def test_connect_without_any_configuration_is_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert connect() is None


def test_connect_follows_kubeconfig_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        seeded_server: FakeKubeServer) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(seeded_server.write_kubeconfig(tmp_path / "config")))
    client = connect(request_timeout=5.0)
    assert client is not None
    pods, _ = client.list_pods("milvus-system")
    assert [p["metadata"]["name"] for p in pods] == ["my-milvus-milvus-standalone-7d9c8b6f4-q8m2p"]
    client.close()


@pytest.mark.parametrize("content", [None, "not: [valid", '{"apiVersion": "v1", "kind": "Config"}'])
def test_connect_with_an_unusable_kubeconfig_is_a_config_error(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=str(path)):
        connect(str(path))


def test_versions_older_than_the_kept_history_expire() -> None:
    with FakeKubeServer(history=2) as server:
        client = KubeClient.for_url(server.url)
        _, since = client.list_pods("default")
        for name in ("a", "b", "c"):
            server.seed([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}])
        with pytest.raises(WatchExpired, match="too old resource version"), \
                client.watch_pods("default", resource_version=since, timeout_seconds=1) as stream:
            list(stream)
        client.close()
