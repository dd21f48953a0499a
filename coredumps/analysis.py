"""Turn a core file into a Diagnosis: ELF notes first, then GDB over MI.

    analyze_core(path, analyzer_cfg, exe=None, prepared=None) -> Diagnosis

``prepared`` is a load that ``core_load.prepare_core`` started before the config was known.

The ELF notes give the signal, siginfo, PID, threads, mapped files and
truncation without GDB; GDB gives symbolised stacks, registers, libraries and
glibc's abort message. Deep stacks keep their innermost and outermost frames
and say how many were left out.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coredumps.core_load import Loading, gdb_launch, notes_of
from coredumps.diagnosis import Diagnosis, Frame, Library, ThreadStack
from coredumps.elfcore import CoreNotes
from coredumps.gdb import GdbSession, MIResult
from coredumps.inputs import plain_core
from coredumps.reasons import CrashFacts, describe_crash, go_panic
from coredumps.scoring import has_panic_keyword
from coredumps.signatures import crash_signature

if TYPE_CHECKING:
    from coredumps.config import AnalyzerConfig

log = logging.getLogger(__name__)

DEPTH_CAP = 500_000
_KEY_REGISTERS = {
    "x86_64": ["rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "eflags"],
    "aarch64": ["pc", "sp", "x29", "x30", "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "cpsr"],
    "i386": ["eip", "esp", "ebp", "eax", "ebx", "ecx", "edx", "esi", "edi", "eflags"],
}
_STRING_VALUE = re.compile(r'^0x[0-9a-f]+ (".*")\s*$', re.DOTALL)
_LWP = re.compile(r"LWP (\d+)")
_ABORT_MSG_EXPR = '"(char*)(*(void**)&__abort_msg) + 4"'


def _frame(raw: dict[str, Any], libraries: list[tuple[int, int, str]], executable: str | None) -> Frame:
    address = raw.get("addr")
    library = raw.get("from")
    if library is None and address and address.startswith("0x"):
        value = int(address, 16)
        library = next((path for lo, hi, path in libraries if lo <= value < hi), None)
        if library is None and raw.get("func") not in (None, "??", "<signal handler called>"):
            library = executable
    line = raw.get("line")
    return Frame(
        index=int(raw.get("level", 0)),
        function=raw.get("func"),
        file=raw.get("file"),
        line=int(line) if line and str(line).isdigit() else None,
        library=library,
        address=address,
    )


def _parse_string_value(result: MIResult) -> str | None:
    if not result.ok:
        return None
    value = str(result.payload.get("value", ""))
    match = _STRING_VALUE.match(value)
    if not match:
        return None
    try:
        text = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return match.group(1).strip('"')
    return str(text).strip() or None


class _Stacks:
    """Frames of one thread at a time, with library names filled in from the mapped ranges."""

    def __init__(self, gdb: GdbSession, executable: str | None) -> None:
        self.gdb = gdb
        self.executable = executable
        self.libs: list[tuple[int, int, str]] = []

    def frames(self, thread: str, low: int, high: int) -> list[dict[str, Any]]:
        result = self.gdb.one(f"-stack-list-frames --thread {thread} {low} {high}")
        return list(result.payload.get("stack", [])) if result.ok else []

    def stack(self, thread: str, depth: int, max_frames: int) -> tuple[list[Frame], int]:
        if depth <= max_frames:
            raw = self.frames(thread, 0, max(depth - 1, 0))
            return [_frame(f, self.libs, self.executable) for f in raw], 0
        inner = max_frames // 2
        outer = max_frames - inner
        raw = self.frames(thread, 0, inner - 1) + self.frames(thread, depth - outer, depth - 1)
        return [_frame(f, self.libs, self.executable) for f in raw], depth - max_frames


def _libraries(result: MIResult, build_ids_by_addr: list[tuple[int, int, str]], ids: dict[str, str]) -> tuple[
    list[Library], list[tuple[int, int, str]]
]:
    libraries: list[Library] = []
    ranges: list[tuple[int, int, str]] = []
    for raw in result.payload.get("shared-libraries", []) if result.ok else []:
        path = str(raw.get("target-name") or raw.get("id") or "")
        span = (raw.get("ranges") or [{}])[0]
        lo = int(span["from"], 16) if span.get("from") else None
        hi = int(span["to"], 16) if span.get("to") else None
        build_id = None
        if lo is not None:
            mapped = next((p for start, end, p in build_ids_by_addr if start <= lo < end), None)
            build_id = ids.get(mapped) if mapped else None
            if hi is not None:
                ranges.append((lo, hi, path))
        libraries.append(Library(path, build_id, raw.get("symbols-loaded") == "1", span.get("from"), span.get("to")))
    return libraries, ranges


def analyze_core(
    path: Path, cfg: AnalyzerConfig, exe: str | None = None, scratch_dir: Path | None = None,
    prepared: Loading | None = None, index_cache: Path | None = None,
) -> Diagnosis:
    """Analyse one core (raw, .zst, .lz4 or .xz). Raises BadInputError or AnalysisTimeoutError.

    ``prepared`` is a load begun by ``prepare_core``; it is used when it fits and closed in any case.
    ``index_cache`` is the folder of GDB's index cache (see ``index_cache_for``), kept within
    ``analyzer.gdbIndexCacheSize``; 0 there turns the cache off.
    """
    cache = index_cache if index_cache is not None and cfg.gdb_index_cache_size > 0 else None
    if cache is not None:
        try:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:  # the cache only saves time: analyse without it
            log.warning("GDB's index cache %s cannot be created (%s); analysing without it", cache, exc.strerror)
            cache = None
    launch = gdb_launch(cfg, str(cache) if cache is not None else "")
    try:
        if prepared is not None:
            with contextlib.closing(prepared):
                if prepared.fits(path, exe, launch):
                    prepared.gdb.set_timeout(cfg.gdb_timeout)
                    return _finish(prepared, cfg)
        with plain_core(path, scratch_dir) as (core, compression):
            loading = Loading(path, core, compression, exe, launch, cfg.gdb_timeout)
            with contextlib.closing(loading):
                diagnosis = _finish(loading, cfg)
                if cache is not None:
                    loading.gdb.quit()  # GDB writes its index cache on the way out
                return diagnosis
    finally:
        if cache is not None:
            prune_index_cache(cache, cfg.gdb_index_cache_size)


def index_cache_for(data_dir: str) -> Path:
    """GDB's index cache: the symbol indexes it builds, by build-id, so a repeated crash of one build loads faster."""
    return Path(os.path.join(data_dir, "gdb-index-cache"))


