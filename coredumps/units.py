"""Durations ("30s", "5m", "1h30m", "7d") and sizes ("2GB", "512MiB", "100MB")."""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
MAX_DURATION = 10 * 365 * 86400.0
"""Ten years: longer is a mistake (and overflows the clocks it is added to)."""
MAX_SIZE = 2**60
"""An exbibyte: larger is a mistake."""
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10, "ki": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20, "mi": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30, "gi": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40, "ti": 2**40,
    "p": 10**15, "pb": 10**15, "pib": 2**50, "pi": 2**50,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds from "90s", "5m", "1h30m", "2d" or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"'{value}' is not a duration; use e.g. 30s, 5m, 1h30m or 7d")
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if math.isnan(seconds):
        raise ValueError(f"'{value}' is not a duration; use e.g. 30s, 5m, 1h30m or 7d")
    if seconds < 0:
        raise ValueError(f"'{value}' is negative; a duration must be zero or more")
    if seconds > MAX_DURATION:
        raise ValueError(f"'{value}' is longer than ten years; use a realistic duration")
    return seconds


def parse_size(value: str | int | float) -> int:
    """Bytes from "2GB" (10^9), "512MiB" (2^20), "100MB" or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 100MB or 2GB, not a boolean")
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"'{value}' is not a size; use e.g. 512MB, 2GB or 1GiB")
        size = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if math.isnan(size):
        raise ValueError(f"'{value}' is not a size; use e.g. 512MB, 2GB or 1GiB")
    if size < 0:
        raise ValueError(f"'{value}' is negative; a size must be zero or more")
    if size > MAX_SIZE:
        raise ValueError(f"'{value}' is larger than an exbibyte; use a realistic size")
    if size != int(size):  # "0.5" would be 0 bytes, which turns a limit off: surely a unit is missing
        raise ValueError(f"'{value}' is not a whole number of bytes; give a unit, e.g. 0.5GB")
    return int(size)


def format_size(size: float) -> str:
    """A short human form: 1.5 GB, 300 MB, 12 KB, 512 B."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"
