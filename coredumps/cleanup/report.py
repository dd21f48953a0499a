"""What people see: the markdown artifacts of a pass and of a cleanup run, and the alert message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coredumps.cleanup.decisions import duration
from coredumps.cleanup.records import Row
from coredumps.markdown import escape

EVENT = "milvus.instance.cleanup"


def summary(row: Row) -> str:
    """One line: ``[decision] namespace/instance (action): reason``."""
    e = row.entry
    return f"[{e.decision}] {e.namespace}/{e.instance} ({e.action}): {e.reason}"


def message(row: Row) -> dict[str, Any]:
    """The webhook's JSON body (``text`` suits Slack-style receivers)."""
    e = row.entry
    return {
        "event": EVENT, "namespace": e.namespace, "instance": e.instance, "action": e.action,
        "decision": e.decision, "reason": e.reason, "restartCount": e.restart_count,
        "windowSeconds": e.window_seconds, "incidentKey": e.incident_key, "flowRunId": e.flow_run_id,
        "at": row.created_at.isoformat(), "text": summary(row),
    }


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(escape(r.get(key, "") if r.get(key) is not None else "") for key, _ in columns) + " |"
              for r in rows]
    return lines


def render_pass(result: Mapping[str, Any]) -> str:
    """The pass: restart counts, what it decided, and what became of earlier decisions."""
    title = "# Cleanup pass" + (" (dry run: nothing recorded or scheduled)" if result.get("dry_run") else "")
    lines = [title, ""]
    if not result.get("enabled", True):
        return "\n".join([*lines, "cleaner.enabled is false; nothing was counted.", ""])
    lines += [f"Action **{escape(result['action'])}**, limit {result['limit']} restarts within "
              f"{duration(result['window_seconds'])}, delay {duration(result['delay_seconds'])}.", ""]
    instances = result.get("instances") or []
    lines += ["## Restarts within the window", ""]
    lines += _table(instances, [("namespace", "namespace"), ("instance", "instance"), ("restarts", "restarts"),
                                ("last", "last restart")]) if instances else ["No restarts within the window."]
    for key, heading in (("decisions", "Decisions"), ("resolved", "Earlier decisions resolved"),
                         ("pending", "Pending cleanups")):
        if result.get(key):
            lines += ["", f"## {heading}", ""]
            lines += _table(result[key], [("namespace", "namespace"), ("instance", "instance"),
                                          ("decision", "decision"), ("reason", "reason")])
    return "\n".join(lines) + "\n"


def render_outcome(row: Row) -> str:
    """One cleanup run's outcome."""
    e = row.entry
    lines = [f"# Cleanup of {escape(e.namespace)}/{escape(e.instance)}: {escape(e.decision)}", "",
             f"- action: {escape(e.action)}", f"- reason: {escape(e.reason)}"]
    if e.restart_count is not None and e.window_seconds is not None:
        lines.append(f"- restarts: {e.restart_count} within {duration(e.window_seconds)}")
    if e.incident_key:
        lines.append(f"- incident: {escape(e.incident_key.removesuffix('#outcome'))}")
    for key, value in sorted(e.details.items()):
        lines.append(f"- {escape(key)}: {escape(value)}")
    return "\n".join(lines) + "\n"
