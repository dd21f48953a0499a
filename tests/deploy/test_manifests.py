"""The Kubernetes manifests: they build, every object is a valid Kubernetes object, and they fit the code."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes import client as k8s

from coredump_agent.prefect_env import SERVER_DEFAULTS
from coredumps.config import load_config
from tests.conftest import REPO
from tests.deploy.conftest import (
    DEPLOY,
    OVERLAYS,
    Manifest,
    build,
    containers,
    find,
    load_all,
    named,
    pod_spec,
)

CONFIG = REPO / "configs" / "config.yaml"
KUSTOMIZATIONS = sorted(DEPLOY.rglob("kustomization.yaml"))
ALL_BUILDS = [DEPLOY / "overlays" / o for o in OVERLAYS] + [DEPLOY / "host-setup", DEPLOY / "test-crasher"]
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SECRET = "coredump-agent-secrets"
WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet", "Pod")
_API = k8s.ApiClient()


def _kustomization_entries(key: str) -> set[Path]:
    out: set[Path] = set()
    for path in KUSTOMIZATIONS:
        data = yaml.safe_load(path.read_text())
        for entry in data.get(key) or []:
            ref = entry if isinstance(entry, str) else entry.get("path")
            if ref:
                out.add((path.parent / ref).resolve())
    return out


def _resource_files() -> list[Path]:
    """Every manifest file a kustomization lists as a resource (folders excluded), and the Secret template."""
    files = {p for p in _kustomization_entries("resources") if p.is_file()}
    return sorted(files | {DEPLOY / "base" / "secret.template.yaml"})


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _model_name(obj: Manifest) -> str:
    version = obj["apiVersion"].rsplit("/", 1)[-1]
    return version[0].upper() + version[1:] + obj["kind"]


def round_trip(obj: Manifest) -> Manifest:
    """The object through the kubernetes client's model and back: a misspelt field or a wrong type is lost."""
    model = _API.deserialize(json.dumps(obj), _model_name(obj), "application/json")
    assert model is not None
    return dict(_prune(_API.sanitize_for_serialization(model)))


def _check_object(obj: Manifest, where: str) -> None:
    if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
        return
    assert hasattr(k8s, _model_name(obj)), f"{where}: no Kubernetes model for {obj.get('apiVersion')} {obj.get('kind')}"
    assert round_trip(obj) == _prune(json.loads(json.dumps(obj))), f"{where}: {obj['kind']} {obj['metadata']['name']}"


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) > 10
    for path in files:
        assert load_all(path.read_text()), f"{path} holds no YAML document"


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_manifest_file_deserializes_into_the_kubernetes_models(path: Path) -> None:
    for obj in load_all(path.read_text()):
        _check_object(obj, str(path.relative_to(REPO)))


