"""A new version of one date partition, written beside the published one and then swapped in.

The rows read from the database for the partition go first; then, when the
partition was published before, its part is streamed back batch by batch:
rows whose id was read again are left out (the database's version replaces
them), the others are kept (incremental tables) or dropped (snapshot tables,
where a row not read again has moved to another date or been deleted). So the
new part holds exactly one row per id. Rows read again are compared with the
ones they replace; when nothing differs the staged part is discarded and the
partition is left as it was, which is what makes a re-run write nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coredumps.export.destinations import Destination, Publish, Staged, io_error
from coredumps.export.errors import DatasetMismatchError
from coredumps.export.schemas import SCHEMA_VERSION, schema_version
from coredumps.export.tables import TableSpec

COMPRESSION = "zstd"


@dataclass(frozen=True)
class PartitionOutcome:
    """What happened to one partition: its date, rows new or changed, and whether a new part was published."""

    date: str
    changed: int
    published: bool


class PartitionRewrite:
    """Stages one partition's new part; ``finish`` publishes it when anything changed."""

    def __init__(self, destination: Destination, spec: TableSpec, date: str, *, merge: bool, batch_rows: int) -> None:
        self.destination = destination
        self.spec = spec
        self.date = date
        self.merge = merge
        self.batch_rows = batch_rows
        self.read = 0
        self._fingerprints: dict[int, bytes] = {}
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._done = False
        self.staged: Staged = destination.stage(spec.name, date)
        try:
            self._writer = pq.ParquetWriter(self.staged.sink, spec.schema, compression=COMPRESSION)
        except OSError as exc:
            destination.discard(self.staged)
            raise io_error(exc, f"write {self._where}") from exc

    @property
    def _where(self) -> str:
        return f"{self.destination.url}/{self.spec.name}/date={self.date}"

    def add(self, batch: pa.RecordBatch) -> None:
        """Rows read from the database for this partition."""
        self.read += batch.num_rows
        if self.merge:
            self._fingerprints.update(fingerprints(batch))
        self._write(batch)

    def finish(self, publish: Publish) -> PartitionOutcome:
        """Complete the part; publish it if any row is new, changed or gone, else discard it."""
        changed = self._merge_published() if self.merge else self.read
        try:
            self._flush()
            self._writer.close()
        except OSError as exc:
            raise io_error(exc, f"write {self._where}") from exc
        self._done = True
        if changed == 0:
            self.destination.discard(self.staged)
            return PartitionOutcome(self.date, 0, False)
        publish(self.staged)
        return PartitionOutcome(self.date, changed, True)

    def abort(self) -> None:
        """Drop the staged part after a failure (best effort; the next run sweeps leftovers)."""
        if not self._done:
            self._done = True
            with contextlib.suppress(Exception):
                self._writer.close()
        self.destination.discard(self.staged)

    def _merge_published(self) -> int:
        ids = pa.array(list(self._fingerprints), pa.int64())
        unchanged = dropped = 0
        with self.destination.open_part(self.spec.name, self.date) as source:
            part = self._open(source)
            with part:
                for old in part.iter_batches(batch_size=self.batch_rows):
                    hit = pc.is_in(old.column("id"), value_set=ids)
                    rest = old.filter(pc.invert(hit))
                    if self.spec.snapshot:
                        dropped += rest.num_rows
                    else:
                        self._write(rest)
                    for key, digest in fingerprints(old.filter(hit)).items():
                        unchanged += self._fingerprints.get(key) == digest
        return len(self._fingerprints) - unchanged + dropped

    def _open(self, source: Any) -> pq.ParquetFile:
        try:
            part = pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetMismatchError(
                f"export: {self._where} holds a part that is not readable Parquet ({exc}); "
                "run export-parquet --full to rewrite the dataset."
            ) from exc
        found = part.schema_arrow
        version = schema_version(found.metadata)
        if version != SCHEMA_VERSION or not found.equals(self.spec.schema, check_metadata=False):
            part.close()
            raise DatasetMismatchError(
                f"export: {self._where} was written with schema version {version}, this is version "
                f"{SCHEMA_VERSION}; run export-parquet --full to rewrite the dataset."
            )
        return part

    def _write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.spec.schema)
        self._buffer, self._buffered = [], 0
        try:
            self._writer.write_table(table, row_group_size=self.batch_rows)
        except OSError as exc:
            raise io_error(exc, f"write {self._where}") from exc


def fingerprints(batch: pa.RecordBatch) -> dict[int, bytes]:
    """A digest of every row's values, by id: equal digests mean equal rows."""
    ids = batch.column("id").to_pylist()
    rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
    return {key: _digest(row) for key, row in zip(ids, rows, strict=True)}


def _digest(row: tuple[Any, ...]) -> bytes:
    return hashlib.blake2b(repr(row).encode(), digest_size=16).digest()

