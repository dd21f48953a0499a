"""A real S3 API on loopback for tests: moto's server, and a proxy that fails on purpose.

``MotoServer`` runs ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a fixed
port; ``stop()`` closes the listening socket (werkzeug does on shutdown), so a
client sees refused connections, and ``start()`` serves the same port again.
Moto's data lives in this process, so buckets and unfinished multipart
uploads survive a restart. ``set_auth(True)`` makes moto reject unknown keys.

``FlakyProxy`` forwards HTTP to a target and answers the first ``failures``
requests itself with an S3 error (503 SlowDown by default).

``fake_aws_environment`` and ``UNSET_AWS_VARIABLES`` give botocore fake keys and
nothing else to find; set them with ``monkeypatch``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
FAKE_ACCESS_KEY = "AKIAFAKEFAKEFAKE0001"
FAKE_SECRET_KEY = "fake-secret-never-printed-0123456789"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "upgrade", "te"}


def fake_aws_environment(scratch: Path) -> dict[str, str]:
    """Variables that give botocore fake keys and nothing else to find (no profile, no instance metadata)."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


UNSET_AWS_VARIABLES = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "COREDUMP_AGENT_S3_CREDENTIALS_FILE")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """moto's ThreadedMotoServer on ``http://127.0.0.1:<port>``; ``stop()`` and ``start()`` may alternate."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is None:
            self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
            self._server.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def set_auth(self, enabled: bool) -> None:
        """Make moto check credentials (unknown keys get InvalidAccessKeyId) or accept anything again."""
        body = b"0" if enabled else b"inf"
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth", data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error_body(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        "<Message>Please reduce your request rate.</Message><RequestId>flaky</RequestId></Error>"
    ).encode()


class FlakyProxy:
    """Forwards to ``target`` but answers the first ``failures`` requests with ``status``/``code``."""

    def __init__(self, target: str, failures: int, status: int = 503, code: str = "SlowDown") -> None:
        parsed = urlparse(target)
        self.target_host = parsed.hostname or HOST
        self.target_port = parsed.port or 80
        self.failures = failures
        self.status = status
        self.code = code
        self.failed = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    def _take_failure(self) -> bool:
        with self._lock:
            if self.failed < self.failures:
                self.failed += 1
                return True
            self.forwarded += 1
            return False

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._take_failure():
                    payload = _error_body(proxy.code)
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    length_header = response.getheader("Content-Length")
                    if self.command == "HEAD" and length_header is not None:
                        self.send_header("Content-Length", length_header)
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="flaky-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()


@contextlib.contextmanager
def running(server: MotoServer | FlakyProxy) -> Iterator[Any]:
    """Start ``server`` for the block, stop it afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