@pytest.mark.parametrize("folder", ALL_BUILDS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_build_deserializes_into_the_kubernetes_models(folder: Path) -> None:
    objects = build(folder)
    assert objects
    for obj in objects:
        _check_object(obj, f"kubectl kustomize {folder.relative_to(REPO)}")


def test_the_optional_components_build_on_top_of_the_base(tmp_path: Path) -> None:
    components = sorted(p.parent for p in (DEPLOY / "components").glob("*/kustomization.yaml"))
    assert {c.name for c in components} >= {"servicemonitor", "helm-uninstall"}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(DEPLOY / "base", tmp_path)],
        "components": [os.path.relpath(c, tmp_path) for c in components],
    }))
    objects = build(tmp_path)
    for obj in objects:
        _check_object(obj, "base with every component")
    monitor = find(objects, "ServiceMonitor", "coredump-agent")
    metrics = find(objects, "Service", "coredump-agent-metrics")
    labels = metrics["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in metrics["spec"]["ports"]}
    assert not [o for o in build(DEPLOY / "base") if o["kind"] == "ServiceMonitor"], "the base must build without the CRD"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_configs_config_yaml(overlay: str) -> None:
    config_map = named(build(DEPLOY / "overlays" / overlay), "ConfigMap", "coredump-agent-config")
    assert config_map["data"]["config.yaml"] == CONFIG.read_text()


def _env(obj: Manifest, container: Manifest, objects: list[Manifest]) -> dict[str, Any]:
    """A container's environment: envFrom ConfigMaps resolved, then env entries (values or their sources)."""
    out: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
        out.update(config_map["data"])
    for entry in container.get("env", []):
        out[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_override_in_the_manifests_names_a_real_config_key(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    overrides: dict[str, str] = {}
    for obj in (o for o in objects if o["kind"] in WORKLOADS):
        for container in containers(obj):
            for name, value in _env(obj, container, objects).items():
                if name.startswith("COREDUMP_AGENT_") and "__" in name:
                    overrides[name] = value if isinstance(value, str) else "from-a-reference"
    assert "COREDUMP_AGENT_COLLECTOR__COREDUMPPATH" in overrides
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    cfg = load_config(CONFIG)
    assert cfg.collector.coredump_path == overrides["COREDUMP_AGENT_COLLECTOR__COREDUMPPATH"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sensor_runs_on_every_node_with_the_host_coredump_folder(overlay: str) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    sensor_ds = find(objects, "DaemonSet", "coredump-agent-sensor")
    spec = pod_spec(sensor_ds)
    (sensor,) = [c for c in spec["containers"] if c["name"] == "sensor"]
    env = _env(sensor_ds, sensor, objects)
    cfg = load_config(CONFIG)

    assert {"operator": "Exists"} in spec["tolerations"], "a toleration for every taint, so every node runs it"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["PREFECT_API_URL"]

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in sensor["volumeMounts"]}
    watched = mounts[env["COREDUMP_AGENT_COLLECTOR__COREDUMPPATH"]]
    assert volumes[watched["name"]]["hostPath"]["path"] == env["COREDUMP_AGENT_COLLECTOR__HOSTCOREDUMPPATH"]
    assert watched.get("readOnly") is True or not cfg.collector.delete_after_store
    data = mounts[env["COREDUMP_AGENT_AGENT__DATADIR"]]
    assert "hostPath" in volumes[data["name"]], "the ledger must survive a pod's replacement"
    assert mounts[os.path.dirname(env["COREDUMP_AGENT_CONFIG"])]["name"] == "config"

    ports = {p["name"]: p["containerPort"] for p in sensor["ports"]}
    assert ports == {"metrics": cfg.agent.metrics_port, "health": cfg.agent.health_port}
    assert sensor["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert sensor["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_no_agent_container_is_privileged_or_root_except_the_chown_step() -> None:
    for overlay in OVERLAYS:
        for obj in (o for o in build(DEPLOY / "overlays" / overlay) if o["kind"] in WORKLOADS):
            pod_ctx = pod_spec(obj).get("securityContext", {})
            for container in containers(obj):
                ctx = {**pod_ctx, **container.get("securityContext", {})}
                where = f"{overlay}: {obj['metadata']['name']}/{container['name']}"
                assert not ctx.get("privileged"), where
                assert ctx.get("allowPrivilegeEscalation") is False, where
                assert ctx["capabilities"]["drop"] == ["ALL"], where
                if ctx.get("runAsUser") == 0:
                    assert container["name"] == "own-data-dir", where
                    assert set(ctx["capabilities"]["add"]) == {"CHOWN", "FOWNER"}, where
                else:
                    assert ctx.get("runAsNonRoot") is True, where
                    assert not ctx["capabilities"].get("add"), where
    host_setup = find(build(DEPLOY / "host-setup"), "DaemonSet", "coredump-host-setup")
    assert containers(host_setup)[0]["securityContext"] == {"privileged": True}


@pytest.mark.parametrize("folder", ALL_BUILDS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_container_has_requests_and_limits(folder: Path) -> None:
    for obj in (o for o in build(folder) if o["kind"] in WORKLOADS):
        for container in containers(obj):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), \
                    f"{obj['metadata']['name']}/{container['name']} lacks {kind}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_a_pod_refers_to_is_in_the_build(overlay: str) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in (o for o in objects if o["kind"] in WORKLOADS):
        spec = pod_spec(obj)
        assert ("ServiceAccount", spec.get("serviceAccountName", "default")) in present
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in present
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in present
        for container in containers(obj):
            for entry in container.get("env", []):
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET, "the Secret the user creates"
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in present


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_selects_pods_that_have_its_ports(overlay: str) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matching = [w for w in workloads
                    if selector.items() <= ((w["spec"].get("template") or w)["metadata"]["labels"]).items()]
        assert matching, f"Service {service['metadata']['name']} selects no pod"
        port_names = {p["name"] for w in matching for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{service['metadata']['name']}: {port['targetPort']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prefect_api_url_is_the_prefect_server_service(overlay: str) -> None:
    objects = build(DEPLOY / "overlays" / overlay)
    url = urlparse(named(objects, "ConfigMap", "coredump-agent-env")["data"]["PREFECT_API_URL"])
    service = find(objects, "Service", url.hostname or "")
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert url.path == "/api"


def test_the_worker_serves_the_pools_prefect_yaml_names_and_deploys_it() -> None:
    pools = {d["work_pool"]["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    worker = find(build(DEPLOY / "overlays" / "production"), "Deployment", "coredump-agent-worker")
    (register,) = pod_spec(worker)["initContainers"]
    script = register["args"][0]
    created = set(re.search(r"for pool in ([\w\s-]+); do", script).group(1).split())  # type: ignore[union-attr]
    assert created == pools
    assert "prefect --no-prompt deploy --all" in script
    assert register["workingDir"] == "/app"
    (main,) = pod_spec(worker)["containers"]
    args = main["args"]
    assert args[:2] == ["worker", "start"]
    assert args[args.index("--pool") + 1] == "cluster" and args[args.index("--type") + 1] == "process"


def test_the_secret_template_has_no_values_and_is_never_applied() -> None:
    template = yaml.safe_load((DEPLOY / "base" / "secret.template.yaml").read_text())
    assert template["kind"] == "Secret" and template["metadata"]["name"] == SECRET
    assert template["stringData"] and set(template["stringData"].values()) == {""}
    assert DEPLOY / "base" / "secret.template.yaml" not in _kustomization_entries("resources")
    referenced = set()
    for overlay in OVERLAYS:
        objects = build(DEPLOY / "overlays" / overlay)
        assert not [o for o in objects if o["kind"] == "Secret"], "no Secret is generated or applied"
        for obj in (o for o in objects if o["kind"] in WORKLOADS):
            for container in containers(obj):
                for entry in container.get("env", []):
                    ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        referenced.add(ref["key"])
    assert referenced <= set(template["stringData"])
    assert {"GLM_API_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "COREDUMP_AGENT_DATABASE__URL", "COREDUMP_AGENT_DASHBOARD_TOKEN"} <= set(template["stringData"])


def test_dev_needs_no_secret_and_production_uses_postgresql_and_s3() -> None:
    dev = build(DEPLOY / "overlays" / "dev")
    for obj in (o for o in dev if o["kind"] in WORKLOADS):
        for container in containers(obj):
            for entry in container.get("env", []):
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                assert ref is None or ref.get("optional") is True, f"dev: {container['name']} needs {ref}"
    assert not [o for o in dev if o["metadata"]["name"] == "postgres"]
    prod = build(DEPLOY / "overlays" / "production")
    assert find(prod, "StatefulSet", "postgres")
    env = named(prod, "ConfigMap", "coredump-agent-env")["data"]
    assert env["COREDUMP_AGENT_STORAGE__BACKEND"] == "s3"
    assert env["COREDUMP_AGENT_EXPORT__DEST"].startswith("s3://")
    images = {c["image"] for o in prod if o["kind"] in WORKLOADS for c in containers(o)}
    assert {i for i in images if "coredump-agent" in i} == {"registry.example.com/milvus-coredump-agent:0.1.0"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prefect_server_gets_the_projects_server_settings(overlay: str) -> None:
    server = find(build(DEPLOY / "overlays" / overlay), "Deployment", "prefect-server")
    env = {e["name"]: e.get("value") for e in containers(server)[0]["env"]}
    assert {key: env.get(key) for key in SERVER_DEFAULTS} == SERVER_DEFAULTS
