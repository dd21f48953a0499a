"""The test crasher looks like a Helm-installed Milvus pod to the agent, and its program really crashes."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from coredumps.config import load_config
from coredumps.kube.pods import instance_of, is_panic
from tests.conftest import REPO
from tests.deploy.conftest import DEPLOY, build, find, named

CONFIG = load_config(REPO / "configs" / "config.yaml")


def test_the_pod_is_a_helm_milvus_instance_in_a_discovered_namespace() -> None:
    objects = build(DEPLOY / "test-crasher")
    pod = find(objects, "Pod", "milvus-test-crash")
    assert instance_of(pod, CONFIG.discovery) == ("crash-test", "helm")
    assert pod["metadata"]["namespace"] in CONFIG.discovery.namespaces
    (main,) = pod["spec"]["containers"]
    assert "ulimit -c unlimited" in main["command"][-1] and "exec /crasher/milvus" in main["command"][-1]
    assert pod["spec"]["restartPolicy"] == "Always"


def test_its_program_dies_of_sigsegv_after_a_panic_line(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = named(build(DEPLOY / "test-crasher"), "ConfigMap", "crash-test-program")["data"]["milvus_crasher.c"]
    (tmp_path / "milvus_crasher.c").write_text(source)
    binary = tmp_path / "milvus"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(binary), str(tmp_path / "milvus_crasher.c")], check=True,
                   timeout=120)
    no_core = ["/bin/sh", "-c", 'ulimit -c 0 && exec "$0" "$@"']  # a shell, not a preexec_fn in a threaded process
    result = subprocess.run([*no_core, str(binary), "0"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == -signal.SIGSEGV
    assert is_panic(result.stderr, CONFIG.analyzer.panic_keywords)

