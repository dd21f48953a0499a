"""Failures outside the agent's control reach the user as one sentence with the right exit status."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("as_json", [False, True])
def test_an_unreachable_prefect_api_is_one_sentence_and_exit_4(tmp_path: Path, as_json: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    config = tmp_path / "config.yaml"
    config.write_text(f"agent:\n  dataDir: {tmp_path / 'data'}\n")
    result = run_cli("--config", str(config), "retention", "--dry-run", *(["--json"] if as_json else []),
                     env={"PREFECT_API_URL": url})
    assert result.returncode == 4
    expected = f"the Prefect API at {url}/ cannot be reached; start it or set PREFECT_API_URL to a running server"
    assert result.stderr.strip().splitlines() == [f"coredump-agent: error: {expected}"]
    if as_json:
        assert json.loads(result.stdout) == {"error": expected, "kind": "PrefectUnavailable"}
