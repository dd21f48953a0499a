"""Pods as the API sends them (dicts): which Milvus instance, which restarts, was it a panic.

The functions are pure. ``PodWatcher`` lists and watches the pods of one node from a thread
and reports each restart once: a restart is a rise in a container's ``restartCount``, and its
exit code, reason and time come from the container's ``lastState.terminated``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from coredumps.config import DiscoveryConfig
from coredumps.errors import CoredumpError
from coredumps.kube.client import KubeClient, WatchExpired, WatchStream
from coredumps.kube.selectors import matches_any, parse_all

log = logging.getLogger(__name__)

Pod = Mapping[str, Any]
DeploymentType = Literal["helm", "operator"]

INSTANCE_LABELS = ("app.kubernetes.io/instance", "release", "milvus.io/instance")
"""Labels naming the instance, in order: the Helm release / operator CR, old charts, custom setups."""
MAX_PENDING_RESTARTS = 1000
"""Restarts whose recording failed, kept to be tried again (beyond this many, newer failures are dropped)."""

_GO_PANIC = re.compile(
    r"^panic: |^fatal error: |^\[signal SIG|\bSIGSEGV\b|^terminate called after throwing|Assertion .+ failed",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Restart:
    """One restart of one container: what the kubelet recorded about the run that ended."""

    namespace: str
    pod_name: str
    pod_uid: str
    container: str
    restart_count: int
    exit_code: int | None
    reason: str | None
    signal: int | None
    finished_at: datetime | None
    node_name: str | None
    message: str | None = None


@dataclass(frozen=True)
class PodInfo:
    """The columns of the ``pods`` table, read from a pod."""

    namespace: str
    name: str
    uid: str
    node_name: str | None
    containers: tuple[str, ...]
    restart_count: int
    phase: str
    status_reason: str | None
    last_restart_at: datetime | None
    labels: Mapping[str, str] = field(default_factory=dict)


def _meta(pod: Pod) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def labels_of(obj: Pod) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def uid_of(pod: Pod) -> str:
    return str(_meta(pod).get("uid") or "")


def _statuses(pod: Pod) -> list[Mapping[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API as an aware UTC datetime; ``None`` when absent or malformed."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def signal_of(exit_code: int | None, signal: int | None = None) -> int | None:
    """The signal that ended a container: its ``signal`` field, else exit codes 129-192 (128 + N)."""
    if signal:
        return signal
    if exit_code is not None and 128 < exit_code <= 128 + 64:
        return exit_code - 128
    return None


def instance_name(labels: Mapping[str, str]) -> str | None:
    """The Milvus instance a set of labels names, from ``INSTANCE_LABELS``."""
    for key in INSTANCE_LABELS:
        if labels.get(key):
            return labels[key]
    return None


def instance_of(
    pod: Pod, cfg: DiscoveryConfig, *, operator_instances: Collection[tuple[str, str]] = ()
) -> tuple[str, DeploymentType] | None:
    """``(instance name, 'helm' | 'operator')`` of a Milvus pod, ``None`` for any other pod.

    A pod is the operator's when its ``(namespace, instance)`` has a Milvus resource
    (``operator_instances``) or it matches ``operatorLabels``; else Helm's when it matches
    ``helmReleaseLabels``. The operator labels its pods like a Helm chart does
    (``app.kubernetes.io/name=milvus``), so operator checks come first.
    """
    labels = labels_of(pod)
    name = instance_name(labels)
    if name is None:
        return None
    namespace = str(_meta(pod).get("namespace") or "")
    if (namespace, name) in operator_instances or matches_any(parse_all(cfg.operator_labels), labels):
        return name, "operator"
    if matches_any(parse_all(cfg.helm_release_labels), labels):
        return name, "helm"
    return None


def _restart(pod: Pod, status: Mapping[str, Any]) -> Restart:
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    exit_code = terminated.get("exitCode")
    exit_code = int(exit_code) if exit_code is not None else None
    meta = _meta(pod)
    return Restart(
        namespace=str(meta.get("namespace") or ""),
        pod_name=str(meta.get("name") or ""),
        pod_uid=uid_of(pod),
        container=str(status.get("name") or ""),
        restart_count=int(status.get("restartCount") or 0),
        exit_code=exit_code,
        reason=terminated.get("reason"),
        signal=signal_of(exit_code, terminated.get("signal")),
        finished_at=parse_time(terminated.get("finishedAt")),
        node_name=(pod.get("spec") or {}).get("nodeName"),
        message=terminated.get("message"),
    )


def restarts(old: Pod | None, new: Pod) -> list[Restart]:
    """Restarts between two views of a pod: containers whose ``restartCount`` rose.

    ``old=None`` means no earlier view, so nothing can be said (the pod was seen for the first
    time); an empty dict means the pod is new, so every restart it shows is one.
    """
    if old is None:
        return []
    before: dict[str, int] = {}
    if not uid_of(old) or uid_of(old) == uid_of(new):
        before = {str(s.get("name")): int(s.get("restartCount") or 0) for s in _statuses(old)}
    return [
        _restart(new, status)
        for status in _statuses(new)
        if int(status.get("restartCount") or 0) > before.get(str(status.get("name")), 0)
    ]


def last_restarts(pod: Pod) -> list[Restart]:
    """The latest restart of each container that has one (to catch up after a start-up)."""
    return [
        _restart(pod, status)
        for status in _statuses(pod)
        if int(status.get("restartCount") or 0) > 0 and (status.get("lastState") or {}).get("terminated")
    ]


def pod_info(pod: Pod) -> PodInfo:
    """The pod's row: containers, total restarts, phase and the most telling reason."""
    meta, status = _meta(pod), pod.get("status") or {}
    statuses = _statuses(pod)
    reason = None
    for container in statuses:
        state = container.get("state") or {}
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason")
        if reason:
            break
    finished = [parse_time(((s.get("lastState") or {}).get("terminated") or {}).get("finishedAt")) for s in statuses]
    return PodInfo(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=uid_of(pod),
        node_name=(pod.get("spec") or {}).get("nodeName"),
        containers=tuple(str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []),
        restart_count=sum(int(s.get("restartCount") or 0) for s in statuses),
        phase=str(status.get("phase") or "Unknown"),
        status_reason=reason or status.get("reason"),
        last_restart_at=max((t for t in finished if t is not None), default=None),
        labels=labels_of(pod),
    )


