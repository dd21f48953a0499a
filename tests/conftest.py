"""Shared fixtures: real cores made by crashing small programs, and the project's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coredump_agent.crasher import make_core
from coredump_agent.prefect_env import SERVER_DEFAULTS

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "coredump_agent.cli"]

CoreFactory = Callable[..., tuple[Path, Path]]


@pytest.fixture(scope="session")
def crash_cores(tmp_path_factory: pytest.TempPathFactory) -> CoreFactory:
    """make(name, args=(), tag='') -> (core, binary); each distinct core is made once per session."""
    root = tmp_path_factory.mktemp("cores")
    made: dict[tuple[str, tuple[str, ...], str], tuple[Path, Path]] = {}

    def make(name: str, args: tuple[str, ...] = (), tag: str = "") -> tuple[Path, Path]:
        key = (name, args, tag)
        if key not in made:
            dest = root / f"core.{name}.{len(made)}"
            made[key] = make_core(name, dest, root / "bin", args)
        return made[key]

    return make


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]  # noqa: PLW1510
        [*CLI, *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=600, **kwargs
    )


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real temporary Prefect server for the session; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for key, value in SERVER_DEFAULTS.items():  # the server runs as the project's own servers do
        os.environ.setdefault(key, value)
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def agent_config(tmp_path: Path) -> Callable[..., Path]:
    """write(**sections) -> a config file for one test: its own data folder and local storage."""

    def write(extra: str = "") -> Path:
        data = tmp_path / "data"
        text = f"agent:\n  dataDir: {data}\n  nodeName: test-node\nstorage:\n  localPath: {data / 'coredumps'}\n"
        path = tmp_path / "config.yaml"
        merged = _merge_yaml(text, extra)
        path.write_text(merged)
        return path

    return write


def _merge_yaml(base: str, extra: str) -> str:
    import yaml

    merged: dict[str, Any] = yaml.safe_load(base)
    for section, values in (yaml.safe_load(extra) or {}).items():
        if isinstance(values, dict):
            merged.setdefault(section, {}).update(values)
        else:
            merged[section] = values
    return str(yaml.safe_dump(merged))
