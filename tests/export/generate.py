"""Rows for volume: a deterministic generator that fills every exported table through the SQLAlchemy models."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db import (
    AIAnalysisResult,
    AnalysisResult,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    MilvusInstance,
    RestartEvent,
    StorageEvent,
)
from coredumps.scoring import DIMENSIONS

START = datetime(2026, 3, 1, tzinfo=UTC)
SIGNALS = [(11, "SIGSEGV"), (6, "SIGABRT"), (8, "SIGFPE"), (7, "SIGBUS")]
INSTANCES = [("milvus", "alpha"), ("milvus", "beta"), ("search", "gamma"), ("search", "delta"), ("default", "eps")]


@dataclass(frozen=True)
class Generated:
    coredumps: int
    crash_groups: int
    ai_analyses: int
    restart_events: int
    storage_events: int
    cleanup_events: int
    instances: int


def _at(rng: random.Random, days: int) -> datetime:
    return START + timedelta(seconds=rng.uniform(0, days * 86400), microseconds=rng.randrange(1_000_000))


def fill(sessions: sessionmaker[Session], *, coredumps: int = 3000, days: int = 30, seed: int = 7) -> Generated:
    """Insert a consistent set of rows into every exported table; ids start after any existing ones."""
    rng = random.Random(seed)
    instances: list[dict[str, Any]] = [
        {
            "id": index + 1, "namespace": ns, "name": name, "deployment_type": rng.choice(["helm", "operator"]),
            "release_name": name, "labels": {"app.kubernetes.io/name": "milvus", "team": f"t{index % 2}"},
            "status": "running", "pod_count": rng.randrange(1, 9), "first_seen": START + timedelta(days=index),
            "last_seen": START + timedelta(days=days), "deleted_at": None,
        }
        for index, (ns, name) in enumerate(INSTANCES)
    ]
    groups: list[dict[str, Any]] = []
    for index in range(25):
        number, name = SIGNALS[index % len(SIGNALS)]
        seen = _at(rng, days)
        groups.append({
            "id": index + 1, "signature": f"milvus!{name}: frame_{index} < caller_{index}", "title": f"frame_{index}",
            "executable": "/milvus/bin/milvus", "signal_name": name, "first_seen": seen,
            "last_seen": seen + timedelta(days=2), "count": 0, "best_coredump_id": None, "best_score": None,
            "ai_analysis_id": None,
        })
    cores: list[dict[str, Any]] = []
    analyses: list[dict[str, Any]] = []
    stores: list[dict[str, Any]] = []
    for index in range(coredumps):
        core_id = index + 1
        group = rng.choice(groups)
        group["count"] += 1
        instance = rng.choice(instances)
        created = _at(rng, days)
        number, name = SIGNALS[[s[1] for s in SIGNALS].index(group["signal_name"])]
        breakdown = {dim: round(rng.choice([0.0, 0.5, 1.0, 1.5]), 1) for dim in DIMENSIONS}
        breakdown["base"] = 4.0
        score = min(10.0, sum(breakdown.values()))
        stored = score >= 7.0
        if group["best_score"] is None or score > group["best_score"]:
            group["best_score"], group["best_coredump_id"] = score, core_id
        failed = index % 50 == 0
        cores.append({
            "id": core_id, "idempotency_key": f"node-{index % 4}:{core_id}", "node_name": f"node-{index % 4}",
            "path": f"/var/lib/systemd/coredump/core.milvus.{core_id}.zst", "file_name": f"core.milvus.{core_id}.zst",
            "size_bytes": rng.randrange(10**6, 10**9), "mtime": created, "inode": 1000 + core_id,
            "input_compression": "zst", "executable": "/milvus/bin/milvus", "comm": "milvus", "pid": 100 + index,
            "uid": 1000, "signal_number": number, "signal_name": name, "crash_time": created - timedelta(seconds=3),
            "pod_namespace": instance["namespace"], "pod_name": f"{instance['name']}-milvus-standalone-0",
            "pod_uid": f"uid-{instance['id']}", "container_name": "standalone", "instance_id": instance["id"],
            "instance_name": instance["name"], "correlation_rule": "hostname",
            "status": "failed" if failed else ("stored" if stored else "skipped"),
            "skip_reason": None if stored or failed else "score below 7.0",
            "error": "corrupt core: the notes end early" if failed else None,
            "score": None if failed else score, "score_breakdown": None if failed else breakdown,
            "is_panic": name == "SIGABRT", "signature": None if failed else group["signature"],
            "crash_group_id": None if failed else group["id"], "stored": stored and not failed,
            "storage_backend": "local" if stored and not failed else None,
            "storage_location": f"data/coredumps/{instance['name']}/{core_id}.core.zst" if stored else None,
            "stored_size": rng.randrange(10**5, 10**8) if stored else None, "stored_sha256": None,
            "source_deleted": False, "flow_run_id": f"run-{core_id}", "created_at": created,
            "updated_at": created + timedelta(seconds=5),
        })
        if not failed:
            analyses.append({
                "id": core_id, "coredump_id": core_id, "crash_reason": f"{name} in frame_{group['id']}",
                "signal_number": number, "signal_name": name, "si_code": 1, "fault_address": "0x0",
                "thread_count": rng.randrange(1, 64), "crashing_thread": 1, "frames": [], "threads": [],
                "stack_trace": "#0 frame", "registers": {}, "libraries": [], "is_panic": name == "SIGABRT",
                "truncated": index % 97 == 0, "signature": group["signature"], "omitted_frames": 0,
                "gdb_seconds": round(rng.uniform(0.1, 3.0), 3), "warnings": [], "created_at": created,
            })
        if stored and not failed:
            stores.append({
                "coredump_id": core_id, "action": "store", "backend": "local", "status": "ok",
                "location": f"data/coredumps/{instance['name']}/{core_id}.core.zst", "size_bytes": 1234,
                "sha256": "ab" * 32, "reason": None, "attempt": 1, "duration_seconds": 0.25,
                "created_at": created + timedelta(seconds=4),
            })
    ai = [
        {
            "coredump_id": core["id"], "crash_group_id": core["crash_group_id"], "provider": "glm",
            "model": "glm-4.5-flash", "status": "ok", "summary": "null pointer in segment load",
            "root_cause": "a segment was released while loading", "impact": "query node restarts",
            "recommendations": ["check segment refcounts", "upgrade"], "confidence": 0.7,
            "code_suggestions": [], "related_issues": [], "prompt_tokens": rng.randrange(500, 3000),
            "completion_tokens": rng.randrange(100, 900), "cost_usd": round(rng.uniform(0, 0.02), 6),
            "duration_seconds": 2.5, "created_at": core["created_at"] + timedelta(seconds=10),
        }
        for core in cores[::10] if core["crash_group_id"]
    ]
    restarts = []
    for index in range(coredumps // 3):
        instance = rng.choice(instances)
        restarts.append({
            "node_name": f"node-{index % 4}", "namespace": instance["namespace"],
            "pod_name": f"{instance['name']}-milvus-standalone-0", "pod_uid": f"uid-{instance['id']}",
            "container_name": "standalone", "instance_id": instance["id"], "instance_name": instance["name"],
            "restart_count": index + 1, "exit_code": 139, "reason": "Error", "signal": 11,
            "is_panic": index % 5 == 0, "log_excerpt": "panic: runtime error", "finished_at": _at(rng, days),
            "detected_at": _at(rng, days),
        })
    cleanups = [
        {
            "instance_id": instance["id"], "namespace": instance["namespace"], "instance_name": instance["name"],
            "action": "dry-run", "decision": "dry-run", "reason": "6 restarts within 1h", "restart_count": 6,
            "window_seconds": 3600.0, "incident_key": f"{instance['name']}-{index}", "flow_run_id": None,
            "details": {}, "created_at": _at(rng, days),
        }
        for index, instance in enumerate(rng.choice(instances) for _ in range(40))
    ]
    with sessions() as session:
        for model, rows in (
            (MilvusInstance, instances), (CrashGroup, groups), (CoredumpFile, cores), (AnalysisResult, analyses),
            (AIAnalysisResult, ai), (RestartEvent, restarts), (StorageEvent, stores), (CleanupEvent, cleanups),
        ):
            if rows:
                session.execute(insert(model), rows)
        session.commit()
    return Generated(len(cores), len(groups), len(ai), len(restarts), len(stores), len(cleanups), len(instances))


def coredump_row(core_id: int, created: datetime, **values: Any) -> CoredumpFile:
    """A new coredump_files row with the fields a test does not care about filled in."""
    defaults: dict[str, Any] = {
        "idempotency_key": f"new:{core_id}", "node_name": "node-new", "path": f"/cores/core.{core_id}",
        "file_name": f"core.{core_id}", "size_bytes": 4096, "mtime": created, "status": "stored", "score": 8.0,
        "score_breakdown": {"base": 4.0, "crash_reason": 2.0, "stack_trace": 1.5, "extra_key": 9.0},
        "instance_name": "alpha", "created_at": created,
    }
    return CoredumpFile(id=core_id, **{**defaults, **values})
