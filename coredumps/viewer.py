"""The coredump viewer's manifest: one short-lived Pod (GDB behind ttyd) per stored core.

Pure functions over plain dicts; ``flows/viewer.py`` sends them through ``KubeClient``. The web
terminal listens on the pod's loopback only: ttyd has no login of its own and GDB's ``shell`` command
is a shell, so the terminal is reached with ``kubectl port-forward`` and whoever may port-forward to
pods in the viewer namespace (Kubernetes RBAC) may use it, nobody else. A viewer pod
is not privileged, mounts no host root and gets exactly one coredump: an init container copies it
into an ``emptyDir`` (from a read-only ``hostPath`` of that one file for the local and NFS backends,
or from a short-lived URL for S3) and decompresses it there. ``activeDeadlineSeconds`` ends the pod;
the reaper flow deletes what is left once the expiry annotation has passed.

Errors: ``ViewerLimitError`` (``dashboard.viewer.maxConcurrentPods`` viewers already run) and
``ViewerUnavailableError`` (the core is not stored, or cannot be handed to a pod); both permanent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from coredumps.config import ViewerConfig
from coredumps.errors import BadInputError, PermanentError

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "coredump-agent"
VIEWER_LABEL = "coredump-agent/viewer"
EXPIRES_ANNOTATION = "coredump-agent/expires-at"
COREDUMP_ANNOTATION = "coredump-agent/coredump-location"
SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY},{VIEWER_LABEL}"
"""Label selector matching every viewer pod and service."""

CORE_DIR = "/coredump"
CORE_FILE = f"{CORE_DIR}/core"
SOURCE_DIR = "/source"
NOBODY = 65534
FINISHED_PHASES = ("Succeeded", "Failed")
_EMPTYDIR_MARGIN = 64 * 2**20
_DECOMPRESS = {
    "zstd": "zstd -q -d -c",
    "gzip": "gzip -d -c",
    "none": "cat",
}
_SAFE_LOCATION = re.compile(r"^[A-Za-z0-9._/:+=@-]+$")


class ViewerLimitError(PermanentError):
    """``dashboard.viewer.maxConcurrentPods`` viewers are already running."""


class ViewerUnavailableError(PermanentError):
    """The coredump is not stored, or its stored copy cannot be handed to a viewer pod."""


@dataclass(frozen=True)
class ViewerSource:
    """Where the viewer's init container finds the one stored core."""

    backend: str
    location: str
    node_name: str | None
    size_bytes: int | None
    fetch_url: str | None = None

    @property
    def compression(self) -> str:
        if self.location.endswith(".zst"):
            return "zstd"
        if self.location.endswith(".gz"):
            return "gzip"
        return "none"


@dataclass(frozen=True)
class Viewer:
    """A viewer pod as the cluster reports it."""

    name: str
    namespace: str
    coredump_id: int
    phase: str
    expires_at: datetime | None
    url: str

    def expired(self, now: datetime) -> bool:
        return self.phase in FINISHED_PHASES or (self.expires_at is not None and self.expires_at <= now)


def viewer_name(coredump_id: int) -> str:
    """The pod's and the service's name."""
    return f"coredump-viewer-{coredump_id}"


def duration_minutes(minutes: int | None, cfg: ViewerConfig) -> int:
    """The viewer's lifetime: ``defaultDuration`` when unset, capped at ``maxDuration``."""
    if minutes is None:
        minutes = cfg.default_duration
    if minutes < 1:
        raise BadInputError(f"a viewer must live at least one minute, got {minutes}")
    return min(minutes, cfg.max_duration)


def source_for(backend: str | None, location: str | None, *, node_name: str | None = None,
               size_bytes: int | None = None, fetch_url: str | None = None) -> ViewerSource:
    """The stored copy of a coredump row, checked for what a pod spec can carry."""
    if not backend or not location:
        raise ViewerUnavailableError("this coredump has no stored copy, so there is nothing to open in a viewer")
    if not _SAFE_LOCATION.match(location):
        raise ViewerUnavailableError(f"the stored location {location!r} has characters a viewer pod cannot use")
    if backend in ("local", "nfs"):
        if not location.startswith("/"):
            raise ViewerUnavailableError(f"the stored location {location!r} is not an absolute path")
    elif backend == "s3":
        if not fetch_url:
            raise ViewerUnavailableError(
                "an S3-stored coredump needs a pre-signed URL for the viewer; the storage backend gave none")
    else:
        raise ViewerUnavailableError(f"storage backend {backend!r} is not supported by the viewer")
    return ViewerSource(backend, location, node_name, size_bytes, fetch_url)


def selector_for(coredump_id: int) -> str:
    """Label selector matching one coredump's viewer."""
    return f"{MANAGED_BY_KEY}={MANAGED_BY},{VIEWER_LABEL}={coredump_id}"


def labels(coredump_id: int) -> dict[str, str]:
    return {MANAGED_BY_KEY: MANAGED_BY, VIEWER_LABEL: str(coredump_id)}


