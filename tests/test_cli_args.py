"""Bad values on the command line: one sentence from argparse, exit status 2, nothing started."""

from __future__ import annotations

import io
from contextlib import redirect_stderr

import pytest

from coredump_agent.cli import main


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
