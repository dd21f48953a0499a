"""The optional dashboard component builds on the production overlay: Deployment, Services, token."""

from __future__ import annotations

import os
from pathlib import Path

from tests.deploy.conftest import DEPLOY, build, find


def test_dashboard_component_adds_the_dashboard_and_its_services(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    production = os.path.relpath(DEPLOY / "overlays" / "production", overlay)
    component = os.path.relpath(DEPLOY / "components" / "dashboard", overlay)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{production}]\ncomponents: [{component}]\n"
    )
    objects = build(overlay)
    deployment = find(objects, "Deployment", "coredump-agent-dashboard")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["dashboard", "--host", "0.0.0.0"]
    env = {e["name"]: e for e in container["env"]}
    assert env["COREDUMP_AGENT_DASHBOARD_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "coredump-agent-secrets"
    assert find(objects, "Service", "coredump-agent-dashboard")["spec"]["type"] == "ClusterIP"
    nodeport = find(objects, "Service", "coredump-agent-dashboard-nodeport")
    assert nodeport["spec"]["ports"][0]["nodePort"] == 30082
