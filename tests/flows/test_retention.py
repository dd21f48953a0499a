"""Retention: the value-aware plan as a table, and the flow on stored cores (local and S3)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coredumps.config import StorageConfig
from coredumps.db import CoredumpFile, StorageEvent
from coredumps.retention import StoredCopy, plan_retention
from flows.process_coredump import process_coredump
from flows.retention import retention
from tests.conftest import CoreFactory
from tests.flows.test_process_coredump import rows

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def copy(name: str, *, days: float = 1, score: float = 8.0, best: bool = False, instance: str = "a",
         size: int = 100, known: bool = True) -> StoredCopy:
    return StoredCopy(location=name, instance=instance, size=size, stored_at=NOW - timedelta(days=days),
                      score=score, group_best=best, coredump_id=abs(hash(name)) if known else None)


def planned(copies: list[StoredCopy], **cfg: Any) -> dict[str, str]:
    settings = {"retention_days": 30, "keep_per_instance": 0, "max_storage_size": 0, **cfg}
    return {d.copy.location: d.reason for d in plan_retention(copies, StorageConfig(**settings), NOW)}


def test_age_limit_keeps_high_value_and_group_best_twice_as_long() -> None:
    result = planned([copy("old", days=31), copy("young", days=29), copy("old-best", days=45, best=True),
                      copy("old-high", days=45, score=9.5), copy("ancient-high", days=61, score=9.5)])
    assert set(result) == {"old", "ancient-high"}
    assert result["old"] == "older than 30 days (31 days)"
    assert "kept twice as long" in result["ancient-high"]


def test_per_instance_count_drops_the_least_valuable_first() -> None:
    copies = [copy("a-low", score=7.0), copy("a-high", score=9.0), copy("a-best", score=6.0, best=True),
              copy("b-low", score=7.0, instance="b")]
    result = planned(copies, keep_per_instance=2)
    assert set(result) == {"a-low"}
    assert result["a-low"] == "instance a has more than 2 stored cores"


def test_total_size_limit_deletes_until_under() -> None:
    copies = [copy(f"c{i}", score=float(i), size=100) for i in range(5)]
    result = planned(copies, max_storage_size=250)
    assert set(result) == {"c0", "c1", "c2"}


def test_an_object_without_a_row_is_left_alone_while_its_run_may_still_be_recording_it() -> None:
    copies = [copy("known", score=8.0), copy("just-stored", days=0.001, score=0.0, known=False),
              copy("orphan", days=2, score=0.0, known=False)]
    assert set(planned(copies, keep_per_instance=1)) == {"orphan"}
    by_size = planned(copies, max_storage_size=150)
    assert set(by_size) == {"orphan", "known"}  # the new object still counts towards the total
    assert planned([copy("just-stored", days=0.001, known=False)], max_storage_size=1) == {}
    assert set(planned([copy("just-stored", days=45, known=False)])) == {"just-stored"}  # age applies to all


def test_zero_means_no_limit() -> None:
    assert planned([copy("x", days=400)], retention_days=0) == {}


def _store_three(config: Path, crash_cores: CoreFactory, tmp_path: Path) -> list[dict[str, Any]]:
    results = []
    for tag, name in (("r1", "segv"), ("r2", "segv"), ("r3", "fpe")):
        core, exe = crash_cores(name, tag=tag)
        source = tmp_path / tag / "core"
        source.parent.mkdir()
        shutil.copyfile(core, source)
        results.append(process_coredump(path=str(source), exe=str(exe), instance="inst",
                                        config_path=str(config)))
    return results


def test_retention_flow_dry_run_then_real(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config("storage:\n  keepPerInstance: 1\n")
    stored = _store_three(config, crash_cores, tmp_path)
    assert all(r["stored"] for r in stored)

    dry = retention(dry_run=True, config_path=str(config))
    assert dry["stored"] == 3 and len(dry["deleted"]) == 2
    assert all(Path(r["location"]).exists() for r in stored)
    assert [e.status for e in rows(config, StorageEvent) if e.action == "delete"] == ["dry-run", "dry-run"]

    real = retention(dry_run=False, config_path=str(config))
    assert {d["location"] for d in real["deleted"]} == {d["location"] for d in dry["deleted"]}
    remaining = [r for r in stored if Path(r["location"]).exists()]
    assert len(remaining) == 1
    deleted_rows = [r for r in rows(config, CoredumpFile) if r.status == "expired"]
    assert len(deleted_rows) == 2 and not any(r.stored for r in deleted_rows)
    assert len([e for e in rows(config, StorageEvent) if e.action == "delete" and e.status == "ok"]) == 2
    assert retention(dry_run=False, config_path=str(config))["deleted"] == []

    # A core stored a moment ago whose run has not written its row yet: not the instance's surplus.
    kept = Path(remaining[0]["location"])
    just_stored = kept.with_name("20261126-000000_pod_container.core.zst")
    shutil.copyfile(kept, just_stored)
    again = retention(dry_run=False, config_path=str(config))
    assert again["stored"] == 2 and again["deleted"] == []
    assert just_stored.exists() and kept.exists()


@pytest.mark.usefixtures("aws_env")
def test_process_and_retention_on_s3(
    prefect_harness: str, crash_cores: CoreFactory, agent_config: Callable[..., Path], tmp_path: Path,
    moto_server: Any, bucket: str, s3client: Any,
) -> None:
    config = agent_config(
        f"storage:\n  backend: s3\n  retentionDays: 1\n  s3:\n    bucket: {bucket}\n    endpoint: {moto_server.url}\n"
        "    region: us-east-1\n    prefix: cores\n"
    )
    core, exe = crash_cores("abort")
    source = tmp_path / "core.abort"
    shutil.copyfile(core, source)
    result = process_coredump(path=str(source), exe=str(exe), instance="s3inst", config_path=str(config))
    assert result["stored"] and result["location"].startswith(f"s3://{bucket}/cores/s3inst/")
    keys = [o["Key"] for o in s3client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sum(k.endswith(".core.zst") for k in keys) == 1 and sum(k.endswith(".json") for k in keys) == 1
    assert retention(dry_run=False, config_path=str(config))["deleted"] == []


def test_retention_removes_what_interrupted_stores_left_behind(
    prefect_harness: str, agent_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = agent_config()
    folder = tmp_path / "data" / "coredumps" / "inst"
    folder.mkdir(parents=True)
    partial = folder / ".20261120T010203Z_pod_container.core.zst.5e5e5e5e.tmp"  # a store killed midway
    partial.write_bytes(b"\0" * 4096)
    day_and_a_half_ago = time.time() - 36 * 3600
    os.utime(partial, (day_and_a_half_ago, day_and_a_half_ago))
    writing = folder / ".20261126T010203Z_pod_container.core.zst.77777777.tmp"  # a store writing now
    writing.write_bytes(b"\0" * 10)

    dry = retention(dry_run=True, config_path=str(config))
    assert dry["leftovers"] == [{"location": str(partial), "size": 4096}] and partial.exists()
    real = retention(dry_run=False, config_path=str(config))
    assert real["leftovers"] == dry["leftovers"]
    assert not partial.exists() and writing.exists()
    events = [e for e in rows(config, StorageEvent) if e.location == str(partial)]
    assert [(e.action, e.status) for e in events] == [("delete", "dry-run"), ("delete", "ok")]
    assert all("interrupted" in e.reason for e in events)
    assert retention(dry_run=False, config_path=str(config))["leftovers"] == []
