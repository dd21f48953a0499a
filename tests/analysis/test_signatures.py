"""Crash signatures: normalisation, plumbing, recursion."""

from __future__ import annotations

import pytest

from coredumps.diagnosis import Frame
from coredumps.signatures import crash_signature, meaningful_frames, normalize_function


def frames(*names: str | None, library: str | None = None) -> list[Frame]:
    return [Frame(i, n, None, None, library, hex(0x1000 + i)) for i, n in enumerate(names)]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("deref", "deref"),
        ("load_segment(int)", "load_segment"),
        ("std::vector<int, std::allocator<int> >::at(unsigned long) const", "std::vector<T>::at"),
        ("compute.isra.0", "compute"),
        ("compute.constprop.3.cold", "compute"),
        ("milvus::Seg::Load(milvus::FieldId) [clone .cold]", "milvus::Seg::Load"),
        ("main.(*Server).handle", "main.(*Server).handle"),
        ("(anonymous namespace)::bar(char const*)", "{anonymous}::bar"),
        (
            "std::__cxx11::basic_string<char>::_M_create[abi:cxx11](unsigned long&)",
            "std::__cxx11::basic_string<T>::_M_create",
        ),
        ("__GI___assert_fail", "__assert_fail"),
        ("memcpy@plt", "memcpy"),
    ],
)
def test_normalize_function(raw: str, normal: str) -> None:
    assert normalize_function(raw) == normal


def test_unknown_function_is_named_by_its_library() -> None:
    assert normalize_function(None, "/usr/lib/libmilvus_core.so") == "??@libmilvus_core.so"


def test_plumbing_of_abort_and_signals_is_skipped() -> None:
    stack = frames(
        "__pthread_kill_implementation",
        "__pthread_kill_internal",
        "__GI_raise",
        "__GI_abort",
        "__assert_fail_base",
        "__GI___assert_fail",
        "check",
        "main",
        "__libc_start_call_main",
    )
    assert meaningful_frames(stack) == ["check", "main"]


def test_cxx_terminate_and_unknown_runtime_frames_are_skipped() -> None:
    stack = frames(
        "__pthread_kill_implementation",
        "raise",
        "abort",
        None,
        "std::terminate()",
        "__cxa_throw",
        "milvus::load(int)",
        "main",
    )
    stack[3] = Frame(3, None, None, None, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "0x1")
    assert meaningful_frames(stack) == ["milvus::load", "main"]


def test_go_runtime_panic_frames_are_skipped() -> None:
    stack = frames(
        "runtime.raise",
        "runtime.dieFromSignal",
        "runtime.fatalpanic",
        "runtime.gopanic",
        "github.com/milvus-io/milvus/internal/querynodev2.(*QueryNode).Search",
        "runtime.goexit",
    )
    assert meaningful_frames(stack) == ["github.com/milvus-io/milvus/internal/querynodev2.(*QueryNode).Search"]


def test_recursion_is_collapsed() -> None:
    assert meaningful_frames(frames("a", "a", "a", "b", "a", "b", "a", "c", "main")) == ["a", "b", "c", "main"]


def test_signature_ignores_addresses_and_stops_at_thread_entry() -> None:
    first = frames("f(int)", "g", "start_thread", "clone3")
    second = [Frame(f.index, f.function, None, None, None, hex(0x7F0000 + f.index)) for f in first]
    assert crash_signature(first, "SIGSEGV", "/usr/bin/milvus") == "milvus!SIGSEGV: f < g"
    assert crash_signature(second, "SIGSEGV", "/usr/bin/milvus") == crash_signature(first, "SIGSEGV", "/usr/bin/milvus")
    assert crash_signature(first, "SIGABRT", "/usr/bin/milvus") != crash_signature(first, "SIGSEGV", "/usr/bin/milvus")
