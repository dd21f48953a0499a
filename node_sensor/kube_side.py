"""The sensor's Kubernetes side: Milvus instances, the pods on this node, their restarts, correlation.

Runs only when a cluster is configured (in-cluster, KUBECONFIG or ~/.kube/config).
Restarts become restart_events rows (exit code, reason, signal, panic from the
previous container's last log lines) and ``milvus.pod.restarted`` Prefect
events that the cleanup deployment is triggered by.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.events import emit_event

from coredumps.config import Config
from coredumps.corefiles import parse_core_name
from coredumps.correlation import PodView, RestartView, correlate
from coredumps.inventory import record_restart, remove_pod, upsert_instance, upsert_pod
from coredumps.journal import host_path_for, journal_entry
from coredumps.kube.client import KubeClient
from coredumps.kube.discovery import discover_instances
from coredumps.kube.pods import Pod, PodWatcher, Restart, crash_excerpt, instance_of, is_panic, pod_info
from coredumps.records import Sessions
from coredumps.xattrs import read_xattrs
from node_sensor import metrics

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 2000
"""Lines of a crashed container's log read (at most 256 KiB): a Go fatal error prints every goroutine after
its first line, so the line that says why can be thousands of lines from the end."""
RECENT_RESTARTS = 500


class KubeSide:
    def __init__(self, cfg: Config, client: KubeClient, sessions: Sessions, node: str) -> None:
        self.cfg, self.client, self.sessions, self.node = cfg, client, sessions, node
        self.operator_instances: set[tuple[str, str]] = set()
        self._restarts: deque[RestartView] = deque(maxlen=RECENT_RESTARTS)
        self._lock = threading.Lock()
        self.watcher = PodWatcher(client, node, self._on_restart, on_change=self._on_change)

    # -- instances ------------------------------------------------------------------------------
    def discover_once(self) -> int:
        instances = discover_instances(self.client, self.cfg.discovery)
        self.operator_instances = {(i.namespace, i.name) for i in instances if i.deployment_type == "operator"}
        for instance in instances:
            upsert_instance(self.sessions, instance)
        return len(instances)

    def _discovery_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.discover_once()
            except Exception:
                metrics.ERRORS.labels("discovery").inc()
                log.warning("Milvus discovery failed; retrying at the next scan", exc_info=True)
            stop.wait(self.cfg.discovery.scan_interval)

    # -- pods and restarts ----------------------------------------------------------------------
    def _instance(self, pod: Pod) -> tuple[str, str] | None:
        return instance_of(pod, self.cfg.discovery, operator_instances=self.operator_instances)

    def _on_change(self, kind: str, pod: Pod) -> None:
        found = self._instance(pod)
        if found is None:
            return
        if kind == "DELETED":
            remove_pod(self.sessions, pod_info(pod).uid)
            return
        upsert_pod(self.sessions, pod_info(pod), found[0])

    def _on_restart(self, restart: Restart, pod: Pod) -> None:
        found = self._instance(pod)
        if found is None:
            return
        instance = found[0]
        with self._lock:  # before the log is read (up to 30 s): a core of this crash may be correlated meanwhile
            self._restarts.append(RestartView(restart.pod_uid, restart.container, restart.finished_at))
        try:
            tail = self.client.read_pod_log(restart.namespace, restart.pod_name, restart.container,
                                            previous=True, tail_lines=LOG_TAIL_LINES)
        except Exception as exc:  # a log may be gone already; the restart still counts
            log.debug("no previous log for %s/%s: %s", restart.namespace, restart.pod_name, exc)
            tail = ""
        panic = is_panic(tail, self.cfg.analyzer.panic_keywords)
        if not record_restart(self.sessions, restart, node=self.node, instance=instance, is_panic=panic,
                              log_excerpt=crash_excerpt(tail, self.cfg.analyzer.panic_keywords) or None):
            return
        metrics.RESTART_EVENTS.labels(instance).inc()
        log.info("restart %d of %s/%s (%s): exit %s, reason %s, signal %s%s", restart.restart_count,
                 restart.namespace, restart.pod_name, restart.container, restart.exit_code, restart.reason,
                 restart.signal, ", panic" if panic else "")
        try:
            emit_event(
                event="milvus.pod.restarted",
                resource={"prefect.resource.id": f"milvus.pod.{restart.namespace}.{restart.pod_name}",
                          "prefect.resource.name": restart.pod_name, "node": self.node},
                related=[{"prefect.resource.id": f"milvus.instance.{restart.namespace}.{instance}",
                          "prefect.resource.role": "milvus-instance"}],
                payload={"container": restart.container, "restart_count": restart.restart_count,
                         "exit_code": restart.exit_code, "signal": restart.signal, "is_panic": panic},
            )
        except Exception:
            log.debug("could not emit milvus.pod.restarted", exc_info=True)

    # -- correlation ----------------------------------------------------------------------------
    def _pod_views(self) -> list[PodView]:
        views = []
        for pod in self.watcher.pods():
            info = pod_info(pod)
            found = self._instance(pod)
            views.append(PodView(info.namespace, info.name, info.uid, tuple(info.containers),
                                 found[0] if found else None, found[1] if found else "unknown"))
        return views

    def correlate(self, path: Path) -> dict[str, Any]:
        """Flow parameters naming the core's pod, container and instance; empty when nothing matches."""
        attrs = read_xattrs(path)
        name = parse_core_name(path.name)
        hostname = attrs.hostname
        pod_uid = None
        host_path = host_path_for(path, self.cfg.collector.coredump_path, self.cfg.collector.host_coredump_path)
        entry = journal_entry(host_path)
        if entry is not None:
            hostname = hostname or entry.hostname
            pod_uid = entry.pod_uid
        crash_time = attrs.timestamp or (name.timestamp if name else None) or datetime.fromtimestamp(
            path.stat().st_mtime, tz=UTC)
        with self._lock:
            restarts = list(self._restarts)
        match = correlate(self._pod_views(), restarts, hostname=hostname, pod_uid=pod_uid, crash_time=crash_time)
        return {k: v for k, v in match.params().items() if v is not None} if match else {}

    def start(self, stop: threading.Event) -> None:
        threading.Thread(target=self._discovery_loop, args=(stop,), name="discovery", daemon=True).start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
