"""Rows from the database as Arrow record batches, ``batch_rows`` at a time.

The query streams (``yield_per``: a server-side cursor on PostgreSQL, the
SQLite cursor as it steps), so memory holds one batch whatever the table's
size. Timestamps and JSON arrive as the driver gives them and are converted a
column at a time: SQLite's UTC timestamp text by Arrow's parser, a score
breakdown's JSON text by Arrow's JSON reader; values those cannot take (other
timestamp spellings, a breakdown holding text, labels with numbers) go
through Python one by one and are coerced to the schema.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from coredumps.errors import PermanentError, TransientError
from coredumps.export.tables import TableSpec

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


def read_batches(
    session: Session, spec: TableSpec, since: datetime | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The table's rows changed at or after ``since`` (all of them for None), ordered by partition then id."""
    try:
        result = session.connection().execution_options(yield_per=batch_rows).execute(spec.query(since))
        for rows in result.partitions():
            yield to_batch(spec, rows)
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise TransientError(f"database: reading {spec.name} for the export failed ({reason}); will retry.") from exc


def to_batch(spec: TableSpec, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """One record batch of ``spec.schema`` from result rows in schema order."""
    schema = spec.schema
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [_array(spec.name, values, f) for values, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(table: str, values: Sequence[Any], f: pa.Field) -> pa.Array:
    if pa.types.is_timestamp(f.type) and _text(values):
        return _timestamps(table, values, f)
    if pa.types.is_nested(f.type) and _text(values):
        if pa.types.is_struct(f.type):
            parsed = _json_structs(values, f)
            if parsed is not None:
                return parsed
        values = [_loads(value) for value in values]
    try:
        return pa.array(values, type=f.type)
    except _ARROW_ERRORS as exc:
        if not pa.types.is_nested(f.type):
            raise PermanentError(f"{table}.{f.name}: a database value does not fit {f.type} ({exc}).") from exc
    return pa.array([_coerce(value, f.type) for value in values], type=f.type)


def _text(values: Sequence[Any]) -> bool:
    """True when the driver gave text (its first non-null value is a string)."""
    return isinstance(next((value for value in values if value is not None), None), str)


def _timestamps(table: str, values: Sequence[Any], f: pa.Field) -> pa.Array:
    """UTC timestamp text (SQLite's naive UTC, ISO 8601) as ``timestamp[us, UTC]``."""
    try:
        return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(f.type)
    except _ARROW_ERRORS:
        pass
    try:
        return pa.array([_utc(value) for value in values], type=f.type)
    except _ARROW_ERRORS as exc:
        raise PermanentError(f"{table}.{f.name}: a database value is not a timestamp ({exc}).") from exc


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_structs(values: Sequence[Any], f: pa.Field) -> pa.Array | None:
    """JSON objects parsed by Arrow into ``f``'s struct; None when some value needs Python's help."""
    lines = b"\n".join(b'{"v":' + (value.encode() if isinstance(value, str) else b"null") + b"}" for value in values)
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([pa.field("v", f.type)]), unexpected_field_behavior="ignore"
    )
    try:
        table = pa_json.read_json(io.BytesIO(lines), parse_options=options)
    except _ARROW_ERRORS:
        return None
    if table.num_rows != len(values):
        return None
    return table.column("v").combine_chunks()


def _loads(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _coerce(value: Any, kind: pa.DataType) -> Any:
    """A JSON value reduced to what ``kind`` holds; anything unusable becomes null."""
    if value is None:
        return None
    if pa.types.is_struct(kind):
        if not isinstance(value, dict):
            return None
        return {f.name: _number(value.get(f.name)) for f in kind}
    if pa.types.is_map(kind):
        return [(str(k), str(v)) for k, v in value.items()] if isinstance(value, dict) else None
    if pa.types.is_list(kind):
        return [str(item) for item in value] if isinstance(value, list) else None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def partition_dates(batch: pa.RecordBatch, column: str) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Consecutive runs of one UTC date in a batch sorted by ``column``: (``YYYY-MM-DD``, the run)."""
    if batch.num_rows == 0:
        return
    dates = pc.run_end_encode(pc.strftime(batch.column(column), format="%Y-%m-%d"))
    start = 0
    for end, date in zip(dates.run_ends.to_pylist(), dates.values.to_pylist(), strict=True):
        yield str(date), batch.slice(start, end - start)
        start = end


def latest(batch: pa.RecordBatch, column: str) -> datetime | None:
    """The batch's largest value of a timestamp column."""
    value = pc.max(batch.column(column)).as_py()
    return value if isinstance(value, datetime) else None
