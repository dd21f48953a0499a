"""Cleanup fixtures: the fake Kubernetes API (seeded) behind KUBECONFIG, a stub helm, restart rows,
a webhook receiver, and a config per test."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from coredumps.config import load_config
from coredumps.db import CleanupEvent, RestartEvent
from tasks.runtime import sessions_for
from tests.kubefake import FakeKubeServer, load_seed

WAIT = 30.0
"""Seconds a wait for something asynchronous (an event, a webhook call) may take."""

HELM = ("default", "my-release")
OPERATOR = ("milvus-system", "my-milvus")
HELM_POD = "my-release-milvus-standalone-6c8d9f7b5-x2x9k"
OPERATOR_POD = "my-milvus-milvus-standalone-7d9c8b6f4-q8m2p"


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeServer]:
    """The seeded fake API server; KUBECONFIG points at it."""
    with FakeKubeServer() as server:
        server.seed(load_seed())
        monkeypatch.setenv("KUBECONFIG", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield server


@pytest.fixture
def helm_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``helm`` on PATH that records its arguments, one per line; returns the record file."""
    folder = tmp_path / "bin"
    folder.mkdir()
    record = tmp_path / "helm-args"
    script = folder / "helm"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{record}"\nfor last; do :; done\n'
                      'echo "release \\"$last\\" uninstalled"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return record


@pytest.fixture
def no_helm(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without any helm."""
    folders = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "helm").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(folders))


@pytest.fixture
def cleaner(agent_config: Callable[..., Path]) -> Callable[..., str]:
    """config(action, namespaces, delay, extra) -> the path of a config with that cleaner section."""

    def write(action: str = "dry-run", *, namespaces: tuple[str, ...] = ("default", "milvus-system"),
              delay: str = "0s", limit: int = 3, extra: str = "") -> str:
        listed = "[" + ", ".join(namespaces) + "]"
        text = (f"cleaner:\n  action: {action}\n  maxRestartCount: {limit}\n  restartTimeWindow: 1h\n"
                f"  cleanupDelay: {delay}\n  namespaces: {listed}\n{extra}")
        return str(agent_config(text))

    return write


LIVE_PODS = {HELM: (HELM_POD, "5d2b1c9e-4b1a-4f0b-8a6d-9c3e2f1a0b01"),
             OPERATOR: (OPERATOR_POD, "7e1f2a3b-8c9d-4e5f-a6b7-c8d9e0f1a203")}
"""The seeded crash-looping pod of each instance, and its uid."""


def add_restarts(config: str, namespace: str, instance: str, count: int, *, pod: str | None = None,
                 minutes_apart: float = 2.0) -> None:
    """``count`` restart_events rows of one instance, the latest a minute ago, from two nodes; of its seeded
    crash-looping pod unless ``pod`` names another."""
    sessions = sessions_for(load_config(config))
    now = datetime.now(UTC)
    name, uid = LIVE_PODS.get((namespace, instance), ("pod", ""))
    if pod is not None:
        name, uid = pod, ""
    with sessions() as session:
        for i in range(count):
            at = now - timedelta(minutes=1 + i * minutes_apart)
            session.add(RestartEvent(
                node_name=f"node-{i % 2}", namespace=namespace, pod_name=name, pod_uid=uid or f"uid-{instance}-{name}",
                container_name="standalone", instance_name=instance, restart_count=100 - i, exit_code=139,
                reason="Error", signal=11, finished_at=at, detected_at=at + timedelta(seconds=1),
            ))
        session.commit()


def age_restarts(config: str, by: timedelta) -> None:
    """Move every restart back in time, as if ``by`` had passed."""
    sessions = sessions_for(load_config(config))
    with sessions() as session:
        for row in session.scalars(select(RestartEvent)):
            row.detected_at -= by
            if row.finished_at is not None:
                row.finished_at -= by
        session.commit()


def cleanup_rows(config: str) -> list[CleanupEvent]:
    sessions = sessions_for(load_config(config))
    with sessions() as session:
        return list(session.scalars(select(CleanupEvent).order_by(CleanupEvent.id)))


@dataclass
class Webhook:
    """A receiver of the alerting webhook on loopback."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        with self.arrived:
            while True:
                for body in self.bodies:
                    if predicate(body):
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching webhook call; got {self.bodies}")
                self.arrived.wait(remaining)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with hook.arrived:
                hook.bodies.append(body)
                hook.arrived.notify_all()
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=secret"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join()
