"""Rows of every table written and read back on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from coredumps.db import (
    AIAnalysisResult,
    AnalysisResult,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    ExportWatermark,
    MilvusInstance,
    Pod,
    RestartEvent,
    StorageEvent,
    session_factory,
    upgrade,
)

BERLIN_SUMMER = timezone(timedelta(hours=2))
CRASHED = datetime(2025, 7, 1, 14, 30, 15, 123456, tzinfo=BERLIN_SUMMER)
CRASHED_UTC = datetime(2025, 7, 1, 12, 30, 15, 123456, tzinfo=UTC)
FRAMES = [{"level": 0, "func": "milvus::segcore::Search", "file": "search.cpp", "line": 42, "addr": "0x7f3a"}]
LABELS = {"app.kubernetes.io/instance": "my-release", "note": "crash ünïcode ✓"}


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    upgrade(engine)
    with session_factory(engine)() as opened:
        yield opened


def _coredump(key: str = "node-1:/var/lib/systemd/coredump/core.milvus.1000.b.4242.1.zst:12:34:56") -> CoredumpFile:
    return CoredumpFile(
        idempotency_key=key,
        node_name="node-1",
        path="/var/lib/systemd/coredump/core.milvus.1000.b.4242.1.zst",
        file_name="core.milvus.1000.b.4242.1.zst",
        size_bytes=12 * 1024**3,
        mtime=CRASHED,
    )


def test_every_table_round_trips_rows_relations_utc_datetimes_and_json(engine: Engine, session: Session) -> None:
    instance = MilvusInstance(
        namespace="milvus",
        name="my-release",
        deployment_type="helm",
        release_name="my-release",
        labels=LABELS,
        status="running",
        pod_count=3,
        first_seen=CRASHED,
        last_seen=CRASHED,
    )
    group = CrashGroup(
        signature="SIGSEGV|milvus::segcore::Search",
        title="milvus::segcore::Search",
        signal_name="SIGSEGV",
        first_seen=CRASHED,
        last_seen=CRASHED,
        count=1,
    )
    core = _coredump()
    core.instance, core.crash_group, core.inode, core.uid = instance, group, 2**40, 4_294_967_294
    core.crash_time, core.score, core.score_breakdown = CRASHED, 7.5, {"signal": 3.0, "panic": {"found": False}}
    core.analysis = AnalysisResult(
        crash_reason="SIGSEGV at 0x0",
        signal_number=11,
        signal_name="SIGSEGV",
        fault_address="0x0000000000000000",
        thread_count=2,
        frames=FRAMES,
        threads=[{"id": 1, "frames": FRAMES}],
        stack_trace="#0 Search",
        registers={"rip": "0x7f3a"},
        libraries=[{"name": "libc.so.6"}],
        warnings=["no debuginfo"],
    )
    session.add_all(
        [
            instance,
            group,
            core,
            Pod(
                instance=instance,
                namespace="milvus",
                name="my-release-querynode-0",
                uid="pod-uid-1",
                node_name="node-1",
                containers=["querynode"],
                phase="Running",
                last_restart_at=CRASHED,
            ),
            AIAnalysisResult(
                coredump=core,
                crash_group=group,
                provider="openai",
                model="gpt-4o",
                status="ok",
                recommendations=["upgrade"],
                code_suggestions=[{"file": "a.cpp"}],
                confidence=0.8,
            ),
            RestartEvent(
                instance=instance,
                node_name="node-1",
                namespace="milvus",
                pod_name="my-release-querynode-0",
                pod_uid="pod-uid-1",
                container_name="querynode",
                restart_count=4,
                signal=11,
                is_panic=True,
                finished_at=CRASHED,
            ),
            StorageEvent(coredump=core, action="store", backend="s3", size_bytes=5 * 1024**3, status="ok"),
            CleanupEvent(
                instance=instance,
                namespace="milvus",
                instance_name="my-release",
                action="scale-to-zero",
                decision="dry-run",
                reason="5 restarts in 10m",
                incident_key="milvus/my-release/1",
                details={"restarts": [1, 2, 3]},
            ),
            ExportWatermark(table_name="coredump_files", watermark=CRASHED),
        ]
    )
    session.commit()

    with session_factory(engine)() as reader:
        read = reader.scalars(select(CoredumpFile)).one()
        assert read.mtime == CRASHED_UTC and read.mtime.tzinfo is UTC
        assert read.crash_time == CRASHED_UTC and read.created_at.tzinfo is UTC
        assert (read.size_bytes, read.inode, read.uid) == (12 * 1024**3, 2**40, 4_294_967_294)
        assert read.score_breakdown == {"signal": 3.0, "panic": {"found": False}}
        assert read.instance is not None and read.instance.labels == LABELS
        assert read.crash_group is not None and read.crash_group.last_seen == CRASHED_UTC
        assert read.analysis is not None and read.analysis.frames == FRAMES
        assert read.analysis.threads == [{"id": 1, "frames": FRAMES}] and read.analysis.warnings == ["no debuginfo"]
        assert (read.is_panic, read.stored, read.source_deleted, read.status) == (False, False, False, "pending")
        pod = reader.scalars(select(Pod)).one()
        assert pod.instance is read.instance and pod.containers == ["querynode"]
        assert pod.last_restart_at == CRASHED_UTC
        ai = reader.scalars(select(AIAnalysisResult)).one()
        assert (ai.coredump, ai.crash_group, ai.cost_usd, ai.prompt_tokens) == (read, read.crash_group, 0.0, 0)
        restart = reader.scalars(select(RestartEvent)).one()
        assert (restart.instance, restart.is_panic, restart.finished_at) == (read.instance, True, CRASHED_UTC)
        storage = reader.scalars(select(StorageEvent)).one()
        assert (storage.coredump, storage.size_bytes, storage.attempt) == (read, 5 * 1024**3, 1)
        cleanup = reader.scalars(select(CleanupEvent)).one()
        assert (cleanup.instance, cleanup.details) == (read.instance, {"restarts": [1, 2, 3]})
        assert reader.get_one(ExportWatermark, "coredump_files").watermark == CRASHED_UTC


def test_second_coredump_with_the_same_idempotency_key_is_rejected(session: Session) -> None:
    session.add(_coredump("same-key"))
    session.commit()

    session.add(_coredump("same-key"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    assert session.scalars(select(CoredumpFile.idempotency_key)).all() == ["same-key"]


def test_a_restart_is_recorded_once_per_pod_container_and_restart_count(session: Session) -> None:
    def restart() -> RestartEvent:
        return RestartEvent(
            node_name="n", namespace="milvus", pod_name="p", pod_uid="uid", container_name="c", restart_count=3
        )

    session.add(restart())
    session.commit()
    session.add(restart())

    with pytest.raises(IntegrityError):
        session.commit()


def test_naive_datetime_is_rejected_on_write(session: Session) -> None:
    core = _coredump()
    core.mtime = datetime(2025, 7, 1, 12, 0)
    session.add(core)

    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_deleting_a_coredump_deletes_its_analysis_and_keeps_its_events(session: Session) -> None:
    core = _coredump()
    core.analysis = AnalysisResult()
    session.add_all([core, StorageEvent(coredump=core, action="store", backend="local", status="ok")])
    session.commit()

    session.execute(delete(CoredumpFile))
    session.commit()
    session.expunge_all()

    assert session.scalars(select(AnalysisResult)).all() == []
    assert [event.coredump_id for event in session.scalars(select(StorageEvent))] == [None]


def test_updated_at_moves_forward_when_a_row_changes(session: Session) -> None:
    core = _coredump()
    core.created_at = core.updated_at = CRASHED
    session.add(core)
    session.commit()

    core.status = "analyzed"
    session.commit()

    assert core.created_at == CRASHED_UTC
    assert core.updated_at > CRASHED_UTC
