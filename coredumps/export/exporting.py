"""The export of one table, and of the whole dataset under the export lock.

A table's run: sweep temporary parts an interrupted run left, read the rows
changed since ``watermark - lookback`` (all rows for a full export or a
snapshot table) in batches ordered by partition date, rewrite each touched
partition (``partitions.PartitionRewrite``), remove partitions that no longer
have rows (full exports and snapshot tables), and only then advance the
watermark. A crash anywhere before that leaves the watermark where it was, so
the next run reads the same rows again; partitions it already published
compare equal and are left alone, the rest are written. Nothing is lost and
no id appears twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from coredumps.db.types import utcnow
from coredumps.errors import ConfigError
from coredumps.export.destinations import Destination, Publish
from coredumps.export.locking import engine_of, export_lock
from coredumps.export.partitions import PartitionOutcome, PartitionRewrite
from coredumps.export.reading import latest, partition_dates, read_batches
from coredumps.export.tables import TABLE_NAMES, TABLES, TableSpec
from coredumps.export.watermarks import read_watermark, write_watermark

Sessions = sessionmaker[Session]
DEFAULT_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class TableResult:
    """One table's run: rows read, rows new or changed, partitions published and removed."""

    table: str
    rows_read: int
    rows_written: int
    partitions: tuple[str, ...]
    removed: tuple[str, ...]
    watermark: datetime | None
    swept: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["partitions"], data["removed"] = list(self.partitions), list(self.removed)
        data["watermark"] = self.watermark.isoformat() if self.watermark else None
        return data


@dataclass(frozen=True)
class ExportResult:
    """A whole run over every table."""

    dest: str
    full: bool
    tables: tuple[TableResult, ...]

    @property
    def rows_written(self) -> int:
        return sum(table.rows_written for table in self.tables)

    @property
    def partitions_touched(self) -> int:
        return sum(len(table.partitions) + len(table.removed) for table in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "full": self.full,
            "rows_written": self.rows_written,
            "partitions_touched": self.partitions_touched,
            "tables": [table.to_dict() for table in self.tables],
        }


def table_spec(table: str) -> TableSpec:
    """The spec of an exported table; an unknown name raises ConfigError."""
    try:
        return TABLES[table]
    except KeyError:
        raise ConfigError(f"export: unknown table {table!r}; the tables are {', '.join(TABLE_NAMES)}.") from None


def export_table(
    sessions: Sessions,
    destination: Destination,
    table: str,
    *,
    full: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    publish: Publish | None = None,
    now: datetime | None = None,
) -> TableResult:
    """Export one table's new and changed rows (every row with ``full``); the watermark moves last.

    ``publish`` replaces the destination's publication step (tests use it to fail there).
    """
    spec = table_spec(table)
    started = now or utcnow()
    swept = destination.sweep(spec.name)
    existing = destination.partitions(spec.name)
    mark = read_watermark(sessions, spec.name)
    since = None if full or mark is None else mark - spec.lookback
    outcomes, read, newest = _rewrite(
        sessions, destination, spec, since, existing, full=full, batch_rows=batch_rows,
        publish=publish or destination.publish,
    )
    visited = {outcome.date for outcome in outcomes}
    removed = sorted(existing - visited) if full or spec.snapshot else []
    for date in removed:
        destination.remove(spec.name, date)
    watermark = mark
    if newest is not None:
        capped = min(newest, started)
        watermark = capped if mark is None or full else max(mark, capped)
        write_watermark(sessions, spec.name, watermark)
    published = [outcome for outcome in outcomes if outcome.published]
    return TableResult(
        table=spec.name,
        rows_read=read,
        rows_written=sum(outcome.changed for outcome in published),
        partitions=tuple(outcome.date for outcome in published),
        removed=tuple(removed),
        watermark=watermark,
        swept=swept,
    )


def _rewrite(
    sessions: Sessions,
    destination: Destination,
    spec: TableSpec,
    since: datetime | None,
    existing: set[str],
    *,
    full: bool,
    batch_rows: int,
    publish: Publish,
) -> tuple[list[PartitionOutcome], int, datetime | None]:
    outcomes: list[PartitionOutcome] = []
    read = 0
    newest: datetime | None = None
    current: PartitionRewrite | None = None
    try:
        with sessions() as session:
            for batch in read_batches(session, spec, since, batch_rows):
                read += batch.num_rows
                newest = max(filter(None, (newest, latest(batch, spec.changed_by))), default=None)
                for date, rows in partition_dates(batch, spec.partition_by):
                    if current is None or current.date != date:
                        if current is not None:
                            outcomes.append(current.finish(publish))
                        current = PartitionRewrite(
                            destination, spec, date, merge=not full and date in existing, batch_rows=batch_rows
                        )
                    current.add(rows)
            if current is not None:
                outcomes.append(current.finish(publish))
                current = None
    except BaseException:
        if current is not None:
            current.abort()
        raise
    return outcomes, read, newest


def export_dataset(
    sessions: Sessions,
    destination: Destination,
    *,
    full: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    tables: tuple[str, ...] = TABLE_NAMES,
    publish: Publish | None = None,
) -> ExportResult:
    """Export every table under the database's export lock (ExportBusyError when another run holds it)."""
    with export_lock(engine_of(sessions)):
        results = tuple(
            export_table(sessions, destination, table, full=full, batch_rows=batch_rows, publish=publish)
            for table in tables
        )
    return ExportResult(destination.url, full, results)
