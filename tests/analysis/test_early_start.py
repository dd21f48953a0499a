"""GDB started before the config is read (the CLI's early start) and the load it hands over."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from coredumps.analysis import analyze_core
from coredumps.config import AnalyzerConfig
from coredumps.core_load import gdb_launch, prepare_core
from coredumps.gdb import GdbLaunch, GdbSession, start_early
from tests.conftest import CoreFactory, run_cli


def gdb_dead(session: GdbSession) -> bool:
    try:
        session.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_a_prepared_load_gives_the_same_diagnosis(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("abort")
    cfg = AnalyzerConfig()
    prepared = prepare_core(core, str(exe), gdb=start_early())
    assert prepared is not None and prepared.fits(core, str(exe), gdb_launch(cfg))
    taken_over = analyze_core(core, cfg, exe=str(exe), prepared=prepared)
    fresh = analyze_core(core, cfg, exe=str(exe))
    assert taken_over.signature == fresh.signature and taken_over.crash_reason == fresh.crash_reason
    assert [f.function for f in taken_over.frames] == [f.function for f in fresh.frames]
    assert gdb_dead(prepared.gdb)


def test_a_load_the_config_would_start_differently_is_dropped(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, exe = crash_cores("segv")
    prepared = prepare_core(core, str(exe))
    assert prepared is not None
    cfg = AnalyzerConfig(solibSearchPath=[str(tmp_path)], gdbMemoryLimit="3GB")
    assert not prepared.fits(core, str(exe), gdb_launch(cfg))
    diagnosis = analyze_core(core, cfg, exe=str(exe), prepared=prepared)
    assert gdb_dead(prepared.gdb)
    assert [f.function for f in diagnosis.frames][:3] == ["segment_rows", "load_segment", "main"]


def test_an_early_gdb_started_another_way_is_replaced(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("segv")
    other = GdbSession.start(GdbLaunch(memory_limit=2 * 2**30))
    prepared = prepare_core(core, str(exe), gdb=other)
    assert prepared is not None and prepared.gdb is not other
    assert gdb_dead(other)
    prepared.close()
    assert gdb_dead(prepared.gdb)


def test_compressed_or_bad_input_is_left_to_the_full_analysis(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _ = crash_cores("segv")
    packed = tmp_path / "core.zst"
    subprocess.run(["zstd", "-q", "-o", str(packed), str(core)], check=True)
    early = start_early()
    assert early is not None
    assert prepare_core(packed, gdb=early) is None
    assert gdb_dead(early)  # an early GDB the load cannot use is not left running
    assert prepare_core(tmp_path / "missing") is None
    assert prepare_core(tmp_path) is None


@pytest.mark.parametrize("config_text", ["", "analyzer:\n  gdbTimeout: soon\n", "analyzer:\n  gdbPath: /nonexistent/gdb\n"])
def test_the_cli_leaves_no_gdb_behind(crash_cores: CoreFactory, tmp_path: Path, config_text: str) -> None:
    core, exe = crash_cores("segv")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    result = run_cli(
        "--config", str(config), "analyze", str(core), "--exe", str(exe), "--json", env={"TMPDIR": str(scratch)}
    )
    if config_text:
        assert result.returncode in (2, 4) and "Traceback" not in result.stderr
        assert "error" in json.loads(result.stdout)
    else:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["signal"]["name"] == "SIGSEGV"
    assert list(scratch.iterdir()) == []  # every GDB's working folder is gone with it
