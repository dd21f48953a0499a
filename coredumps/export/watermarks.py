"""How far each table's export has got: one ``export_watermarks`` row per table.

The watermark is the largest change timestamp of the rows a run exported,
capped at the run's start (a node with a clock ahead cannot push it into the
future). It is written only after every partition of the table is published.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db.models import ExportWatermark
from coredumps.errors import TransientError

Sessions = sessionmaker[Session]


def read_watermark(sessions: Sessions, table: str) -> datetime | None:
    """The table's watermark, or None before its first export."""
    with _database(f"read the watermark of {table}"), sessions() as session:
        row = session.get(ExportWatermark, table)
        return row.watermark if row is not None else None


def write_watermark(sessions: Sessions, table: str, watermark: datetime | None) -> None:
    """Record the table's watermark (a None leaves an existing one as it is)."""
    if watermark is None:
        return
    with _database(f"record the watermark of {table}"), sessions() as session:
        row = session.get(ExportWatermark, table)
        if row is None:
            session.add(ExportWatermark(table_name=table, watermark=watermark))
        else:
            row.watermark = watermark
        session.commit()


def all_watermarks(sessions: Sessions) -> dict[str, datetime | None]:
    """Every table's watermark, by table name."""
    with _database("read the export watermarks"), sessions() as session:
        return {row.table_name: row.watermark for row in session.scalars(select(ExportWatermark))}


@contextmanager
def _database(what: str) -> Iterator[None]:
    """Turns a database outage into a TransientError naming what was being done."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise TransientError(f"database: cannot {what} ({reason}); will retry.") from exc
