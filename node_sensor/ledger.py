"""The sensor's durable hand-over ledger: a Prefect outage delays a file, never drops it.

One SQLite file under agent.dataDir. A finished core is written here first
(state ``pending``); the dispatcher turns it into a flow run and records the
flow run id (``submitted``); the executor marks it ``done`` when the run ends.
A restart resumes from whatever the ledger says. The key is the file's
identity (node, device, inode, size, mtime), so the same bytes are handed over
once however often they are seen.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    flow_run_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    detected_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, next_try);
CREATE INDEX IF NOT EXISTS files_run ON files (flow_run_id);
"""


@dataclass(frozen=True)
class Entry:
    key: str
    path: str
    state: str
    params: str
    flow_run_id: str | None
    attempts: int
    detected_at: float


class Ledger:
    """Thread-safe; every change is committed before the call returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, key: str, path: str, params: str, state: str = "pending") -> bool:
        """Record a finished file; False when its key is already known."""
        now = time.time()
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO files (key, path, state, params, detected_at, updated_at) VALUES (?,?,?,?,?,?)",
                (key, path, state, params, now, now),
            )
            return cursor.rowcount == 1

    def state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM files WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def due(self, limit: int = 100) -> list[Entry]:
        """Pending entries whose next try has come, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, path, state, params, flow_run_id, attempts, detected_at FROM files "
                "WHERE state = 'pending' AND next_try <= ? ORDER BY detected_at LIMIT ?",
                (time.time(), limit),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def in_state(self, state: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, path, state, params, flow_run_id, attempts, detected_at FROM files WHERE state = ?",
                (state,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def submitted(self, key: str, flow_run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state = 'submitted', flow_run_id = ?, error = NULL, updated_at = ? WHERE key = ?",
                (flow_run_id, time.time(), key),
            )

    def retry_later(self, key: str, error: str, max_delay: float = 60.0) -> float:
        """Count a failed hand-over and schedule the next try with exponential backoff."""
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM files WHERE key = ?", (key,)).fetchone()
            attempts = (row[0] if row else 0) + 1
            delay = min(max_delay, 0.5 * 2 ** min(attempts, 10))
            db.execute(
                "UPDATE files SET state = 'pending', attempts = ?, next_try = ?, error = ?, updated_at = ? "
                "WHERE key = ?",
                (attempts, time.time() + delay, error[:500], time.time(), key),
            )
        return delay

    def finished(self, flow_run_id: str, state: str = "done") -> str | None:
        """Mark the entry of a flow run finished; returns its key."""
        with self._tx() as db:
            row = db.execute("SELECT key FROM files WHERE flow_run_id = ?", (flow_run_id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE files SET state = ?, updated_at = ? WHERE key = ?", (state, time.time(), row[0]))
            return str(row[0])

    def detected_at(self, key: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT detected_at FROM files WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}
