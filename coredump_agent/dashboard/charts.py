"""Bar charts as numbers for inline SVG: the template draws rectangles, no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int


def bar_chart(points: Sequence[tuple[str, int]], *, width: int = 600, height: int = 120, gap: float = 2.0) -> Chart:
    """Bars scaled to the largest value; a chart of zeros has flat bars."""
    peak = max((v for _, v in points), default=0)
    step = width / max(1, len(points))
    bars = []
    for i, (label, value) in enumerate(points):
        h = 0.0 if peak == 0 else (height - 4) * value / peak
        bars.append(Bar(round(i * step + gap / 2, 2), round(height - h, 2), round(max(1.0, step - gap), 2),
                        round(h, 2), label, value))
    return Chart(width, height, bars, peak)
