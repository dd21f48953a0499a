"""The readable report of a diagnosis, as ``analyze`` prints it without --json."""

from __future__ import annotations

from coredumps.diagnosis import Diagnosis
from coredumps.inputs import shown
from coredumps.scoring import DIMENSIONS
from coredumps.units import format_size

TOP_FRAMES = 12


def render_text(d: Diagnosis) -> str:
    lines = [
        f"Core:           {d.path} ({format_size(d.file_size)}, {d.input_compression})",
        f"Executable:     {d.executable or 'unknown'}" + (f"  [{d.command_line}]" if d.command_line else ""),
        f"PID:            {d.pid if d.pid is not None else 'unknown'}",
        f"Signal:         {d.signal_number} ({d.signal_name})"
        + (f", si_code {d.si_code}" if d.si_code is not None else "")
        + (f", fault address {d.fault_address}" if d.fault_address else ""),
        f"Crash reason:   {d.crash_reason}",
        f"Threads:        {d.thread_count} (crashing thread {d.crashing_thread})",
        f"Signature:      {d.signature}",
        f"Panic:          {'yes' if d.is_panic else 'no'}",
    ]
    if d.truncated:
        lines.append("Truncated:      yes, the core was cut short; frames may be missing")
    lines.append("")
    lines.append("Crashing thread, innermost first:")
    stack = d.stack_trace.splitlines()
    lines.extend(f"  {line}" for line in stack[:TOP_FRAMES])
    if len(stack) > TOP_FRAMES:
        lines.append(f"  ... {len(stack) - TOP_FRAMES} more lines with --json")
    if d.registers:
        lines.append("")
        lines.append("Registers:      " + ", ".join(f"{k}={v}" for k, v in list(d.registers.items())[:6]))
    if d.score:
        lines.append("")
        lines.append(f"Score:          {d.score['total']:.2f} / 10")
        breakdown = d.score["breakdown"]
        for key in DIMENSIONS:
            value = breakdown.get(key, 0.0)
            lines.append(f"  {key:<16} {'+' if key != 'base' and value else ' '}{value:.1f}")
    for warning in d.warnings:
        lines.append(f"Warning:        {warning}")
    # Names come from the core, the binary and the file system: none may drive the terminal.
    return "\n".join(shown(line) for line in lines) + "\n"
