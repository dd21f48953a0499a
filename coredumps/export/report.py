"""The markdown report of an export run, shown as a Prefect artifact."""

from __future__ import annotations

from coredumps.export.exporting import ExportResult
from coredumps.markdown import escape

SHOWN_DATES = 8


def _dates(dates: tuple[str, ...]) -> str:
    if not dates:
        return "-"
    shown = ", ".join(dates[:SHOWN_DATES])
    more = len(dates) - SHOWN_DATES
    return f"{shown} and {more} more" if more > 0 else shown


def render_markdown(result: ExportResult) -> str:
    """Tables, rows written, partitions published and removed, watermarks."""
    mode = "full rewrite" if result.full else "incremental"
    lines = [
        "# Parquet export",
        "",
        f"{escape(result.dest)} ({mode}): {result.rows_written} rows written, "
        f"{result.partitions_touched} partitions touched.",
        "",
        "| table | rows read | rows written | partitions published | partitions removed | watermark |",
        "|---|---:|---:|---|---|---|",
    ]
    for table in result.tables:
        watermark = table.watermark.isoformat() if table.watermark else "-"
        lines.append(
            f"| {table.table} | {table.rows_read} | {table.rows_written} | {escape(_dates(table.partitions))} "
            f"| {escape(_dates(table.removed))} | {escape(watermark)} |"
        )
    return "\n".join(lines) + "\n"
