"""The Parquet dataset for notebooks: every table, partitioned by date, written incrementally.

Layout: ``<dest>/<table>/date=YYYY-MM-DD/part-0.parquet``, zstd, one explicit
schema per table (``schemas``), the schema version in each file's metadata.
Each run writes what changed since the table's watermark (``export_watermarks``)
by rewriting the touched date partitions, each swapped in whole, so readers
always find exactly one current row per id (``partitions``, ``destinations``).
The watermark moves only after the table's partitions are published; a crash
or a re-run neither loses nor duplicates rows (``exporting``).
"""

from coredumps.export.destinations import Destination, LocalDestination, Staged, open_destination, parse_destination
from coredumps.export.errors import DatasetMismatchError, ExportBusyError
from coredumps.export.exporting import ExportResult, TableResult, export_dataset, export_table
from coredumps.export.locking import engine_of, export_lock
from coredumps.export.report import render_markdown
from coredumps.export.schemas import SCHEMA_VERSION, SCHEMAS
from coredumps.export.tables import TABLE_NAMES, TABLES
from coredumps.export.watermarks import all_watermarks, read_watermark

__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TABLES",
    "TABLE_NAMES",
    "DatasetMismatchError",
    "Destination",
    "ExportBusyError",
    "ExportResult",
    "LocalDestination",
    "Staged",
    "TableResult",
    "all_watermarks",
    "engine_of",
    "export_dataset",
    "export_lock",
    "export_table",
    "open_destination",
    "parse_destination",
    "read_watermark",
    "render_markdown",
]
