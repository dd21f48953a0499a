"""``coredump-agent analyze CORE``: one core's diagnosis and score, no Prefect involved.

GDB starts (``cli`` starts it first of all) and loads a raw core with the default launch
before the config is read, so that GDB's work and reading the config overlap; the analysis
takes that load over when the config launches GDB the same way and starts afresh otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from coredumps.core_load import prepare_core

log = logging.getLogger("coredump_agent.analyze")


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json

    path = Path(args.core)
    prepared = prepare_core(path, args.exe, gdb=getattr(args, "early_gdb", None))
    try:
        from coredump_agent.commands.args import configured
        from coredump_agent.report import render_text
        from coredumps.analysis import analyze_core, index_cache_for, scratch_dir_for
        from coredumps.scoring import breakdown_line, score_diagnosis

        cfg = configured(args)
        diagnosis = analyze_core(
            path, cfg.analyzer, exe=args.exe, scratch_dir=scratch_dir_for(cfg.agent.data_dir), prepared=prepared,
            index_cache=index_cache_for(cfg.agent.data_dir),
        )
    finally:
        if prepared is not None:
            prepared.close()
    result = score_diagnosis(diagnosis, cfg.analyzer, age_seconds=time.time() - path.stat().st_mtime)
    diagnosis.score = result.to_dict()
    log.info(breakdown_line(result, str(path), cfg.agent.log_language))
    ai_text = None
    data = diagnosis.to_dict()
    if args.ai:
        from coredumps.ai.step import ai_step
        from coredumps.db.engine import init_db, session_factory
        from coredumps.inputs import shown
        from coredumps.markdown import unescape

        analyzer = cfg.analyzer.model_copy(update={"ai_analysis": cfg.analyzer.ai_analysis.model_copy(
            update={"enabled": True})})
        note = ai_step(diagnosis, analyzer, session_factory(init_db(cfg)), coredump_id=None, crash_group_id=None,
                       score=max(result.total, analyzer.value_threshold), pod=None, instance=None, group_count=1)
        ai_text = unescape(note.text)  # the note is markdown for the flow's report; this is a terminal
        data["ai"] = {"status": note.status, "text": note.text}
    if args.json:
        emit_json(data)
    else:
        sys.stdout.write(render_text(diagnosis))
        if ai_text:
            sys.stdout.write("\nAI analysis:\n" + "\n".join(shown(line) for line in ai_text.splitlines()) + "\n")
    return 0
