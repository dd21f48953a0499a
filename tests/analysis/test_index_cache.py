"""GDB's index cache: repeated crashes of one build load faster, find the same, and stay within their size."""

from __future__ import annotations

import os
from pathlib import Path

from coredumps.analysis import analyze_core, prune_index_cache
from coredumps.config import AnalyzerConfig
from coredumps.core_load import gdb_launch, prepare_core
from tests.conftest import CoreFactory


def test_a_repeated_analysis_finds_the_same_with_the_cache_filled(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _exe = crash_cores("segv")
    cfg = AnalyzerConfig()
    cache = tmp_path / "gdb-index-cache"
    first = analyze_core(core, cfg, index_cache=cache)
    indexes = sorted(path.name for path in cache.iterdir())
    assert indexes and all(name.endswith(".gdb-index") for name in indexes)
    again = analyze_core(core, cfg, index_cache=cache)
    without = analyze_core(core, cfg)
    assert sorted(path.name for path in cache.iterdir()) == indexes  # read, not written again
    assert first.to_dict()["frames"] == again.to_dict()["frames"] == without.to_dict()["frames"]
    assert first.signature == again.signature == without.signature


def test_a_zero_size_turns_the_cache_off(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _exe = crash_cores("segv")
    analyze_core(core, AnalyzerConfig(gdb_index_cache_size=0), index_cache=tmp_path / "gdb-index-cache")
    assert not (tmp_path / "gdb-index-cache").exists()


def test_pruning_removes_the_oldest_indexes_until_the_folder_fits(tmp_path: Path) -> None:
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / f"{name}.gdb-index"
        path.write_bytes(b"x" * 100)
        os.utime(path, (1_700_000_000 - age * 60, 1_700_000_000 - age * 60))
    assert prune_index_cache(tmp_path, 1000) == 0
    assert prune_index_cache(tmp_path, 250) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["middle.gdb-index", "newest.gdb-index"]
    assert prune_index_cache(tmp_path, 0) == 2 and not list(tmp_path.iterdir())
    assert prune_index_cache(tmp_path / "missing", 0) == 0


def test_an_early_load_still_fits_a_config_with_the_cache(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _exe = crash_cores("segv")
    prepared = prepare_core(core)
    assert prepared is not None
    try:
        assert prepared.fits(core, None, gdb_launch(AnalyzerConfig(), str(tmp_path / "cache")))
        assert not prepared.fits(core, None, gdb_launch(AnalyzerConfig(sysroot=str(tmp_path))))
    finally:
        prepared.close()
