"""The helm CLI: ``helm uninstall`` under a hard timeout. The only module that runs helm."""

from __future__ import annotations

import shutil
import subprocess

from coredumps.cleanup.errors import HelmFailedError, HelmMissingError

MISSING = "helm is not installed; install it or use cleaner.action scale-to-zero"
GRACE_SECONDS = 30.0
"""Time helm gets past its own --timeout before it is killed."""


def helm_path() -> str:
    """The helm executable on PATH; ``HelmMissingError`` when there is none."""
    found = shutil.which("helm")
    if found is None:
        raise HelmMissingError(MISSING)
    return found


def uninstall_command(helm: str, release: str, namespace: str, timeout: float) -> list[str]:
    # Options first and the release after "--": a name can never be read as an option.
    return [helm, "uninstall", "--namespace", namespace, "--timeout", f"{max(1, round(timeout))}s", "--", release]


def uninstall(release: str, namespace: str, timeout: float) -> str:
    """Uninstall a release; returns helm's output. Fails with one line saying why."""
    command = uninstall_command(helm_path(), release, namespace, timeout)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + GRACE_SECONDS,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise HelmFailedError(
            f"helm uninstall {release} in {namespace} did not finish within {timeout + GRACE_SECONDS:.0f}s "
            "and was stopped; check the release with helm status."
        ) from exc
    except OSError as exc:
        raise HelmFailedError(f"helm could not be started: {exc}.") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else "no output"
        raise HelmFailedError(f"helm uninstall {release} in {namespace} failed (exit {done.returncode}): {detail}")
    return (done.stdout or "").strip()
