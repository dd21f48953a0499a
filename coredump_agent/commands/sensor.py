"""``coredump-agent sensor``: the per-node daemon (watcher, ledger, hand-over, runner, health, metrics)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coredump_agent.commands.args import positive_int
from coredump_agent.prefect_env import apply_defaults
from coredumps.errors import ConfigError

if TYPE_CHECKING:
    from coredumps.config import Config


log = logging.getLogger("coredump_agent.sensor")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sensor",
        help="Run the node sensor: watch collector.coredumpPath and hand each finished core to Prefect.",
        description="Watch collector.coredumpPath for finished coredumps, record each in a durable ledger, hand it "
        "to Prefect as a run of this node's process-coredump deployment, and execute those runs here. Serves "
        "/healthz and /readyz on agent.healthPort and /metrics on agent.metricsPort. Needs a Prefect API "
        "(PREFECT_API_URL); runs until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="flow runs executed at once (default: analyzer.maxConcurrentAnalyses + 1; GDB itself "
                        "stays within analyzer.maxConcurrentAnalyses, and the extra run does its other steps "
                        "meanwhile)")
    parser.set_defaults(handler=run)


def default_workers(cfg: Config) -> int:
    """Flow runs a node executes at once: one more than its GDB slots, so that a slot does not wait while its
    run makes its Prefect calls, stores and records."""
    return cfg.analyzer.max_concurrent_analyses + 1


def _database_check(cfg: Config) -> Any:
    from sqlalchemy import text

    from coredumps.db.engine import make_engine

    engine = make_engine(cfg.database_url(), cfg.database.busy_timeout)

    def check() -> str | None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None

    return check


def _prefect_check() -> str | None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    return f"Prefect API unreachable: {error}" if error else None


def _kube_side(cfg: Config, node: str) -> Any:
    """The Kubernetes side when a cluster is configured, else None (the sensor then watches files only)."""
    from coredumps.kube.client import connect
    from node_sensor.kube_side import KubeSide
    from tasks.runtime import sessions_for

    client = connect()
    if client is None:
        log.info("no Kubernetes cluster configured; running without pod correlation and restart events")
        return None
    return KubeSide(cfg, client, sessions_for(cfg), node)


class _Cached:
    """A readiness check evaluated at most every few seconds."""

    def __init__(self, check: Any, ttl: float = 3.0) -> None:
        self.check, self.ttl = check, ttl
        self.value: str | None = "not checked yet"
        self.at = 0.0

    def __call__(self) -> str | None:
        if time.monotonic() - self.at > self.ttl:
            try:
                self.value = self.check()
            except Exception as exc:
                self.value = f"{type(exc).__name__}: {exc}"
            self.at = time.monotonic()
        return self.value


def _check_folder(folder: Path) -> None:
    """The watched folder exists (created if missing) and is a folder; else one sentence naming the key."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"collector.coredumpPath: {folder} exists and is not a folder") from None
    except OSError as exc:
        raise ConfigError(f"collector.coredumpPath: {folder} cannot be created: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _port(key: str, port: int) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{key}: port {port} is in use by another process; stop it or choose another port") \
                from None
        raise ConfigError(f"{key}: cannot listen on port {port}: {exc.strerror or exc}") from None


def _watch_problem(watcher: Any) -> str | None:
    """Why the pod watch is not serving (readiness), or None."""
    if not watcher.ready.is_set():
        return "the pod watch has not listed pods yet"
    if watcher.last_error is not None:
        return f"the pod watch is failing: {watcher.last_error}"
    return None


def _watch(sensor: Any, stop: threading.Event, ready: threading.Event) -> None:
    """The watcher thread: a failure is one logged line (its traceback with -v), and the command exits."""
    try:
        sensor.run(stop, ready)
    except Exception as exc:
        log.error("the folder watcher failed: %s: %s", type(exc).__name__, exc)
        log.debug("the folder watcher failed", exc_info=True)


