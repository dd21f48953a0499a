"""retention: delete stored cores past their age, per-instance count or the store's size (value-aware)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from coredumps.config import load_config
from coredumps.markdown import escape
from coredumps.storage import make_storage
from tasks import retention_tasks as t
from tasks.runtime import sessions_for


@flow(name="retention", log_prints=False)
def retention(dry_run: bool = False, config_path: str | None = None) -> dict[str, Any]:
    """One retention pass; with dry_run, report what would be deleted and delete nothing."""
    cfg = load_config(config_path)
    logger = get_run_logger()
    storage = make_storage(cfg.storage)
    sessions = sessions_for(cfg)
    copies = t.list_stored(storage, sessions)
    deletions = t.plan(copies, cfg)
    for deletion in deletions:
        t.delete(storage, sessions, deletion, dry_run)
    leftovers = t.clean_leftovers(storage, sessions, dry_run)
    freed = sum(d.copy.size for d in deletions)
    verb = "would delete" if dry_run else "deleted"
    logger.info("retention %s %d of %d stored cores (%d bytes)", verb, len(deletions), len(copies), freed)
    lines = [f"# Retention {'(dry run)' if dry_run else ''}", "",
             f"{verb} {len(deletions)} of {len(copies)} stored cores, {freed} bytes.", ""]
    if deletions:
        lines += ["| location | score | reason |", "|---|---|---|"]
        lines += [f"| {escape(d.copy.location)} | {d.copy.score:.2f} | {escape(d.reason)} |" for d in deletions]
    if leftovers:
        logger.info("retention %s %d leftovers of interrupted stores", verb, len(leftovers))
        lines += ["", f"{verb} {len(leftovers)} leftovers of stores interrupted more than a day ago:", ""]
        lines += [f"- {escape(item.location)} ({item.size} bytes)" for item in leftovers]
    create_markdown_artifact(markdown="\n".join(lines) + "\n", key="retention", description="Last retention pass")
    return {
        "dry_run": dry_run,
        "stored": len(copies),
        "deleted": [{"location": d.copy.location, "reason": d.reason, "size": d.copy.size} for d in deletions],
        "bytes_freed": freed,
        "leftovers": [{"location": item.location, "size": item.size} for item in leftovers],
    }
