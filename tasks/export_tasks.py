"""Export tasks: one per table, retried on transient failures (a re-run of a table is safe)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from coredumps.export import Destination, TableResult
from coredumps.export import export_table as export_one
from coredumps.records import Sessions
from tasks.policies import transient_only


@task(name="export-table", task_run_name="export-{table}", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=[5, 30], retry_jitter_factor=0.5, retry_condition_fn=transient_only)
def export_table(sessions: Sessions, destination: Destination, table: str, full: bool, batch_rows: int) -> TableResult:
    return export_one(sessions, destination, table, full=full, batch_rows=batch_rows)
