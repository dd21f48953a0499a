"""100 small real cores dropped at once into a watched folder: the sensor and its flow runs, end to end.

In one run: a local Prefect server (SQLite) and ``coredump-agent sensor`` start; 100 copies of a real
core are renamed into the folder at once; the figure is the wall time until every flow run is
complete, and per file the latency from the file being in place to its flow run's end (p50, p95).
The baseline is a plain sequential loop running ``gdb -batch`` (the same commands) and ``zstd -3`` on
each file. Prefect's own per-run floor is measured too: an empty flow run against the same server.
Targets: the burst within 2x of the plain loop; p50 latency at most 3 s.

The Prefect server runs on SQLite, the embedded default. ``--prefect-postgres URL`` (an asyncpg URL
of a database the bench may empty) runs the same burst a second time against a Prefect server on
PostgreSQL, the database a production Prefect server uses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coredump_agent.crasher import make_core
from tests.sensor.conftest import Node, PrefectServer, wait_for


def plain_loop(files: list[Path], exe: Path, out: Path) -> float:
    started = time.perf_counter()
    for index, path in enumerate(files):
        subprocess.run(
            ["gdb", "-nx", "-q", "-batch", "-ex", "set auto-load off", "-ex", f"file {exe}", "-ex",
             f"core-file {path}", "-ex", "info threads", "-ex", "thread apply all bt 64", "-ex",
             "info sharedlibrary", "-ex", "info registers"],
            capture_output=True, check=True,
        )
        with open(out / f"{index}.zst", "wb") as sink:
            subprocess.run(["zstd", "-3", "-q", "-c", str(path)], stdout=sink, check=True)
    return time.perf_counter() - started


def prefect_floor(api_url: str, runs: int = 5) -> float:
    """Median seconds of an empty flow run against the server."""
    from prefect import flow
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    @flow(name="bench-empty")
    def empty() -> int:
        return 1

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        empty()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            empty()
            times.append(time.perf_counter() - started)
        # Deliver the runs' events and logs while this server is up; they would be retried at exit.
        EventsWorker.drain_all(timeout=30)
        APILogWorker.drain_all(timeout=30)
    return statistics.median(times)


def run_burst(node: Node, core: Path, count: int) -> tuple[float, list[float]]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    staging = node.watched / ".staging"
    staging.mkdir()
    names = []
    for index in range(count):
        shutil.copyfile(core, staging / f"core.bench.{index}")
        names.append(f"core.bench.{index}")
    dropped: dict[str, float] = {}
    started = time.time()
    for name in names:
        os.rename(staging / name, node.watched / name)
        dropped[str(node.watched / name)] = time.time()
    wait_for(lambda: len(node.finished_rows()) >= count, 900, f"{count} processed cores", interval=0.5)
    with temporary_settings(updates={PREFECT_API_URL: node.sensor.api_url}), get_client(sync_client=True) as client:
        def ended() -> list[float] | None:
            runs = client.read_flow_runs(limit=count + 50)
            done = [r for r in runs if r.parameters.get("path") in dropped and r.end_time is not None]
            return [r.end_time.timestamp() for r in done] if len(done) >= count else None

        wait_for(ended, 300, "every flow run to end", interval=0.5)
        runs = [r for r in client.read_flow_runs(limit=count + 50) if r.parameters.get("path") in dropped]
    latencies = [r.end_time.timestamp() - dropped[r.parameters["path"]] for r in runs if r.end_time]
    wall = max(r.end_time.timestamp() for r in runs if r.end_time) - started
    return wall, latencies


def burst_against(work: Path, name: str, core: Path, count: int, database_url: str | None,
                  workers: int | None) -> tuple[float, list[float], float]:
    """Start a Prefect server and a sensor, drop the burst; returns its wall time, latencies and floor."""
    server = PrefectServer(work / f"prefect-home-{name}", database_url)
    server.start()
    node = Node(work / f"node-{name}", server.api_url)
    if workers:
        node.sensor.args = ["--workers", str(workers)]
    try:
        floor = prefect_floor(server.api_url)
        node.sensor.start()
        print(f"dropping {count} cores into {node.watched} (Prefect server on {name}) ...", flush=True)
        wall, latencies = run_burst(node, core, count)
    finally:
        if node.sensor.proc is not None:
            node.sensor.stop()
        server.stop()
    return wall, sorted(latencies), floor


def report(name: str, baseline: float, wall: float, latencies: list[float], floor: float) -> None:
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    ratio = wall / baseline
    print(f"  Prefect server on {name}:")
    print(f"    sensor -> flow runs complete (burst):        {wall:7.2f} s = {ratio:.2f}x baseline "
          f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"    latency file in place -> flow run complete: p50 {p50:.2f} s "
          f"(target <= 3 s: {'met' if p50 <= 3 else 'NOT met'}), p95 {p95:.2f} s")
    print(f"    Prefect's floor, an empty flow run on this server: {floor:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="cores dropped at once (default 100)")
    parser.add_argument("--prefect-postgres", metavar="URL",
                        help="also run the burst against a Prefect server on this PostgreSQL database "
                             "(postgresql+asyncpg://...; the bench empties it)")
    parser.add_argument("--workers", type=int, help="the sensor's --workers (default: the sensor's own default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensor-bench-") as tmp:
        work = Path(tmp)
        core, exe = make_core("segv", work / "core.segv", work / "bin")
        copies = work / "plain"
        copies.mkdir()
        files = []
        for index in range(args.count):
            target = copies / f"core.{index}"
            shutil.copyfile(core, target)
            files.append(target)
        (work / "plain-out").mkdir()
        print(f"baseline: gdb -batch + zstd -3 on {args.count} cores, sequentially ...", flush=True)
        baseline = plain_loop(files, exe, work / "plain-out")

        results = {"SQLite (the embedded default)": burst_against(work, "sqlite", core, args.count, None, args.workers)}
        if args.prefect_postgres:
            results["PostgreSQL"] = burst_against(
                work, "postgres", core, args.count, args.prefect_postgres, args.workers
            )
        print(f"cores: {args.count} x {core.stat().st_size / 1024:.0f} KB")
        print(f"  plain sequential gdb + zstd loop (baseline): {baseline:7.2f} s")
        for name, (wall, latencies, floor) in results.items():
            report(name, baseline, wall, latencies, floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
