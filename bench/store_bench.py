"""Benchmark of the store path (local backend) against gzip and cp, measured in the same run.

    .venv/bin/python bench/store_bench.py [--size-mb 512] [--big-mb 2048] [--repeat 3] [--keep]

It crashes a small C program that filled ``--size-mb`` of memory (untouched
zero pages, xorshift random pages like vectors, arrays of records, log text)
to get a real core, then measures, best of ``--repeat`` runs each:

  (a) store() of the raw core with zstd at the default level (1) through the local backend, in a child process
      (throughput, output size, peak RSS of the child)
  (b) ``gzip -6 -c core > out``: the original agent's format; target (a) >= 15x its throughput
      at no larger output
  (c) store() of ``zstd -3`` of the same core (kept as it is) vs ``cp``; target within 1.3x
  (d) store() of a ``--big-mb`` sparse-ish file: peak RSS, target < 150 MB

Every store fsyncs and verifies by reading back, as the agent does. All files
live in a temporary folder under /tmp, removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from coredump_agent.crasher import with_core_dumps

MB = 2**20
FILL_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec { uint64_t id; void *next; double score; uint32_t flags, len; char name[32]; };

int main(int argc, char **argv) {
    size_t mb = strtoull(argv[1], 0, 10), total = mb << 20, n = (1 << 20) / sizeof(struct rec);
    unsigned char *mem = malloc(total);
    uint64_t x = 88172645463325252ULL;
    for (size_t off = 0; off < total; off += 1 << 20) {
        unsigned kind = (off >> 20) % 20;
        unsigned char *p = mem + off;
        if (kind < 9) continue;                      /* 45%: never touched, zero pages */
        if (kind < 12) {                             /* 15%: random, like vectors */
            for (size_t i = 0; i < (1 << 20); i += 8) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(p + i, &x, 8);
            }
        } else if (kind < 18) {                      /* 30%: arrays of records */
            struct rec *r = (struct rec *)p;
            for (size_t i = 0; i < n; i++) {
                r[i].id = (off >> 4) + i; r[i].next = &r[(i * 7 + 1) % n]; r[i].score = (double)(i % 1000) / 7.0;
                r[i].flags = i & 7; r[i].len = 10 + i % 20;
                snprintf(r[i].name, sizeof r[i].name, "segment-%zu-%zu", off >> 20, i % 97);
            }
        } else {                                     /* 10%: log text */
            size_t used = 0;
            while (used + 128 < (1 << 20)) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                used += (size_t)snprintf((char *)p + used, 128,
                    "[2025/03/04 05:06:07.%03u] [INFO] [querynode] search done segment=%llu rows=%u\n",
                    (unsigned)(x % 1000), (unsigned long long)(x % 100000), (unsigned)(x % 4096));
            }
        }
    }
    printf("%p\n", (void *)mem);
    fflush(stdout);
    abort();
}
"""


