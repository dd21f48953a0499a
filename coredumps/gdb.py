"""GDB driven over its machine interface (MI3), records parsed by pygdbmi.

GDB runs with ``-nx`` (no init files), auto-loading of scripts off, debuginfod
off unless servers are configured, an address-space limit, no core dumps of
its own, in a fresh session so that the whole process group can be killed.
One deadline covers the whole run: when it passes, GDB is killed and
``AnalysisTimeoutError`` is raised.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pygdbmi.gdbmiparser import parse_response

from coredumps.errors import AnalysisTimeoutError, CoredumpError

READ_CHUNK = 1 << 16
DEFAULT_TIMEOUT = 300.0
QUIT_GRACE = 2.0
"""Seconds GDB gets to exit when asked (it finishes writing its index cache), before it is killed."""


class GdbError(CoredumpError):
    """GDB could not be started or stopped answering."""


@dataclass
class MIResult:
    """One command's result record and the stream output that came with it."""

    command: str
    message: str
    payload: dict[str, Any]
    console: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.message in ("done", "connected", "running", "exit")

    @property
    def error(self) -> str:
        return str(self.payload.get("msg", "")) if not self.ok else ""


@dataclass(frozen=True)
class Pending:
    """Commands sent to GDB whose results have not been read yet."""

    first: int
    commands: tuple[str, ...]


