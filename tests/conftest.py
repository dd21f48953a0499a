"""Shared fixtures: real cores made by crashing small programs, and the project's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coredump_agent.crasher import make_core

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


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]  # noqa: PLW1510
        [*CLI, *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=600, **kwargs
    )
