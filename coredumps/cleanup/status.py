"""``cleanup status``: instances with their restart counts, the limit, and pending cleanups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from coredumps.cleanup import records
from coredumps.cleanup.incidents import Sessions, tally_restarts
from coredumps.config import CleanerConfig


def instance_status(sessions: Sessions, cfg: CleanerConfig, now: datetime) -> list[dict[str, Any]]:
    """One entry per instance that restarted within the window or has a cleanup pending."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for tally in tally_restarts(sessions, cfg.restart_time_window, now):
        entries[(tally.namespace, tally.instance)] = {
            "namespace": tally.namespace, "instance": tally.instance, "restarts": tally.count,
            "last_restart": tally.last.isoformat(), "pending": None,
        }
    for row in records.pending(sessions):
        e = row.entry
        entry = entries.setdefault((e.namespace, e.instance), {
            "namespace": e.namespace, "instance": e.instance, "restarts": 0, "last_restart": None, "pending": None})
        entry["pending"] = {"action": e.action, "incident_key": e.incident_key, "flow_run_id": e.flow_run_id,
                            "scheduled_time": e.details.get("scheduled_time"), "since": row.created_at.isoformat()}
    for entry in entries.values():
        entry["limit"] = cfg.max_restart_count
        entry["window_seconds"] = cfg.restart_time_window
        entry["over_limit"] = entry["restarts"] >= cfg.max_restart_count
        last = records.history(sessions, namespace=entry["namespace"], instance=entry["instance"], limit=1)
        entry["last_decision"] = last[0].to_dict() if last else None
    return sorted(entries.values(), key=lambda e: (-e["restarts"], e["namespace"], e["instance"]))
