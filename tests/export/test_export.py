"""The export to a local folder, on generated volume: layout, row-for-row contents, increments, crashes."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db import CleanupEvent, CoredumpFile, CrashGroup, MilvusInstance, RestartEvent, utcnow
from coredumps.errors import StorageRejectedError
from coredumps.export import (
    SCHEMAS,
    TABLE_NAMES,
    DatasetMismatchError,
    ExportBusyError,
    ExportResult,
    LocalDestination,
    Staged,
    all_watermarks,
    engine_of,
    export_dataset,
    export_lock,
    read_watermark,
)
from coredumps.export.reading import read_batches
from coredumps.export.schemas import VERSION_KEY
from coredumps.export.tables import TABLES
from tests.conftest import REPO
from tests.export.compare import assert_matches_database, dataset_rows
from tests.export.generate import Generated, coredump_row

Sessions = sessionmaker[Session]
BATCH = 700


class SimulatedCrash(Exception):
    pass


def export(sessions: Sessions, dest: LocalDestination, **options: Any) -> ExportResult:
    return export_dataset(sessions, dest, batch_rows=BATCH, **options)


def written(result: ExportResult) -> dict[str, int]:
    return {table.table: table.rows_written for table in result.tables}


def published(result: ExportResult, table: str) -> set[str]:
    return next(set(t.partitions) for t in result.tables if t.table == table)


def touched(result: ExportResult, table: str) -> set[str]:
    return next(set(t.partitions) | set(t.removed) for t in result.tables if t.table == table)


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the dataset with its inode and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in root.rglob("*") if path.is_file()
    }


def change_coredumps(sessions: Sessions, ids: list[int], score: float = 1.25) -> set[str]:
    """Update some coredump rows (their updated_at moves); returns their partitions' dates."""
    with sessions() as session:
        rows = list(session.scalars(select(CoredumpFile).where(CoredumpFile.id.in_(ids))))
        for row in rows:
            row.score, row.status = score, "expired"
        session.commit()
        return {row.created_at.date().isoformat() for row in rows}


def ids_on_distinct_dates(sessions: Sessions, count: int) -> list[int]:
    with sessions() as session:
        rows = session.execute(select(CoredumpFile.id, CoredumpFile.created_at).order_by(CoredumpFile.id)).all()
    chosen: dict[str, int] = {}
    for core_id, created in rows:
        chosen.setdefault(created.date().isoformat(), core_id)
    return list(chosen.values())[:count]


