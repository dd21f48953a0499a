"""``coredump-agent retention``: one pass of the retention flow."""

from __future__ import annotations

import argparse
import sys

from coredump_agent.prefect_env import apply_defaults


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "retention",
        help="Delete stored cores past storage.retentionDays, keepPerInstance or maxStorageSize.",
        description="Run the retention flow once: age, per-instance count and total size limits, keeping "
        "high-value cores and each crash group's best longest. Every deletion is a storage_events row.",
    )
    parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured

    configured(args)
    apply_defaults()
    from flows.retention import retention

    result = retention(dry_run=args.dry_run, config_path=args.config)
    if args.json:
        emit_json(result)
    else:
        verb = "would delete" if args.dry_run else "deleted"
        sys.stdout.write(f"retention {verb} {len(result['deleted'])} of {result['stored']} stored cores "
                         f"({result['bytes_freed']} bytes)\n")
        for item in result["deleted"]:
            sys.stdout.write(f"  {item['location']}: {item['reason']}\n")
    return 0
