"""Rows as retention and a retried run see them: the best stored core of a group, a stored file's claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from coredumps.db import CoredumpFile, CrashGroup, RestartEvent, session_factory, upgrade
from coredumps.inventory import record_restart
from coredumps.kube.pods import Restart
from coredumps.records import FileFacts, Sessions, claim, count_crash, expire, finish, stored_rows

SEEN = datetime(2026, 11, 1, tzinfo=UTC)


def _core(name: str, score: float, group: CrashGroup, stored: bool) -> CoredumpFile:
    return CoredumpFile(
        idempotency_key=f"node-1:{name}", node_name="node-1", path=f"/cores/{name}", file_name=name,
        size_bytes=100, mtime=SEEN, score=score, crash_group=group, stored=stored,
        storage_location=f"/store/inst/{name}.core.zst" if stored else None,
    )


@pytest.fixture
def sessions(engine: Engine) -> Sessions:
    upgrade(engine)
    return session_factory(engine)


def _group(signature: str, count: int) -> CrashGroup:
    signal, _, title = signature.partition("|")
    return CrashGroup(signature=signature, title=title, signal_name=signal, first_seen=SEEN, last_seen=SEEN,
                      count=count)


def test_the_best_is_the_best_stored_core_of_the_group(sessions: Sessions) -> None:
    with sessions() as session:
        group = _group("SIGSEGV|f", 4)
        unstored = _core("unstored", 9.8, group, stored=False)
        cores = [unstored, _core("first-eight", 8.0, group, True), _core("second-eight", 8.0, group, True),
                 _core("seven", 7.0, group, True)]
        session.add_all(cores)
        session.flush()
        group.best_score, group.best_coredump_id = 9.8, unstored.id  # the group's best-scored core
        lone = _group("SIGABRT|g", 1)
        session.add(_core("lone", 2.0, lone, True))
        session.commit()

    best = {location.rsplit("/", 1)[1].split(".")[0]: row.group_best for location, row in stored_rows(sessions).items()}
    assert best == {"first-eight": True, "second-eight": False, "seven": False, "lone": True}


def test_a_stored_row_is_a_duplicate_even_for_the_run_that_stored_it(sessions: Sessions) -> None:
    facts = FileFacts(idempotency_key="node-1:1:2:3:4", node_name="node-1", path="/cores/core.1", file_name="core.1",
                      size_bytes=3, mtime=SEEN, inode=2, input_compression="none")
    first = claim(sessions, facts, "run-1")
    assert not first.duplicate
    finish(sessions, first.coredump_id, "failed", error="GDB timed out")
    assert not claim(sessions, facts, "run-1").duplicate  # a retry of a failed run works again
    assert claim(sessions, facts, "run-2").duplicate  # another run finds it ended
    finish(sessions, first.coredump_id, "stored")
    again = claim(sessions, facts, "run-1")
    assert again.duplicate and (again.coredump_id, again.status) == (first.coredump_id, "stored")


def test_an_expired_row_no_longer_counts_as_stored(sessions: Sessions) -> None:
    with sessions() as session:
        core = _core("kept", 8.0, _group("SIGSEGV|h", 1), True)
        session.add(core)
        session.commit()
        cid = core.id
    assert [row.coredump_id for row in stored_rows(sessions).values()] == [cid]
    expire(sessions, cid)
    expire(sessions, None)  # an object without a row: nothing to change
    assert stored_rows(sessions) == {}
    with sessions() as session:
        row = session.get(CoredumpFile, cid)
        assert row is not None and (row.stored, row.status) == (False, "expired")


def test_one_crash_counts_once_whether_its_core_or_its_restart_is_seen_first(sessions: Sessions) -> None:
    crash = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with sessions() as session:
        cores = [CoredumpFile(idempotency_key=f"node-1:{n}", node_name="node-1", path=f"/cores/core.{n}",
                              file_name=f"core.{n}", size_bytes=1, mtime=crash + timedelta(minutes=10 * n),
                              crash_time=crash + timedelta(minutes=10 * n), pod_namespace=namespace,
                              pod_name="qn-0", instance_name="rel", signal_number=11)
                 for n, namespace in enumerate(["milvus", "milvus", None])]
        session.add_all(cores)
        session.commit()
        ids = [core.id for core in cores]
    assert count_crash(sessions, ids[0]) is True  # the core is handed over before the watch sees the restart
    restart = Restart("milvus", "qn-0", "uid-1", "querynode", 4, 139, "Error", 11, crash + timedelta(seconds=40),
                      "node-1")
    assert record_restart(sessions, restart, node="node-1", instance="rel", is_panic=False, log_excerpt=None)
    assert count_crash(sessions, ids[1]) is True  # ten minutes later: another crash
    assert count_crash(sessions, ids[2]) is False  # no namespace: not counted against any
    with sessions() as session:
        rows = sorted((row.reason, row.restart_count) for row in session.scalars(select(RestartEvent)))
    assert rows == [("Error", 4), ("coredump", 0)]
