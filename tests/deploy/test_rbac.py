"""RBAC grants exactly what the code's Kubernetes calls need: derived from coredumps/kube/client.py."""

from __future__ import annotations

import ast
import importlib.util
import sys
from types import ModuleType

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import DEPLOY, OVERLAYS, build, find


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rbac_calls", REPO / "scripts" / "rbac_calls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rbac_calls", module)
    spec.loader.exec_module(module)
    return module


rbac = _load()
P = rbac.Permission


def _granted(objects: list[dict], name: str) -> set:  # type: ignore[type-arg]
    return rbac.permissions_of(find(objects, "ClusterRole", name)["rules"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cluster_roles_grant_exactly_the_calls_the_code_makes(overlay: str) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    derived = rbac.derive()
    granted = (_granted(objects, "coredump-agent-observe") | _granted(objects, "coredump-agent-act")
               | _granted(objects, "coredump-agent-viewer"))
    assert granted == derived, (
        f"missing: {sorted(derived - granted)}; not needed: {sorted(granted - derived)} "
        "(`.venv/bin/python scripts/rbac_calls.py` prints the rules)"
    )
    roles = [o["metadata"]["name"] for o in objects if o["kind"] in ("ClusterRole", "Role")]
    assert sorted(roles) == ["coredump-agent-act", "coredump-agent-observe", "coredump-agent-viewer"]


def test_only_reads_are_bound_cluster_wide_and_never_secrets() -> None:
    objects = build(DEPLOY / "overlays" / "production")
    observe = _granted(objects, "coredump-agent-observe")
    assert {p.verb for p in observe} <= rbac.READ_VERBS
    assert "secrets" not in {p.resource for p in observe}
    cluster_wide = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in cluster_wide] == ["coredump-agent-observe"]
    (viewer,) = [o for o in objects if o["kind"] == "RoleBinding"]
    assert viewer["roleRef"]["name"] == "coredump-agent-viewer" and viewer["metadata"]["namespace"] == "coredump-agent"
    assert "secrets" not in {p.resource for p in _granted(objects, "coredump-agent-viewer")}
    (binding,) = cluster_wide
    assert {(s["kind"], s["namespace"], s["name"]) for s in binding["subjects"]} == {
        ("ServiceAccount", "coredump-agent", "coredump-agent-sensor"),
        ("ServiceAccount", "coredump-agent", "coredump-agent-worker"),
    }


def test_the_derivation_sees_every_api_method_the_client_names() -> None:
    source = (REPO / "coredumps" / "kube" / "client.py").read_text()
    apis = rbac._api_attributes(ast.parse(source))
    named = {node.attr for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
             and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"
             and node.value.attr in apis}
    found = {call.method for call in rbac.calls(source)}
    assert named and found == named
    assert {"CoreV1Api", "AppsV1Api", "CustomObjectsApi"} <= set(apis.values())


SAMPLE = '''
from kubernetes import client as k8s
GROUP, VERSION, PLURAL = "example.io", "v1", "widgets"

class Client:
    def __init__(self, api):
        self._core = k8s.CoreV1Api(api)
        self._batch = k8s.BatchV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)

    def logs(self, ns, name):
        return self._call("logs", self._core.read_namespaced_pod_log, name, ns)

    def watch(self, ns):
        kwargs = {"watch": True}
        return self._core.list_namespaced_config_map(ns, **kwargs)

    def jobs(self, ns, name, body, replace):
        fn = self._batch.replace_namespaced_job if replace else self._batch.create_namespaced_job
        return self._call("job", fn, ns, body) if not replace else self._call("job", fn, name, ns, body)

    def drop(self, ns):
        self._call("drop", self._custom.delete_collection_namespaced_custom_object, GROUP, VERSION, ns, PLURAL)
        self._core.delete_namespaced_secret("s", ns)
'''


def test_the_derivation_maps_calls_to_groups_resources_and_verbs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    module = tmp_path / "client.py"
    module.write_text(SAMPLE)
    assert rbac.derive(module) == {
        P("", "pods/log", "get"),
        P("", "configmaps", "watch"),
        P("batch", "jobs", "update"),
        P("batch", "jobs", "create"),
        P("example.io", "widgets", "deletecollection"),
        P("", "secrets", "delete"),
    }
