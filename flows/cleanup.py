"""cleanup: quarantine crash-looping Milvus instances, after a delay during which a person can cancel.

``cleanup`` (the pass; every minute and on restart events) counts restarts per instance within
cleaner.restartTimeWindow. An instance at cleaner.maxRestartCount gets one Scheduled flow run of
``cleanup-instance``, cleaner.cleanupDelay ahead: from the ``INSTANCE_DEPLOYMENT`` deployment when
it exists (a worker runs it), else of the flow itself, and then the pass starts it once it is due.
Cancel that run in the Prefect UI during the delay and nothing happens. ``cleanup-instance``
re-reads the instance from the Kubernetes API and acts only if it still crash-loops.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_engine import run_flow
from prefect.runtime import flow_run

from coredumps.cleanup import records
from coredumps.cleanup.decisions import (
    Proposal,
    action_refusal,
    duration,
    namespace_refusal,
    over_limit,
    plan,
    propose,
    scale_order,
    stand_down,
)
from coredumps.cleanup.errors import NothingToRestoreError
from coredumps.cleanup.incidents import Sessions
from coredumps.cleanup.live import LiveInstance, Workload
from coredumps.cleanup.records import INTERRUPTED, Decision, Entry, Row, outcome_key
from coredumps.cleanup.report import render_outcome, render_pass
from coredumps.cleanup.scaling import restore_order
from coredumps.config import Config, load_config
from coredumps.db.types import utcnow
from coredumps.errors import ConfigError, CoredumpError
from coredumps.kube.client import KubeClient, connect
from coredumps.kube.pods import instance_of
from tasks import cleanup_tasks as t
from tasks.runtime import sessions_for

INSTANCE_DEPLOYMENT = "cleanup-instance/cleanup-instance"
"""The per-instance deployment the pass schedules runs of, when it exists."""
NO_CLUSTER = ("no Kubernetes cluster is configured; run the agent in the cluster or set KUBECONFIG so that "
              "cleanup can check and act on instances.")


def _kube() -> KubeClient:
    client = connect()
    if client is None:
        raise ConfigError(NO_CLUSTER)
    return client


def _artifact_key(*parts: str) -> str:
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text)[:100].strip("-") or "cleanup"


def _run_id() -> str | None:
    return str(flow_run.id) if flow_run.id else None


# ---------------------------------------------------------------- the pass


@flow(name="cleanup", log_prints=False)
def cleanup(dry_run: bool = False, config_path: str | None = None) -> dict[str, Any]:
    """One pass: resolve due and cancelled cleanups, count restarts, schedule new cleanups.

    With ``dry_run`` nothing is recorded, scheduled or run; the result says what would be.
    """
    cfg = load_config(config_path)
    c = cfg.cleaner
    logger = get_run_logger()
    result: dict[str, Any] = {
        "dry_run": dry_run, "enabled": c.enabled, "action": c.action, "limit": c.max_restart_count,
        "window_seconds": c.restart_time_window, "delay_seconds": c.cleanup_delay,
        "instances": [], "decisions": [], "resolved": [], "pending": [], "errors": [],
    }
    if c.enabled:
        sessions = sessions_for(cfg)
        if not dry_run:
            result["resolved"] = [row.to_dict() for row in _resolve(cfg, sessions, config_path)]
        tallies = t.tally(sessions, c, utcnow())
        result["instances"] = [found.to_dict() for found in tallies]
        busy = {(r.entry.namespace, r.entry.instance) for r in records.pending(sessions)}
        for found in over_limit(tallies, c):
            if (found.namespace, found.instance) in busy:
                continue
            key, start = t.incident(sessions, found, c.restart_time_window)
            if records.find(sessions, key) is not None:
                continue
            proposal = propose(found, key, start, c)
            if dry_run:
                result["decisions"].append(proposal.to_dict())
                continue
            try:
                row = _decide(cfg, sessions, proposal, config_path)
            except Exception as exc:
                logger.warning("cleanup of %s/%s not scheduled: %s", found.namespace, found.instance, exc)
                result["errors"].append({"namespace": found.namespace, "instance": found.instance, "error": str(exc)})
                continue
            if row is not None:
                result["decisions"].append(row.to_dict())
        result["pending"] = [row.to_dict() for row in records.pending(sessions)]
        logger.info("cleanup pass: %d instances restarted within %s, %d decisions, %d resolved, %d pending",
                    len(tallies), duration(c.restart_time_window), len(result["decisions"]),
                    len(result["resolved"]), len(result["pending"]))
    create_markdown_artifact(markdown=render_pass(result), key="cleanup", description="Last cleanup pass")
    return result


def _decide(cfg: Config, sessions: Sessions, p: Proposal, config_path: str | None) -> Row | None:
    """Record the decision; for 'scheduled', create the run and keep its id."""
    c = cfg.cleaner
    at = utcnow() + timedelta(seconds=c.cleanup_delay)
    details: dict[str, Any] = {"incident_start": p.incident_start.isoformat(),
                               "first_restart": p.tally.first.isoformat(), "last_restart": p.tally.last.isoformat()}
    if p.decision == "scheduled":
        details["scheduled_time"] = at.isoformat()
    entry = Entry(namespace=p.tally.namespace, instance=p.tally.instance, action=c.action, decision=p.decision,
                  reason=p.reason, restart_count=p.tally.count, window_seconds=c.restart_time_window,
                  incident_key=p.incident_key, details=details, instance_id=p.tally.instance_id)
    row = records.add(sessions, entry)
    if row is None:
        return None
    if p.decision == "scheduled":
        row = _schedule(cfg, sessions, row, config_path)
    t.notify(row, cfg.monitor.alerting)
    return row


def _schedule(cfg: Config, sessions: Sessions, row: Row, config_path: str | None) -> Row:
    e = row.entry
    assert e.incident_key is not None
    now = utcnow()
    at = now + timedelta(seconds=cfg.cleaner.cleanup_delay)
    if isinstance(e.details.get("scheduled_time"), str):
        announced = datetime.fromisoformat(e.details["scheduled_time"])
        # The announced time, unless it has passed without a run to cancel (the run could not be created
        # then): the run created now gets the whole delay, so that people can still cancel it.
        if announced > now:
            at = announced
    parameters = {"namespace": e.namespace, "instance": e.instance, "incident_key": e.incident_key,
                  "config_path": config_path}
    try:
        run = t.schedule(cleanup_instance, INSTANCE_DEPLOYMENT, parameters, at, e.incident_key,
                         ["cleanup", f"instance:{e.namespace}/{e.instance}"])
    except Exception:
        records.remove(sessions, row.id)
        raise
    details = {**e.details, "deployment": INSTANCE_DEPLOYMENT if run.deployment_id else None}
    return records.update(sessions, row.id, flow_run_id=run.id, details=details)


def _resolve(cfg: Config, sessions: Sessions, config_path: str | None) -> list[Row]:
    """Earlier scheduled cleanups: cancelled ones closed, due ones (without a deployment) run."""
    done: list[Row] = []
    for row in records.pending(sessions):
        try:
            outcome = _resolve_one(cfg, sessions, row, config_path)
        except Exception as exc:
            get_run_logger().warning("the cleanup of %s/%s (run %s) could not be resolved: %s", row.entry.namespace,
                                     row.entry.instance, row.entry.flow_run_id, exc)
            continue
        if outcome is not None:
            done.append(outcome)
    return done


def _resolve_one(cfg: Config, sessions: Sessions, row: Row, config_path: str | None) -> Row | None:
    e = row.entry
    if e.flow_run_id is None:
        _schedule(cfg, sessions, row, config_path)
        return None
    view = t.view_run(e.flow_run_id)
    if view is None:
        return _close(cfg, sessions, row, "cancelled", "its scheduled flow run was deleted, so nothing was done")
    if view.cancelled:
        why = f"the scheduled run was cancelled ({view.message or view.state_name}), so nothing was done"
        return _close(cfg, sessions, row, "cancelled", why)
    due = view.scheduled_time is not None and view.scheduled_time <= utcnow()
    if view.state == "SCHEDULED" and view.deployment_id is None and due:
        return _run_due(cfg, sessions, row)
    if view.final:
        return _close(cfg, sessions, row, "failed", f"the cleanup run ended {view.state_name} without recording "
                      f"an outcome: {view.message or 'no message'}")
    return None


def _run_due(cfg: Config, sessions: Sessions, row: Row) -> Row | None:
    """Run a due flow run here, after claiming it the way a worker does (Scheduled -> Pending)."""
    e = row.entry
    assert e.flow_run_id is not None and e.incident_key is not None
    if not t.claim_run(e.flow_run_id):
        view = t.view_run(e.flow_run_id)
        if view is None or view.cancelled:
            return _close(cfg, sessions, row, "cancelled", "the scheduled run was cancelled, so nothing was done")
        return None
    run_flow(cleanup_instance, flow_run=t.read_run(e.flow_run_id), return_type="state")
    return records.find(sessions, outcome_key(e.incident_key))


def _close(cfg: Config, sessions: Sessions, row: Row, decision: Decision, reason: str) -> Row | None:
    e = row.entry
    assert e.incident_key is not None
    key = outcome_key(e.incident_key)
    closed = records.add(sessions, replace(e, decision=decision, reason=reason, incident_key=key, details={}))
    if closed is not None:
        t.notify(closed, cfg.monitor.alerting)
    return closed


# ---------------------------------------------------------------- one instance


@flow(name="cleanup-instance", flow_run_name="cleanup-{namespace}-{instance}", log_prints=False)
def cleanup_instance(
    namespace: str, instance: str, incident_key: str, config_path: str | None = None
) -> dict[str, Any]:
    """Re-check one instance through the Kubernetes API and apply cleaner.action, once per incident."""
    cfg = load_config(config_path)
    c = cfg.cleaner
    sessions = sessions_for(cfg)
    claim = Entry(namespace=namespace, instance=instance, action=c.action, decision="failed", reason=INTERRUPTED,
                  window_seconds=c.restart_time_window, incident_key=outcome_key(incident_key),
                  flow_run_id=_run_id(), details={"incident": incident_key})
    claimed = records.add(sessions, claim) or records.retake(sessions, incident_key, _run_id())
    if claimed is None:
        again = f"incident {incident_key} was already handled; nothing was done twice"
        row = records.add(sessions, replace(claim, decision="skipped", incident_key=None, reason=again))
        assert row is not None
        t.notify(row, cfg.monitor.alerting)
        return row.to_dict()
    facts: dict[str, Any] = {"incident": incident_key}
    error: Exception | None = None
    announced = records.find(sessions, incident_key)
    try:
        if announced is not None and announced.entry.action != c.action:
            # What was announced, and left running by whoever could cancel it, is what may be done.
            decision, reason = "skipped", (
                f"cleaner.action changed from {announced.entry.action} (announced when the cleanup was scheduled) "
                f"to {c.action}; nothing was done, and the new action needs a new decision and its own delay")
        else:
            decision, reason = _check_and_act(cfg, sessions, namespace, instance, facts)
    except Exception as exc:
        error = exc
        decision = "failed"
        reason = str(exc) if isinstance(exc, CoredumpError) else f"unexpected {type(exc).__name__}: {exc}"
        if facts.get("rollback"):
            reason = f"{reason} {facts['rollback']}"
    count = facts.pop("restart_count", None)
    row = records.update(sessions, claimed.id, decision=decision, reason=reason, restart_count=count, details=facts)
    t.notify(row, cfg.monitor.alerting)
    create_markdown_artifact(markdown=render_outcome(row), key=_artifact_key("cleanup", namespace, instance),
                             description=f"Cleanup of {namespace}/{instance}")
    get_run_logger().info("cleanup of %s/%s: %s: %s", namespace, instance, decision, reason)
    if error is not None:
        raise error
    return row.to_dict()


def _check_and_act(cfg: Config, sessions: Sessions, namespace: str, instance: str,
                   facts: dict[str, Any]) -> tuple[Decision, str]:
    c = cfg.cleaner
    who = f"{namespace}/{instance}"
    if not c.enabled:
        return "skipped", "cleaner.enabled is false"
    refusal = namespace_refusal(c, namespace)
    if refusal is not None:
        return "skipped", refusal
    client = _kube()
    try:
        live = t.read_instance(client, namespace, instance)
        now = utcnow()
        operator = {(namespace, instance)} if live.milvus is not None else set()
        milvus = live.milvus_only(
            lambda pod: (instance_of(pod, cfg.discovery, operator_instances=operator) or ("",))[0] == instance)
        # Only the restarts of the pods that are there now: an instance re-installed during the delay starts
        # from nothing, however often the pods it replaced crashed.
        facts["restart_count"] = t.count(sessions, namespace, instance, c.restart_time_window, now,
                                         pods=milvus.pod_identities())
        facts["live"] = live.to_dict()
        reason = stand_down(live, facts["restart_count"], c, now, crash_looping=milvus.crash_looping)
        if reason is not None:
            return "skipped", reason
        release = t.helm_release(client, live) if c.action == "helm-uninstall" else live.helm_release()
        refusal = action_refusal(c.action, live, release)
        if refusal is not None:
            return "skipped", refusal
        facts["plan"] = plan(c.action, live, release)
        if c.action == "dry-run":
            return "dry-run", (f"would clean up {who}: {facts['restart_count']} restarts within "
                               f"{duration(c.restart_time_window)} and still crash-looping; set cleaner.action "
                               "to scale-to-zero, delete-cr or helm-uninstall to act")
        if c.action == "scale-to-zero":
            scaled = _scale_to_zero(client, live, facts)
            return "executed", (f"scaled {', '.join(scaled)} to zero; coredump-agent cleanup restore {who} "
                                "puts them back")
        if c.action == "delete-cr":
            if not t.delete_milvus(client, namespace, instance):
                return "skipped", f"the Milvus resource {who} was already deleted by someone else"
            return "executed", f"deleted the Milvus resource {who}; the operator removes what it created"
        assert release is not None
        facts["helm_output"] = t.helm_uninstall(release, namespace, c.uninstall_timeout)[-2000:]
        return "executed", f"uninstalled the Helm release {release} from {namespace}"
    finally:
        client.close()


def _scale_to_zero(client: KubeClient, live: LiveInstance, facts: dict[str, Any]) -> list[str]:
    """Annotate every workload with its replicas, then scale each to zero; on failure put back what changed.

    A count kept by an earlier scale-to-zero that was never restored stays: it is the one to go back to.
    """
    ns = live.namespace
    order = scale_order(live)
    annotated: list[Workload] = []
    attempted: list[Workload] = []
    try:
        for w in order:
            t.keep_original(client, ns, w)
            if w.original_replicas is None:
                annotated.append(w)
        for w in order:
            attempted.append(w)
            t.set_replicas(client, ns, w, 0)
    except Exception:
        facts["rollback"] = _undo(client, live, annotated, attempted)
        raise
    return [f"{w.kind} {w.name} ({w.replicas})" for w in order]


def _undo(client: KubeClient, live: LiveInstance, annotated: list[Workload], attempted: list[Workload]) -> str:
    namespace = live.namespace
    stuck: list[str] = []
    for w in reversed(attempted):
        try:
            t.set_replicas(client, namespace, w, w.replicas)
        except CoredumpError:
            stuck.append(f"{w.kind} {w.name}")
    for w in annotated:
        if f"{w.kind} {w.name}" in stuck:
            continue
        try:
            t.forget_original(client, namespace, w)
        except CoredumpError:
            stuck.append(f"{w.kind} {w.name} (annotation)")
    if stuck:
        return (f"Could not put back {', '.join(stuck)}; run coredump-agent cleanup restore "
                f"{namespace}/{live.name} when the API server answers again.")
    return "Everything it had changed was put back."


# ---------------------------------------------------------------- restore


@flow(name="restore-instance", flow_run_name="restore-{namespace}-{instance}", log_prints=False)
def restore_instance(namespace: str, instance: str, config_path: str | None = None) -> dict[str, Any]:
    """Scale an instance's workloads back to the replica counts scale-to-zero kept, and drop the annotation."""
    cfg = load_config(config_path)
    sessions = sessions_for(cfg)
    client = _kube()
    restored: list[dict[str, Any]] = []
    try:
        order = restore_order(t.read_instance(client, namespace, instance))
        for w in order:
            replicas = w.original_replicas or 0
            t.set_replicas(client, namespace, w, replicas)
            t.forget_original(client, namespace, w)
            restored.append({"kind": w.kind, "name": w.name, "replicas": replicas})
    except CoredumpError as exc:
        if not isinstance(exc, NothingToRestoreError):
            done = ", ".join(f"{r['kind']} {r['name']}" for r in restored) or "nothing"
            _record_restore(cfg, sessions, namespace, instance, "failed", f"{exc} Restored so far: {done}.", restored)
        raise
    finally:
        client.close()
    reason = "restored " + ", ".join(f"{r['kind']} {r['name']} to {r['replicas']}" for r in restored)
    return _record_restore(cfg, sessions, namespace, instance, "executed", reason, restored).to_dict()


def _record_restore(cfg: Config, sessions: Sessions, namespace: str, instance: str, decision: Decision,
                    reason: str, restored: list[dict[str, Any]]) -> Row:
    row = records.add(sessions, Entry(namespace=namespace, instance=instance, action="restore", decision=decision,
                                    reason=reason, flow_run_id=_run_id(), details={"restored": restored}))
    assert row is not None
    t.notify(row, cfg.monitor.alerting)
    create_markdown_artifact(markdown=render_outcome(row), key=_artifact_key("restore", namespace, instance),
                             description=f"Restore of {namespace}/{instance}")
    return row
