"""The cleanup decisions as pure functions: whom to schedule, and whether to stand down at run time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from coredumps.cleanup.incidents import RestartTally
from coredumps.cleanup.live import LiveInstance, Workload
from coredumps.config import CleanerConfig


def duration(seconds: float) -> str:
    """3600 -> "1h", 90 -> "1m30s", 0 -> "0s"."""
    total = round(seconds)
    parts = [(total // 86400, "d"), (total % 86400 // 3600, "h"), (total % 3600 // 60, "m"), (total % 60, "s")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return text or "0s"


def namespace_refusal(cfg: CleanerConfig, namespace: str) -> str | None:
    """Why cleanup may not act in ``namespace``; ``None`` when the allow-list has it."""
    if namespace in cfg.namespaces:
        return None
    if not cfg.namespaces:
        return (f"cleaner.namespaces is empty, so cleanup acts nowhere; add {namespace} to it "
                "to allow cleanup there")
    return f"namespace {namespace} is not in cleaner.namespaces; add it to allow cleanup there"


def over_limit(tallies: Iterable[RestartTally], cfg: CleanerConfig) -> list[RestartTally]:
    """Instances with at least cleaner.maxRestartCount restarts within the window."""
    return [t for t in tallies if t.count >= cfg.max_restart_count]


@dataclass(frozen=True)
class Proposal:
    """What one pass does about one crash-looping instance."""

    tally: RestartTally
    incident_key: str
    incident_start: datetime
    decision: Literal["scheduled", "skipped"]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.tally.to_dict(), "incident_key": self.incident_key, "decision": self.decision,
                "reason": self.reason}


def propose(tally: RestartTally, incident_key: str, incident_start: datetime, cfg: CleanerConfig) -> Proposal:
    """Schedule the cleanup, or skip it here and now when the namespace is not allowed."""
    refusal = namespace_refusal(cfg, tally.namespace)
    if refusal is not None:
        return Proposal(tally, incident_key, incident_start, "skipped", refusal)
    reason = (f"{tally.count} restarts within {duration(cfg.restart_time_window)} (limit "
              f"{cfg.max_restart_count}); {cfg.action} in {duration(cfg.cleanup_delay)} unless cancelled")
    return Proposal(tally, incident_key, incident_start, "scheduled", reason)


def stand_down(live: LiveInstance, restarts: int, cfg: CleanerConfig, now: datetime,
               crash_looping: Callable[[datetime, float], bool] | None = None) -> str | None:
    """Why a due cleanup must not act on what the API shows now; ``None`` when it may.

    ``crash_looping`` judges the crash loop (by default on every pod of ``live``; the flow passes the
    Milvus pods' judgement); existence and protection are always judged on everything ``live`` holds.
    """
    who = f"{live.namespace}/{live.name}"
    if not live.exists:
        return f"{who} no longer exists; it was deleted during the delay"
    protected = live.protected_by(cfg.protect_label)
    if protected is not None:
        return f'{who} is protected: {protected} is labelled {cfg.protect_label}="true"'
    if restarts < cfg.max_restart_count:
        return (f"{who} restarted {restarts} times within {duration(cfg.restart_time_window)}, below "
                f"cleaner.maxRestartCount {cfg.max_restart_count}")
    if not (crash_looping or live.crash_looping)(now, cfg.restart_time_window):
        return f"no container of {who} is crash-looping any more"
    return None


def action_refusal(action: str, live: LiveInstance, helm_release: str | None) -> str | None:
    """Why ``action`` cannot apply to this instance; ``None`` when it can."""
    who = f"{live.namespace}/{live.name}"
    if action == "scale-to-zero" and not any(w.replicas > 0 for w in live.workloads):
        return f"{who} has no Deployment or StatefulSet with replicas to scale down"
    if action == "delete-cr" and live.milvus is None:
        return (f"{who} has no Milvus resource (milvus.io/v1beta1); delete-cr only applies to operator "
                "instances, use helm-uninstall or scale-to-zero")
    if action == "helm-uninstall" and helm_release is None:
        return (f"{who} is not a Helm release (no Helm 3 release record found); use delete-cr or "
                "scale-to-zero")
    if action == "helm-uninstall" and helm_release != live.name:
        return (f"{who}: its workloads name the Helm release {helm_release}, not {live.name}; nothing is "
                "uninstalled that is not this instance's own release")
    return None


def plan(action: str, live: LiveInstance, helm_release: str | None) -> dict[str, Any]:
    """What the action changes, for the row's details and the dry-run report."""
    if action == "scale-to-zero":
        return {"scale_to_zero": [w.to_dict() for w in scale_order(live)]}
    if action == "delete-cr":
        return {"delete_milvus_resource": live.name}
    if action == "helm-uninstall":
        return {"helm_uninstall": helm_release}
    return {"would_scale_to_zero": [w.to_dict() for w in scale_order(live)],
            "milvus_resource": live.name if live.milvus is not None else None, "helm_release": helm_release}


def scale_order(live: LiveInstance) -> list[Workload]:
    """Workloads to scale down, Milvus's Deployments before the StatefulSets it depends on."""
    running = [w for w in live.workloads if w.replicas > 0]
    return sorted(running, key=lambda w: (w.kind != "deployment", w.name))
