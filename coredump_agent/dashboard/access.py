"""Who may see and change what: the dashboard token, and where the server may listen without one.

With ``COREDUMP_AGENT_DASHBOARD_TOKEN`` set, every page needs it (the ``/login`` cookie or an
``Authorization: Bearer`` header). Without it the server binds to loopback only. Launching a viewer
needs the token in either case.
"""

from __future__ import annotations

import ipaddress
import secrets

from coredumps.errors import ConfigError

TOKEN_ENV = "COREDUMP_AGENT_DASHBOARD_TOKEN"  # noqa: S105 (a variable name, not a secret)
COOKIE = "coredump_agent_token"
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


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
