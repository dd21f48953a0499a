"""The export-parquet flow and its CLI command on a database filled by real process-coredump runs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact

from coredump_agent.commands import export as export_command
from coredumps.config import load_config
from coredumps.db import make_engine, session_factory
from coredumps.errors import ConfigError
from flows.export_parquet import export_parquet
from flows.process_coredump import process_coredump
from tests.conftest import CoreFactory
from tests.export.compare import assert_matches_database, dataset_rows
from tests.flows.test_process_coredump import copy_core

TABLES = ("coredumps", "crash_groups", "storage_events", "instances")


def cli_text(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    export_command.add_parser(parser.add_subparsers())
    parsed = parser.parse_args(["--config", str(config), "export-parquet", *args])
    assert parsed.handler(parsed) == 0
    return capsys.readouterr().out


def cli(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli_text(config, "--json", *args, capsys=capsys))
    return result


def written(result: dict[str, Any]) -> dict[str, int]:
    return {table["table"]: table["rows_written"] for table in result["tables"]}


def test_flow_exports_real_runs_row_for_row_and_the_cli_reruns_and_rewrites(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "parquet"
    config = agent_config(f"export:\n  dest: {root}\n")
    for name, pod in (("segv", "milvus/my-release-milvus-standalone-0"), ("fpe", None), ("abort", None)):
        core, exe = crash_cores(name)
        process_coredump(path=str(copy_core(core, tmp_path / name / "core")), exe=str(exe), pod=pod,
                         container="standalone" if pod else None, instance="my-release" if pod else None,
                         config_path=str(config))
    sessions = session_factory(make_engine(load_config(config).database_url()))

    result = export_parquet(config_path=str(config))

    assert result["dest"] == str(root) and result["full"] is False
    assert written(result)["coredumps"] == 3 and written(result)["instances"] == 1
    for table in TABLES:
        assert_matches_database(str(root), sessions, table)
    [segv] = [row for row in dataset_rows(str(root), "coredumps") if row["signal_name"] == "SIGSEGV"]
    assert segv["score"] == 10.0 and segv["score_breakdown"]["pod_association"] == 1.0
    assert segv["crash_reason"] and segv["thread_count"] >= 1 and segv["storage_location"]
    artifact: Any = Artifact.get("export-parquet")
    assert artifact is not None and "| coredumps | 3 | 3 |" in str(artifact.data)

    assert cli_text(config, capsys=capsys).startswith(f"export to {root}: 0 rows written, 0 partitions touched\n")
    full = cli(config, "--full", capsys=capsys)
    assert full["full"] is True and written(full)["coredumps"] == 3
    for table in TABLES:
        assert_matches_database(str(root), sessions, table)

def test_cli_refuses_a_bad_destination_before_starting_a_flow(
    agent_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"^export.dest: 'ftp://host/x' is neither a folder nor an s3://"):
        cli(agent_config(), "--dest", "ftp://host/x", capsys=capsys)
