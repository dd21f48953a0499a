"""The process-coredump flow on real cores, real Prefect, real storage and a real database."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from sqlalchemy import func, select

from coredumps.config import load_config
from coredumps.db import AnalysisResult, CoredumpFile, CrashGroup, StorageEvent, make_engine, session_factory
from flows.process_coredump import process_coredump
from tests.conftest import CoreFactory


def rows(config: Path, model: Any) -> list[Any]:
    engine = make_engine(load_config(config).database_url())
    with session_factory(engine)() as session:
        return list(session.scalars(select(model)))


def copy_core(core: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(core, dest)
    return dest


@pytest.fixture
def run(prefect_harness: str, agent_config: Callable[..., Path]) -> Callable[..., dict[str, Any]]:
    def go(path: Path, config: Path | None = None, **params: Any) -> dict[str, Any]:
        return process_coredump(path=str(path), config_path=str(config or agent_config()), **params)

    return go


def test_kept_core_is_stored_verified_and_recorded(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    core, exe = crash_cores("segv")
    source = copy_core(core, tmp_path / "incoming" / "core.segv")
    result = run(
        source,
        config,
        exe=str(exe),
        pod="milvus/my-release-milvus-standalone-0",
        container="standalone",
        instance="my-release",
    )
    assert result["stored"] is True and result["duplicate"] is False and result["skip_reason"] is None
    assert result["score"] == 10.0 and result["flow_run_id"]
    location = Path(result["location"])
    assert location.parent.name == "my-release"
    assert location.name.endswith("_my-release-milvus-standalone-0_standalone.core.zst")
    assert zstandard.ZstdDecompressor().stream_reader(location.open("rb")).read() == source.read_bytes()
    assert location.with_name(location.name.replace(".core.zst", ".json")).is_file()
    assert source.exists(), "the default keeps the source"

    [row] = rows(config, CoredumpFile)
    assert row.status == "stored" and row.stored and row.storage_location == str(location)
    assert row.pod_name == "my-release-milvus-standalone-0" and row.instance_name == "my-release"
    assert row.correlation_rule == "parameter" and row.score_breakdown["pod_association"] == 1.0
    [analysis] = rows(config, AnalysisResult)
    assert analysis.signature == row.signature and "segment_rows" in analysis.stack_trace
    [event] = rows(config, StorageEvent)
    assert event.action == "store" and event.status == "ok" and event.sha256 == row.stored_sha256
    [group] = rows(config, CrashGroup)
    assert group.count == 1 and group.best_coredump_id == row.id


def test_without_gdb_analysis_the_core_notes_are_read_and_gdb_never_starts(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config("analyzer:\n  enableGdbAnalysis: false\n  gdbPath: /nonexistent/gdb\n  valueThreshold: 0\n")
    core, _exe = crash_cores("segv")
    source = tmp_path / "core.segv.zst"
    with core.open("rb") as raw, source.open("wb") as out:
        zstandard.ZstdCompressor().copy_stream(raw, out)
    result = run(source, config)
    assert result["stored"] is True and result["error"] is None
    [analysis] = rows(config, AnalysisResult)
    assert analysis.signal_name == "SIGSEGV" and analysis.stack_trace == ""
    assert analysis.signature.endswith("!SIGSEGV: no frames")
    assert any("enableGdbAnalysis" in warning for warning in analysis.warnings)


def test_second_run_for_the_same_file_is_a_duplicate(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    core, exe = crash_cores("fpe")
    source = copy_core(core, tmp_path / "core.fpe")
    first = run(source, config, exe=str(exe))
    second = run(source, config, exe=str(exe))
    assert first["stored"] and second["duplicate"] is True
    assert second["coredump_id"] == first["coredump_id"] and second["location"] == first["location"]
    assert len(rows(config, CoredumpFile)) == 1
    assert len([e for e in rows(config, StorageEvent) if e.action == "store"]) == 1
    stored = list((tmp_path / "data" / "coredumps").rglob("*.core.zst"))
    assert len(stored) == 1


def test_repeats_of_one_bug_share_a_crash_group(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    first_core, exe = crash_cores("segv", tag="group-a")
    second_core, _ = crash_cores("segv", tag="group-b")
    other_core, other_exe = crash_cores("abort")
    run(copy_core(first_core, tmp_path / "a" / "core"), config, exe=str(exe))
    result = run(copy_core(second_core, tmp_path / "b" / "core"), config, exe=str(exe))
    run(copy_core(other_core, tmp_path / "c" / "core"), config, exe=str(other_exe))
    assert result["group_count"] == 2
    groups = {g.signature: g.count for g in rows(config, CrashGroup)}
    assert sorted(groups.values()) == [1, 2]


def test_below_threshold_is_not_stored_and_says_why(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config("analyzer:\n  valueThreshold: 9\n  scoring: {base: 1.0}\n")
    core, exe = crash_cores("threads")
    source = copy_core(core, tmp_path / "core.threads")
    result = run(source, config, exe=str(exe))
    assert result["stored"] is False and result["location"] is None
    assert result["skip_reason"] == "score 7.50 is below analyzer.valueThreshold 9"
    assert source.exists()
    [row] = rows(config, CoredumpFile)
    assert row.status == "skipped" and row.score == 7.5 and "valueThreshold" in row.skip_reason
    assert not list((tmp_path / "data" / "coredumps").rglob("*.core*"))


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("collector:\n  maxFileSize: 1KB\n", "larger than maxFileSize"),
        ("analyzer:\n  ignorePatterns: ['core.segv']\n", 'matches ignorePatterns entry "core.segv"'),
    ],
)
def test_size_and_ignore_rules_skip_before_analysis(
    run: Callable[..., dict[str, Any]],
    crash_cores: CoreFactory,
    agent_config: Callable[..., Path],
    tmp_path: Path,
    extra: str,
    reason: str,
) -> None:
    config = agent_config(extra)
    core, _ = crash_cores("segv")
    result = run(copy_core(core, tmp_path / "core.segv.1"), config)
    assert result["stored"] is False and reason in result["skip_reason"]
    assert rows(config, AnalysisResult) == []


def test_corrupt_core_fails_with_its_reason_and_keeps_the_file(
    run: Callable[..., dict[str, Any]], agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    bad = tmp_path / "core.1234"
    bad.write_bytes(b"\x7fELF" + b"\x00" * 60 + b"garbage" * 100)
    result = run(bad, config)
    assert result["stored"] is False and result["error"]
    assert "not an ELF core" in result["error"] or "corrupt" in result["error"] or "not a core" in result["error"]
    [row] = rows(config, CoredumpFile)
    assert row.status == "failed" and row.error == result["error"]
    assert bad.exists()


def test_delete_after_store_removes_only_verified_sources(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config("collector:\n  deleteAfterStore: true\nanalyzer:\n  valueThreshold: 7.2\n  scoring: {base: 1.0}\n")
    kept_core, exe = crash_cores("threads")  # 7.5 with these weights
    low_core, low_exe = crash_cores("segv")  # 7.0: single-threaded
    stored_src = copy_core(kept_core, tmp_path / "x" / "core.kept")
    unstored_src = copy_core(low_core, tmp_path / "y" / "core.low")
    assert run(stored_src, config, exe=str(exe))["stored"] is True
    low = run(unstored_src, config, exe=str(low_exe))
    assert low["stored"] is False
    assert not stored_src.exists() and unstored_src.exists()
    assert any(r.source_deleted for r in rows(config, CoredumpFile))


def test_cli_process_prints_the_result(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    import json

    from tests.conftest import run_cli

    config = agent_config()
    core, exe = crash_cores("cxx-exception")
    source = copy_core(core, tmp_path / "core.cxx")
    result = run_cli(
        "--config",
        str(config),
        "process",
        str(source),
        "--exe",
        str(exe),
        "--pod",
        "ns1/pod-a",
        "--instance",
        "inst",
        "--json",
        env={"PREFECT_API_URL": prefect_harness},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("coredump_id", "score", "stored", "location", "skip_reason", "duplicate", "flow_run_id"):
        assert key in data
    assert data["stored"] is True and "/inst/" in data["location"]


def test_a_run_killed_after_storing_is_finished_by_the_next_without_a_second_copy(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A crash after the verified store: the next run reuses the object and the row."""
    import os
    import signal
    import sys
    import time

    from tests.conftest import REPO

    config = agent_config()
    core, exe = crash_cores("segv")
    source = copy_core(core, tmp_path / "core.crash")
    engine = make_engine(load_config(config).database_url())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coredump_agent.cli",
            "--config",
            str(config),
            "process",
            str(source),
            "--exe",
            str(exe),
        ],
        cwd=REPO,
        env={**os.environ, "PREFECT_API_URL": prefect_harness},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stored = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with session_factory(engine)() as session:
                stored = bool(session.scalar(select(func.count()).select_from(StorageEvent)))
        except Exception:  # the schema may not exist yet
            stored = False
        if stored:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    result = process_coredump(path=str(source), exe=str(exe), config_path=str(config))
    assert result["stored"] is True
    assert len(rows(config, CoredumpFile)) == 1
    assert len(list((tmp_path / "data" / "coredumps").rglob("*.core.zst"))) == 1


