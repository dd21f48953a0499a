"""The process_coredump flow's tasks: each a few lines over a domain function.

Retries, timeouts and the per-node GDB concurrency limit are declared here;
the logic lives in the domain package and is tested without Prefect.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from coredumps import records
from coredumps.ai.step import AINote, ai_step
from coredumps.analysis import analyze_core, analyze_notes_only, index_cache_for, scratch_dir_for
from coredumps.config import Config
from coredumps.diagnosis import Diagnosis
from coredumps.intake import identify_file
from coredumps.records import Claim, Correlation, FileFacts, GroupInfo, ProcessResult, Sessions
from coredumps.scoring import Score, score_diagnosis
from coredumps.slots import node_slot
from coredumps.storage import StoredObject, make_storage
from coredumps.storing import release_source, store_request
from tasks.policies import transient_only


@task(name="identify", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient_only)
def identify(path: str, node: str, cfg: Config, sessions: Sessions,
             flow_run_id: str | None) -> tuple[FileFacts, str | None, Claim]:
    """The file's facts, a reason to skip it if any, and its row (found when an earlier run made it)."""
    facts, skip_reason = identify_file(Path(path), node, cfg)
    return facts, skip_reason, records.claim(sessions, facts, flow_run_id)


@task(name="correlate", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def correlate(sessions: Sessions, coredump_id: int, corr: Correlation) -> int | None:
    return records.correlate(sessions, coredump_id, corr)


@task(name="analyze", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, retry_condition_fn=transient_only)
def analyze(path: str, exe: str | None, cfg: Config, sessions: Sessions, coredump_id: int) -> Diagnosis:
    """GDB under the node's analysis slots (analyzer.maxConcurrentAnalyses across all runs on this node).

    Its time limit is GDB's own hard deadline (analyzer.gdbTimeout), which kills GDB even in a worker thread.
    With analyzer.enableGdbAnalysis off, only the core's ELF notes are read.
    """
    slots = Path(cfg.agent.data_dir) / "slots"
    scratch = scratch_dir_for(cfg.agent.data_dir)
    with node_slot(slots, "gdb", cfg.analyzer.max_concurrent_analyses, timeout=cfg.analyzer.gdb_timeout):
        if not cfg.analyzer.enable_gdb_analysis:
            diagnosis = analyze_notes_only(Path(path), cfg.analyzer, scratch_dir=scratch)
        else:
            diagnosis = analyze_core(Path(path), cfg.analyzer, exe=exe, scratch_dir=scratch,
                                     index_cache=index_cache_for(cfg.agent.data_dir))
    records.record_analysis(sessions, coredump_id, diagnosis)
    return diagnosis


@task(name="crash-group", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def crash_group(sessions: Sessions, coredump_id: int, diagnosis: Diagnosis, seen_at: datetime) -> GroupInfo:
    return records.join_group(sessions, coredump_id, diagnosis, seen_at)


@task(name="score", cache_policy=NO_CACHE)
def score(sessions: Sessions, coredump_id: int, diagnosis: Diagnosis, facts: FileFacts, corr: Correlation,
          cfg: Config) -> Score:
    age = time.time() - (facts.crash_time or facts.mtime).timestamp()
    result = score_diagnosis(diagnosis, cfg.analyzer, age_seconds=age, pod_known=corr.pod_known,
                             instance_known=corr.instance_known)
    records.record_score(sessions, coredump_id, result)
    return result


@task(name="ai-analysis", cache_policy=NO_CACHE)
def ai_analysis(sessions: Sessions, coredump_id: int, diagnosis: Diagnosis, group: GroupInfo, corr: Correlation,
                result: Score, cfg: Config) -> AINote:
    """Root-cause write-up by an LLM within the budget; never changes the score, never fails the run."""
    pod = f"{corr.pod_namespace}/{corr.pod_name}" if corr.pod_name else None
    return ai_step(diagnosis, cfg.analyzer, sessions, coredump_id=coredump_id, crash_group_id=group.id,
                   score=result.total, pod=pod, instance=corr.instance_name, group_count=group.count)


@task(name="store", cache_policy=NO_CACHE, retries=4, retry_delay_seconds=[2, 4, 8, 16], retry_jitter_factor=0.5,
      retry_condition_fn=transient_only)
def store(sessions: Sessions, coredump_id: int, facts: FileFacts, corr: Correlation, diagnosis: Diagnosis,
          result: Score, group: GroupInfo, cfg: Config) -> StoredObject:
    """Compress, upload, verify; then, only then and only if configured, release the source."""
    storage = make_storage(cfg.storage)
    started = time.monotonic()
    request = store_request(facts, corr, diagnosis, result, group, coredump_id)
    try:
        stored = storage.store(request)
    except Exception as exc:
        records.record_storage(sessions, coredump_id, backend=storage.backend, action="store", status="failed",
                               reason=str(exc), duration=time.monotonic() - started)
        raise
    records.record_storage(sessions, coredump_id, backend=storage.backend, action="store", status="ok",
                           location=stored.location, size=stored.size, sha256=stored.sha256,
                           reason="already stored; reused" if stored.reused else None,
                           duration=time.monotonic() - started)
    if release_source(facts, cfg.collector):
        records.mark_source_deleted(sessions, coredump_id)
    return stored


@task(name="record", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def record(sessions: Sessions, coredump_id: int, status: str, skip_reason: str | None,
           error: str | None) -> ProcessResult:
    """The file's final status (a stored file's row was completed by the store itself), and its crash
    counted for its instance's cleanup limit where no restart event covers it."""
    if status != "stored":
        records.finish(sessions, coredump_id, status, skip_reason=skip_reason, error=error)
    records.count_crash(sessions, coredump_id)
    return records.result_of(sessions, coredump_id)