def quote(arg: str) -> str:
    """Quote an MI command argument (paths with spaces, quotes or backslashes)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class GdbLaunch:
    """Everything that decides how GDB is started and which files it loads with a core.

    The defaults are analyzer's defaults; two equal launches load a core the same way.
    ``index_cache`` is the folder of GDB's index cache ("" keeps it off): it changes how fast
    symbols load, never what a load finds.
    """

    gdb_path: str = "gdb"
    memory_limit: int = 4 * 2**30
    debuginfod_urls: tuple[str, ...] = ()
    executable: str = ""
    sysroot: str = ""
    solib_search_path: tuple[str, ...] = ()
    index_cache: str = ""


class GdbSession:
    """A running GDB in MI mode. Use as a context manager; it is always killed at the end.

    ``run`` sends commands and waits for their results; ``send`` and ``collect`` split the two,
    so that GDB can load a core while the caller does other work.
    """

    def __init__(
        self,
        gdb_path: str = "gdb",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit: int = 0,
        debuginfod_urls: Sequence[str] = (),
    ) -> None:
        resolved = shutil.which(gdb_path)
        if resolved is None:
            raise GdbError(f"GDB was not found at '{gdb_path}'; install gdb or set analyzer.gdbPath")
        self.started = time.monotonic()
        self.launched = (gdb_path, memory_limit, tuple(debuginfod_urls))
        self.deadline = self.started + timeout
        self.timeout = timeout
        self._buffer = b""
        self._token = 0
        self._workdir = tempfile.mkdtemp(prefix="gdb-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUGINFOD_", "GDB"))}
        env.update({"HOME": self._workdir, "LC_ALL": "C.UTF-8", "TERM": "dumb"})
        if debuginfod_urls:
            env["DEBUGINFOD_URLS"] = " ".join(debuginfod_urls)
            env["DEBUGINFOD_CACHE_PATH"] = os.path.join(self._workdir, "debuginfod")

        try:
            # No preexec_fn: Python code between fork and exec can deadlock on a lock that another thread
            # of this process held at the fork, and the sensor runs flows in threads. The limits are set
            # on the child right after the spawn instead, before GDB is sent anything to do.
            self.proc = subprocess.Popen(
                [resolved, "--interpreter=mi3", "-nx", "-q"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=self._workdir,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise GdbError(f"GDB could not be started: {exc.strerror or exc}") from exc
        try:
            resource.prlimit(self.proc.pid, resource.RLIMIT_CORE, (0, 0))
            if memory_limit > 0:
                resource.prlimit(self.proc.pid, resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (OSError, ValueError) as exc:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise GdbError(f"GDB's limits could not be set: {exc}") from exc
        settings = [
            "-gdb-set pagination off",
            "-gdb-set confirm off",
            "-gdb-set width 0",
            "-gdb-set height 0",
            "-gdb-set auto-load off",
            "-gdb-set print pretty off",
            "-gdb-set print elements 400",
            "-gdb-set max-value-size 1048576",
            f"-gdb-set debuginfod enabled {'on' if debuginfod_urls else 'off'}",
        ]
        self.send(settings)  # their results are skipped by the next collect

    @classmethod
    def start(cls, launch: GdbLaunch, timeout: float = DEFAULT_TIMEOUT) -> GdbSession:
        return cls(
            launch.gdb_path, timeout=timeout, memory_limit=launch.memory_limit, debuginfod_urls=launch.debuginfod_urls
        )

    def started_as(self, launch: GdbLaunch) -> bool:
        """Whether this GDB was started the way ``launch`` starts one (what it loads is not yet decided)."""
        return self.launched == (launch.gdb_path, launch.memory_limit, launch.debuginfod_urls)

    def __enter__(self) -> GdbSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def quit(self, grace: float = QUIT_GRACE) -> None:
        """Ask GDB to exit, so that it finishes writing its index cache; killed if not gone within ``grace``."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b"-gdb-exit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.proc.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def safe_path(self, path: str, name: str) -> str:
        """A symlink to ``path`` under a plain name, for commands that cannot take quoted paths."""
        link = os.path.join(self._workdir, name)
        os.symlink(os.path.abspath(path), link)
        return link

    def set_timeout(self, timeout: float) -> None:
        """Move the deadline to ``timeout`` seconds after GDB was started."""
        self.timeout = timeout
        self.deadline = self.started + timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _timeout(self) -> AnalysisTimeoutError:
        self.close()
        return AnalysisTimeoutError(
            f"GDB did not finish within analyzer.gdbTimeout ({self.timeout:g}s) and was killed;"
            " raise the timeout for very large cores"
        )

    def _read_line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = self.remaining()
            if left <= 0:
                raise self._timeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise self._timeout()
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                code = self.proc.poll()
                raise GdbError(
                    "GDB exited unexpectedly"
                    + (f" (status {code}); the analyzer.gdbMemoryLimit may be too low" if code else "")
                )
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")

    def send(self, commands: Sequence[str]) -> Pending:
        """Send the commands without waiting; ``collect`` the returned ticket for their results."""
        assert self.proc.stdin is not None
        pending = Pending(self._token + 1, tuple(commands))
        lines = []
        for command in commands:
            self._token += 1
            lines.append(f"{self._token}{command}\n")
        try:
            self.proc.stdin.write("".join(lines).encode())
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise GdbError("GDB exited unexpectedly while receiving commands") from exc
        return pending

    def run(self, commands: Sequence[str]) -> list[MIResult]:
        """Send the commands at once and collect each one's result, in order."""
        if not commands:
            return []
        return self.collect(self.send(commands))

    def collect(self, pending: Pending) -> list[MIResult]:
        """Each result of a ``send``, in order; results of earlier, uncollected sends are skipped."""
        first, commands = pending.first, pending.commands
        results: list[MIResult] = []
        console: list[str] = []
        log: list[str] = []
        while len(results) < len(commands):
            line = self._read_line()
            if not line or line.startswith("(gdb)"):
                continue
            record = parse_response(line)
            kind = record.get("type")
            if kind == "console":
                console.append(str(record.get("payload") or ""))
            elif kind == "log":
                log.append(str(record.get("payload") or ""))
            elif kind == "result":
                token = record.get("token")
                if token is None or token < first:
                    continue
                payload = record.get("payload") or {}
                results.append(
                    MIResult(commands[token - first], str(record.get("message")), payload, console, log)
                )
                console, log = [], []
        return results

    def one(self, command: str) -> MIResult:
        return self.run([command])[0]


def start_early() -> GdbSession | None:
    """A GDB started with the default launch before anything is known about the core, or None.

    GDB's own start-up takes a good part of a small analysis; a command line starts it first
    and hands it to the load (``core_load.Loading``), which uses it when the launch matches.
    """
    try:
        return GdbSession.start(GdbLaunch())
    except GdbError:
        return None
