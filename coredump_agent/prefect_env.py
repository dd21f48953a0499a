"""Prefect settings the CLI applies before Prefect is imported (each only when not set already)."""

from __future__ import annotations

import os

SERVER_DEFAULTS = {
    # The server records task runs from the events their flow runs send, by default one database write per event:
    # most of its CPU in a burst of cores (8 tasks, 3 states each, per run). Written in batches of up to 50, or
    # after at most a second, it takes about half the CPU per run; the UI shows a task's state that second later.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    # A node runs a few flow runs at once (the sensor's --workers); the others of a burst wait, Scheduled, by
    # design. Prefect marks a run Late 15 s after its start time, a state change per waiting run (each one retried
    # every 5 s while SQLite is busy): about a tenth of the server's CPU in a burst of 100, for a warning that is
    # not one. A run still waiting after 10 minutes is marked Late.
    "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "600",
}
"""For every Prefect server this project starts or deploys (local, ephemeral, in the cluster)."""

DEFAULTS = {
    # The agent runs on cluster nodes that rarely reach the internet: no telemetry calls home.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Ephemeral mode (no PREFECT_API_URL) starts a local server; give it time on a busy node.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    **SERVER_DEFAULTS,
}


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