def panic_at(log: str, keywords: Iterable[str] = ()) -> int | None:
    """Where the log first shows a crash: a Go ``panic:`` or ``fatal error:`` line, a SIGSEGV, a C++
    ``terminate called``/failed assertion, or one of ``keywords`` as a word of its own (case-insensitive:
    "fatal" is in "FATAL: ..." but not in "non-fatal"); None when it shows none."""
    found = [match.start() for match in [_GO_PANIC.search(log)] if match]
    for keyword in keywords:
        if keyword and (match := re.search(rf"(?<![\w-]){re.escape(keyword)}(?![\w-])", log, re.IGNORECASE)):
            found.append(match.start())
    return min(found) if found else None


def is_panic(log: str, keywords: Iterable[str] = ()) -> bool:
    """True when the log shows a crash (see ``panic_at``)."""
    return panic_at(log, keywords) is not None


def crash_excerpt(log: str, keywords: Iterable[str] = (), size: int = 4000) -> str:
    """The part of a log worth keeping: from just before its first crash line, else its end."""
    at = panic_at(log, keywords)
    if at is None:
        return log[-size:]
    start = max(0, log.rfind("\n", 0, max(0, at - 200)) + 1)
    return log[start : start + size]


RestartCallback = Callable[[Restart, Pod], None]
ChangeCallback = Callable[[str, Pod], None]


