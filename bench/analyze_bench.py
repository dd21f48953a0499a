"""analyze on a ~512 MB core against a raw ``gdb -batch`` run of the same commands, in one run.

A program fills that much memory and crashes. Then three things are timed ``--repeat`` times each and
their medians printed with the ratios to the baseline:
  baseline  ``gdb -batch`` with the equivalent CLI commands (load, threads, every thread's frames,
            libraries, registers, siginfo);
  in-process ``analyze_core`` + scoring, as the pipeline runs it once per core (ELF notes, GDB over
            MI, reasons, signature);
  CLI       ``coredump-agent analyze --json``: the same plus a fresh Python interpreter and its imports.
Target: analyze within 1.5x of raw GDB.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coredump_agent.crasher import make_core
from coredumps.analysis import analyze_core
from coredumps.config import AnalyzerConfig
from coredumps.scoring import score_diagnosis

TARGET = 1.5
# The installed console script, as a user runs it.
CONSOLE_SCRIPT = str(Path(sys.executable).with_name("coredump-agent"))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[:400]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="memory the crasher fills (default 512)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs of each side (default 9)")
    args = parser.parse_args()

    # An installed package has its bytecode compiled; a checkout may not (PYTHONDONTWRITEBYTECODE).
    for package in ("coredumps", "coredump_agent"):
        compileall.compile_dir(Path(__file__).resolve().parent.parent / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="analyze-bench-") as tmp:
        work = Path(tmp)
        print(f"making a core of a process that filled {args.size_mb} MB ...", flush=True)
        core, exe = make_core("fill-memory", work / "core", work / "bin", (str(args.size_mb),))
        size_mb = core.stat().st_size / 2**20
        gdb_commands = [
            "set pagination off", "set width 0", "set auto-load off", "set debuginfod enabled off",
            f"file {exe}", f"core-file {core}", "info threads", "thread apply all bt 64",
            "info sharedlibrary", "info registers rip rsp rbp rax rbx rcx rdx rsi rdi", "p $_siginfo",
        ]
        raw = ["gdb", "-nx", "-q", "-batch"] + [arg for c in gdb_commands for arg in ("-ex", c)]
        ours = [CONSOLE_SCRIPT, "analyze", str(core), "--exe", str(exe), "--json"]
        timed(raw)  # warm the page cache for both sides
        timed(ours)
        cfg = AnalyzerConfig()
        raw_times, cli_times, inproc_times = [], [], []
        for _ in range(args.repeat):
            raw_times.append(timed(raw))
            cli_times.append(timed(ours))
            started = time.perf_counter()
            diagnosis = analyze_core(core, cfg, exe=str(exe))
            score_diagnosis(diagnosis, cfg, age_seconds=0)
            inproc_times.append(time.perf_counter() - started)
        raw_median = statistics.median(raw_times)
        print(f"core: {size_mb:.0f} MB, {args.repeat} runs each, medians")
        print(f"  raw gdb -batch (baseline):          {raw_median:7.3f} s")
        for label, times in (("analyze_core in-process (pipeline)", inproc_times),
                             ("coredump-agent analyze --json (CLI)", cli_times)):
            median = statistics.median(times)
            ratio = median / raw_median
            verdict = "met" if ratio <= TARGET else "NOT met"
            print(f"  {label}: {median:7.3f} s  = {ratio:.2f}x baseline (target <= {TARGET}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
