"""Benchmark of the Parquet export against a plain SQLAlchemy read of the same rows, in the same run.

    .venv/bin/python bench/export_bench.py [--rows 200000] [--batch-rows 50000] [--repeat 3] [--keep]

It fills a SQLite file in a temporary folder with ``--rows`` coredump rows (each
with its analysis row, spread over 90 days) and then measures, best of
``--repeat`` runs each, interleaved:

  (a) the full export of the coredumps table: the same joined query streamed in
      batches, converted to Arrow, written as zstd Parquet into date partitions,
      each published, and the watermark recorded
  (b) the baseline: the same SELECT through SQLAlchemy with its column types (aware
      datetimes, decoded JSON), every row fetched into a Python list
      (``connection.execute(query).all()``)

Target: (a) within 2x of (b).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from coredumps.db import AnalysisResult, CoredumpFile, init_db, session_factory
from coredumps.export import LocalDestination, export_table
from coredumps.export.tables import TABLES
from coredumps.scoring import DIMENSIONS

START = datetime(2026, 1, 1, tzinfo=UTC)
SIGNALS = [(11, "SIGSEGV"), (6, "SIGABRT"), (8, "SIGFPE")]


def fill(engine: Any, rows: int, chunk: int = 20_000) -> None:
    rng = random.Random(1)
    with engine.begin() as conn:
        for first in range(1, rows + 1, chunk):
            cores, analyses = [], []
            for core_id in range(first, min(first + chunk, rows + 1)):
                created = START + timedelta(seconds=rng.uniform(0, 90 * 86400))
                number, name = SIGNALS[core_id % 3]
                cores.append({
                    "id": core_id, "idempotency_key": f"k{core_id}", "node_name": f"node-{core_id % 8}",
                    "path": f"/var/lib/systemd/coredump/core.milvus.{core_id}.zst",
                    "file_name": f"core.milvus.{core_id}.zst", "size_bytes": rng.randrange(10**6, 10**9),
                    "mtime": created, "inode": core_id, "input_compression": "zst", "executable": "/milvus/bin/milvus",
                    "comm": "milvus", "pid": core_id % 30000, "uid": 1000, "signal_number": number,
                    "signal_name": name, "crash_time": created, "pod_namespace": "milvus",
                    "pod_name": f"inst-{core_id % 20}-querynode-0", "pod_uid": f"uid-{core_id % 20}",
                    "container_name": "querynode", "instance_name": f"inst-{core_id % 20}",
                    "correlation_rule": "hostname", "status": "stored", "score": 8.5,
                    "score_breakdown": {dim: 0.5 for dim in DIMENSIONS}, "is_panic": False,
                    "signature": f"milvus!{name}: f{core_id % 300} < g", "stored": True, "storage_backend": "local",
                    "storage_location": f"data/coredumps/inst-{core_id % 20}/{core_id}.core.zst",
                    "stored_size": 12345, "source_deleted": False, "flow_run_id": f"run-{core_id}",
                    "created_at": created, "updated_at": created,
                })
                analyses.append({
                    "id": core_id, "coredump_id": core_id, "crash_reason": f"{name} at f{core_id % 300}",
                    "signal_number": number, "signal_name": name, "si_code": 1, "fault_address": "0x0",
                    "thread_count": 40, "crashing_thread": 1, "frames": [], "threads": [], "stack_trace": "",
                    "registers": {}, "libraries": [], "is_panic": False, "truncated": False, "omitted_frames": 0,
                    "gdb_seconds": 1.5, "warnings": [], "created_at": created,
                })
            conn.execute(insert(CoredumpFile), cores)
            conn.execute(insert(AnalysisResult), analyses)


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="coredump rows to generate")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="export.batchRows for the export")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        engine = init_db(f"sqlite:///{folder / 'bench.db'}")
        began = time.perf_counter()
        fill(engine, args.rows)
        print(f"generated {args.rows} coredump rows (+ analyses) in {time.perf_counter() - began:.1f}s")
        sessions = session_factory(engine)
        destination = LocalDestination(folder / "parquet")
        query = TABLES["coredumps"].query(raw=False)

        def plain_read() -> int:
            with engine.connect() as conn:
                return len(conn.execute(query).all())

        def export() -> int:
            return export_table(sessions, destination, "coredumps", full=True, batch_rows=args.batch_rows).rows_read

        assert plain_read() == export() == args.rows
        runs = [(timed(export), timed(plain_read)) for _ in range(args.repeat)]
        exported, plain = (min(column) for column in zip(*runs, strict=True))
        size = sum(path.stat().st_size for path in (folder / "parquet").rglob("*.parquet"))
        parts = len(list((folder / "parquet").rglob("*.parquet")))
        print(f"(a) export of {args.rows} rows to zstd Parquet: {exported:.2f}s "
              f"({args.rows / exported:,.0f} rows/s, {parts} partitions, {size / 2**20:.1f} MiB)")
        print(f"(b) plain SQLAlchemy read of the same SELECT into Python: {plain:.2f}s "
              f"({args.rows / plain:,.0f} rows/s)")
        ratio = exported / plain
        print(f"ratio export / plain read: {ratio:.2f}x (target <= 2x): {'met' if ratio <= 2 else 'NOT met'}")
        engine.dispose()
        return 0
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
