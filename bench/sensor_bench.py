"""100 small real cores dropped at once into a watched folder: the sensor and its flow runs, end to end.

In one run: a local Prefect server (SQLite) and ``coredump-agent sensor`` start; 100 copies of a real
core are renamed into the folder at once; the figure is the wall time until every flow run is
complete, and per file the latency from the file being in place to its flow run's end (p50, p95).
The baseline is a plain sequential loop running ``gdb -batch`` (the same commands) and ``zstd -1`` (the
agent's default level) on each file. Prefect's own per-run floor is measured too: an empty flow run
against the same server, as Prefect runs it and as the node runner does (without the heartbeat thread
that Prefect joins at the end of a run). After the burst, ``--singles`` cores are dropped one at a time, each once the
one before is processed: their latency is that of a crash on a quiet node. The CPU time the Prefect
server and the sensor (with its flow runs, GDB and zstd) spent per core in the burst is read from /proc.
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
from dataclasses import dataclass
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
            subprocess.run(["zstd", "-1", "-q", "-c", str(path)], stdout=sink, check=True)
    return time.perf_counter() - started


def prefect_floor(api_url: str, runs: int = 5) -> tuple[float, float]:
    """Median seconds of an empty flow run against the server: as Prefect runs it, and without heartbeats."""
    from prefect import flow
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    @flow(name="bench-empty")
    def empty() -> int:
        return 1

    def median_run() -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            empty()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        empty()
        default = median_run()
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            without_heartbeat = median_run()
        # Deliver the runs' events and logs while this server is up; they would be retried at exit.
        EventsWorker.drain_all(timeout=30)
        APILogWorker.drain_all(timeout=30)
    return default, without_heartbeat


def flow_run_ends(node: Node, dropped: dict[str, float]) -> dict[str, float]:
    """When the flow run of each dropped file ended (by path), once every one of them has ended."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: node.sensor.api_url}), get_client(sync_client=True) as client:
        def ended() -> dict[str, float] | None:
            ends: dict[str, float] = {}
            offset = 0
            while page := client.read_flow_runs(limit=200, offset=offset):  # the API's largest page
                ends.update((r.parameters["path"], r.end_time.timestamp()) for r in page
                            if r.parameters.get("path") in dropped and r.end_time is not None)
                offset += len(page)
            return ends if len(ends) >= len(dropped) else None

        ends: dict[str, float] = wait_for(ended, 300, "every flow run to end", interval=0.5)
    return ends


def drop(node: Node, core: Path, name: str, staging: Path) -> tuple[str, float]:
    """Copy the core aside, then rename it into the watched folder, as systemd-coredump does."""
    shutil.copyfile(core, staging / name)
    os.rename(staging / name, node.watched / name)
    return str(node.watched / name), time.time()


def run_burst(node: Node, core: Path, count: int) -> tuple[float, list[float]]:
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
    ends = flow_run_ends(node, dropped)
    return max(ends.values()) - started, [ends[path] - at for path, at in dropped.items()]


def run_singles(node: Node, core: Path, count: int) -> list[float]:
    """Cores one at a time, each once the one before is processed: the latency of a crash on a quiet node."""
    if count == 0:
        return []
    staging = node.watched / ".staging-singles"
    staging.mkdir()
    dropped: dict[str, float] = {}
    finished = len(node.finished_rows())
    for index in range(count):
        path, at = drop(node, core, f"core.single.{index}", staging)
        dropped[path] = at
        finished += 1
        wait_for(lambda done=finished: len(node.finished_rows()) >= done, 120, f"single core {index}", interval=0.1)
    ends = flow_run_ends(node, dropped)
    return [ends[path] - at for path, at in dropped.items()]


