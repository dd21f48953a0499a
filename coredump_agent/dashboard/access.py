"""Who may see and change what: the dashboard token, and where the server may listen without one.

With ``COREDUMP_AGENT_DASHBOARD_TOKEN`` set, every page needs it (an ``Authorization: Bearer``
header, or the session cookie that signing in on ``/login`` sets: a value derived from the token, never
the token itself). Without it the server binds to loopback only and answers only requests addressed to
a loopback name, so that a web page cannot reach it through a DNS name rebound to 127.0.0.1. Launching a
viewer needs the token in either case.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from coredumps.errors import ConfigError

TOKEN_ENV = "COREDUMP_AGENT_DASHBOARD_TOKEN"  # noqa: S105 (a variable name, not a secret)
COOKIE = "coredump_agent_session"
SESSION_SECONDS = 12 * 3600
"""How long a signed-in browser stays signed in."""
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


class UnsafeBindError(ConfigError):
    """The dashboard would listen beyond this machine without a token."""


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address when no token is configured."""
    if not token and not is_loopback(host):
        raise UnsafeBindError(
            f"refusing to serve the dashboard on {host} without a token: set {TOKEN_ENV} in the environment "
            "(or a mounted Secret), or listen on 127.0.0.1")


def token_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: proof of the token that does not reveal it."""
    return hmac.new(token.encode(), b"coredump-agent dashboard session", hashlib.sha256).hexdigest()


def host_is_loopback(host_header: str | None) -> bool:
    """True when a request's Host header names this machine's loopback (a port may follow)."""
    host = (host_header or "").strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return is_loopback(host)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