def prune_index_cache(folder: Path, max_bytes: int) -> int:
    """Delete the oldest index files until the folder holds at most ``max_bytes``; returns how many went.

    Housekeeping never fails an analysis: a file that cannot be read or removed is left for next time.
    """
    try:
        entries = [(info.st_mtime, info.st_size, entry) for entry in os.scandir(folder)
                   if entry.is_file(follow_symlinks=False) and (info := entry.stat(follow_symlinks=False))]
    except OSError:
        return 0
    total = sum(size for _mtime, size, _entry in entries)
    removed = 0
    for _mtime, size, entry in sorted(entries, key=lambda item: item[0]):
        if total <= max_bytes:
            break
        try:
            os.unlink(entry.path)
        except OSError as exc:
            log.debug("could not remove %s from the GDB index cache: %s", entry.path, exc)
            continue
        total -= size
        removed += 1
    return removed


def _finish(loading: Loading, cfg: AnalyzerConfig) -> Diagnosis:
    notes, warnings, gdb = loading.notes, loading.warnings, loading.gdb
    executable = loading.executable
    loading.collect()
    run = _Stacks(gdb, executable)
    info, libs_result, names = gdb.collect(loading.overview)
    mapping_spans = [(m.start, m.end, m.path) for m in notes.mappings]
    libraries, run.libs = _libraries(libs_result, mapping_spans, loading.build_ids)
    threads_raw = list(info.payload.get("threads", [])) if info.ok else []
    current = str(info.payload.get("current-thread-id") or (threads_raw[0]["id"] if threads_raw else "1"))
    depth_cmds = [f"-stack-info-depth --thread {current} {DEPTH_CAP}"]
    others = [t for t in threads_raw if str(t.get("id")) != current][: cfg.max_threads - 1]
    depth_cmds += [f"-stack-info-depth --thread {t['id']} {cfg.max_frames + 1}" for t in others]
    depths = gdb.run(depth_cmds)
    crash_depth = int(depths[0].payload.get("depth", 0)) if depths[0].ok else 0
    frames, omitted = run.stack(current, crash_depth, cfg.max_frames)
    threads = [_thread_stack(current, threads_raw, frames, crash_depth, omitted)]
    for raw_thread, depth_result in zip(others, depths[1:], strict=True):
        depth = int(depth_result.payload.get("depth", 0)) if depth_result.ok else 0
        t_frames, t_omitted = run.stack(str(raw_thread["id"]), depth, cfg.max_frames)
        if depth > cfg.max_frames:
            t_omitted = max(t_omitted, 1)  # depth was only counted up to the cap
        threads.append(_thread_stack(str(raw_thread["id"]), threads_raw, t_frames, depth, t_omitted))
    registers = _registers(gdb, current, names, notes.machine)
    abort_message = None
    if notes.signal == 6:
        abort_message = _parse_string_value(gdb.one(f"-data-evaluate-expression {_ABORT_MSG_EXPR}"))
    gdb.close()
    return _diagnosis(
        loading.path, loading.compression, loading.file_size, notes, cfg, executable=executable,
        frames=frames, depth=crash_depth, omitted=omitted, threads=threads, thread_count=len(threads_raw),
        crashing_thread=int(current) if current.isdigit() else None, registers=registers, libraries=libraries,
        abort_message=abort_message, warnings=warnings, gdb_seconds=time.monotonic() - gdb.started,
    )


