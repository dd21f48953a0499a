"""Bad values on the command line: one sentence from argparse, exit status 2, nothing started."""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from coredump_agent.cli import main
from coredump_agent.commands.args import AGENT_LOGGERS, configured, set_agent_log_level


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sensor", "--workers", "0"], "argument --workers: 0 is not at least 1"),
        (["sensor", "--workers", "-3"], "argument --workers: -3 is not at least 1"),
        (["sensor", "--workers", "two"], "argument --workers: 'two' is not a whole number"),
        (["dashboard", "--port", "70000"], "argument --port: 70000 is not a port (1 to 65535)"),
        (["demo", "--port", "0"], "argument --port: 0 is not at least 1"),
        (["process", "/var/lib/systemd/coredump/core.x\udcff"],
         "argument core: '/var/lib/systemd/coredump/core.x\\xff' is not valid UTF-8; a file with such a name must be "
         "renamed first"),
    ],
)
def test_a_bad_value_is_refused_before_anything_starts(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited, redirect_stderr(io.StringIO()) as err:
        main(argv)
    assert exited.value.code == 2
    lines = err.getvalue().strip().splitlines()
    assert lines[-1] == f"coredump-agent {argv[0]}: error: {message}"
    assert "Traceback" not in err.getvalue()


@pytest.fixture
def agent_log_levels() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in AGENT_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("agent_log_levels")
@pytest.mark.parametrize(("level", "verbose", "expected"), [
    ("warning", False, logging.WARNING), ("debug", False, logging.DEBUG), ("error", False, logging.ERROR),
    ("error", True, logging.DEBUG),  # -v wins: main set debug, the config leaves it
])
def test_agent_log_level_sets_the_agents_loggers(tmp_path: Path, level: str, verbose: bool, expected: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"agent:\n  logLevel: {level}\n")
    set_agent_log_level(logging.DEBUG if verbose else logging.INFO)
    cfg = configured(argparse.Namespace(config=str(config), verbose=verbose))
    assert cfg.agent.log_level == level
    assert {logging.getLogger(name).level for name in AGENT_LOGGERS} == {expected}
