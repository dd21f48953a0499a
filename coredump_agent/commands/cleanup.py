"""``coredump-agent cleanup``: one pass of the cleanup flow, ``status``, and ``restore NS/INSTANCE``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from coredump_agent.prefect_env import apply_defaults


def _instance(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAMESPACE/INSTANCE, e.g. default/my-release")
    return namespace, name


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "cleanup",
        help="Count restarts per Milvus instance and schedule cleanup of crash-looping ones (cleaner.*).",
        description="Without a subcommand, run one cleanup pass: count restarts per instance within "
        "cleaner.restartTimeWindow, schedule cleaner.action for instances at cleaner.maxRestartCount "
        "cleaner.cleanupDelay ahead (cancel the scheduled run in the Prefect UI to stop it), and start "
        "cleanups that are due. Every decision is a cleanup_events row.",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="count and report what would be scheduled; record, schedule and run nothing")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)
    commands = parser.add_subparsers(dest="cleanup_command", metavar="SUBCOMMAND")

    status = commands.add_parser(
        "status", help="List instances with their restart counts, the limit and pending cleanups.",
        description="Instances that restarted within cleaner.restartTimeWindow or have a cleanup pending, with "
        "the restart count, cleaner.maxRestartCount, the last decision and the state of the scheduled run.",
    )
    status.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the result as one JSON object")
    status.set_defaults(handler=run_status)

    restore = commands.add_parser(
        "restore", help="Scale an instance back to the replica counts scale-to-zero kept.",
        description="Scale the Deployments and StatefulSets of NS/INSTANCE back to the replica counts kept in "
        "their coredump-agent/original-replicas annotation, then remove the annotation.",
    )
    restore.add_argument("target", metavar="NS/INSTANCE", type=_instance,
                         help="namespace and instance name, e.g. default/my-release")
    restore.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the result as one JSON object")
    restore.set_defaults(handler=run_restore)


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured

    configured(args)
    apply_defaults()
    from flows.cleanup import cleanup

    result = cleanup(dry_run=args.dry_run, config_path=args.config)
    if args.json:
        emit_json(result)
        return 0
    out = sys.stdout
    if not result["enabled"]:
        out.write("cleanup is off (cleaner.enabled is false)\n")
        return 0
    mode = " (dry run: nothing recorded or scheduled)" if args.dry_run else ""
    out.write(f"cleanup pass{mode}: action {result['action']}, limit {result['limit']} restarts within "
              f"{_duration(result['window_seconds'])}, delay {_duration(result['delay_seconds'])}\n")
    for item in result["instances"]:
        out.write(f"  {item['namespace']}/{item['instance']}: {item['restarts']} restarts\n")
    for title, key in (("decided", "decisions"), ("resolved", "resolved"), ("pending", "pending")):
        for item in result[key]:
            out.write(f"{title}: [{item['decision']}] {item['namespace']}/{item['instance']}: {item['reason']}\n")
    for item in result["errors"]:
        out.write(f"error: {item['namespace']}/{item['instance']}: {item['error']}\n")
    return 1 if result["errors"] else 0


def run_status(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured

    cfg = configured(args)
    apply_defaults()
    from coredumps.cleanup.status import instance_status
    from coredumps.db.types import utcnow
    from tasks.runtime import sessions_for

    entries = instance_status(sessions_for(cfg), cfg.cleaner, utcnow())
    _add_run_states(entries)
    if getattr(args, "json", False):
        emit_json({"action": cfg.cleaner.action, "enabled": cfg.cleaner.enabled, "instances": entries})
        return 0
    out = sys.stdout
    out.write(f"cleanup {'on' if cfg.cleaner.enabled else 'off'}: action {cfg.cleaner.action}, limit "
              f"{cfg.cleaner.max_restart_count} restarts within {_duration(cfg.cleaner.restart_time_window)}, "
              f"namespaces {', '.join(cfg.cleaner.namespaces) or '(none)'}\n")
    if not entries:
        out.write("no instance restarted within the window and no cleanup is pending\n")
    for e in entries:
        line = f"{e['namespace']}/{e['instance']}: {e['restarts']}/{e['limit']} restarts"
        if e["pending"]:
            p = e["pending"]
            line += f"; pending {p['action']} at {p.get('scheduled_time') or '?'} (run {p.get('run_state') or '?'})"
        elif e["last_decision"]:
            last = e["last_decision"]
            line += f"; last: [{last['decision']}] {last['action']}: {last['reason']}"
        out.write(line + "\n")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured

    configured(args)
    apply_defaults()
    from flows.cleanup import restore_instance

    namespace, name = args.target
    result = restore_instance(namespace=namespace, instance=name, config_path=args.config)
    if getattr(args, "json", False):
        emit_json(result)
    else:
        sys.stdout.write(f"{namespace}/{name}: {result['reason']}\n")
    return 0


def _add_run_states(entries: list[dict[str, Any]]) -> None:
    """The Prefect state of each pending run; 'unknown' when the API cannot say."""
    from tasks.cleanup_tasks import view_run

    for entry in entries:
        pending = entry.get("pending")
        if not pending or not pending.get("flow_run_id"):
            continue
        try:
            view = view_run(pending["flow_run_id"])
        except Exception:  # status is informational; the rows above still stand
            pending["run_state"] = "unknown"
            continue
        pending["run_state"] = view.state_name if view else "deleted"


def _duration(seconds: float) -> str:
    from coredumps.cleanup.decisions import duration

    return duration(seconds)
