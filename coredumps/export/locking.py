"""One export at a time per database, released by the system if the exporting process dies.

PostgreSQL: a session-level advisory lock on a connection held for the run.
SQLite (one machine by nature): an ``flock`` on ``<database>.export-lock``
beside the database file. A second export fails at once with ExportBusyError
rather than waiting: the next scheduled run catches up.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from coredumps.errors import TransientError
from coredumps.export.errors import ExportBusyError

ADVISORY_KEY = 1668248166
_BUSY = "another Parquet export of this database is running; try again when it has finished."


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a session factory is bound to."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory is not bound to an engine")
    return bind


@contextmanager
def export_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's export lock for the block; ExportBusyError if another run holds it."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = engine.url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        yield
        return
    with _file_lock(Path(f"{database}.export-lock")):
        yield


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    try:
        conn = engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise TransientError(f"database: cannot connect for the export lock ({reason}); will retry.") from exc
    with conn:
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar()
        conn.commit()
        if not taken:
            raise ExportBusyError(_BUSY)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            conn.commit()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ExportBusyError(_BUSY) from exc
        yield
    finally:
        os.close(fd)
