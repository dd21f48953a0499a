"""The viewer and reap_viewers flows, on real Prefect against the fake Kubernetes API server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from coredumps import viewer as v
from coredumps.db import CoredumpFile
from flows.viewer import reap_viewers, viewer
from tests.dashboard.conftest import Filled, _write_config, stored_id
from tests.kubefake import FakeKubeServer


def limited_config(filled: Filled, tmp_path: Path, pods: int) -> str:
    data = Path(filled.cfg.agent.data_dir)
    return str(_write_config(tmp_path / "viewer.yaml", data, f"dashboard:\n  viewer:\n    maxConcurrentPods: {pods}\n"))


def test_viewer_creates_a_pod_reached_only_by_port_forward(kube: FakeKubeServer, filled: Filled) -> None:
    cid = stored_id(filled)
    result = viewer(coredump_id=cid, minutes=15, config_path=str(filled.config_path))
    assert result["created"] is True and result["name"] == f"coredump-viewer-{cid}"
    assert result["url"] == "http://127.0.0.1:7681/"
    assert result["port_forward"] == f"kubectl -n default port-forward pod/coredump-viewer-{cid} 7681:7681"
    pod = kube.get("pods", "default", result["name"])
    assert pod is not None and kube.get("services", "default", result["name"]) is None
    assert pod["spec"]["activeDeadlineSeconds"] == 900
    assert [vol["hostPath"] for vol in pod["spec"]["volumes"] if "hostPath" in vol] == [
        {"path": filled.runs["segv-a"]["location"], "type": "File"}]
    assert pod["metadata"]["annotations"][v.EXPIRES_ANNOTATION] == result["expires_at"]
    again = viewer(coredump_id=cid, minutes=15, config_path=str(filled.config_path))
    assert again["created"] is False and again["expires_at"] == result["expires_at"]


def test_viewer_refuses_past_the_concurrency_limit(kube: FakeKubeServer, filled: Filled, tmp_path: Path) -> None:
    config = limited_config(filled, tmp_path, 1)
    viewer(coredump_id=stored_id(filled, "segv-a"), minutes=5, config_path=config)
    with pytest.raises(v.ViewerLimitError, match="maxConcurrentPods"):
        viewer(coredump_id=stored_id(filled, "abort"), minutes=5, config_path=config)
    assert kube.get("pods", "default", f"coredump-viewer-{stored_id(filled, 'abort')}") is None


def test_viewer_refuses_a_core_that_is_not_stored(kube: FakeKubeServer, filled: Filled) -> None:
    with filled.sessions() as s:
        skipped = s.scalars(select(CoredumpFile.id).where(CoredumpFile.stored.is_(False))).first()
    assert skipped is not None
    with pytest.raises(v.ViewerUnavailableError, match="no stored copy"):
        viewer(coredump_id=skipped, minutes=5, config_path=str(filled.config_path))


def test_reaper_deletes_expired_viewers_and_keeps_live_ones(kube: FakeKubeServer, filled: Filled) -> None:
    live, old = stored_id(filled, "segv-a"), stored_id(filled, "abort")
    for cid in (live, old):
        viewer(coredump_id=cid, minutes=30, config_path=str(filled.config_path))
    past = v.format_time(datetime.now(UTC) - timedelta(minutes=1))
    kube.update("pods", "default", f"coredump-viewer-{old}", {"metadata": {"annotations": {v.EXPIRES_ANNOTATION: past}}})
    kube.seed([{"apiVersion": "v1", "kind": "Service",  # a viewer Service whose pod is going
                "metadata": {"name": f"coredump-viewer-{old}", "namespace": "default", "labels": v.labels(old),
                             "annotations": {v.EXPIRES_ANNOTATION: past}},
                "spec": {"selector": v.labels(old), "ports": [{"port": 7681}]}}])
    result = reap_viewers(config_path=str(filled.config_path))
    assert result == {"pods": [f"coredump-viewer-{old}"], "services": [f"coredump-viewer-{old}"]}
    assert kube.get("pods", "default", f"coredump-viewer-{old}") is None
    assert kube.get("services", "default", f"coredump-viewer-{old}") is None
    assert kube.get("pods", "default", f"coredump-viewer-{live}") is not None
