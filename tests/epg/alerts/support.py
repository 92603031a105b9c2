"""Builders for alert tests: a valid alert, a settable clock, tokens that carry a key id."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from epg.alerts.domain import Alert, Card, Severity

T0 = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def alert(alert_id: str = "", **changes: Any) -> Alert:
    """A valid card alert for Guangdong (440000) on every channel."""
    base = Alert(
        id=alert_id,
        severity=Severity.SEVERE,
        headline="Typhoon warning",
        regions=("440000",),
        description="Stay indoors.",
        card=Card("Typhoon: stay indoors", "file:///media/siren.wav"),
    )
    return dataclasses.replace(base, **changes)
