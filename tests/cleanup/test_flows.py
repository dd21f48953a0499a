"""The cleanup flows end to end: real Prefect, a real SQLite database, the fake Kubernetes API over HTTP.

A scheduled cleanup here runs the way the pass runs it when no ``cleanup-instance`` deployment
exists: once due, the next pass claims the Scheduled run (Scheduled -> Pending, as a worker does)
and executes that same flow run. Cleanups use cleanupDelay 0 unless the delay matters. The tests
of one action call ``cleanup_instance`` directly, as a worker would.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.states import Cancelling

from coredump_agent.commands import cleanup as command
from coredumps.cleanup import ORIGINAL_REPLICAS
from flows.cleanup import INSTANCE_DEPLOYMENT, cleanup, cleanup_instance
from tasks import cleanup_tasks
from tests.cleanup.conftest import (
    HELM,
    HELM_POD,
    OPERATOR,
    OPERATOR_POD,
    WAIT,
    Webhook,
    add_restarts,
    age_restarts,
    cleanup_rows,
)
from tests.kubefake import FakeKubeServer

pytestmark = pytest.mark.usefixtures("prefect_harness")

Cleaner = Callable[..., str]
KEY = "test-incident"
DEPLOYMENT = "my-release-milvus-standalone"
STATEFULSET = "my-release-etcd"


def flow_run(run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def replicas(kube: FakeKubeServer) -> dict[str, Any]:
    found = {}
    for plural, name in (("deployments", DEPLOYMENT), ("statefulsets", STATEFULSET)):
        obj = kube.get(plural, "default", name)
        assert obj is not None
        found[name] = (obj["spec"]["replicas"], (obj["metadata"].get("annotations") or {}).get(ORIGINAL_REPLICAS))
    return found


UNTOUCHED = {DEPLOYMENT: (1, None), STATEFULSET: (1, None)}


def schedule_then_run(config: str, instance: tuple[str, str] = HELM) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pass one schedules the instance's cleanup; pass two runs it and schedules nothing new for the same
    crash loop. Returns (decision, outcome)."""
    [decision] = cleanup(config_path=config)["decisions"]
    assert (decision["namespace"], decision["instance"], decision["decision"]) == (*instance, "scheduled")
    second = cleanup(config_path=config)
    [outcome] = second["resolved"]
    assert outcome["flow_run_id"] == decision["flow_run_id"]
    assert second["decisions"] == [] and second["pending"] == []
    return decision, outcome


def reason_to_stand_down(kube: FakeKubeServer, config: str, during_the_delay: Callable[[], object]) -> str:
    """Schedule the Helm instance's cleanup, change something during the delay, run it: it must stand down,
    touching nothing. Returns its reason."""
    add_restarts(config, *HELM, 3)
    cleanup(config_path=config)
    during_the_delay()
    [outcome] = cleanup(config_path=config)["resolved"]
    assert outcome["decision"] == "skipped"
    assert replicas(kube) == UNTOUCHED
    return str(outcome["reason"])


