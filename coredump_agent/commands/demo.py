"""``coredump-agent demo``: the whole pipeline on one machine, no Kubernetes.

Starts a local Prefect server on SQLite unless one answers already, the sensor
on a local folder, crashes a small program into that folder, follows the core
through its flow run, prints the diagnosis, the score breakdown, where it was
stored and the Prefect UI link, and keeps everything up until Ctrl-C
(``--once`` stops after the first coredump).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coredump_agent.commands.args import port_number
from coredump_agent.crasher import PROGRAMS, make_core
from coredump_agent.prefect_env import SERVER_DEFAULTS

if TYPE_CHECKING:
    from coredumps.config import Config


READY_TIMEOUT = 180.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="Run the whole pipeline locally: Prefect server, sensor, a real crash, its diagnosis and UI link.",
        description="Start a local Prefect server on SQLite (unless PREFECT_API_URL answers), the sensor on "
        "<agent.dataDir>/demo/coredumps, crash a small program into that folder, follow its flow run and print "
        "the diagnosis, the score breakdown, where the core was stored and the Prefect UI link. Runs until "
        "Ctrl-C; --once exits after the first coredump.",
    )
    parser.add_argument("--kind", choices=sorted(PROGRAMS), default="segv", help="which crash to make (default segv)")
    parser.add_argument("--once", action="store_true", help="exit after the first coredump is processed")
    parser.add_argument("--port", type=port_number, default=4200,
                        help="port of the local Prefect server (default 4200)")
    parser.set_defaults(handler=run)


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def _healthy(api_url: str) -> bool:
    try:
        import urllib.request

        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310 - local URL
            return response.status == 200
    except OSError:
        return False


def _wait(condition: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with status {proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=out, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _report(cfg: Config, core: Path, ui: str) -> str | None:
    """The processed core's report, or None while it is still in flight."""
    from sqlalchemy import select

    from coredumps.db import CoredumpFile, make_engine, session_factory

    engine = make_engine(cfg.database_url())
    try:
        with session_factory(engine)() as session:
            row = session.scalar(select(CoredumpFile).where(CoredumpFile.file_name == core.name))
            if row is None or row.status not in ("stored", "skipped", "failed"):
                return None
            lines = [f"Core:          {row.path} ({row.size_bytes} bytes)", f"Outcome:       {row.status}"]
            if row.analysis is not None:
                lines += [f"Signal:        {row.signal_name}", f"Crash reason:  {row.analysis.crash_reason}",
                          f"Signature:     {row.signature}", "Top frames:"]
                lines += [f"  {line}" for line in row.analysis.stack_trace.splitlines()[:6]]
            if row.score is not None:
                parts = ", ".join(f"{k} {v:+.1f}" for k, v in (row.score_breakdown or {}).items() if v)
                lines.append(f"Score:         {row.score:.2f} / 10 ({parts})")
            lines.append(f"Stored at:     {row.storage_location or row.skip_reason or row.error}")
            lines.append(f"Flow run:      {ui}/runs/flow-run/{row.flow_run_id}")
            return "\n".join(lines)
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    from coredump_agent.commands.args import configured

    cfg = configured(args)
    data = Path(cfg.agent.data_dir).absolute()
    demo = data / "demo"
    watched = demo / "coredumps"
    env = {**SERVER_DEFAULTS, **os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.setdefault("PREFECT_HOME", str(demo / "prefect"))
    server = sensor = None
    api_url = env.get("PREFECT_API_URL") or f"http://127.0.0.1:{args.port}/api"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if _healthy(api_url):
            say(f"using the Prefect server at {api_url}")
        else:
            api_url = f"http://127.0.0.1:{args.port}/api"
            say(f"starting a local Prefect server on SQLite at {api_url} (first start takes a while) ...")
            server = _start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(args.port)], {**env, "PREFECT_API_URL": api_url}, demo / "prefect-server.log")
            _wait(lambda: _healthy(api_url), READY_TIMEOUT, "the Prefect server", server)
        ui = api_url.removesuffix("/api")
        health = _free_port()
        sensor_env = {**env, "PREFECT_API_URL": api_url,
                      "COREDUMP_AGENT_COLLECTOR__COREDUMPPATH": str(watched),
                      "COREDUMP_AGENT_COLLECTOR__STABLEFOR": "1s",
                      "COREDUMP_AGENT_AGENT__HEALTHPORT": str(health),
                      "COREDUMP_AGENT_AGENT__METRICSPORT": str(_free_port())}
        config_args = ["--config", args.config] if args.config else []
        say(f"starting the sensor on {watched} ...")
        sensor = _start([sys.executable, "-m", "coredump_agent.cli", *config_args, "sensor"], sensor_env,
                        demo / "sensor.log")
        _wait(lambda: _ready(health), READY_TIMEOUT, "the sensor", sensor)
        say(f"building and crashing the '{args.kind}' program ...")
        staging = demo / "staging"
        core, _binary = make_core(args.kind, staging / f"core.{args.kind}.{os.getpid()}.{int(time.time())}",
                                  demo / "bin")
        target = watched / core.name
        os.rename(core, target)
        say(f"core written to {target}; the sensor hands it to Prefect, which analyses, scores and stores it ...")
        report = _wait(lambda: _report(cfg, target, ui), READY_TIMEOUT, "the flow run of the core", sensor)
        print(report, flush=True)
        if args.once:
            return 0
        say(f"the Prefect UI is at {ui}; drop more cores into {watched}; Ctrl-C to stop")
        while not stop.wait(1):
            if sensor.poll() is not None:
                say(f"the sensor exited with status {sensor.returncode}; see {demo / 'sensor.log'}")
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        say(f"{exc}; see the logs in {demo}")
        return 4
    finally:
        _stop(sensor)
        _stop(server)


def _ready(port: int) -> bool:
    try:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
