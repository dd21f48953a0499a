"""The viewer's Pod manifest: unprivileged, one coredump, bounded lifetime, a terminal on loopback only."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coredumps import viewer as v
from coredumps.config import ViewerConfig
from coredumps.errors import BadInputError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CFG = ViewerConfig()
LOCAL = v.source_for("local", "/data/coredumps/my-release/20260301_core.zst", node_name="worker-1",
                     size_bytes=10_000_000)


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec: dict[str, list[dict[str, Any]]] = pod["spec"]
    return spec["initContainers"] + spec["containers"]


@pytest.mark.parametrize(("asked", "given"), [(None, 30), (5, 5), (120, 120), (500, 120)])
def test_duration_defaults_and_is_capped(asked: int | None, given: int) -> None:
    assert v.duration_minutes(asked, CFG) == given


def test_a_duration_below_one_minute_is_refused() -> None:
    with pytest.raises(BadInputError, match="at least one minute"):
        v.duration_minutes(0, CFG)


def test_pod_is_unprivileged_and_mounts_only_the_one_core_read_only() -> None:
    pod = v.build_pod(CFG, 42, LOCAL, 30, NOW, "tools")
    spec = pod["spec"]
    assert spec["activeDeadlineSeconds"] == 1800 and spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False and not spec["hostPID"] and not spec["hostNetwork"]
    for c in containers(pod):
        sc = c["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    host_paths = [vol["hostPath"] for vol in spec["volumes"] if "hostPath" in vol]
    assert host_paths == [{"path": LOCAL.location, "type": "File"}]
    [mount] = [m for c in containers(pod) for m in c["volumeMounts"] if m["name"] == "stored-core"]
    assert mount["readOnly"] is True
    assert spec["nodeName"] == "worker-1"
    [gdb] = spec["containers"]
    assert gdb["securityContext"]["runAsNonRoot"] is True
    assert "ports" not in gdb, "nothing in the cluster reaches the terminal"
    assert gdb["command"][:4] == ["ttyd", "--writable", "--interface", "lo"] and "-nx" in gdb["command"]
    assert "zstd" in spec["initContainers"][0]["command"][-1]


def test_pod_carries_labels_and_expiry_and_is_reached_by_port_forward() -> None:
    meta = v.build_pod(CFG, 42, LOCAL, 45, NOW, "tools")["metadata"]
    assert meta["name"] == "coredump-viewer-42" and meta["namespace"] == "tools"
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "coredump-agent", "coredump-agent/viewer": "42"}
    assert meta["annotations"][v.EXPIRES_ANNOTATION] == "2026-03-01T12:45:00Z"
    assert v.port_forward_command(CFG, 42, "tools") == "kubectl -n tools port-forward pod/coredump-viewer-42 7681:7681"
    assert v.terminal_url(CFG) == "http://127.0.0.1:7681/"


def test_readiness_probe_sees_a_listener_on_loopback_and_nothing_else() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    cfg = ViewerConfig(web_terminal_port=port)
    [gdb] = v.build_pod(cfg, 42, LOCAL, 45, NOW, "tools")["spec"]["containers"]
    probe = gdb["readinessProbe"]["exec"]["command"]
    assert subprocess.run(probe, check=False).returncode == 1, "bound but not listening yet"
    listener.listen(1)
    try:
        assert subprocess.run(probe, check=False).returncode == 0
    finally:
        listener.close()
    assert subprocess.run(probe, check=False).returncode == 1


def test_s3_core_is_fetched_by_url_without_host_mounts() -> None:
    source = v.source_for("s3", "s3://bucket/coredumps/r/core.zst", fetch_url="https://s3.example/signed?x=1")
    pod = v.build_pod(CFG, 7, source, 10, NOW, "default")
    assert not [vol for vol in pod["spec"]["volumes"] if "hostPath" in vol]
    assert "nodeName" not in pod["spec"]
    assert pod["spec"]["initContainers"][0]["env"] == [{"name": "COREDUMP_URL", "value": "https://s3.example/signed?x=1"}]


@pytest.mark.parametrize(("backend", "location", "url", "message"), [
    (None, None, None, "no stored copy"),
    ("s3", "s3://bucket/core.zst", None, "pre-signed URL"),
    ("local", "relative/core.zst", None, "not an absolute path"),
    ("local", "/data/core $(reboot).zst", None, "characters a viewer pod cannot use"),
    ("ftp", "/x", None, "not supported"),
])
def test_unusable_sources_are_refused(backend: str | None, location: str | None, url: str | None,
                                      message: str) -> None:
    with pytest.raises(v.ViewerUnavailableError, match=message):
        v.source_for(backend, location, fetch_url=url)


def _pod(coredump_id: int, expires: datetime, phase: str = "Running") -> dict[str, Any]:
    pod = v.build_pod(CFG, coredump_id, LOCAL, 30, expires - timedelta(minutes=30), "default")
    pod["status"] = {"phase": phase}
    return pod


def test_limit_counts_only_live_viewers() -> None:
    cfg = ViewerConfig(max_concurrent_pods=2)
    live = [_pod(1, NOW + timedelta(minutes=5)), _pod(2, NOW - timedelta(minutes=1)),
            _pod(3, NOW + timedelta(minutes=9), phase="Failed")]
    v.check_limit(v.viewers(live, cfg), cfg, NOW)
    live.append(_pod(4, NOW + timedelta(minutes=20)))
    with pytest.raises(v.ViewerLimitError, match="maxConcurrentPods"):
        v.check_limit(v.viewers(live, cfg), cfg, NOW)


def test_expired_and_finished_viewers_are_reaped() -> None:
    pods = [_pod(1, NOW + timedelta(minutes=5)), _pod(2, NOW - timedelta(seconds=1)),
            _pod(3, NOW + timedelta(minutes=9), phase="Succeeded")]
    assert v.expired_names(pods, NOW) == ["coredump-viewer-2", "coredump-viewer-3"]
    listed = v.viewers(pods, CFG)
    assert [x.coredump_id for x in listed] == [2, 1, 3]
    assert listed[1].expires_at == NOW + timedelta(minutes=5)