def settle() -> None:
    """Flush dirty pages and pending deletes so one run's write-back does not land in the next one's time."""
    os.sync()


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def timed(command: list[str] | str, output: Path | None = None, **kwargs: object) -> float:
    if output is not None:
        output.unlink(missing_ok=True)
    settle()
    start = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def hash_once(path: Path) -> float:
    """One sha256 pass over a cached file: the store hashes its output twice (while writing, then reading back)."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(4 * MB):
            digest.update(chunk)
    return time.perf_counter() - start


def make_core(work: Path, size_mb: int) -> Path:
    """A real core of a process that filled size_mb of memory."""
    (work / "fill.c").write_text(FILL_C)
    subprocess.run(["gcc", "-O1", "-o", str(work / "fill"), str(work / "fill.c")], check=True)

    subprocess.run(with_core_dumps([str(work / "fill"), str(size_mb)]), check=False, cwd=work, capture_output=True)
    cores = sorted(work.glob("core*"), key=lambda path: path.stat().st_mtime)
    cores = [path for path in cores if path.suffix not in (".c",)]
    if not cores:
        sys.exit("no core was written: check /proc/sys/kernel/core_pattern (expected 'core') and the core ulimit")
    return cores[-1].rename(work / "bench.core")


def make_sparse(path: Path, size_mb: int) -> Path:
    """Mostly holes, with random and repeated regions: a 2 GB core without 2 GB of disk."""
    rng = random.Random(5)
    pattern = bytes(range(256)) * (MB // 256)
    with open(path, "wb") as out:
        for index in range(size_mb):
            kind = index % 8
            if kind == 0:
                out.write(rng.randbytes(MB))
            elif kind in (1, 2):
                out.write(pattern)
            else:
                out.seek(MB, os.SEEK_CUR)
        out.truncate(size_mb * MB)
    return path


def store_in_child(source: Path, root: Path) -> dict[str, float]:
    """Store ``source`` under ``root`` in a fresh interpreter; its timing, output and peak RSS."""
    shutil.rmtree(root, ignore_errors=True)
    settle()
    result = subprocess.run(
        [sys.executable, __file__, "--child-store", str(source), str(root)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(result.stdout))


def child_store(source: Path, root: Path) -> None:
    from coredumps.storage import LocalStorage, StoreRequest

    storage = LocalStorage(root)
    request = StoreRequest(source, "bench", datetime.now(UTC), "pod", "container", {"bench": True})
    idle_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    stored = storage.store(request)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "size": stored.size, "rss_mb": peak, "idle_rss_mb": idle_rss}))


def best_store(source: Path, root: Path, repeat: int) -> dict[str, float]:
    runs = [store_in_child(source, root) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["seconds"])
    return {**best, "rss_mb": max(run["rss_mb"] for run in runs)}


def row(label: str, seconds: float, input_bytes: int, output_bytes: int | None, rss: float | None = None) -> str:
    rate = input_bytes / MB / seconds
    output = f"{output_bytes / MB:10.1f}" if output_bytes is not None else f"{'':10}"
    memory = f"{rss:10.1f}" if rss is not None else f"{'':10}"
    return f"{label:<44}{seconds:9.3f}{rate:10.0f}{output}{memory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512, help="memory the crashing program fills (MB)")
    parser.add_argument("--big-mb", type=int, default=2048, help="size of the input of the RSS run (MB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child-store", nargs=2, metavar=("SOURCE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_store:
        child_store(Path(args.child_store[0]), Path(args.child_store[1]))
        return

    work = Path(tempfile.mkdtemp(prefix="store-bench-", dir="/tmp"))
    try:
        run(work, args.size_mb, args.big_mb, args.repeat)
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size_mb: int, big_mb: int, repeat: int) -> None:
    core = make_core(work, size_mb)
    size = core.stat().st_size
    print(f"input: a real core of a process that filled {size_mb} MB: {size / MB:.0f} MB, {os.cpu_count()} CPUs\n")

    stored = best_store(core, work / "store-a", repeat)
    gz = work / "core.gz"
    gzip_s = best_of(repeat, lambda: timed(f"gzip -6 -c {core} > {gz}", gz, shell=True))
    zst = work / "core.zst"
    zst1 = work / "core.1.zst"
    zstd1_s = best_of(repeat, lambda: timed(["zstd", "-q", "-f", "-1", "-T0", str(core), "-o", str(zst1)], zst1))
    zstd_s = best_of(repeat, lambda: timed(["zstd", "-q", "-f", "-3", "-T0", str(core), "-o", str(zst)], zst))
    stored_zst = best_store(zst, work / "store-c", repeat)
    copy = work / "copy.zst"
    cp_s = best_of(repeat, lambda: timed(["cp", str(zst), str(copy)], copy))
    cp_sync_s = best_of(repeat, lambda: timed(f"cp {zst} {copy} && sync -f {copy}", copy, shell=True))
    sha_s = best_of(repeat, lambda: hash_once(zst))
    big = make_sparse(work / "big.core", big_mb)
    stored_big = best_store(big, work / "store-d", repeat)

    header = f"{'measurement':<44}{'time s':>9}{'MB/s':>10}{'out MB':>10}{'RSS MB':>10}"
    print(header)
    print("-" * len(header))
    print(row("(a) store(), zstd-1, local backend", stored["seconds"], size, int(stored["size"]), stored["rss_mb"]))
    print(row("(b) gzip -6 -c (original agent's format)", gzip_s, size, gz.stat().st_size))
    print(row("    zstd -1 -T0 CLI (reference)", zstd1_s, size, zst1.stat().st_size))
    print(row("    zstd -3 -T0 CLI (the input of c)", zstd_s, size, zst.stat().st_size))
    print(
        row(
            "(c) store() of the .zst input (kept as is)",
            stored_zst["seconds"],
            zst.stat().st_size,
            int(stored_zst["size"]),
            stored_zst["rss_mb"],
        )
    )
    print(row("    cp of the .zst", cp_s, zst.stat().st_size, zst.stat().st_size))
    print(row("    cp + sync of the .zst (durable)", cp_sync_s, zst.stat().st_size, zst.stat().st_size))
    print(row("    one sha256 pass over the .zst (hashlib)", sha_s, zst.stat().st_size, None))
    print(
        row(
            f"(d) store(), {big_mb} MB sparse-ish input",
            stored_big["seconds"],
            big.stat().st_size,
            int(stored_big["size"]),
            stored_big["rss_mb"],
        )
    )
    print()
    speedup = gzip_s / stored["seconds"]
    size_ratio = stored["size"] / gz.stat().st_size
    cp_ratio = stored_zst["seconds"] / cp_s
    print(f"(a)/(b) throughput vs gzip -6: {speedup:5.1f}x   (target >= 15x)   {'met' if speedup >= 15 else 'NOT met'}")
    print(
        f"(a)/(b) output size vs gzip -6: {size_ratio:5.2f}x  (target <= 1x)  {'met' if size_ratio <= 1 else 'NOT met'}"
    )
    print(
        f"(c) store of .zst vs cp:      {cp_ratio:5.2f}x   (target <= 1.3x)  {'met' if cp_ratio <= 1.3 else 'NOT met'}"
    )
    print(f"(c) store of .zst vs cp+sync: {stored_zst['seconds'] / cp_sync_s:5.2f}x")
    rss = stored_big["rss_mb"]
    print(
        f"(d) peak RSS, {big_mb} MB store: {rss:6.1f} MB (target < 150 MB)  {'met' if rss < 150 else 'NOT met'}"
        f"   [interpreter + imports alone: {stored_big['idle_rss_mb']:.1f} MB]"
    )


if __name__ == "__main__":
    main()
