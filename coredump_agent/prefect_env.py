"""Prefect settings the CLI applies before Prefect is imported (each only when not set already)."""

from __future__ import annotations

import os

DEFAULTS = {
    # The agent runs on cluster nodes that rarely reach the internet: no telemetry calls home.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Ephemeral mode (no PREFECT_API_URL) starts a local server; give it time on a busy node.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
