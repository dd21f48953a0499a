"""Crash reasons: one clear sentence from the signal, siginfo and the stack."""

from __future__ import annotations

from dataclasses import dataclass

from coredumps.diagnosis import Frame, signal_name
from coredumps.signatures import is_plumbing, meaningful_frames, normalize_function

NULL_PAGE = 4096
STACK_OVERFLOW_DEPTH = 10_000
STACK_GUARD_DISTANCE = 1 << 16

_SI_CODES: dict[int, dict[int, str]] = {
    11: {1: "address not mapped", 2: "invalid permissions for the mapped object", 3: "bounds check failed",
         4: "protection key check failed"},
    7: {1: "invalid address alignment", 2: "nonexistent physical address",
        3: "object-specific hardware error (e.g. a mapped file was truncated)",
        4: "hardware memory error consumed on a machine check", 5: "hardware memory error detected"},
    8: {1: "integer divide by zero", 2: "integer overflow", 3: "floating-point divide by zero",
        4: "floating-point overflow", 5: "floating-point underflow", 6: "floating-point inexact result",
        7: "invalid floating-point operation", 8: "subscript out of range"},
    4: {1: "illegal opcode", 2: "illegal operand", 3: "illegal addressing mode", 4: "illegal trap",
        5: "privileged opcode", 6: "privileged register", 7: "coprocessor error", 8: "internal stack error"},
    5: {1: "process breakpoint", 2: "process trace trap"},
}
_SENDERS = {0: "kill()", -6: "tkill() or raise()", -1: "sigqueue()", -2: "a timer", -3: "a message queue",
            -4: "asynchronous I/O", -5: "SIGIO", 128: "the kernel"}
_CXX_TERMINATE = {"std::terminate", "__cxxabiv1::__terminate", "__gnu_cxx::__verbose_terminate_handler",
                  "__cxa_call_terminate"}
_CXX_THROW = {"__cxa_throw", "__cxa_rethrow", "_Unwind_RaiseException", "_Unwind_Resume"}
_GO_PANIC = {"runtime.gopanic", "runtime.fatalpanic", "runtime.throw", "runtime.fatalthrow", "runtime.sigpanic",
             "runtime.panicmem", "runtime.panicdivide", "runtime.dieFromSignal", "runtime.crash"}


@dataclass(frozen=True)
class CrashFacts:
    signal: int
    si_code: int | None
    fault_address: int | None
    sender_pid: int | None
    frames: list[Frame]
    depth: int
    stack_pointer: int | None = None
    abort_message: str | None = None


def _location(frames: list[Frame]) -> str:
    for frame in frames:
        name = normalize_function(frame.function, frame.library)
        if is_plumbing(name):
            continue
        where = f" at {frame.file}:{frame.line}" if frame.file and frame.line else ""
        lib = f" in {frame.library.rsplit('/', 1)[-1]}" if frame.library and not where and "??" in name else ""
        return f" in {name}(){where}{lib}" if not name.startswith("??") else f" in an unknown function{lib}"
    return ""


def go_panic(frames: list[Frame]) -> bool:
    return any(normalize_function(f.function) in _GO_PANIC for f in frames)


def uncaught_cxx_exception(frames: list[Frame]) -> bool:
    names = {normalize_function(f.function) for f in frames}
    return bool(names & _CXX_TERMINATE) and bool(names & _CXX_THROW)


def _thrower(frames: list[Frame]) -> str:
    names = [normalize_function(f.function, f.library) for f in frames]
    for index, name in enumerate(names):
        if name in _CXX_THROW:
            rest = meaningful_frames(frames[index + 1 :], limit=1)
            if rest:
                return f" thrown from {rest[0]}()"
    return ""


def describe_crash(facts: CrashFacts) -> tuple[str, bool]:
    """The crash reason and whether it is clear (an unknown reason earns no score points)."""
    sig = facts.signal
    if sig <= 0:
        return "unknown: the core records no signal", False
    name = signal_name(sig)
    where = _location(facts.frames)
    detail = _SI_CODES.get(sig, {}).get(facts.si_code or 0)
    addr = facts.fault_address

    if sig == 6:
        if uncaught_cxx_exception(facts.frames):
            return f"Uncaught C++ exception{_thrower(facts.frames)}: std::terminate aborted the process (SIGABRT)", True
        if go_panic(facts.frames):
            return f"Go runtime panic: the Go runtime aborted the process (SIGABRT){where}", True
        if facts.abort_message:
            message = " ".join(facts.abort_message.split())
            kind = "Assertion failed" if "Assertion" in message else "glibc abort"
            return f"{kind} (SIGABRT): {message}", True
        return f"Aborted (SIGABRT): abort() was called{where}", True
    if sig == 11:
        sp = facts.stack_pointer
        near_sp = addr is not None and sp is not None and sp - STACK_GUARD_DISTANCE <= addr <= sp + 256
        if facts.depth >= STACK_OVERFLOW_DEPTH or (near_sp and addr is not None and addr >= NULL_PAGE):
            at = f"; fault at {addr:#x} next to the stack pointer" if near_sp and addr is not None else ""
            return f"Stack overflow (SIGSEGV) after {facts.depth} frames{where}{at}", True
        if go_panic(facts.frames):
            return f"Go runtime panic on an invalid memory access (SIGSEGV){where}", True
        if addr is not None and addr < NULL_PAGE and facts.si_code in (1, 2):
            return f"NULL pointer dereference (SIGSEGV, {detail}) at address {addr:#x}{where}", True
        if addr is not None and detail:
            return f"Invalid memory access (SIGSEGV, {detail}) at address {addr:#x}{where}", True
        return f"Segmentation fault (SIGSEGV){where}", True
    if sig == 8:
        what = detail or "arithmetic exception"
        return f"Arithmetic exception (SIGFPE, {what}){where}", True
    if sig in (7, 4, 5):
        label = {7: "Bus error", 4: "Illegal instruction", 5: "Trace/breakpoint trap"}[sig]
        at = f" at address {addr:#x}" if addr is not None else ""
        return f"{label} ({name}{', ' + detail if detail else ''}){at}{where}", True
    if facts.si_code is not None and facts.si_code in _SENDERS and facts.si_code <= 0:
        sender = f" from PID {facts.sender_pid}" if facts.sender_pid else ""
        return f"Killed by {name}, sent by {_SENDERS[facts.si_code]}{sender}{where}", True
    return f"Terminated by {name}{where}", True
