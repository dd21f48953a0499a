"""The analysis engine on real cores made by crashing small programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from coredumps.analysis import analyze_core
from coredumps.config import AnalyzerConfig
from tests.conftest import CoreFactory

CFG = AnalyzerConfig()


def functions(frames: list) -> list[str | None]:  # type: ignore[type-arg]
    return [f.function for f in frames]


def test_null_dereference_is_named_with_its_function_and_line(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("segv")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.signal_number == 11 and d.signal_name == "SIGSEGV"
    assert d.si_code == 1 and d.fault_address == "0x0"
    assert d.crash_reason.startswith("NULL pointer dereference (SIGSEGV")
    assert "segment_rows()" in d.crash_reason and "segv.c:5" in d.crash_reason
    assert functions(d.frames)[:3] == ["segment_rows", "load_segment", "main"]
    assert (d.frames[0].file or "").endswith("segv.c") and d.frames[0].line == 5
    assert d.reason_known and d.thread_count == 1 and d.crashing_thread == 1
    assert d.registers["rip"].startswith("0x") and "rsp" in d.registers
    assert any("libc.so" in lib.path and lib.build_id for lib in d.libraries)
    assert d.signature.endswith("!SIGSEGV: segment_rows < load_segment < main")
    assert not d.truncated and d.omitted_frames == 0


def test_assert_failure_reports_glibc_abort_message(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("abort")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.signal_name == "SIGABRT"
    assert d.crash_reason.startswith("Assertion failed (SIGABRT): ")
    assert "segment must be sealed" in d.crash_reason and "check_segment" in d.crash_reason
    assert d.signature.endswith("!SIGABRT: check_segment < main")


def test_integer_division_by_zero_is_sigfpe(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("fpe")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.signal_name == "SIGFPE"
    assert d.crash_reason.startswith("Arithmetic exception (SIGFPE, integer divide by zero) in average_rows()")
    assert d.signature.endswith("!SIGFPE: average_rows < main")


def test_uncaught_cxx_exception_is_said_as_such(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("cxx-exception")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.signal_name == "SIGABRT"
    assert d.crash_reason.startswith("Uncaught C++ exception thrown from milvus::load_field()")
    assert "std::terminate" in d.crash_reason
    assert d.signature.endswith("!SIGABRT: milvus::load_field < main")


def test_stack_overflow_keeps_innermost_and_outermost_frames(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("stack-overflow")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.signal_name == "SIGSEGV"
    assert d.crash_reason.startswith("Stack overflow (SIGSEGV) after ")
    assert len(d.frames) == CFG.max_frames
    assert d.omitted_frames > 10_000
    assert d.frames[0].function == "descend" and d.frames[-1].function == "main"
    assert f"... {d.omitted_frames} frames omitted ..." in d.stack_trace
    assert d.frames[-1].index == d.omitted_frames + CFG.max_frames - 1
    assert d.signature.endswith("!SIGSEGV: descend < main")


def test_crash_in_one_thread_of_many(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("threads")
    d = analyze_core(core, CFG, exe=str(exe))
    assert d.thread_count == 5 and len(d.threads) == 5
    assert functions(d.frames)[:2] == ["process_query", "crashing_worker"]
    assert d.threads[0].id == d.crashing_thread
    others = [t for t in d.threads if t.id != d.crashing_thread]
    assert all("process_query" not in functions(t.frames) for t in others)
    assert d.signature.endswith("!SIGSEGV: process_query < crashing_worker")


def test_same_bug_same_signature_across_runs_and_address_randomisation(crash_cores: CoreFactory) -> None:
    first_core, exe = crash_cores("segv", tag="first")
    second_core, _ = crash_cores("segv", tag="second")
    first = analyze_core(first_core, CFG, exe=str(exe))
    second = analyze_core(second_core, CFG, exe=str(exe))
    assert first.frames[0].address != second.frames[0].address or first.pid != second.pid
    assert first.signature == second.signature


def test_different_bugs_get_different_signatures(crash_cores: CoreFactory) -> None:
    names = ["segv", "segv-other", "abort", "fpe", "cxx-exception", "stack-overflow", "threads"]
    signatures = set()
    for name in names:
        core, exe = crash_cores(name)
        signatures.add(analyze_core(core, CFG, exe=str(exe)).signature)
    assert len(signatures) == len(names)


def test_executable_is_found_from_the_core_without_exe(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("segv")
    d = analyze_core(core, CFG)
    assert d.executable == str(exe)
    assert functions(d.frames)[:2] == ["segment_rows", "load_segment"]


def test_wrong_executable_is_refused_by_build_id(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, exe = crash_cores("segv")
    _other_core, other_exe = crash_cores("fpe")
    sysroot = tmp_path / "root"
    target = sysroot / str(exe).lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_bytes(other_exe.read_bytes())
    d = analyze_core(core, AnalyzerConfig(sysroot=str(sysroot)))
    assert any("is not the binary that crashed" in w for w in d.warnings)
    assert d.signal_name == "SIGSEGV"


@pytest.mark.parametrize(("tool", "suffix"), [("zstd", ".zst"), ("lz4", ".lz4"), ("xz", ".xz")])
def test_compressed_cores_are_analysed_and_scratch_removed(
    crash_cores: CoreFactory, tmp_path: Path, tool: str, suffix: str
) -> None:
    import shutil
    import subprocess

    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    core, exe = crash_cores("segv")
    packed = tmp_path / f"core.segv{suffix}"
    with open(packed, "wb") as out:
        subprocess.run([tool, "-c", str(core)], stdout=out, check=True)
    scratch = tmp_path / "scratch"
    d = analyze_core(packed, CFG, exe=str(exe), scratch_dir=scratch)
    plain = analyze_core(core, CFG, exe=str(exe))
    assert d.input_compression == suffix.lstrip(".")
    assert d.signature == plain.signature and d.crash_reason == plain.crash_reason
    assert d.file_size == packed.stat().st_size
    assert list(scratch.iterdir()) == []


def test_core_cut_after_its_notes_is_analysed_and_marked_truncated(crash_cores: CoreFactory, tmp_path: Path) -> None:
    from coredumps.elfcore import read_core_notes

    core, exe = crash_cores("threads")
    notes = read_core_notes(core)
    note_end = max(s.offset for s in notes.segments)  # inside the memory, well past the notes
    cut = tmp_path / "core.cut"
    with open(core, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(note_end))
    d = analyze_core(cut, CFG, exe=str(exe))
    assert d.truncated
    assert any("truncated" in w for w in d.warnings)
    assert d.signal_name == "SIGSEGV" and d.thread_count == 5