def analyze_notes_only(path: Path, cfg: AnalyzerConfig, scratch_dir: Path | None = None) -> Diagnosis:
    """What the core's own ELF notes say (signal, fault address, PID, threads), without GDB.

    For ``analyzer.enableGdbAnalysis: false``: no stacks, so the crash reason has no location and the
    signature groups by executable and signal alone.
    """
    with plain_core(path, scratch_dir) as (core, compression):
        notes = notes_of(path, core)
    warnings = ["GDB analysis is off (analyzer.enableGdbAnalysis); only the core's ELF notes were read"]
    if notes.truncated:
        warnings.append(f"the core is truncated ({notes.file_size} of {notes.expected_size} bytes)")
    return _diagnosis(path, compression, path.stat().st_size, notes, cfg, executable=None, frames=[], depth=0,
                      omitted=0, threads=[], thread_count=0, crashing_thread=None, registers={}, libraries=[],
                      abort_message=None, warnings=warnings, gdb_seconds=0.0)


def _diagnosis(
    path: Path, compression: str, file_size: int, notes: CoreNotes, cfg: AnalyzerConfig, *,
    executable: str | None, frames: list[Frame], depth: int, omitted: int, threads: list[ThreadStack],
    thread_count: int, crashing_thread: int | None, registers: dict[str, str], libraries: list[Library],
    abort_message: str | None, warnings: list[str], gdb_seconds: float,
) -> Diagnosis:
    sp_name = {"x86_64": "rsp", "aarch64": "sp", "i386": "esp"}.get(notes.machine, "sp")
    sp = registers.get(sp_name)
    facts = CrashFacts(
        signal=notes.signal, si_code=notes.si_code, fault_address=notes.fault_address,
        sender_pid=notes.sender_pid, frames=frames, depth=depth,
        stack_pointer=int(sp, 16) if sp and sp.startswith("0x") else None, abort_message=abort_message,
    )
    reason, known = describe_crash(facts)
    diagnosis = Diagnosis(
        path=str(path), input_compression=compression, file_size=file_size,
        executable=executable or notes.executable, pid=notes.pid, signal_number=notes.signal,
        si_code=notes.si_code,
        fault_address=f"{notes.fault_address:#x}" if notes.fault_address is not None else None,
        crash_reason=reason, reason_known=known, thread_count=max(notes.thread_count, thread_count),
        crashing_thread=crashing_thread, frames=frames, threads=threads,
        stack_trace=_stack_text(frames, omitted, cfg.max_frames), registers=registers, libraries=libraries,
        is_panic=go_panic(frames) or has_panic_keyword(reason, cfg.panic_keywords), signature="",
        truncated=notes.truncated, omitted_frames=omitted, comm=notes.comm, command_line=notes.psargs,
        machine=notes.machine, warnings=warnings, gdb_seconds=gdb_seconds,
    )
    diagnosis.signature = crash_signature(frames, diagnosis.signal_name, diagnosis.executable or notes.comm)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    return diagnosis


def _thread_stack(
    thread_id: str, threads_raw: list[dict[str, Any]], frames: list[Frame], depth: int, omitted: int
) -> ThreadStack:
    raw = next((t for t in threads_raw if str(t.get("id")) == thread_id), {})
    target = str(raw.get("target-id", ""))
    lwp = _LWP.search(target)
    return ThreadStack(
        id=int(thread_id) if thread_id.isdigit() else 0,
        name=str(raw.get("name") or target),
        lwp=int(lwp.group(1)) if lwp else None,
        frames=frames,
        depth=depth,
        omitted_frames=omitted,
    )


def _registers(gdb: GdbSession, thread: str, names: MIResult, machine: str) -> dict[str, str]:
    if not names.ok:
        return {}
    all_names = list(names.payload.get("register-names", []))
    wanted = _KEY_REGISTERS.get(machine, ["pc", "sp"])
    numbers = {name: all_names.index(name) for name in wanted if name in all_names}
    if not numbers:
        return {}
    result = gdb.one(
        f"-data-list-register-values --thread {thread} --frame 0 --skip-unavailable x "
        + " ".join(str(n) for n in numbers.values())
    )
    if not result.ok:
        return {}
    by_number = {int(r["number"]): str(r["value"]) for r in result.payload.get("register-values", [])}
    return {name: by_number[n] for name, n in numbers.items() if n in by_number}


def _stack_text(frames: list[Frame], omitted: int, max_frames: int) -> str:
    lines = []
    inner = max_frames // 2
    for position, frame in enumerate(frames):
        if omitted and position == inner:
            lines.append(f"... {omitted} frames omitted ...")
        lines.append(frame.describe())
    return "\n".join(lines)


def scratch_dir_for(data_dir: str) -> Path:
    return Path(os.path.join(data_dir, "scratch"))
