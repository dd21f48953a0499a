"""The README's first run: ``coredump-agent demo --once`` on one machine with no Kubernetes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.s3server import free_port


@pytest.mark.slow
def test_demo_once_runs_a_real_crash_through_the_whole_pipeline(
    agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    result = run_cli("--config", str(config), "demo", "--once", "--port", str(free_port()),
                     env={"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect-home")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Outcome:       stored" in result.stdout
    assert "Crash reason:  NULL pointer dereference (SIGSEGV" in result.stdout
    assert "Score:         10.00 / 10" in result.stdout
    assert "/runs/flow-run/" in result.stdout
    assert "starting a local Prefect server" in result.stderr and "building and crashing" in result.stderr
    stored = list((tmp_path / "data" / "coredumps").rglob("*.core.zst"))
    assert len(stored) == 1
