"""``coredump-agent analyze CORE``: one core's diagnosis and score, no Prefect involved."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from coredump_agent.report import render_text
from coredumps.analysis import analyze_core, scratch_dir_for
from coredumps.config import load_config
from coredumps.scoring import breakdown_line, score_diagnosis

log = logging.getLogger("coredump_agent.analyze")


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json

    cfg = load_config(args.config)
    path = Path(args.core)
    diagnosis = analyze_core(path, cfg.analyzer, exe=args.exe, scratch_dir=scratch_dir_for(cfg.agent.data_dir))
    result = score_diagnosis(diagnosis, cfg.analyzer, age_seconds=time.time() - path.stat().st_mtime)
    diagnosis.score = result.to_dict()
    log.info(breakdown_line(result, str(path), cfg.agent.log_language))
    if args.json:
        emit_json(diagnosis.to_dict())
    else:
        sys.stdout.write(render_text(diagnosis))
    return 0
