"""The node sensor: every finished core handed over exactly once, whatever happens to the sensor or Prefect."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, CoreFactory
from tests.sensor.conftest import Node, PrefectServer, http_status, wait_for


def test_finished_cores_are_processed_once_each(node: Node, crash_cores: CoreFactory) -> None:
    segv, _ = crash_cores("segv")
    fpe, _ = crash_cores("fpe")
    node.sensor.start()
    node.drop(segv, "core.segv.0.0123456789abcdef0123456789abcdef.4242.1764150000000000.zst"[:-4])
    with open(node.watched / "core.4343", "wb") as out:  # a kernel core_pattern writes in place
        data = fpe.read_bytes()
        out.write(data[: len(data) // 2])
        out.flush()
        out.write(data[len(data) // 2 :])
    rows = wait_for(lambda: len(node.finished_rows()) == 2 and node.finished_rows(), 120, "two processed cores")
    assert {r.status for r in rows} == {"stored"}
    assert 4242 in {r.pid for r in rows}
    assert len(node.stored_objects()) == 2
    metrics = wait_for(lambda: next((m for m in [node.metrics()] if 'processed_total{outcome="stored"} 2.0' in m),
                                    None), 60, "the runs to finish")
    assert "coredump_agent_handed_over_total 2.0" in metrics
    assert 'coredump_agent_processed_total{outcome="stored"} 2.0' in metrics
    assert "coredump_agent_handover_latency_seconds_count 2.0" in metrics
    assert http_status(f"http://127.0.0.1:{node.health_port}/healthz") == 200


def test_bad_entries_never_stop_the_sensor_or_escape_the_folder(
    node: Node, crash_cores: CoreFactory, tmp_path: Path
) -> None:
    segv, _ = crash_cores("segv")
    outside = tmp_path / "outside-secret"
    outside.write_bytes(segv.read_bytes())
    node.sensor.start()
    os.symlink(outside, node.watched / "core.link")
    os.mkfifo(node.watched / "core.fifo")
    (node.watched / "core.empty").write_bytes(b"")
    (node.watched / "sub").mkdir()
    node.drop(segv, "core.. we ird\nname")
    node.drop(segv, os.fsdecode(b"core.not-utf8-\xff\xfe"))
    node.drop(segv, "core.good")
    rows = wait_for(lambda: len(node.finished_rows()) == 3 and node.finished_rows(), 120, "three processed files")
    by_name = {r.file_name: r for r in rows}
    assert set(by_name) == {"core.empty", "core.. we ird\nname", "core.good"}
    assert by_name["core.empty"].status == "failed" and "empty" in (by_name["core.empty"].error or "")
    assert by_name["core.good"].status == "stored" and by_name["core.. we ird\nname"].status == "stored"
    objects = node.stored_objects()
    assert all(p.is_relative_to(node.data / "coredumps") and "\n" not in p.name for p in objects)
    assert outside.exists() and http_status(f"http://127.0.0.1:{node.health_port}/readyz") == 200
    # A name that is not UTF-8 cannot be a run's parameter or a row: left in place, said once, counted.
    assert (node.watched / os.fsdecode(b"core.not-utf8-\xff\xfe")).exists()
    assert 'coredump_agent_files_skipped_total{reason="name-not-utf8"} 1.0' in node.metrics()
    log = node.sensor.log.read_text(errors="replace")
    assert log.count("the file name is not valid UTF-8") == 1 and "Traceback" not in log


def test_half_written_core_is_handed_over_once_when_closed(node: Node, crash_cores: CoreFactory) -> None:
    fpe, _ = crash_cores("fpe")
    data = fpe.read_bytes()
    node.config.write_text(node.config.read_text().replace("stableFor: 1s", "stableFor: 10m"))
    node.sensor.start()
    out = open(node.watched / "core.777", "wb")
    out.write(data[: len(data) // 3])
    out.flush()
    marker, _ = crash_cores("segv")
    node.drop(marker, "core.marker")
    wait_for(lambda: any(r.file_name == "core.marker" for r in node.finished_rows()), 120, "the marker core")
    assert not any(r.file_name == "core.777" for r in node.rows()), "a file still being written was handed over"
    out.write(data[len(data) // 3 :])
    out.close()
    row = wait_for(lambda: next((r for r in node.finished_rows() if r.file_name == "core.777"), None), 120,
                   "the closed core")
    assert row.size_bytes == len(data) and row.status == "stored"
    assert sum(r.file_name == "core.777" for r in node.rows()) == 1


def test_files_dropped_while_the_sensor_is_down_are_swept_up(node: Node, crash_cores: CoreFactory) -> None:
    segv, _ = crash_cores("segv")
    node.sensor.start()
    assert node.sensor.stop() == 0
    node.drop(segv, "core.offline.1")
    node.drop(segv, "core.offline.2")
    node.sensor.start()
    wait_for(lambda: len(node.finished_rows()) == 2, 120, "both offline cores")
    assert len(node.stored_objects()) == 2


@pytest.mark.slow
def test_kill_9_during_a_burst_of_50_processes_every_core_exactly_once(node: Node, crash_cores: CoreFactory) -> None:
    segv, _ = crash_cores("segv")
    node.sensor.start()
    for index in range(50):
        node.drop(segv, f"core.burst.{index}")
    wait_for(lambda: len(node.finished_rows()) >= 8, 180, "the first processed cores")
    node.sensor.kill()
    done_before = len(node.finished_rows())
    node.sensor.start()
    rows = wait_for(lambda: len(node.finished_rows()) == 50 and node.finished_rows(), 300, "all 50 cores")
    assert done_before < 50
    assert len(node.rows()) == 50 and len({r.idempotency_key for r in rows}) == 50
    assert {r.status for r in rows} == {"stored"}
    assert len(node.stored_objects()) == 50


@pytest.mark.slow
def test_a_prefect_outage_delays_cores_but_loses_none(tmp_path: Path, crash_cores: CoreFactory) -> None:
    segv, _ = crash_cores("segv")
    server = PrefectServer(tmp_path / "prefect-home")
    server.start()
    node = Node(tmp_path / "n1", server.api_url)
    try:
        node.sensor.start()
        server.stop()
        wait_for(lambda: http_status(f"http://127.0.0.1:{node.health_port}/readyz") == 503, 60,
                 "readiness to report the outage")
        for index in range(3):
            node.drop(segv, f"core.outage.{index}")
        ledger = node.data / "sensor-ledger.db"
        import sqlite3

        def pending_with_retries() -> bool:
            with sqlite3.connect(ledger) as db:
                rows = db.execute("SELECT state, attempts FROM files").fetchall()
            return len(rows) == 3 and all(s == "pending" for s, _ in rows) and any(a > 0 for _, a in rows)

        wait_for(pending_with_retries, 120, "the hand-overs to be retried while Prefect is down")
        assert node.rows() == []
        server.start()
        wait_for(lambda: len(node.finished_rows()) == 3, 240, "all three cores after Prefect returned")
        assert len(node.stored_objects()) == 3
    finally:
        node.sensor.stop()
        server.stop()


@pytest.mark.parametrize("case", ["folder-is-a-file", "health-port-in-use"])
def test_a_setup_that_cannot_work_is_refused_in_one_sentence(tmp_path: Path, case: str) -> None:
    watched = tmp_path / "watched"
    busy = socket.socket()
    busy.bind(("0.0.0.0", 0))  # where the health server binds
    busy.listen(1)
    if case == "folder-is-a-file":
        watched.write_text("not a folder\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"agent:\n  dataDir: {tmp_path / 'data'}\n  healthPort: {busy.getsockname()[1]}\n"
                      f"collector:\n  coredumpPath: {watched}\n")
    try:
        result = subprocess.run([*CLI, "--config", str(config), "sensor"], capture_output=True, text=True,
                                timeout=120, check=False,
                                env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    finally:
        busy.close()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    expected = {"folder-is-a-file": f"collector.coredumpPath: {watched} exists and is not a folder",
                "health-port-in-use": "agent.healthPort: port"}[case]
    assert expected in lines[0]