class PodWatcher:
    """Lists, then watches, the pods of one node from a thread, reporting restarts and changes.

    ``on_change(type, pod)`` gets ADDED/MODIFIED/DELETED; ``on_restart(restart, pod)`` gets each
    restart once. For the pods of the first list, each container's latest restart is reported (see
    ``last_restarts``), to catch up on what happened while no watcher ran. A 410 from the watch, or
    any API error, leads to a new list, which is compared with the pods held, so no restart is missed
    or repeated (a restart whose callback fails is offered again); errors wait
    an exponential backoff first, and nothing loops without waiting. ``ready`` is set after the
    first list; ``on_sync(n)`` is called after every list of ``n`` pods.
    """

    def __init__(
        self,
        client: KubeClient,
        node_name: str,
        on_restart: RestartCallback,
        *,
        on_change: ChangeCallback | None = None,
        on_sync: Callable[[int], None] | None = None,
        namespace: str | None = None,
        watch_timeout: int = 300,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.namespace = namespace
        self.watch_timeout = watch_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ready = threading.Event()
        self.last_error: Exception | None = None
        self.lists = 0
        self._events = 0
        self._on_restart = on_restart
        self._on_change = on_change
        self._on_sync = on_sync
        self._pods: dict[str, Pod] = {}
        self._pending: list[tuple[Restart, Pod]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None

    @property
    def field_selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    def pods(self) -> list[Pod]:
        """The pods as last seen."""
        with self._lock:
            return list(self._pods.values())

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"pod-watcher:{self.node_name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; an open watch is cut so this returns promptly."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                version = self._sync()
                failures = 0
                self._events = 0
                self._watch(version)
            except WatchExpired:
                log.info("pod watch on %s expired; listing again", self.node_name)
                if self._events == 0:
                    self._stopping.wait(self.backoff_base)
            except Exception as exc:
                self.last_error = exc
                failures += 1
                cap = min(self.backoff_max, self.backoff_base * 2.0 ** (failures - 1))
                delay = cap / 2 + random.uniform(0.0, cap / 2)
                if isinstance(exc, CoredumpError):
                    log.warning("pod watch on %s failed (%s); retrying in %.1fs", self.node_name, exc, delay)
                else:
                    log.exception("pod watch on %s failed unexpectedly; retrying in %.1fs", self.node_name, delay)
                self._stopping.wait(delay)

    def _sync(self) -> str:
        items, version = self.client.list_pods(self.namespace, field_selector=self.field_selector)
        first = not self.ready.is_set()
        changes: list[tuple[str, Pod, list[Restart]]] = []
        with self._lock:
            current: dict[str, Pod] = {}
            for pod in items:
                uid = uid_of(pod)
                old = self._pods.get(uid)
                kind = "ADDED" if old is None else "MODIFIED"
                if old is not None and _meta(old).get("resourceVersion") == _meta(pod).get("resourceVersion"):
                    kind = ""
                # A pod in the first list: its latest restarts, which may have happened while no sensor watched
                # (the restart_events key drops those an earlier sensor recorded).
                found = last_restarts(pod) if old is None and first else restarts(old if old is not None else {}, pod)
                changes.append((kind, pod, found))
                current[uid] = pod
            changes += [("DELETED", gone, []) for key, gone in self._pods.items() if key not in current]
            self._pods = current
        for kind, changed, found in changes:
            self._report(kind, changed, found)
        self.lists += 1
        self.last_error = None
        self.ready.set()
        if self._on_sync is not None:
            self._guard(self._on_sync, len(items))
        return version

    def _watch(self, version: str) -> None:
        while not self._stopping.is_set():
            stream = self.client.watch_pods(self.namespace, field_selector=self.field_selector,
                                            resource_version=version, timeout_seconds=self.watch_timeout)
            with self._lock:
                self._stream = stream
            if self._stopping.is_set():
                stream.close()
            events = 0
            try:
                for kind, pod in stream:
                    if self._stopping.is_set():
                        break
                    events += 1
                    self._events += 1
                    self._apply(kind, pod)
            finally:
                with self._lock:
                    self._stream = None
            version = stream.resource_version
            if self._pending:
                self._report("", None, [])
            if events == 0:
                self._stopping.wait(self.backoff_base)

    def _apply(self, kind: str, pod: Pod) -> None:
        uid = uid_of(pod)
        with self._lock:
            old = self._pods.get(uid)
            if kind == "DELETED":
                self._pods.pop(uid, None)
            else:
                self._pods[uid] = pod
        self._report(kind, pod, restarts(old if old is not None else {}, pod))

    def _report(self, kind: str, pod: Pod | None, found: list[Restart]) -> None:
        """Tell the callbacks; a restart whose callback failed (a database outage) is offered again later."""
        if kind and pod is not None and self._on_change is not None:
            self._guard(self._on_change, kind, pod)
        pending, self._pending = self._pending, []
        for restart, its_pod in [*pending, *((restart, pod) for restart in found if pod is not None)]:
            try:
                self._on_restart(restart, its_pod)
            except Exception as exc:
                if len(self._pending) < MAX_PENDING_RESTARTS:
                    self._pending.append((restart, its_pod))
                log.warning("recording restart %d of %s/%s failed (%s: %s); it is tried again later",
                            restart.restart_count, restart.namespace, restart.pod_name, type(exc).__name__, exc)

    def _guard(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a pod watcher callback failed on %s", self.node_name)