def test_a_correlated_core_counts_for_its_instance_unless_a_restart_event_covers_it(
    run: Callable[..., dict[str, Any]], crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from coredumps.db import RestartEvent

    config = agent_config()
    core, exe = crash_cores("segv")
    first = copy_core(core, tmp_path / "p1" / "core")
    run(first, config, exe=str(exe), pod="milvus/qn-0", container="querynode", instance="rel")
    [counted] = rows(config, RestartEvent)
    assert counted.reason == "coredump" and counted.instance_name == "rel" and counted.pod_name == "qn-0"
    assert counted.signal == 11 and counted.exit_code == 139

    engine = make_engine(load_config(config).database_url())
    with session_factory(engine)() as session:
        session.add(RestartEvent(node_name="n", namespace="milvus", pod_name="qn-1", pod_uid="uid-qn-1",
                                 container_name="querynode", instance_name="rel", restart_count=4, exit_code=139,
                                 reason="Error", signal=11, finished_at=datetime.now(tz=UTC)))
        session.commit()
    second = copy_core(core, tmp_path / "p2" / "core")
    run(second, config, exe=str(exe), pod="milvus/qn-1", container="querynode", instance="rel")
    assert sorted(r.pod_name for r in rows(config, RestartEvent)) == ["qn-0", "qn-1"]


@pytest.mark.parametrize("case", ["missing", "directory"])
def test_cli_process_refuses_what_is_not_a_core_file_before_any_run(
    prefect_harness: str, agent_config: Callable[..., Path], tmp_path: Path, case: str
) -> None:
    from tests.conftest import run_cli

    config = agent_config()
    path = tmp_path / "no-such-core" if case == "missing" else tmp_path
    result = run_cli("--config", str(config), "process", str(path), env={"PREFECT_API_URL": prefect_harness})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"coredump-agent: error: {path}: " + ("no such file" if case == "missing" else "is a directory, not a core file")]
    assert not (tmp_path / "data").exists(), "no run, no database, nothing written"
