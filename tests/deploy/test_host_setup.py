"""The host set-up script, run against a fake host root: it sets core_pattern and limits, and restores them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

SCRIPT = DEPLOY / "host-setup" / "setup.sh"
SYSTEMD_PATTERN = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h %d %F"
ORIGINAL = "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E"


class Host:
    def __init__(self, root: Path, handler: bool = True) -> None:
        self.root = root
        self.pattern = root / "core_pattern"
        self.pattern.write_text(ORIGINAL + "\n")
        (root / "etc" / "systemd").mkdir(parents=True)
        (root / "var" / "lib").mkdir(parents=True)
        (root / "usr" / "lib" / "sysctl.d").mkdir(parents=True)
        (root / "usr" / "lib" / "sysctl.d" / "50-coredump.conf").write_text(
            f"# systemd\nkernel.core_pattern={SYSTEMD_PATTERN}\nkernel.core_pipe_limit=16\n")
        if handler:
            handler_path = root / "usr" / "lib" / "systemd" / "systemd-coredump"
            handler_path.parent.mkdir(parents=True)
            handler_path.write_text("#!/bin/sh\n")
            handler_path.chmod(0o755)
        self.dropin = root / "etc" / "systemd" / "coredump.conf.d" / "50-coredump-agent.conf"
        self.log = root / "setup.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str = "core_pattern is now") -> None:
        seen = self.log.read_text().count(wait_for) if self.log.exists() else 0
        env = {**os.environ, "HOST_ROOT": str(self.root), "CORE_PATTERN_FILE": str(self.pattern),
               "NODE_NAME": "node-1", "PROCESS_SIZE_MAX": "16G"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["sh", str(SCRIPT)], env=env, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while self.log.read_text().count(wait_for) <= seen:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"timed out waiting for {wait_for!r}: {self.log.read_text()}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        if _alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return code


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_it_points_core_pattern_at_systemd_coredump_and_restores_it_on_sigterm(host: Host) -> None:
    host.start()
    assert host.pattern.read_text().strip() == SYSTEMD_PATTERN
    dropin = host.dropin.read_text()
    assert "Storage=external" in dropin and "ProcessSizeMax=16G" in dropin and "ExternalSizeMax=32G" in dropin

    assert host.stop() == 0
    assert host.pattern.read_text().strip() == ORIGINAL
    assert not host.dropin.exists()
    assert not (host.root / "var" / "lib" / "coredump-agent-host-setup").exists()
    assert "restoring core_pattern" in host.log.read_text()


def test_a_restarted_pod_still_restores_the_values_from_before_the_first(host: Host) -> None:
    previous = "[Coredump]\nStorage=journal\n"
    host.dropin.parent.mkdir(parents=True)
    host.dropin.write_text(previous)
    host.start()
    host.stop(signal.SIGKILL)
    assert host.pattern.read_text().strip() == SYSTEMD_PATTERN, "a killed pod restores nothing"

    host.start()
    assert host.stop() == 0
    assert host.pattern.read_text().strip() == ORIGINAL
    assert host.dropin.read_text() == previous


def test_without_systemd_coredump_it_changes_nothing_and_says_why(tmp_path: Path) -> None:
    host = Host(tmp_path, handler=False)
    host.start(wait_for="is missing on the host")
    assert host.pattern.read_text().strip() == ORIGINAL
    assert not host.dropin.exists()
    assert host.stop() == 0