@dataclass
class Result:
    wall: float
    latencies: list[float]
    singles: list[float]
    floor: tuple[float, float]
    server_cpu: float
    sensor_cpu: float


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it has waited for (GDB, zstd), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def burst_against(work: Path, name: str, core: Path, count: int, singles: int, database_url: str | None,
                  workers: int | None) -> Result:
    """Start a Prefect server and a sensor, drop the burst, then single cores; what they measured."""
    server = PrefectServer(work / f"prefect-home-{name}", database_url)
    server.start()
    node = Node(work / f"node-{name}", server.api_url)
    if workers:
        node.sensor.args = ["--workers", str(workers)]
    try:
        floor = prefect_floor(server.api_url)
        node.sensor.start()
        assert server.proc is not None and node.sensor.proc is not None
        cpu_before = cpu_seconds(server.proc.pid), cpu_seconds(node.sensor.proc.pid)
        print(f"dropping {count} cores into {node.watched} (Prefect server on {name}) ...", flush=True)
        wall, latencies = run_burst(node, core, count)
        server_cpu = cpu_seconds(server.proc.pid) - cpu_before[0]
        sensor_cpu = cpu_seconds(node.sensor.proc.pid) - cpu_before[1]
        print(f"then {singles} cores one at a time ...", flush=True)
        single = run_singles(node, core, singles)
    finally:
        if node.sensor.proc is not None:
            node.sensor.stop()
        server.stop()
    return Result(wall, sorted(latencies), sorted(single), floor, server_cpu / count, sensor_cpu / count)


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def report(name: str, baseline: float, result: Result) -> None:
    p50 = statistics.median(result.latencies)
    ratio = result.wall / baseline
    print(f"  Prefect server on {name}:")
    print(f"    sensor -> flow runs complete (burst):        {result.wall:7.2f} s = {ratio:.2f}x baseline "
          f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"    burst latency, file in place -> flow run complete: p50 {p50:.2f} s "
          f"(target <= 3 s: {'met' if p50 <= 3 else 'NOT met'}), p95 {percentile(result.latencies, 0.95):.2f} s")
    if result.singles:
        single = statistics.median(result.singles)
        print(f"    single cores, one at a time: latency p50 {single:.2f} s "
              f"(target <= 3 s: {'met' if single <= 3 else 'NOT met'}), max {max(result.singles):.2f} s")
    print(f"    CPU per core in the burst: Prefect server {result.server_cpu:.2f} s, sensor with its flow runs "
          f"{result.sensor_cpu:.2f} s (GDB and zstd included)")
    print(f"    Prefect's floor, an empty flow run on this server: {result.floor[0]:.2f} s "
          f"({result.floor[1]:.2f} s without the heartbeat thread, as the node runner runs its flow runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="cores dropped at once (default 100)")
    parser.add_argument("--prefect-postgres", metavar="URL",
                        help="also run the burst against a Prefect server on this PostgreSQL database "
                             "(postgresql+asyncpg://...; the bench empties it)")
    parser.add_argument("--workers", type=int, help="the sensor's --workers (default: the sensor's own default)")
    parser.add_argument("--singles", type=int, default=10,
                        help="cores dropped one at a time after the burst: the latency on a quiet node (default 10)")
    args = parser.parse_args()
    if args.count < 1 or args.singles < 0 or (args.workers is not None and args.workers < 1):
        parser.error("--count and --workers take 1 or more, --singles 0 or more")
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
        print(f"baseline: gdb -batch + zstd -1 on {args.count} cores, sequentially ...", flush=True)
        baseline = plain_loop(files, exe, work / "plain-out")

        results = {"SQLite (the embedded default)": burst_against(
            work, "sqlite", core, args.count, args.singles, None, args.workers)}
        if args.prefect_postgres:
            results["PostgreSQL"] = burst_against(
                work, "postgres", core, args.count, args.singles, args.prefect_postgres, args.workers
            )
        print(f"cores: {args.count} x {core.stat().st_size / 1024:.0f} KB")
        print(f"  plain sequential gdb + zstd loop (baseline): {baseline:7.2f} s "
              f"({baseline / args.count:.2f} s a core)")
        for name, result in results.items():
            report(name, baseline, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