def test_first_export_writes_every_table_row_for_row_in_date_partitions(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    result = export(sessions, dest)

    assert written(result) == {
        "coredumps": generated.coredumps, "crash_groups": generated.crash_groups,
        "ai_analyses": generated.ai_analyses, "restart_events": generated.restart_events,
        "storage_events": generated.storage_events, "cleanup_events": generated.cleanup_events,
        "instances": generated.instances,
    }
    root = tmp_path / "parquet"
    for table in TABLE_NAMES:
        assert_matches_database(str(root), sessions, table)
        for path in (root / table).rglob("*"):
            if path.is_file():
                assert path.name == "part-0.parquet" and path.parent.name.startswith("date=")
    assert set(all_watermarks(sessions)) == set(TABLE_NAMES)
    with sessions() as session:
        newest = session.scalar(select(func.max(CoredumpFile.updated_at)))
    assert read_watermark(sessions, "coredumps") == newest


def test_parts_are_zstd_with_the_schema_version_and_bounded_row_groups(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest)
    part = next((tmp_path / "parquet" / "coredumps").rglob("part-0.parquet"))
    metadata = pq.ParquetFile(part).metadata
    assert metadata.metadata[VERSION_KEY] == b"1"
    assert pq.read_schema(part).equals(SCHEMAS["coredumps"], check_metadata=False)
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        assert group.num_rows <= BATCH
        assert {group.column(c).compression for c in range(group.num_columns)} == {"ZSTD"}


def test_rows_are_read_in_batches_never_the_whole_table(sessions: Sessions, generated: Generated) -> None:
    with sessions() as session:
        sizes = [batch.num_rows for batch in read_batches(session, TABLES["coredumps"], None, BATCH)]
    assert sum(sizes) == generated.coredumps
    assert max(sizes) == BATCH and len(sizes) == math.ceil(generated.coredumps / BATCH)


def test_second_run_writes_nothing_and_touches_no_file(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest)
    before = files(tmp_path / "parquet")
    marks = all_watermarks(sessions)

    again = export(sessions, dest)

    assert set(written(again).values()) == {0} and again.partitions_touched == 0
    assert files(tmp_path / "parquet") == before
    assert all_watermarks(sessions) == marks


def test_changed_and_new_rows_leave_exactly_one_current_row_per_id(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest)
    changed_ids = ids_on_distinct_dates(sessions, 3)
    dates = change_coredumps(sessions, changed_ids)
    now = utcnow()
    with sessions() as session:
        session.add(coredump_row(generated.coredumps + 1, now))
        group = session.get(CrashGroup, 3)
        assert group is not None
        old_group_date = group.first_seen.date().isoformat()
        group.count += 10
        group.first_seen -= timedelta(days=40)
        new_group_date = group.first_seen.date().isoformat()
        instance = session.get(MilvusInstance, 2)
        assert instance is not None
        instance.deleted_at, instance.status = now, "deleted"
        session.add(RestartEvent(node_name="node-9", namespace="milvus", pod_name="alpha-0", pod_uid="uid-new",
                                 container_name="standalone", instance_name="alpha", restart_count=1))
        session.commit()

    result = export(sessions, dest)

    assert written(result)["coredumps"] == 4
    assert published(result, "coredumps") == dates | {now.date().isoformat()}
    assert {old_group_date, new_group_date} <= touched(result, "crash_groups")
    assert written(result)["restart_events"] == 1 and written(result)["instances"] == 1
    assert written(result)["storage_events"] == 0 and written(result)["ai_analyses"] == 0
    for table in TABLE_NAMES:
        assert_matches_database(str(tmp_path / "parquet"), sessions, table)
    rows = {row["id"]: row for row in dataset_rows(str(tmp_path / "parquet"), "coredumps")}
    assert all(rows[i]["score"] == 1.25 and rows[i]["status"] == "expired" for i in changed_ids)
    assert rows[generated.coredumps + 1]["score_breakdown"]["stack_trace"] == 1.5


def test_odd_json_values_are_coerced_to_the_schema(sessions: Sessions, dest: LocalDestination, tmp_path: Path) -> None:
    with sessions() as session:
        session.add(coredump_row(1, utcnow(), score_breakdown={"base": "4", "crash_reason": "lots", "other": 1}))
        session.add(MilvusInstance(namespace="ns", name="n", status="seen", labels={"replicas": 3}))
        session.commit()

    export(sessions, dest)

    [core] = dataset_rows(str(tmp_path / "parquet"), "coredumps")
    assert core["score_breakdown"]["base"] == 4.0 and core["score_breakdown"]["crash_reason"] is None
    [instance] = dataset_rows(str(tmp_path / "parquet"), "instances")
    assert instance["labels"] == [("replicas", "3")]


def test_full_export_rewrites_everything_and_drops_rows_gone_from_the_database(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest)
    with sessions() as session:
        first = session.scalar(select(CleanupEvent).order_by(CleanupEvent.created_at))
        assert first is not None
        day = first.created_at.date().isoformat()
        gone = [e.id for e in session.scalars(select(CleanupEvent)) if e.created_at.date().isoformat() == day]
        session.execute(delete(CleanupEvent).where(CleanupEvent.id.in_(gone)))
        session.commit()

    export(sessions, dest)
    kept = {row["id"] for row in dataset_rows(str(tmp_path / "parquet"), "cleanup_events")}
    assert set(gone) <= kept, "an incremental export keeps the history of deleted rows"

    result = export(sessions, dest, full=True)

    assert written(result)["coredumps"] == generated.coredumps
    assert next(t.removed for t in result.tables if t.table == "cleanup_events") == (day,)
    assert not (tmp_path / "parquet" / "cleanup_events" / f"date={day}").exists()
    for table in TABLE_NAMES:
        assert_matches_database(str(tmp_path / "parquet"), sessions, table)


def test_crash_between_writing_and_publishing_neither_duplicates_nor_loses_rows(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest, tables=("coredumps",))
    mark = read_watermark(sessions, "coredumps")
    dates = change_coredumps(sessions, ids_on_distinct_dates(sessions, 4))
    done: list[str] = []

    def publish_two_then_crash(staged: Staged) -> None:
        if len(done) == 2:
            raise SimulatedCrash("the process died before publishing")
        dest.publish(staged)
        done.append(staged.date)

    with pytest.raises(SimulatedCrash):
        export(sessions, dest, tables=("coredumps",), publish=publish_two_then_crash)

    assert read_watermark(sessions, "coredumps") == mark
    rows = dataset_rows(str(tmp_path / "parquet"), "coredumps")
    assert len(rows) == len({row["id"] for row in rows}) == generated.coredumps
    assert not [p for p in (tmp_path / "parquet").rglob("*") if p.name.startswith(".")]

    rerun = export(sessions, dest, tables=("coredumps",))

    assert published(rerun, "coredumps") == dates - set(done)
    assert read_watermark(sessions, "coredumps") != mark
    assert_matches_database(str(tmp_path / "parquet"), sessions, "coredumps")


KILLED_EXPORT = """
import os, sys
from pathlib import Path
from coredumps.db import make_engine, session_factory
from coredumps.export import LocalDestination, export_dataset

sessions = session_factory(make_engine(sys.argv[1]))
dest = LocalDestination(Path(sys.argv[2]))
done = []

def publish(staged):
    if len(done) == 2:
        os._exit(17)
    dest.publish(staged)
    done.append(staged.date)

export_dataset(sessions, dest, tables=("coredumps",), publish=publish, batch_rows=700)
"""


def test_killed_export_leaves_hidden_temporaries_that_the_rerun_sweeps(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest, tables=("coredumps",))
    change_coredumps(sessions, ids_on_distinct_dates(sessions, 4))
    url = str(engine_of(sessions).url)

    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, url, str(tmp_path / "parquet")],
                            check=False, cwd=REPO, capture_output=True, text=True, timeout=120)

    assert killed.returncode == 17, killed.stderr
    leftovers = [p for p in (tmp_path / "parquet").rglob("*") if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    rows = dataset_rows(str(tmp_path / "parquet"), "coredumps")
    assert len(rows) == len({row["id"] for row in rows}) == generated.coredumps

    rerun = export(sessions, dest, tables=("coredumps",))

    assert next(t.swept for t in rerun.tables if t.table == "coredumps") == 1
    assert not leftovers[0].exists()
    assert_matches_database(str(tmp_path / "parquet"), sessions, "coredumps")


def test_a_second_export_at_the_same_time_is_refused(
    sessions: Sessions, generated: Generated, dest: LocalDestination
) -> None:
    with export_lock(engine_of(sessions)), pytest.raises(ExportBusyError, match=r"^another Parquet export"):
        export(sessions, dest)
    assert export(sessions, dest).rows_written > 0


def test_a_part_of_another_schema_version_asks_for_a_full_export(
    sessions: Sessions, generated: Generated, dest: LocalDestination, tmp_path: Path
) -> None:
    export(sessions, dest, tables=("coredumps",))
    [core_id] = ids_on_distinct_dates(sessions, 1)
    [day] = change_coredumps(sessions, [core_id])
    part = tmp_path / "parquet" / "coredumps" / f"date={day}" / "part-0.parquet"
    old = pq.read_table(part)
    pq.write_table(old.replace_schema_metadata({VERSION_KEY: b"0"}), part)

    with pytest.raises(DatasetMismatchError, match=r"schema version 0.*export-parquet --full"):
        export(sessions, dest, tables=("coredumps",))

    export(sessions, dest, tables=("coredumps",), full=True)
    assert_matches_database(str(tmp_path / "parquet"), sessions, "coredumps")


def test_an_unwritable_destination_is_one_clear_error(sessions: Sessions, generated: Generated, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(StorageRejectedError, match=r"^export: cannot create .*file/coredumps/date=\S+: Not a directory; "
                       r"check export.dest and its permissions\.$"):
        export(sessions, LocalDestination(blocker), tables=("coredumps",))
    assert read_watermark(sessions, "coredumps") is None


def test_empty_database_exports_nothing(sessions: Sessions, dest: LocalDestination, tmp_path: Path) -> None:
    result = export(sessions, dest)
    assert result.rows_written == 0 and all_watermarks(sessions) == {}
    assert not (tmp_path / "parquet").exists() or not any((tmp_path / "parquet").rglob("*.parquet"))