def _security(user: int) -> dict[str, Any]:
    return {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsUser": user,
        "runAsNonRoot": user != 0,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _init_container(cfg: ViewerConfig, source: ViewerSource) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    decompress = _DECOMPRESS[source.compression]
    mounts: list[dict[str, Any]] = [{"name": "coredump", "mountPath": CORE_DIR}]
    env: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if source.backend == "s3":
        script = f'curl -fsSL --retry 3 "$COREDUMP_URL" | {decompress} > {CORE_FILE} && chmod 0444 {CORE_FILE}'
        env.append({"name": "COREDUMP_URL", "value": source.fetch_url})
    else:
        stored = f"{SOURCE_DIR}/stored"
        script = f"{decompress} {stored} > {CORE_FILE} && chmod 0444 {CORE_FILE}"
        mounts.append({"name": "stored-core", "mountPath": stored, "readOnly": True})
        volumes.append({"name": "stored-core", "hostPath": {"path": source.location, "type": "File"}})
    container = {
        "name": "fetch-coredump",
        "image": cfg.image,
        "command": ["sh", "-ec", script],
        "env": env,
        "volumeMounts": mounts,
        "securityContext": _security(0),
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
    }
    return container, volumes


def build_pod(cfg: ViewerConfig, coredump_id: int, source: ViewerSource, minutes: int, now: datetime,
              namespace: str) -> dict[str, Any]:
    """The viewer Pod for one stored core; it ends itself after ``minutes``."""
    name = viewer_name(coredump_id)
    expires = now + timedelta(minutes=minutes)
    init, volumes = _init_container(cfg, source)
    empty_dir: dict[str, Any] = {}
    if source.size_bytes:
        empty_dir["sizeLimit"] = str(source.size_bytes + _EMPTYDIR_MARGIN)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": minutes * 60,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [init],
        "containers": [{
            "name": "gdb",
            "image": cfg.image,
            "command": ["ttyd", "--writable", "--interface", "lo", "--port", str(cfg.web_terminal_port),
                        "gdb", "-q", "-nx", "-iex", "set auto-load off", "-c", CORE_FILE],
            "env": [{"name": "HOME", "value": "/tmp"}],
            "volumeMounts": [{"name": "coredump", "mountPath": CORE_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
            # Ready once ttyd listens on 127.0.0.1 (the kubelet cannot reach the pod's loopback itself).
            "readinessProbe": {"exec": {"command": ["grep", "-qi", f"0100007F:{cfg.web_terminal_port:04X} ",
                                                    "/proc/net/tcp"]}, "periodSeconds": 5},
            "securityContext": _security(NOBODY),
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "4Gi"}},
        }],
        "volumes": [{"name": "coredump", "emptyDir": empty_dir}, {"name": "tmp", "emptyDir": {}}, *volumes],
    }
    if source.backend != "s3" and source.node_name:
        spec["nodeName"] = source.node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(coredump_id),
            "annotations": {EXPIRES_ANNOTATION: format_time(expires), COREDUMP_ANNOTATION: source.location},
        },
        "spec": spec,
    }


def terminal_url(cfg: ViewerConfig) -> str:
    """The web terminal's address once ``port_forward_command`` runs on the user's machine."""
    return f"http://127.0.0.1:{cfg.web_terminal_port}/"


def port_forward_command(cfg: ViewerConfig, coredump_id: int, namespace: str) -> str:
    """The command that brings the pod's loopback-only terminal to the user's machine."""
    port = cfg.web_terminal_port
    return f"kubectl -n {namespace} port-forward pod/{viewer_name(coredump_id)} {port}:{port}"


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def expires_at(obj: Mapping[str, Any]) -> datetime | None:
    """The expiry annotation of a viewer pod or service."""
    annotations = _metadata(obj).get("annotations") or {}
    return parse_time(annotations.get(EXPIRES_ANNOTATION))


def viewers(pods: Iterable[Mapping[str, Any]], cfg: ViewerConfig) -> list[Viewer]:
    """The viewer pods among ``pods``, oldest expiry first."""
    found: list[Viewer] = []
    for pod in pods:
        meta = _metadata(pod)
        pod_labels = meta.get("labels") or {}
        if pod_labels.get(MANAGED_BY_KEY) != MANAGED_BY or VIEWER_LABEL not in pod_labels:
            continue
        try:
            coredump_id = int(pod_labels[VIEWER_LABEL])
        except ValueError:
            continue
        namespace = str(meta.get("namespace") or "")
        phase = str((pod.get("status") or {}).get("phase") or "Pending")
        found.append(Viewer(str(meta.get("name")), namespace, coredump_id, phase, expires_at(pod),
                            terminal_url(cfg)))
    return sorted(found, key=lambda v: (v.expires_at.timestamp() if v.expires_at else float("inf"), v.name))


def active(found: Iterable[Viewer], now: datetime) -> list[Viewer]:
    return [v for v in found if not v.expired(now)]


def check_limit(running: Iterable[Viewer], cfg: ViewerConfig, now: datetime) -> None:
    """Refuse another viewer when ``maxConcurrentPods`` are running."""
    count = len(active(running, now))
    if count >= cfg.max_concurrent_pods:
        raise ViewerLimitError(
            f"{count} viewers are running, the most dashboard.viewer.maxConcurrentPods allows; "
            "wait for one to expire or delete one, then try again")


def expired_names(objects: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """Names of viewer pods or services past their expiry (pods also once finished)."""
    names = []
    for obj in objects:
        when = expires_at(obj)
        phase = (obj.get("status") or {}).get("phase")
        if (when is not None and when <= now) or phase in FINISHED_PHASES:
            names.append(str(_metadata(obj).get("name")))
    return names
