"""The per-run markdown report shown as a Prefect artifact. Everything from the core is escaped."""

from __future__ import annotations

import re

from coredumps.diagnosis import Diagnosis
from coredumps.records import Correlation, GroupInfo
from coredumps.scoring import DIMENSIONS, Score

TOP_FRAMES = 10
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def escape(text: object) -> str:
    """Inline-safe markdown: no markup, no HTML, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def unescape(text: str) -> str:
    """What ``escape`` protected, as plain text again (for a terminal rather than a markdown viewer)."""
    return re.sub(r"\\(.)", r"\1", text)


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def render_report(
    *,
    file_name: str,
    node: str,
    corr: Correlation,
    d: Diagnosis | None,
    score: Score | None,
    group: GroupInfo | None,
    status: str,
    location: str | None,
    skip_reason: str | None,
    error: str | None,
    threshold: float,
    ai_note: str | None = None,
) -> str:
    """``ai_note`` is markdown already escaped by its producer."""
    lines = [f"# Coredump {escape(file_name)}", ""]
    pod = f"{corr.pod_namespace}/{corr.pod_name}" if corr.pod_name else "unknown"
    lines += [
        "| | |", "|---|---|",
        f"| Outcome | **{escape(status)}** |",
        f"| Node | {escape(node)} |",
        f"| Pod | {escape(pod)} |",
        f"| Container | {escape(corr.container_name or 'unknown')} |",
        f"| Instance | {escape(corr.instance_name or 'unknown')} |",
    ]
    if d is not None:
        lines += [
            f"| Signal | {d.signal_number} ({escape(d.signal_name)}) |",
            f"| Crash reason | {escape(d.crash_reason)} |",
            f"| Executable | {escape(d.executable or 'unknown')} |",
            f"| Threads | {d.thread_count} |",
        ]
    if group is not None:
        lines.append(f"| Crash group | {escape(group.signature)} (seen {group.count} times since "
                     f"{group.first_seen:%Y-%m-%d %H:%M} UTC) |")
    if location:
        lines.append(f"| Stored at | {escape(location)} |")
    if skip_reason:
        lines.append(f"| Not stored | {escape(skip_reason)} |")
    if error:
        lines.append(f"| Error | {escape(error)} |")
    if score is not None:
        lines += ["", f"## Score {score.total:.2f} / 10 (threshold {threshold:g})", "", "| dimension | points |",
                  "|---|---|"]
        lines += [f"| {key.replace('_', ' ')} | {score.breakdown.get(key, 0.0):+.1f} |" for key in DIMENSIONS]
    if d is not None:
        frames = "\n".join(f.describe() for f in d.frames[:TOP_FRAMES])
        lines += ["", "## Top frames of the crashing thread", "", _fence(frames)]
        if d.warnings:
            lines += ["", "## Warnings", ""] + [f"- {escape(w)}" for w in d.warnings]
    if ai_note:
        lines += ["", "## AI analysis", "", ai_note]
    return "\n".join(lines) + "\n"
