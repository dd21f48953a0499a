"""export_parquet: the incremental, date-partitioned Parquet dataset of every table, for notebooks."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from coredumps.config import load_config
from coredumps.export import TABLE_NAMES, ExportResult, engine_of, export_lock, open_destination, render_markdown
from tasks import export_tasks as t
from tasks.runtime import sessions_for


@flow(name="export-parquet", log_prints=False)
def export_parquet(dest: str | None = None, full: bool = False, config_path: str | None = None) -> dict[str, Any]:
    """Export what changed since the last run (everything with ``full``) to ``dest`` or ``export.dest``."""
    cfg = load_config(config_path)
    logger = get_run_logger()
    destination = open_destination(dest or cfg.export.dest, cfg.storage.s3)
    sessions = sessions_for(cfg)
    with export_lock(engine_of(sessions)):
        tables = tuple(
            t.export_table(sessions, destination, table, full, cfg.export.batch_rows) for table in TABLE_NAMES
        )
    result = ExportResult(destination.url, full, tables)
    logger.info("export to %s wrote %d rows in %d partitions", result.dest, result.rows_written,
                result.partitions_touched)
    create_markdown_artifact(markdown=render_markdown(result), key="export-parquet",
                             description="Last Parquet export")
    return result.to_dict()
