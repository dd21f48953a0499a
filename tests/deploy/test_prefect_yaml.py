"""`prefect deploy --all` against a real Prefect server creates the deployments prefect.yaml declares."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

PREFECT_YAML = REPO / "prefect.yaml"
SPEC = yaml.safe_load(PREFECT_YAML.read_text())
ENTRIES = SPEC["deployments"]
FLOW_NAMES = {
    "flows/process_coredump.py:process_coredump": "process-coredump",
    "flows/retention.py:retention": "retention",
    "flows/export_parquet.py:export_parquet": "export-parquet",
    "flows/cleanup.py:cleanup": "cleanup",
    "flows/cleanup.py:cleanup_instance": "cleanup-instance",
    "flows/viewer.py:viewer": "viewer",
    "flows/viewer.py:reap_viewers": "reap-viewers",
}
POOLS = sorted({e["work_pool"]["name"] for e in ENTRIES})


def _file(entry: dict[str, Any]) -> Path:
    return REPO / entry["entrypoint"].split(":")[0]


def _id(entry: dict[str, Any]) -> str:
    return f"{FLOW_NAMES.get(entry['entrypoint'], entry['entrypoint'])}/{entry['name']}"


@pytest.fixture(scope="module")
def deployed(prefect_harness: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Create the work pools, run `prefect --no-prompt deploy --all`, read every deployment back."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    present = ENTRIES
    spec = {**SPEC, "deployments": present}
    prefect_file = tmp_path_factory.mktemp("prefect-yaml") / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with temporary_settings(updates={PREFECT_API_URL: prefect_harness}), get_client(sync_client=True) as client:
        existing = {pool.name for pool in client.read_work_pools()}
        for pool in POOLS:
            if pool not in existing:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert result.returncode == 0, f"prefect deploy failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        out: dict[str, Any] = {}
        for entry in present:
            deployment = client.read_deployment_by_name(_id(entry))
            automations = client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
            out[_id(entry)] = (deployment, automations)
    return out


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_each_deployment_is_created_as_declared(entry: dict[str, Any], deployed: dict[str, Any]) -> None:
    assert _file(entry).exists(), f"{entry['entrypoint']}: {_file(entry).relative_to(REPO)} does not exist"
    deployment, _ = deployed[_id(entry)]
    assert deployment.entrypoint == entry["entrypoint"]
    assert deployment.work_pool_name == entry["work_pool"]["name"]
    assert deployment.work_queue_name == entry["work_pool"].get("work_queue_name", "default")
    assert deployment.tags == entry["tags"]
    assert deployment.parameters == entry["parameters"]
    assert set(entry["parameters"]) <= set(deployment.parameter_openapi_schema["properties"])
    assert deployment.description == entry["description"]
    assert deployment.enforce_parameter_schema is True
    assert deployment.pull_steps == SPEC["pull"]
    limit = entry.get("concurrency_limit")
    if limit:
        assert deployment.global_concurrency_limit.limit == limit["limit"]
        assert deployment.concurrency_options.collision_strategy.value == limit["collision_strategy"]

    declared = entry.get("schedules") or []
    assert len(deployment.schedules) == len(declared)
    for made, wanted in zip(deployment.schedules, declared, strict=True):
        assert made.active is wanted.get("active", True)
        if "cron" in wanted:
            assert (made.schedule.cron, made.schedule.timezone) == (wanted["cron"], wanted["timezone"])
        else:
            assert made.schedule.interval == timedelta(seconds=wanted["interval"])


def test_the_schedules_are_daily_retention_hourly_export_and_cleanup_every_minute() -> None:
    schedules = {_id(e): e.get("schedules") for e in ENTRIES}
    assert schedules["retention/cluster"] == [{"cron": "30 3 * * *", "timezone": "UTC", "active": True}]
    assert schedules["export-parquet/cluster"][0]["cron"].split()[1:] == ["*", "*", "*", "*"]
    assert schedules["cleanup/cluster"] == [{"interval": 60, "active": True}]
    assert not schedules["process-coredump/manual"] and not schedules["cleanup-instance/cleanup-instance"]


def test_the_cleanup_pass_schedules_runs_of_a_declared_deployment() -> None:
    from flows.cleanup import INSTANCE_DEPLOYMENT

    assert INSTANCE_DEPLOYMENT in {_id(e) for e in ENTRIES}


def test_cleanup_is_triggered_by_the_restart_events_the_sensor_emits(deployed: dict[str, Any]) -> None:
    deployment, automations = deployed["cleanup/cluster"]
    (automation,) = automations
    trigger = automation.trigger
    assert trigger.expect == {"milvus.pod.restarted"}
    (pattern,) = trigger.match.root["prefect.resource.id"] if isinstance(
        trigger.match.root["prefect.resource.id"], list) else [trigger.match.root["prefect.resource.id"]]
    (action,) = automation.actions
    assert action.deployment_id == deployment.id

    sensor = (REPO / "node_sensor" / "kube_side.py").read_text()
    assert 'event="milvus.pod.restarted"' in sensor
    assert '"prefect.resource.id": f"milvus.pod.{restart.namespace}.{restart.pod_name}"' in sensor
    assert fnmatch.fnmatch("milvus.pod.default.milvus-test-crash", pattern)


def test_no_other_deployment_has_a_trigger(deployed: dict[str, Any]) -> None:
    for name, (_, automations) in deployed.items():
        if name != "cleanup/cluster":
            assert automations == [], name


def test_the_image_runs_the_deployments_from_their_working_directory() -> None:
    (step,) = SPEC["pull"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert f"WORKDIR {directory}" in (REPO / "Dockerfile").read_text()
    assert all("pull" not in e for e in ENTRIES)
