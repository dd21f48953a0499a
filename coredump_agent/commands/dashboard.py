"""``coredump-agent dashboard``: serve the web dashboard (overview, instances, coredumps, crash groups)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from coredump_agent.commands.args import port_number
from coredump_agent.prefect_env import apply_defaults

if TYPE_CHECKING:
    from coredumps.config import Config


DEFAULT_VIEWER_DEPLOYMENT = "viewer/cluster"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dashboard",
        help="Serve the web dashboard on dashboard.port (default 8082).",
        description="Serve the dashboard: overview, instances, coredumps, crash groups and the viewer launcher. "
        "With COREDUMP_AGENT_DASHBOARD_TOKEN set every page needs the token; without it the server listens "
        "on loopback only and viewers cannot be launched.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need the token)")
    parser.add_argument("--port", type=port_number, default=None, help="port (default dashboard.port)")
    parser.add_argument("--prefect-ui", default=None,
                        help="Prefect UI address for flow-run links (default $PREFECT_UI_URL, else derived "
                        "from PREFECT_API_URL)")
    parser.add_argument("--viewer-deployment", default=DEFAULT_VIEWER_DEPLOYMENT,
                        help=f"deployment the Launch viewer button runs (default {DEFAULT_VIEWER_DEPLOYMENT})")
    parser.set_defaults(handler=run)


def prefect_ui_url(explicit: str | None) -> str | None:
    """The Prefect UI's address: the option, $PREFECT_UI_URL, or PREFECT_API_URL without its /api."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("PREFECT_UI_URL"):
        return os.environ["PREFECT_UI_URL"].rstrip("/")
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    return str(api).rstrip("/").removesuffix("/api") if api else None


def deployment_launcher(name: str) -> Any:
    """Start a run of the viewer deployment and return its id without waiting for it."""

    def launch(coredump_id: int, minutes: int) -> str:
        from prefect.deployments import run_deployment

        run = run_deployment(name, parameters={"coredump_id": coredump_id, "minutes": minutes}, timeout=0)
        return str(getattr(run, "id", run))

    return launch


def kube_viewer_lister(cfg: Config) -> Any:
    """List a coredump's viewer pods through the cluster's API, or ``None`` without a cluster."""
    from coredumps import viewer as v
    from coredumps.kube.client import connect

    client = connect()
    if client is None:
        return None

    def lister(coredump_id: int) -> list[v.Viewer]:
        pods, _ = client.list_pods(cfg.dashboard.viewer_namespace, label_selector=v.selector_for(coredump_id))
        return v.viewers(pods, cfg.dashboard.viewer)

    return lister


def _check_port(host: str, port: int) -> None:
    """Refuse, in one sentence, an address the server could not listen on (uvicorn would log and exit)."""
    import socket

    from coredumps.errors import ConfigError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"dashboard.port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from coredump_agent.commands.args import configured
    from coredump_agent.dashboard import TOKEN_ENV, check_bind, create_app
    from coredumps.db.engine import init_db, session_factory
    from coredumps.errors import ConfigError

    cfg = configured(args)
    if not cfg.dashboard.enabled:
        raise ConfigError("the dashboard is turned off (dashboard.enabled: false); set it to true to serve it")
    token = os.environ.get(TOKEN_ENV) or None
    check_bind(args.host, token)
    port = cfg.dashboard.port if args.port is None else args.port
    _check_port(args.host, port)
    apply_defaults()
    sessions = session_factory(init_db(cfg))
    app = create_app(cfg, sessions, token=token, prefect_ui=prefect_ui_url(args.prefect_ui),
                     launcher=deployment_launcher(args.viewer_deployment),
                     viewer_lister=kube_viewer_lister(cfg))
    sys.stderr.write(f"dashboard on http://{args.host}:{port}{cfg.dashboard.path}\n")
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0
