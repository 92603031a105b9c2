"""Shared benchmark helpers: the short CI mode, in-run baselines and ratio reports.

Every suite measures its subject and a baseline in the same run and
reports the ratio (these machines are noisy: absolute numbers drift, ratios
of medians hold). ``BENCH_SHORT=1`` (``make bench-short``, run by CI) uses
small inputs and few rounds; guard floors are asserted in both modes.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

import pytest

SHORT = os.environ.get("BENCH_SHORT", "") not in ("", "0")


@dataclass
class Report:
    """Figures a suite prints at the end of the run (and records in extra_info)."""

    lines: list[str] = field(default_factory=list)

    def ratio(self, name: str, subject: float, baseline: float, *, unit: str = "") -> float:
        """Record ``subject / baseline`` with both figures; returns the ratio."""
        value = subject / baseline if baseline else float("inf")
        self.lines.append(
            f"{name}: {subject:,.2f} vs baseline {baseline:,.2f} {unit} -> ratio {value:.3f}"
        )
        return value

    def line(self, text: str) -> None:
        """Record a free-form figure."""
        self.lines.append(text)


_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    """The session's report; printed in the terminal summary."""
    return _REPORT


def median(values: list[float]) -> float:
    """The median, the statistic every ratio here is built on."""
    return statistics.median(values)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print every recorded figure after the benchmark tables."""
    if _REPORT.lines:
        terminalreporter.section("benchmark figures (ratios against in-run baselines)")
        for text in _REPORT.lines:
            terminalreporter.write_line(text)
