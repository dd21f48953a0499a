"""``coredump-agent process CORE``: run the process-coredump flow for one file and print its result."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from coredump_agent.commands.args import utf8_text
from coredump_agent.prefect_env import apply_defaults
from coredumps.inputs import check_regular_file

FIELDS = ("coredump_id", "score", "stored", "location", "skip_reason", "duplicate", "flow_run_id")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "process",
        help="Run the process-coredump flow on one core: analyse, score, group, store, record.",
        description="Run the process-coredump Prefect flow on one core, against the configured Prefect API "
        "(PREFECT_API_URL) or Prefect's ephemeral mode when none is configured, and print the result: "
        "coredump_id, score, stored, location, skip_reason, duplicate, flow_run_id.",
    )
    parser.add_argument("core", type=utf8_text, help="path of the core file")
    parser.add_argument("--exe", type=utf8_text, help="the crashed program's executable, for symbols")
    parser.add_argument("--pod", type=utf8_text, metavar="NS/NAME", help="the pod the core came from")
    parser.add_argument("--container", type=utf8_text, help="the container the core came from")
    parser.add_argument("--instance", type=utf8_text, help="the Milvus instance (Helm release or operator CR name)")
    parser.add_argument("--node", type=utf8_text,
                        help="the node name (default: agent.nodeName, $NODE_NAME or the hostname)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured

    configured(args)  # fail fast on a bad config, before Prefect starts
    check_regular_file(Path(args.core))  # and on a path that is not a core file, before a run is made of it
    if not args.verbose:  # the result below says what went wrong; Prefect's own tracebacks only with -v
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    apply_defaults()
    from flows.process_coredump import process_coredump

    result = process_coredump(
        path=args.core, exe=args.exe, pod=args.pod, container=args.container, instance=args.instance,
        node=args.node, config_path=args.config,
    )
    if args.json:
        emit_json(result)
    else:
        for key in (*FIELDS, "status", "signature", "crash_reason", "error"):
            if key in FIELDS or result.get(key) is not None:
                sys.stdout.write(f"{key + ':':<14}{result.get(key)}\n")
    return 0 if result.get("status") in ("stored", "skipped") else 2 if result.get("status") == "failed" else 1
