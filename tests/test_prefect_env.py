"""The Prefect server settings this project gives every server it starts or deploys."""

from __future__ import annotations

from prefect.client.orchestration import get_client

from coredump_agent.prefect_env import DEFAULTS, SERVER_DEFAULTS


def test_a_server_started_with_them_has_them(prefect_harness: str) -> None:
    # The session's server was started with SERVER_DEFAULTS in its environment: a misspelt name would be ignored.
    with get_client(sync_client=True) as client:
        settings = client.request("GET", "/admin/settings").json()
    recorder = settings["server"]["services"]["task_run_recorder"]
    assert recorder["batch_size"] == int(SERVER_DEFAULTS["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"]) == 50
    assert recorder["flush_interval"] == 1.0
    assert settings["server"]["services"]["late_runs"]["after_seconds"] == "PT10M"  # 600 s
    assert SERVER_DEFAULTS.items() <= DEFAULTS.items()
