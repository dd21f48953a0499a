"""What a kept core is stored as: its request, its JSON sidecar, and releasing the source."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from coredumps.config import CollectorConfig
from coredumps.corefiles import FileIdentity
from coredumps.diagnosis import Diagnosis
from coredumps.records import Correlation, FileFacts, GroupInfo
from coredumps.scoring import Score
from coredumps.storage import StoreRequest

log = logging.getLogger(__name__)
SIDECAR_VERSION = 1


def sidecar(facts: FileFacts, corr: Correlation, d: Diagnosis, score: Score, group: GroupInfo,
            coredump_id: int) -> dict[str, Any]:
    """The JSON stored next to the core: enough to understand it without the database."""
    analysis = d.to_dict()
    analysis.pop("threads", None)
    return {
        "version": SIDECAR_VERSION,
        "coredump_id": coredump_id,
        "file": {k: str(v) if v is not None else None for k, v in asdict(facts).items()},
        "correlation": asdict(corr),
        "analysis": analysis,
        "score": score.to_dict(),
        "crash_group": {"id": group.id, "signature": group.signature, "count": group.count},
    }


def store_request(facts: FileFacts, corr: Correlation, d: Diagnosis, score: Score, group: GroupInfo,
                  coredump_id: int) -> StoreRequest:
    return StoreRequest(
        source=Path(facts.path),
        instance=corr.instance_name or "",
        timestamp=facts.crash_time or facts.mtime,
        pod_name=corr.pod_name or facts.comm or d.comm or None,
        container_name=corr.container_name,
        sidecar=sidecar(facts, corr, d, score, group, coredump_id),
        source_id=facts.idempotency_key,
    )


def release_source(facts: FileFacts, collector: CollectorConfig) -> bool:
    """Delete the source of a verified stored copy when collector.deleteAfterStore is on.

    Only while the path still holds the file that was stored (same device, inode, size and mtime): a
    kernel pattern that reuses a name may have put the next crash's core there meanwhile.
    """
    if not collector.delete_after_store:
        return False
    path = Path(facts.path)
    try:
        now = FileIdentity.from_stat(facts.node_name, path.lstat())
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("%s: stored and verified, but the source could not be checked, so it is kept: %s", path, exc)
        return False
    if now.key() != facts.idempotency_key:
        log.warning("%s: stored and verified, but the file at this path has changed since; it is kept", path)
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("%s: stored and verified, but the source could not be deleted: %s", path, exc)
        return False
    return True
