"""Where the dashboard may listen: loopback only unless a token is configured."""

from __future__ import annotations

import argparse
import socket

import pytest

from coredump_agent.commands import dashboard as command
from coredump_agent.dashboard import UnsafeBindError, check_bind
from coredumps.errors import ConfigError


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "dashboard.example"])
def test_other_addresses_are_refused_without_a_token(host: str) -> None:
    with pytest.raises(UnsafeBindError, match="COREDUMP_AGENT_DASHBOARD_TOKEN"):
        check_bind(host, None)
    check_bind(host, "a-token")


def test_the_command_refuses_to_bind_everywhere_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREDUMP_AGENT_DASHBOARD_TOKEN", raising=False)
    args = argparse.Namespace(config=None, host="0.0.0.0", port=None, prefect_ui=None,
                              viewer_deployment="viewer/cluster")
    with pytest.raises(UnsafeBindError, match=r"refusing to serve the dashboard on 0\.0\.0\.0"):
        command.run(args)


def test_the_command_refuses_to_start_when_the_dashboard_is_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COREDUMP_AGENT_DASHBOARD__ENABLED", "false")
    args = argparse.Namespace(config=None, host="127.0.0.1", port=None, prefect_ui=None,
                              viewer_deployment="viewer/cluster", verbose=False)
    with pytest.raises(ConfigError, match=r"dashboard\.enabled: false"):
        command.run(args)


def test_the_command_refuses_a_port_in_use_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREDUMP_AGENT_DASHBOARD_TOKEN", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        args = argparse.Namespace(config=None, host="127.0.0.1", port=port, prefect_ui=None,
                                  viewer_deployment="viewer/cluster", verbose=False)
        with pytest.raises(ConfigError, match=rf"dashboard\.port: cannot listen on 127\.0\.0\.1:{port}: "):
            command.run(args)
