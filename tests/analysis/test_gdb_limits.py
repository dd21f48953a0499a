"""GDB runs with no core dumps of its own and under analyzer.gdbMemoryLimit, also when started from threads."""

from __future__ import annotations

import threading
from pathlib import Path

from coredumps.gdb import GdbSession


def limits(pid: int) -> dict[str, tuple[str, str]]:
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        found[name] = (soft, hard)
    return found


def test_gdb_runs_without_core_dumps_and_under_the_memory_limit() -> None:
    with GdbSession(memory_limit=3 * 2**30) as gdb:
        seen = limits(gdb.proc.pid)
        assert seen["Max core file size"] == ("0", "0")
        assert seen["Max address space"] == (str(3 * 2**30), str(3 * 2**30))
        (version,) = gdb.run(["-gdb-version"])  # it still answers
        assert version.ok and any("GNU gdb" in line for line in version.console)


def test_gdb_without_a_memory_limit_keeps_the_address_space_unlimited() -> None:
    with GdbSession() as gdb:
        seen = limits(gdb.proc.pid)
        assert seen["Max core file size"] == ("0", "0")
        assert seen["Max address space"][0] == "unlimited"


def test_many_threads_starting_gdb_at_once_all_get_one() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def start() -> None:
        with GdbSession(memory_limit=2**31) as gdb:
            assert limits(gdb.proc.pid)["Max core file size"] == ("0", "0")
            with lock:
                started.append(gdb.proc.pid)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert len(set(started)) == 16
