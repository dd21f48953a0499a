"""What an analysis finds: frames, threads, libraries and the diagnosis itself."""

from __future__ import annotations

import signal as _signal
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Frame:
    index: int
    function: str | None
    file: str | None
    line: int | None
    library: str | None
    address: str | None

    def describe(self) -> str:
        where = f" at {self.file}:{self.line}" if self.file and self.line else ""
        lib = f" from {self.library}" if self.library and not where else ""
        return f"#{self.index:<3} {self.address or '?'} in {self.function or '??'}{where}{lib}"


@dataclass(frozen=True)
class ThreadStack:
    id: int
    name: str
    lwp: int | None
    frames: list[Frame]
    depth: int
    omitted_frames: int = 0


@dataclass(frozen=True)
class Library:
    path: str
    build_id: str | None
    symbols_loaded: bool
    text_start: str | None = None
    text_end: str | None = None


@dataclass
class Diagnosis:
    """A core's analysis; ``to_dict`` is the JSON that ``analyze --json`` prints."""

    path: str
    input_compression: str
    file_size: int
    executable: str | None
    pid: int | None
    signal_number: int
    si_code: int | None
    fault_address: str | None
    crash_reason: str
    reason_known: bool
    thread_count: int
    crashing_thread: int | None
    frames: list[Frame]
    threads: list[ThreadStack]
    stack_trace: str
    registers: dict[str, str]
    libraries: list[Library]
    is_panic: bool
    signature: str
    truncated: bool
    omitted_frames: int = 0
    comm: str = ""
    command_line: str = ""
    machine: str = ""
    warnings: list[str] = field(default_factory=list)
    gdb_seconds: float = 0.0
    score: dict[str, Any] | None = None

    @property
    def signal_name(self) -> str:
        return signal_name(self.signal_number)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "input_compression": self.input_compression,
            "file_size": self.file_size,
            "executable": self.executable,
            "command_line": self.command_line,
            "pid": self.pid,
            "signal": {"number": self.signal_number, "name": self.signal_name},
            "si_code": self.si_code,
            "fault_address": self.fault_address,
            "crash_reason": self.crash_reason,
            "thread_count": self.thread_count,
            "crashing_thread": self.crashing_thread,
            "frames": [asdict(f) for f in self.frames],
            "omitted_frames": self.omitted_frames,
            "threads": [asdict(t) for t in self.threads],
            "stack_trace": self.stack_trace,
            "registers": self.registers,
            "libraries": [asdict(lib) for lib in self.libraries],
            "is_panic": self.is_panic,
            "signature": self.signature,
            "truncated": self.truncated,
            "warnings": self.warnings,
            "gdb_seconds": round(self.gdb_seconds, 3),
        }
        if self.score is not None:
            data["score"] = self.score
        return data


def signal_name(number: int) -> str:
    if number <= 0:
        return "unknown"
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"
