"""Shared helpers for the deployment files: the real kubectl's kustomize builds and YAML loading."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "production")
KUSTOMIZE_FLAGS = ("--load-restrictor", "LoadRestrictionsNone")

Manifest = dict[str, Any]


def load_all(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed; the kustomize builds need it")
    return path


@functools.cache
def _build(path: str) -> str:
    result = subprocess.run([kubectl(), "kustomize", *KUSTOMIZE_FLAGS, path], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def build(path: Path) -> list[Manifest]:
    """The objects ``kubectl kustomize`` builds from a kustomization folder."""
    return load_all(_build(str(path)))


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def named(objects: list[Manifest], kind: str, prefix: str) -> Manifest:
    """A generated object (its name carries a content hash)."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix + "-")]
    assert len(matches) == 1, f"expected one {kind} named {prefix}-<hash>, found {len(matches)}"
    return matches[0]


def pod_spec(obj: Manifest) -> Manifest:
    spec: Manifest = obj["spec"]
    return spec if obj["kind"] == "Pod" else spec["template"]["spec"]


def containers(obj: Manifest) -> list[Manifest]:
    spec = pod_spec(obj)
    return list(spec.get("initContainers", [])) + list(spec["containers"])
