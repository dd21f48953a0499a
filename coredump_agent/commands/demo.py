"""``coredump-agent demo``: crash a small program and show what the agent makes of its core."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from coredump_agent.crasher import PROGRAMS, make_core
from coredump_agent.report import render_text
from coredumps.analysis import analyze_core, scratch_dir_for
from coredumps.config import load_config
from coredumps.scoring import score_diagnosis


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="Crash a small program, then analyse and score its core (the first-run check).",
        description="Compile a small crashing program, let it crash into a real core under <agent.dataDir>/demo, "
        "and print the diagnosis and the score breakdown.",
    )
    parser.add_argument("--kind", choices=sorted(PROGRAMS), default="segv", help="which crash to make (default segv)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    data = Path(cfg.agent.data_dir)
    print(f"demo: building and crashing the '{args.kind}' program ...", file=sys.stderr, flush=True)
    core, binary = make_core(args.kind, data / "demo" / f"core.{args.kind}.{int(time.time())}", data / "demo" / "bin")
    print(f"demo: core written to {core}; analysing it with GDB ...", file=sys.stderr, flush=True)
    diagnosis = analyze_core(core, cfg.analyzer, exe=str(binary), scratch_dir=scratch_dir_for(cfg.agent.data_dir))
    diagnosis.score = score_diagnosis(diagnosis, cfg.analyzer, age_seconds=time.time() - core.stat().st_mtime).to_dict()
    sys.stdout.write(render_text(diagnosis))
    return 0
