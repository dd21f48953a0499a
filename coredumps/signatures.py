"""Crash signatures: a stable key that groups repeats of the same bug.

Built from the crashing thread the way Socorro and ABRT do it: normalise each
frame (no addresses, arguments, template parameters, clone suffixes or ABI
tags), skip the plumbing at the top of the stack (signal trampolines, abort and
assert, C++ terminate and throw, the Go runtime), collapse recursion, and join
the first few meaningful frames. Addresses never enter the key, so address
space randomisation does not change it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from coredumps.diagnosis import Frame

MAX_FRAMES = 5
MAX_LENGTH = 500

# Frames that say how the process died, not where the bug is.
_PLUMBING = [
    r"<signal handler called>",
    r"__restore_rt",
    r"(__GI_)?raise",
    r"(__GI_)?abort",
    r"__pthread_kill\w*",
    r"pthread_kill(@@.*)?",
    r"__assert_fail(_base)?",
    r"__assert_perror_fail",
    r"__libc_message\w*",
    r"__libc_fatal",
    r"__malloc_assert",
    r"malloc_printerr",
    r"__fortify_fail\w*",
    r"__chk_fail",
    r"__stack_chk_fail\w*",
    r"std::terminate",
    r"__cxxabiv1::__terminate",
    r"__cxxabiv1::__unexpected",
    r"__gnu_cxx::__verbose_terminate_handler",
    r"__cxa_throw",
    r"__cxa_rethrow",
    r"__cxa_call_terminate",
    r"__cxa_call_unexpected",
    r"__clang_call_terminate",
    r"_Unwind_\w+",
    r"std::__throw_\w+",
    r"std::__glibcxx_assert_fail",
    r"runtime\.\w+",
    r"runtime/internal/\w+\.\w+",
    r"x_cgo_\w+",
    r"crosscall2",
    r"_cgo_\w+",
    r"gsignal",
    r"killpg?",
    r"syscall",
]
_RUNTIME_LIBRARIES = r"(libc|libstdc\+\+|libgcc_s|libpthread|libc\+\+abi|libunwind|ld-linux[\w.-]*)\.so[\d.]*"
_PLUMBING.append(r"\?\?@" + _RUNTIME_LIBRARIES)
_PLUMBING_RE = re.compile(r"^(?:" + "|".join(_PLUMBING) + r")$")
# Frames where every thread starts: the key stops before them.
_ENTRY = re.compile(
    r"^(?:start_thread|clone3?|__clone\w*|__libc_start_main\w*|__libc_start_call_main|_start|"
    r"runtime\.goexit\w*|runtime\.mstart\w*|runtime\.rt0_go)$"
)
_CLONE_SUFFIX = re.compile(r"(\.(isra|constprop|part|cold|lto_priv|localalias|clone)(\.\d+)*)+$")
_ABI_TAG = re.compile(r"\[abi:[^\]]*\]")
_CLONE_NOTE = re.compile(r"\s*\[clone [^\]]*\]")


def _strip_balanced(text: str, open_char: str, close_char: str, keep: str) -> str:
    out: list[str] = []
    depth = 0
    for char in text:
        if char == open_char:
            if depth == 0:
                out.append(keep)
            depth += 1
        elif char == close_char and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def normalize_function(name: str | None, library: str | None = None) -> str:
    """A frame's function without arguments, template parameters or clone noise."""
    if not name or name == "??":
        return f"??@{os.path.basename(library)}" if library else "??"
    text = _CLONE_NOTE.sub("", _ABI_TAG.sub("", name.strip()))
    text = text.removeprefix("__GI_")
    text = text.split("@", 1)[0] if "@plt" in text or "@@" in text else text
    if not text.startswith("<"):
        text = text.replace("(anonymous namespace)", "{anonymous}")
        text = re.sub(r"\s*const$", "", text)
        text = _strip_trailing_arguments(text)
        text = _strip_balanced(text, "<", ">", "<T>")
    text = _CLONE_SUFFIX.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text or "??"


def _strip_trailing_arguments(text: str) -> str:
    """Drop a C++ argument list at the end; Go's ``pkg.(*T).m`` keeps its parentheses."""
    if not text.endswith(")"):
        return text
    depth = 0
    for pos in range(len(text) - 1, -1, -1):
        if text[pos] == ")":
            depth += 1
        elif text[pos] == "(":
            depth -= 1
            if depth == 0:
                if pos == 0 or text[pos - 1] == ".":
                    return text
                head = text[:pos]
                return head if not head.endswith("operator") else text
    return text


def is_plumbing(function: str) -> bool:
    return bool(_PLUMBING_RE.match(function))


def meaningful_frames(frames: Iterable[Frame], limit: int = MAX_FRAMES) -> list[str]:
    """The first ``limit`` normalised frames past the plumbing, with recursion collapsed."""
    normalised = [normalize_function(f.function, f.library) for f in frames]
    start = 0
    while start < len(normalised) and is_plumbing(normalised[start]):
        start += 1
    if start == len(normalised):
        start = 0  # all plumbing (e.g. a pure Go runtime crash): keep what there is
    out: list[str] = []
    for name in normalised[start:]:
        if _ENTRY.match(name):
            break
        if out and out[-1] == name:
            continue
        if len(out) >= 2 and out[-2] == name:
            continue  # mutual recursion a -> b -> a
        out.append(name)
        if len(out) >= limit:
            break
    return out


def crash_signature(frames: Iterable[Frame], signal_name: str, executable: str | None = None) -> str:
    """``exe!SIGNAL: f1 < f2 < f3`` from the crashing thread's innermost frames."""
    parts = meaningful_frames(frames)
    exe = os.path.basename(executable) if executable else "unknown"
    body = " < ".join(parts) if parts else "no frames"
    signature = f"{exe}!{signal_name}: {body}"
    return signature[:MAX_LENGTH]
