"""process_coredump: one flow run per coredump.

identify -> claim -> correlate -> analyze -> crash group -> score -> AI -> store -> record.
Which task runs when, with which options; the work is in tasks/ and the domain.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.settings import get_current_settings

from coredumps import records
from coredumps.config import Config, load_config
from coredumps.diagnosis import Diagnosis
from coredumps.errors import BadInputError, CoredumpError, retryable
from coredumps.markdown import render_report
from coredumps.records import Correlation, GroupInfo, ProcessResult, Sessions
from coredumps.scoring import Score, breakdown_line
from flows.cancel import CANCELLED_REASON, RunCancelled, cancel_requested
from tasks import coredump_tasks as t
from tasks.prefect_api import add_flow_run_tags
from tasks.runtime import sessions_for


def _run_name() -> str:
    params = flow_run.parameters
    node = params.get("node") or "local"
    who = params.get("pod") or os.path.basename(params.get("exe") or "") or "unknown"
    return f"{node}/{who}/{os.path.basename(str(params.get('path', '')))}"[:200]


def _parse_pod(pod: str | None) -> tuple[str | None, str | None]:
    if not pod:
        return None, None
    namespace, _, name = pod.rpartition("/")
    return (namespace or "default"), name


# The run's result is its rows in the database (and what ``process`` prints): nothing for Prefect to persist. Said
# here, with a storage that needs no lookup, Prefect's engine does not ask the server three times a run for its
# default result storage.
@flow(name="process-coredump", flow_run_name=_run_name, retries=1, retry_delay_seconds=30, log_prints=False,
      persist_result=False, result_storage=Path(get_current_settings().results.local_storage_path))
def process_coredump(
    path: str,
    node: str | None = None,
    exe: str | None = None,
    pod: str | None = None,
    container: str | None = None,
    instance: str | None = None,
    instance_namespace: str | None = None,
    deployment_type: str = "unknown",
    pod_uid: str | None = None,
    correlation_rule: str | None = None,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Analyse, score, group, store and record one coredump; returns what ``process`` prints."""
    cfg = load_config(config_path)
    node = node or cfg.agent.resolved_node_name()
    logger = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    sessions = sessions_for(cfg)
    namespace, pod_name = _parse_pod(pod)
    corr = Correlation(
        pod_namespace=namespace, pod_name=pod_name, pod_uid=pod_uid, container_name=container,
        instance_name=instance, instance_namespace=instance_namespace or namespace,
        deployment_type=deployment_type, rule=correlation_rule or ("parameter" if pod or instance else None),
    )

    facts, skip_reason, claim = t.identify(path, node, cfg, sessions, run_id)
    if claim.duplicate:
        logger.info("%s was already processed (coredump %s, %s); nothing to do", path, claim.coredump_id, claim.status)
        return records.result_of(sessions, claim.coredump_id, duplicate=True).to_dict()
    records.set_flow_run(sessions, claim.coredump_id, run_id)
    t.correlate(sessions, claim.coredump_id, corr)

    if skip_reason:
        return _finish(sessions, claim.coredump_id, cfg, facts.file_name, node, corr, status="skipped",
                       skip_reason=skip_reason)

    _stop_if_cancelled(sessions, claim.coredump_id)
    try:
        diagnosis = t.analyze(path, exe, cfg, sessions, claim.coredump_id)
    except CoredumpError as exc:
        status = "failed" if not retryable(exc) else "retry"
        _finish(sessions, claim.coredump_id, cfg, facts.file_name, node, corr, status=status, error=str(exc))
        if isinstance(exc, BadInputError):
            logger.warning("%s: %s", path, exc)
            return records.result_of(sessions, claim.coredump_id).to_dict()
        raise
    add_flow_run_tags(run_id, [f"node:{node}", f"signal:{diagnosis.signal_name}", f"agent:{cfg.agent.name}"]
                      + ([f"instance:{instance}"] if instance else []))
    group = t.crash_group(sessions, claim.coredump_id, diagnosis, facts.crash_time or facts.mtime)
    score = t.score(sessions, claim.coredump_id, diagnosis, facts, corr, cfg)
    logger.info(breakdown_line(score, path, cfg.agent.log_language))
    _stop_if_cancelled(sessions, claim.coredump_id)
    try:
        ai_note = t.ai_analysis(sessions, claim.coredump_id, diagnosis, group, corr, score, cfg).text
    except Exception as exc:  # the write-up is optional: its failure never keeps a core from being stored
        logger.warning("the AI analysis failed (%s); the core goes on without it", type(exc).__name__)
        ai_note = f"failed: {type(exc).__name__}"

    threshold = cfg.analyzer.value_threshold
    if score.total < threshold:
        reason = f"score {score.total:.2f} is below analyzer.valueThreshold {threshold:g}"
        return _finish(sessions, claim.coredump_id, cfg, facts.file_name, node, corr, status="skipped",
                       skip_reason=reason, d=diagnosis, score=score, group=group, ai_note=ai_note)
    _stop_if_cancelled(sessions, claim.coredump_id)
    try:
        stored = t.store(sessions, claim.coredump_id, facts, corr, diagnosis, score, group, cfg)
    except CoredumpError as exc:
        status = "failed" if not retryable(exc) else "retry"
        _finish(sessions, claim.coredump_id, cfg, facts.file_name, node, corr, status=status,
                error=f"storing failed: {exc}", d=diagnosis, score=score, group=group, ai_note=ai_note)
        raise
    try:
        create_link_artifact(link=_link(stored.location), link_text=stored.location,
                             description="The stored copy of the coredump")
    except Exception:  # the link is for people; its failure must not fail a run whose core is stored
        logging.getLogger(__name__).warning("could not create the link artifact", exc_info=True)
    return _finish(sessions, claim.coredump_id, cfg, facts.file_name, node, corr, status="stored",
                   d=diagnosis, score=score, group=group, location=stored.location, ai_note=ai_note)


def _stop_if_cancelled(sessions: Sessions, coredump_id: int) -> None:
    """A checkpoint: a run cancelled while it executes in a node runner ends here, its row saying so."""
    if cancel_requested():
        records.finish(sessions, coredump_id, "failed", error=CANCELLED_REASON)
        raise RunCancelled(CANCELLED_REASON)


def _link(location: str) -> str:
    return location if "://" in location else f"file://{location}"


def _finish(
    sessions: Sessions, coredump_id: int, cfg: Config, file_name: str, node: str, corr: Correlation, *,
    status: str, skip_reason: str | None = None, error: str | None = None, d: Diagnosis | None = None,
    score: Score | None = None, group: GroupInfo | None = None, location: str | None = None,
    ai_note: str | None = None,
) -> dict[str, Any]:
    result: ProcessResult = t.record(sessions, coredump_id, status, skip_reason, error)
    markdown = render_report(
        file_name=file_name, node=node, corr=corr, d=d, score=score, group=group, status=status,
        location=location, skip_reason=skip_reason, error=error, threshold=cfg.analyzer.value_threshold,
        ai_note=ai_note,
    )
    try:
        create_markdown_artifact(markdown=markdown, key=f"coredump-{coredump_id}",
                                 description=f"Diagnosis of coredump {coredump_id}")
    except Exception:  # the report is for people; its failure must not lose the row
        logging.getLogger(__name__).warning("could not create the report artifact", exc_info=True)
    return result.to_dict()