def run(args: argparse.Namespace) -> int:
    from coredump_agent.commands.args import configured

    cfg = configured(args)
    _check_folder(Path(cfg.collector.coredump_path))
    apply_defaults()
    from coredumps.db.engine import init_db
    from coredumps.records import stored_bytes
    from flows.cancel import RunCancelled
    from flows.node_runner import NodeRunner, apply_deployment
    from node_sensor import metrics
    from node_sensor.health import HealthServer, start_metrics
    from node_sensor.sensor import Sensor
    from tasks.runtime import sessions_for

    node = cfg.agent.resolved_node_name()
    init_db(cfg)
    stop = threading.Event()
    ready = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    state: dict[str, Any] = {"watching": False, "registered": False}
    checks: dict[str, Any] = {
        "watcher": lambda: None if state["watching"] else "the folder watcher is not running",
        "deployment": lambda: None if state["registered"] else f"deployment process-coredump/{node} not registered",
        "database": _Cached(_database_check(cfg)),
        "prefect": _Cached(_prefect_check),
    }
    with _port("agent.healthPort", cfg.agent.health_port):
        health = HealthServer(cfg.agent.health_port, checks)
    health.start()
    if cfg.monitor.prometheus_enabled:
        with _port("agent.metricsPort", cfg.agent.metrics_port):
            start_metrics(cfg.agent.metrics_port)

    deployment_id = None
    while deployment_id is None and not stop.is_set():
        try:
            deployment_id = apply_deployment(node)
        except Exception as exc:
            log.warning("cannot register deployment process-coredump/%s yet (%s); retrying", node, exc)
            stop.wait(5)
    if deployment_id is None:
        health.stop()
        return 0
    state["registered"] = True
    metrics.STORAGE_USED.set(stored_bytes(sessions_for(cfg)))

    sensor: Sensor
    detected: dict[Any, float] = {}

    def on_done(flow_run: Any, result: dict[str, Any] | None, error: BaseException | None) -> None:
        key = sensor.ledger.finished(str(flow_run.id), "done" if error is None else "failed")
        cancelled = isinstance(error, RunCancelled)
        outcome = "cancelled" if cancelled else "crashed" if error is not None else (
            "duplicate" if result and result.get("duplicate") else str((result or {}).get("status", "unknown")))
        metrics.PROCESSED.labels(outcome).inc()
        if result and result.get("score") is not None and not result.get("duplicate"):
            metrics.SCORE.observe(float(result["score"]))
        if result and result.get("stored_size") and not result.get("duplicate"):
            metrics.STORED_BYTES.inc(int(result["stored_size"]))
        if result and result.get("ai_status") and not result.get("duplicate"):
            metrics.AI_ANALYSES.labels(str(result["ai_status"])).inc()
            metrics.AI_COST.inc(float(result.get("ai_cost_usd") or 0.0))
            metrics.AI_TOKENS.inc(int(result.get("ai_tokens") or 0))
        if result and result.get("stored") and not result.get("duplicate"):
            metrics.STORAGE_USED.set(stored_bytes(sessions_for(cfg)))
        if result and result.get("group_count"):
            metrics.CRASH_GROUPS.set(int(result["group_count"]))
        started = detected.pop(flow_run.id, None) or (sensor.ledger.detected_at(key) if key else None)
        if started is not None:
            metrics.HANDOVER_LATENCY.observe(max(0.0, time.time() - started))
        if error is not None and not cancelled:
            metrics.ERRORS.labels(type(error).__name__).inc()

    workers = args.workers or default_workers(cfg)
    runner = NodeRunner(deployment_id, workers=workers, on_done=on_done)

    def on_submitted(flow_run: Any, detected_at: float) -> None:
        detected[flow_run.id] = detected_at
        runner.submit(flow_run)

    kube = _kube_side(cfg, node)
    sensor = Sensor(cfg, config_path=args.config, on_submitted=on_submitted,
                    correlate=kube.correlate if kube is not None else None)
    checks["watcher"] = lambda: None if sensor.watching else "the folder watcher is not running"
    if kube is not None:
        checks["kubernetes"] = lambda: _watch_problem(kube.watcher)
        kube.start(stop)
    recovered = runner.recover()
    if recovered:
        log.info("rescheduled %d flow runs left unfinished by an earlier sensor", recovered)
    for entry in sensor.ledger.in_state("submitted"):
        detected.setdefault(entry.flow_run_id, entry.detected_at)
    runner_thread = threading.Thread(target=runner.run, args=(stop,), name="runner", daemon=True)
    runner_thread.start()
    watcher = threading.Thread(target=_watch, args=(sensor, stop, ready), name="sensor", daemon=True)
    watcher.start()
    while not ready.wait(0.5):
        if not watcher.is_alive():  # asked to stop before its first sweep ended, or failed (the reason is logged)
            asked = stop.is_set()
            stop.set()
            runner_thread.join(timeout=60)
            health.stop()
            return 0 if asked else 1
    log.info("sensor ready on node %s: watching %s; health on :%d, metrics on :%d", node, sensor.folder,
             health.port, cfg.agent.metrics_port)
    while not stop.wait(0.5):
        if not watcher.is_alive():
            log.error("the watcher stopped unexpectedly; exiting so that the pod restarts")
            stop.set()
            return 1
    watcher.join(timeout=15)
    if kube is not None:
        kube.stop()
    runner_thread.join(timeout=60)
    health.stop()
    return 0
