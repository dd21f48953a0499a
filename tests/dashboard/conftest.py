"""Dashboard fixtures: a database filled by real flow runs, the dashboard on loopback, the fake Kubernetes API."""

from __future__ import annotations

import contextvars
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coredump_agent.dashboard import create_app
from coredumps.config import Config, load_config
from coredumps.db import CleanupEvent, CoredumpFile, MilvusInstance, Pod, init_db, session_factory
from flows.process_coredump import process_coredump
from tests.conftest import CoreFactory
from tests.kubefake import FakeKubeServer

TOKEN = "s3cret-dashboard-token"
HOSTILE = '<script>alert("owned")</script>'
BULK = 30
"""Synthetic coredump rows of the instance ``bulk``, enough for two pages."""


@dataclass
class Filled:
    """The filled database: its config file, config, sessions and what the flow runs returned."""

    config_path: Path
    cfg: Config
    sessions: sessionmaker[Session]
    runs: dict[str, dict[str, Any]]


def _write_config(path: Path, data: Path, extra: str = "") -> Path:
    path.write_text(
        f"agent:\n  dataDir: {data}\n  nodeName: test-node\nstorage:\n  localPath: {data / 'coredumps'}\n{extra}")
    return path


@pytest.fixture(scope="session")
def filled(prefect_harness: str, crash_cores: CoreFactory, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """Four real process_coredump runs (two share a crash group), plus instances, pods, cleanups and bulk rows."""
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "data"
    config_path = _write_config(root / "config.yaml", data)
    runs: dict[str, dict[str, Any]] = {}
    plan = [("segv-a", "segv", "group-a", "my-release"), ("segv-b", "segv", "group-b", "my-release"),
            ("abort", "abort", "", "other-release"), ("fpe", "fpe", "", "my-release")]
    for key, name, tag, instance in plan:
        core, exe = crash_cores(name, tag=tag)
        source = root / "incoming" / key / "core"
        source.parent.mkdir(parents=True)
        shutil.copyfile(core, source)
        runs[key] = process_coredump(path=str(source), exe=str(exe), instance=instance,
                                     pod=f"milvus/{instance}-milvus-standalone-0", container="standalone",
                                     config_path=str(config_path))
    cfg = load_config(config_path)
    sessions = session_factory(init_db(cfg))
    now = datetime.now(UTC)
    with sessions.begin() as s:
        mine = s.scalars(select(MilvusInstance).where(MilvusInstance.name == "my-release")).one()
        mine.deployment_type, mine.status, mine.pod_count = "helm", "CrashLoop", 1
        s.add(MilvusInstance(namespace="milvus", name=HOSTILE, deployment_type="operator", status="Healthy"))
        s.flush()
        s.add(Pod(instance_id=mine.id, namespace="milvus", name="my-release-milvus-standalone-0", uid="uid-1",
                  node_name="test-node", phase="Running", restart_count=7))
        s.add(CleanupEvent(instance_id=mine.id, namespace="milvus", instance_name="my-release",
                           action="scale-to-zero", decision="scheduled", reason="7 restarts within 1h"))
        for n in range(BULK):
            s.add(CoredumpFile(
                idempotency_key=f"bulk-{n}", node_name="test-node", path=f"/cores/core.bulk.{n}",
                file_name=f"core.bulk.{n}" if n else f"core.{HOSTILE}", size_bytes=1000 + n,
                mtime=now - timedelta(days=n % 5), crash_time=now - timedelta(days=n % 5), instance_name="bulk",
                signal_name="SIGBUS" if n % 2 else "SIGILL", score=float(n % 10), status="skipped",
                skip_reason="synthetic row", created_at=now - timedelta(days=n % 5)))
    return Filled(config_path, cfg, sessions, runs)


@dataclass
class Served:
    url: str
    base: str
    client: httpx.Client

    def page(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"{self.base}{path}", **kwargs)


def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a loopback port in a thread; yields its URL once the socket listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(server.run,), kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def dashboard(filled: Filled) -> Iterator[Callable[..., Served]]:
    """start(token=..., launcher=..., viewer_lister=...) -> the dashboard served on loopback."""
    stack: list[Iterator[str]] = []
    clients: list[httpx.Client] = []

    def start(*, token: str | None = TOKEN, launcher: Callable[[int, int], Any] | None = None,
              viewer_lister: Any = None, prefect_ui: str | None = "http://prefect.example:4200") -> Served:
        app = create_app(filled.cfg, filled.sessions, token=token, prefect_ui=prefect_ui, launcher=launcher,
                         viewer_lister=viewer_lister)
        running = serve(app)
        url = next(running)
        stack.append(running)
        client = httpx.Client(base_url=url, timeout=30)
        clients.append(client)
        return Served(url, filled.cfg.dashboard.path, client)

    yield start
    for client in clients:
        client.close()
    for running in stack:
        next(running, None)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKubeServer]:
    """The fake Kubernetes API server; KUBECONFIG points at it."""
    with FakeKubeServer() as server:
        monkeypatch.setenv("KUBECONFIG", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        yield server


def stored_id(filled: Filled, key: str = "segv-a") -> int:
    run = filled.runs[key]
    assert run["stored"], run
    return int(run["coredump_id"])