def run_command(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    with redirect_stdout(io.StringIO()) as out:
        code = args.handler(args)
    return code, out.getvalue()


def wait_for_event(flow_run_id: str, decision: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(EventFilter(
                event=EventNameFilter(name=["milvus.instance.cleanup"]),
                resource=EventResourceFilter(id=["milvus.instance.default.my-release"])), limit=50)
            for event in page.events:
                if event.payload.get("flowRunId") == flow_run_id and event.payload.get("decision") == decision:
                    return dict(event.payload)
            time.sleep(0.5)
    raise AssertionError(f"no milvus.instance.cleanup event for run {flow_run_id} with decision {decision}")


def test_dry_run_runs_the_scheduled_run_records_what_it_would_do_and_alerts(
    kube: FakeKubeServer, cleaner: Cleaner, webhook: Webhook,
) -> None:
    config = cleaner("dry-run", extra=f"monitor:\n  alerting:\n    enabled: true\n    webhookUrl: {webhook.url}\n")
    add_restarts(config, *HELM, 3)
    decision, outcome = schedule_then_run(config)

    assert decision["incident_key"].startswith("default/my-release@")
    assert outcome["decision"] == "dry-run" and outcome["restart_count"] == 3
    assert outcome["reason"].startswith("would clean up default/my-release: 3 restarts within 1h")
    assert outcome["details"]["plan"]["would_scale_to_zero"] == [
        {"kind": "deployment", "name": DEPLOYMENT, "replicas": 1}, {"kind": "statefulset", "name": STATEFULSET,
                                                                     "replicas": 1}]
    run = flow_run(decision["flow_run_id"])
    assert run.state is not None and run.state.is_completed() and run.name == "cleanup-default-my-release"
    assert replicas(kube) == UNTOUCHED
    sent = webhook.wait_for(lambda body: body["decision"] == "dry-run")
    assert sent["event"] == "milvus.instance.cleanup" and sent["text"].startswith("[dry-run] default/my-release")
    webhook.wait_for(lambda body: body["decision"] == "scheduled")
    assert wait_for_event(decision["flow_run_id"], "dry-run")["instance"] == "my-release"


def test_scale_to_zero_keeps_replicas_in_an_annotation_and_restore_puts_them_back(
    kube: FakeKubeServer, cleaner: Cleaner,
) -> None:
    config = cleaner("scale-to-zero")
    add_restarts(config, *HELM, 4)
    decision, outcome = schedule_then_run(config)
    assert outcome["decision"] == "executed"
    assert outcome["reason"] == (f"scaled deployment {DEPLOYMENT} (1), statefulset {STATEFULSET} (1) to zero; "
                                 "coredump-agent cleanup restore default/my-release puts them back")
    assert replicas(kube) == {DEPLOYMENT: (0, "1"), STATEFULSET: (0, "1")}

    again = cleanup_instance(*HELM, incident_key=decision["incident_key"], config_path=config)
    assert again["decision"] == "skipped" and "already handled" in again["reason"]
    assert replicas(kube) == {DEPLOYMENT: (0, "1"), STATEFULSET: (0, "1")}

    code, out = run_command("--config", config, "cleanup", "restore", "default/my-release")
    assert code == 0
    assert out == (f"default/my-release: restored statefulset {STATEFULSET} to 1, deployment {DEPLOYMENT} to 1\n")
    assert replicas(kube) == UNTOUCHED
    last = cleanup_rows(config)[-1]
    assert (last.action, last.decision) == ("restore", "executed")


def test_delete_cr_deletes_the_operators_milvus_resource(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    kube.restart_container("milvus-system", OPERATOR_POD, "standalone")
    config = cleaner("delete-cr")
    add_restarts(config, *OPERATOR, 3)
    outcome = cleanup_instance(*OPERATOR, incident_key=KEY, config_path=config)
    assert outcome["decision"] == "executed"
    assert outcome["reason"] == ("deleted the Milvus resource milvus-system/my-milvus; the operator removes what "
                                 "it created")
    assert kube.get("milvuses", *OPERATOR) is None
    assert any(r.method == "DELETE" and r.path.endswith("/milvuses/my-milvus") for r in kube.requests)


def test_helm_uninstall_runs_helm_with_the_release_namespace_and_timeout(
    kube: FakeKubeServer, cleaner: Cleaner, helm_stub: Path,
) -> None:
    config = cleaner("helm-uninstall", extra="  uninstallTimeout: 2m\n")
    add_restarts(config, *HELM, 3)
    outcome = cleanup_instance(*HELM, incident_key=KEY, config_path=config)
    assert outcome["decision"] == "executed"
    assert outcome["reason"] == "uninstalled the Helm release my-release from default"
    assert helm_stub.read_text().splitlines() == [
        "uninstall", "--namespace", "default", "--timeout", "120s", "--", "my-release"]


@pytest.mark.usefixtures("no_helm")
def test_helm_uninstall_without_helm_fails_with_one_clear_sentence(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("helm-uninstall")
    add_restarts(config, *HELM, 3)
    state = cleanup_instance(*HELM, incident_key=KEY, config_path=config, return_state=True)
    assert state.is_failed()
    [row] = cleanup_rows(config)
    assert (row.decision, row.incident_key) == ("failed", KEY + "#outcome")
    assert row.reason == "helm is not installed; install it or use cleaner.action scale-to-zero"


def test_outside_the_namespace_allow_list_nothing_is_scheduled(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("scale-to-zero", namespaces=())
    add_restarts(config, *HELM, 5)
    code, out = run_command("--config", config, "cleanup")
    assert code == 0
    assert out.splitlines() == [
        "cleanup pass: action scale-to-zero, limit 3 restarts within 1h, delay 0s",
        "  default/my-release: 5 restarts",
        "decided: [skipped] default/my-release: cleaner.namespaces is empty, so cleanup acts nowhere; add default to "
        "it to allow cleanup there",
    ]
    [decision] = cleanup_rows(config)
    assert decision.decision == "skipped" and decision.flow_run_id is None
    assert cleanup(config_path=config)["decisions"] == []
    assert [row.decision for row in cleanup_rows(config)] == ["skipped"]
    assert replicas(kube) == UNTOUCHED


def test_an_action_changed_during_the_delay_is_not_the_one_done(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("dry-run")  # announced as a dry run: nobody cancels it
    add_restarts(config, *HELM, 3)
    [decision] = cleanup(config_path=config)["decisions"]
    assert decision["action"] == "dry-run"
    assert cleaner("scale-to-zero") == config  # the config changes during the delay
    [outcome] = cleanup(config_path=config)["resolved"]
    assert outcome["decision"] == "skipped"
    assert outcome["reason"].startswith("cleaner.action changed from dry-run (announced when the cleanup was "
                                        "scheduled) to scale-to-zero; nothing was done")
    assert replicas(kube) == UNTOUCHED


def test_an_instance_reinstalled_during_the_delay_starts_from_no_restarts(
    kube: FakeKubeServer, cleaner: Cleaner,
) -> None:
    def reinstall() -> None:  # a new pod, still starting, under the same name
        old = kube.get("pods", "default", HELM_POD)
        assert old is not None
        kube.delete("pods", "default", HELM_POD)
        fresh = copy.deepcopy(old)
        fresh["metadata"]["uid"] = "0f0f0f0f-0000-4000-8000-000000000001"
        kube.seed([fresh])

    reason = reason_to_stand_down(kube, cleaner("scale-to-zero"), reinstall)
    assert reason == "default/my-release restarted 0 times within 1h, below cleaner.maxRestartCount 3"


def test_a_recovered_milvus_is_left_alone_whatever_else_shares_its_label(
    kube: FakeKubeServer, cleaner: Cleaner,
) -> None:
    def recover() -> None:  # Milvus runs again; the release's etcd (not a Milvus pod) is the one failing now
        kube.set_pod_status("default", HELM_POD, {"phase": "Running", "containerStatuses": [
            {"name": "standalone", "ready": True, "restartCount": 3, "state": {"running": {}}, "lastState": {}}]})
        kube.set_pod_status("default", "my-release-etcd-0", {"phase": "Running", "containerStatuses": [
            {"name": "etcd", "ready": False, "restartCount": 9, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {}}]})

    reason = reason_to_stand_down(kube, cleaner("scale-to-zero"), recover)
    assert reason == "no container of default/my-release is crash-looping any more"


def test_an_instance_protected_during_the_delay_is_left_alone(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("scale-to-zero")
    add_restarts(config, *HELM, 3)
    cleanup(config_path=config)
    kube.update("pods", "default", HELM_POD, {"metadata": {"labels": {"coredump-agent/protect": "true"}}})
    [outcome] = cleanup(config_path=config)["resolved"]
    assert outcome["decision"] == "skipped"
    assert outcome["reason"] == f'default/my-release is protected: pod {HELM_POD} is labelled coredump-agent/protect="true"'
    assert replicas(kube) == UNTOUCHED


def test_restarts_that_fall_below_the_limit_during_the_delay_stop_the_cleanup(
    kube: FakeKubeServer, cleaner: Cleaner,
) -> None:
    config = cleaner("scale-to-zero")
    reason = reason_to_stand_down(kube, config, lambda: age_restarts(config, timedelta(hours=2)))
    assert reason == "default/my-release restarted 0 times within 1h, below cleaner.maxRestartCount 3"
    assert replicas(kube) == UNTOUCHED


def test_an_instance_deleted_during_the_delay_is_skipped(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("scale-to-zero")
    add_restarts(config, *HELM, 3)
    cleanup(config_path=config)
    for plural, name in (("deployments", DEPLOYMENT), ("statefulsets", STATEFULSET), ("pods", HELM_POD),
                         ("pods", "my-release-etcd-0")):
        kube.delete(plural, "default", name)
    [outcome] = cleanup(config_path=config)["resolved"]
    assert outcome["decision"] == "skipped"
    assert outcome["reason"] == "default/my-release no longer exists; it was deleted during the delay"


def test_a_person_cancels_the_scheduled_run_during_the_delay(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("scale-to-zero", delay="5m")
    add_restarts(config, *HELM, 3)
    preview = cleanup(dry_run=True, config_path=config)
    assert [d["decision"] for d in preview["decisions"]] == ["scheduled"] and cleanup_rows(config) == []

    [decision] = cleanup(config_path=config)["decisions"]
    run = flow_run(decision["flow_run_id"])
    assert run.state is not None and run.state.is_scheduled() and run.deployment_id is None
    scheduled_time = run.state.state_details.scheduled_time
    assert scheduled_time == datetime.fromisoformat(decision["details"]["scheduled_time"])
    assert timedelta(minutes=4) < scheduled_time - run.created <= timedelta(minutes=5)  # type: ignore[operator]

    waiting = cleanup(config_path=config)
    assert waiting["resolved"] == [] and [p["flow_run_id"] for p in waiting["pending"]] == [decision["flow_run_id"]]
    code, out = run_command("--config", config, "cleanup", "status", "--json")
    [entry] = json.loads(out)["instances"]
    assert code == 0 and (entry["restarts"], entry["limit"], entry["over_limit"]) == (3, 3, True)
    assert entry["pending"]["action"] == "scale-to-zero" and entry["pending"]["run_state"] == "Scheduled"

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(decision["flow_run_id"]), Cancelling(message="cancelled in the UI"))
    after = cleanup(config_path=config)
    [closed] = after["resolved"]
    assert closed["decision"] == "cancelled" and "cancelled" in closed["reason"]
    assert after["decisions"] == [] and after["pending"] == []
    assert [row.decision for row in cleanup_rows(config)] == ["scheduled", "cancelled"]
    assert replicas(kube) == UNTOUCHED
    code, out = run_command("--config", config, "cleanup", "status")
    assert "default/my-release: 3/3 restarts; last: [cancelled]" in out


@pytest.mark.parametrize(("status", "attempts"), [(500, 3), (409, 1)])
def test_an_api_server_error_mid_scale_down_leaves_nothing_half_done(
    kube: FakeKubeServer, cleaner: Cleaner, status: int, attempts: int,
) -> None:
    config = cleaner("scale-to-zero")
    add_restarts(config, *HELM, 3)
    scale = f"/apis/apps/v1/namespaces/default/statefulsets/{STATEFULSET}/scale"
    kube.fail_next(attempts, status=status, path_prefix=scale)
    state = cleanup_instance(*HELM, incident_key=KEY, config_path=config, return_state=True)
    assert state.is_failed()
    [row] = cleanup_rows(config)
    assert row.decision == "failed" and f"failed ({status})" in row.reason
    assert row.reason.endswith("Everything it had changed was put back.")
    assert len([r for r in kube.requests if r.method == "PATCH" and r.path == scale]) == attempts + 1
    assert replicas(kube) == UNTOUCHED

    retried = cleanup_instance(*HELM, incident_key=KEY, config_path=config)
    assert retried["decision"] == "executed" and retried["id"] == row.id
    assert replicas(kube) == {DEPLOYMENT: (0, "1"), STATEFULSET: (0, "1")}


def test_with_a_deployment_the_run_is_left_to_its_worker(kube: FakeKubeServer, cleaner: Cleaner) -> None:
    config = cleaner("scale-to-zero")
    add_restarts(config, *HELM, 3)
    deployment_id = cleanup_instance.to_deployment(name=INSTANCE_DEPLOYMENT.split("/")[1]).apply()
    try:
        [decision] = cleanup(config_path=config)["decisions"]
        run = flow_run(decision["flow_run_id"])
        assert run.deployment_id == deployment_id and decision["details"]["deployment"] == INSTANCE_DEPLOYMENT
        params = {"namespace": "default", "instance": "my-release", "incident_key": decision["incident_key"],
                  "config_path": config}
        same = cleanup_tasks.schedule.fn(cleanup_instance, INSTANCE_DEPLOYMENT, params, run.expected_start_time,
                                         decision["incident_key"], [])
        assert same.id == decision["flow_run_id"]
        assert cleanup(config_path=config)["resolved"] == []
        assert flow_run(decision["flow_run_id"]).state.is_scheduled()  # type: ignore[union-attr]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
    [closed] = cleanup(config_path=config)["resolved"]
    assert closed["decision"] == "cancelled" and "deleted" in closed["reason"]
    assert replicas(kube) == UNTOUCHED


def test_restore_wants_namespace_slash_instance() -> None:
    with pytest.raises(SystemExit) as exited, redirect_stderr(io.StringIO()) as err:
        run_command("cleanup", "restore", "my-release")
    assert exited.value.code == 2
    assert "'my-release' is not NAMESPACE/INSTANCE, e.g. default/my-release" in err.getvalue()
