"""Small charts as geometry for server-rendered inline SVG (no chart library, no script).

A chart is computed here, pure, and drawn by a template (``_chart.html``), so every label
goes through the templates' autoescaping and the page's CSP needs no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

WIDTH, HEIGHT = 720, 180
_LEFT, _BOTTOM, _TOP = 40, 20, 10


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: where it is drawn, its value and its label."""

    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """Bars on a shared scale, with the scale's top value."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    top: int
    baseline: float

    def to_json(self) -> dict[str, Any]:
        """The chart as plain JSON (the page's JSON twin carries it)."""
        return asdict(self)


def bar_chart(points: Sequence[tuple[str, int]], *, label_every: int = 3) -> BarChart:
    """Bars for ``(label, value)`` points, left to right; every ``label_every``-th labelled."""
    top = max((value for _, value in points), default=0) or 1
    plot_w = WIDTH - _LEFT
    plot_h = HEIGHT - _BOTTOM - _TOP
    step = plot_w / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        height = plot_h * value / top
        bars.append(
            Bar(
                x=round(_LEFT + i * step + 1, 1),
                y=round(_TOP + plot_h - height, 1),
                width=round(max(step - 2, 1), 1),
                height=round(height, 1),
                value=value,
                label=label if i % label_every == 0 else "",
            )
        )
    return BarChart(WIDTH, HEIGHT, tuple(bars), top, float(_TOP + plot_h))
