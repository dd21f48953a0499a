"""/healthz and /readyz on agent.healthPort; /metrics on agent.metricsPort."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import start_http_server

from node_sensor.metrics import REGISTRY

log = logging.getLogger(__name__)
Check = Callable[[], str | None]  # None when fine, else why not


class HealthServer:
    """Serves liveness and readiness; each readiness check returns None or the reason it fails."""

    def __init__(self, port: int, checks: dict[str, Check], host: str = "0.0.0.0") -> None:  # noqa: S104
        self.checks = checks
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._reply(200, {"status": "ok"})
                elif self.path == "/readyz":
                    failures = outer.failures()
                    self._reply(503 if failures else 200,
                                {"status": "not ready" if failures else "ready", "failing": failures})
                else:
                    self._reply(404, {"error": "not found"})

            def _reply(self, code: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    def failures(self) -> dict[str, str]:
        out = {}
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if reason:
                out[name] = reason
        return out

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_metrics(port: int, host: str = "0.0.0.0") -> int:  # noqa: S104
    """Serve /metrics from the sensor's registry; returns the port (useful with port 0)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_address[1])
