"""Durations and sizes as people write them."""

from __future__ import annotations

import pytest

from coredumps.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("7d", 604800),
        ("250ms", 0.25),
        ("90", 90),
        (45, 45),
        ("2w", 1209600),
        (" 10s ", 10),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5x", "m5", "1h 30m", "-5s", "", True])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * 10**9),
        ("512MiB", 512 * 2**20),
        ("100MB", 10**8),
        ("1.5GB", 15 * 10**8),
        ("4096", 4096),
        ("16KiB", 16384),
        ("1TB", 10**12),
        ("10 mb", 10**7),
        (1024, 1024),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "2XB", "GB", "-1MB", False])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(1_500_000_000) == "1.5 GB"
    assert format_size(512) == "512 B"
