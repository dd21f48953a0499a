"""The sensor as a user runs it: a subprocess with a readiness endpoint, a real Prefect server, real cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from coredump_agent.prefect_env import SERVER_DEFAULTS
from coredumps.db import CoredumpFile, make_engine, session_factory
from tests.conftest import REPO
from tests.s3server import free_port


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


class PrefectServer:
    """``prefect server start`` on a loopback port; can be stopped and restarted.

    Its database is SQLite under ``home``, or ``database_url`` (PostgreSQL, emptied at the first start).
    """

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self._reset = database_url is not None
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        env = {**SERVER_DEFAULTS, **os.environ, "PREFECT_HOME": str(self.home),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": self.api_url}
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        if self._reset:
            subprocess.run([sys.executable, "-m", "prefect", "server", "database", "reset", "-y"], env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._reset = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(lambda: http_status(f"{self.api_url}/health") == 200, 120, "the Prefect server to start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class SensorProcess:
    """``coredump-agent sensor`` in a subprocess; ready when /readyz answers 200."""

    def __init__(self, config: Path, api_url: str, health_port: int, log: Path) -> None:
        self.config, self.api_url, self.health_port, self.log = config, api_url, health_port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.args: list[str] = []

    def start(self, wait: bool = True) -> SensorProcess:
        env = {**os.environ, "PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               **self.env}
        if "KUBECONFIG" not in self.env:
            env.pop("KUBECONFIG", None)  # no cluster unless a test brings its fake API server
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coredump_agent.cli", "--config", str(self.config), "sensor", *self.args],
                cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the sensor exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            return http_status(f"http://127.0.0.1:{self.health_port}/readyz") == 200

        wait_for(ready, 120, "the sensor to be ready")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)


class Node:
    """One node's folders and config, with helpers to read what the sensor recorded."""

    def __init__(self, root: Path, api_url: str, extra: str = "", node_name: str | None = None) -> None:
        self.root = root
        self.watched = root / "watched"
        self.watched.mkdir(parents=True, exist_ok=True)
        self.data = root / "data"
        self.health_port, self.metrics_port = free_port(), free_port()
        self.config = root / "config.yaml"
        self.config.write_text(
            f"agent:\n  dataDir: {self.data}\n  nodeName: {node_name or 'node-' + root.name[-12:].replace('_', '-')}\n"
            f"  healthPort: {self.health_port}\n  metricsPort: {self.metrics_port}\n"
            f"collector:\n  coredumpPath: {self.watched}\n  watchInterval: 2s\n  stableFor: 1s\n"
            f"storage:\n  localPath: {self.data / 'coredumps'}\n" + extra
        )
        self.sensor = SensorProcess(self.config, api_url, self.health_port, root / "sensor.log")

    def rows(self) -> list[CoredumpFile]:
        db = self.data / "coredump_agent.db"
        if not db.exists():
            return []
        engine = make_engine(f"sqlite:///{db}")
        try:
            with session_factory(engine)() as session:
                return list(session.scalars(select(CoredumpFile)))
        finally:
            engine.dispose()

    def finished_rows(self) -> list[CoredumpFile]:
        return [r for r in self.rows() if r.status in ("stored", "skipped", "failed")]

    def stored_objects(self) -> list[Path]:
        return sorted((self.data / "coredumps").rglob("*.core.zst"))

    def drop(self, core: Path, name: str) -> Path:
        """Write a core the way systemd-coredump does: a hidden temporary, then a rename into place."""
        temp = self.watched / f".#{name}.tmp"
        temp.write_bytes(core.read_bytes())
        final = self.watched / name
        temp.rename(final)
        return final

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


@pytest.fixture
def node(tmp_path: Path, prefect_harness: str) -> Iterator[Node]:
    n = Node(tmp_path, prefect_harness)
    yield n
    if n.sensor.proc is not None:
        n.sensor.stop()
