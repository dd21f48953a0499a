"""Small crashing programs, compiled and crashed on demand to make real cores.

Used by the first-run demo (``coredump-agent crash-test``), the tests and the
benchmarks. The kernel writes the core when core_pattern keeps cores in the
working folder (``core`` or ``core.%p``); where core_pattern sends them
elsewhere (a pipe to systemd-coredump, an absolute path), GDB runs the program
and writes the core with ``generate-core-file`` instead.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from coredumps.errors import CoredumpError

PROGRAMS = {
    "segv": "segv.c",
    "segv-other": "segv_other.c",
    "abort": "abort_assert.c",
    "fpe": "fpe.c",
    "cxx-exception": "cxx_throw.cpp",
    "stack-overflow": "stack_overflow.c",
    "threads": "threads.c",
    "fill-memory": "fill_memory.c",
}
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


class CrasherError(CoredumpError):
    """A crasher could not be built or did not leave a core."""


def _source(name: str) -> tuple[str, bytes]:
    if name not in PROGRAMS:
        raise CrasherError(f"unknown crasher '{name}'; choose one of {', '.join(PROGRAMS)}")
    filename = PROGRAMS[name]
    return filename, resources.files("coredump_agent.crashers").joinpath(filename).read_bytes()


def build(name: str, build_dir: Path) -> Path:
    """Compile a crasher (cached by source hash) and return the binary's path."""
    filename, source = _source(name)
    digest = hashlib.sha256(source).hexdigest()[:12]
    build_dir = build_dir.resolve()
    binary = build_dir / f"{Path(filename).stem}-{digest}"
    if binary.is_file():
        return binary
    compiler = "g++" if filename.endswith(".cpp") else "gcc"
    if shutil.which(compiler) is None:
        raise CrasherError(f"{compiler} is not installed; it is needed to build the test crasher")
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / filename
    src.write_bytes(source)
    flags = ["-g", "-O0", "-fno-omit-frame-pointer", "-pthread"]
    tmp = binary.with_suffix(".tmp")
    result = subprocess.run(
        [compiler, *flags, "-o", str(tmp), str(src)], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise CrasherError(f"compiling {filename} failed: {result.stderr.strip()[:500]}")
    tmp.rename(binary)
    return binary


def kernel_writes_to_cwd() -> bool:
    try:
        pattern = CORE_PATTERN.read_text().strip()
    except OSError:
        return False
    return bool(pattern) and not pattern.startswith("|") and "/" not in pattern


def with_core_dumps(argv: list[str]) -> list[str]:
    """``argv`` run with its soft core size limit raised to the hard one.

    A shell does it rather than a preexec_fn: Python code between fork and exec can deadlock on a lock
    that another thread of this process held at the fork.
    """
    return ["/bin/sh", "-c", 'ulimit -S -c "$(ulimit -H -c)" && exec "$0" "$@"', *argv]


def crash(binary: Path, dest: Path, args: tuple[str, ...] = (), timeout: float = 300.0) -> Path:
    """Run the binary until it crashes and move its core to ``dest``."""
    binary, dest = binary.resolve(), dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crash-", dir=dest.parent) as workdir:
        work = Path(workdir)
        if kernel_writes_to_cwd():
            try:
                subprocess.run(
                    with_core_dumps([str(binary), *args]), cwd=work,
                    capture_output=True, timeout=timeout, check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise CrasherError(f"{binary.name} did not crash within {timeout:g}s") from exc
            cores = sorted(p for p in work.iterdir() if p.name.startswith("core"))
            if cores:
                cores[0].rename(dest)
                return dest
        return _gdb_core(binary, dest, args, work, timeout)


def _gdb_core(binary: Path, dest: Path, args: tuple[str, ...], work: Path, timeout: float) -> Path:
    if shutil.which("gdb") is None:
        raise CrasherError("the kernel did not write a core here and gdb is missing to write one")
    target = work / "core"
    command = ["gdb", "-nx", "-batch", "-ex", "run", "-ex", f"generate-core-file {target}", "--args",
               str(binary), *args]
    try:
        subprocess.run(command, cwd=work, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CrasherError(f"{binary.name} did not crash under gdb within {timeout:g}s") from exc
    if not target.is_file():
        raise CrasherError(f"{binary.name} crashed but no core was written (check ulimit -c and core_pattern)")
    target.rename(dest)
    return dest


def make_core(name: str, dest: Path, build_dir: Path, args: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Build and crash one crasher; returns (core path, binary path)."""
    binary = build(name, build_dir)
    return crash(binary, dest, args), binary
