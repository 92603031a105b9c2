"""The EPG's own metrics: how many hours of guide each active channel has left, and the
emergency alerts in force and their steps (:class:`AlertMetrics`), and the changes to cues
(:class:`CueMetrics`).

A background task of the EPG server refreshes ``epg_guide_hours_ahead{channel}`` every
``EPG_GUIDE_STATUS_SECONDS`` with the read ``ListGuideStatus`` makes (one script call per
page of channels), so the ``GuideRunsOut`` alert warns days before boxes show an empty
guide. Inactive channels are left out (nobody watches them); a deleted channel's series
goes at the next refresh. Every replica exports the same figures from the same Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Gauge

from epg.service import EpgService
from headend.auth import ADMIN
from headend.tasks import Supervisor, SupervisorMetrics

# Channels read per store call; the horizon is short because only the end matters here.
_PAGE = 100
_HORIZON_HOURS = 1


class GuideMetrics:
    """The gauge, and the task that keeps it fresh (an async context manager that starts
    and stops with the server)."""

    def __init__(
        self, service: EpgService, registry: CollectorRegistry, *, every_seconds: float
    ) -> None:
        self._service = service
        self._every = every_seconds
        self.hours_ahead = Gauge(
            "epg_guide_hours_ahead",
            "Hours from now to the stop of the channel's last programme (0: none ahead).",
            ["channel"],
            registry=registry,
        )
        self._shown: set[str] = set()
        self._tasks = Supervisor(metrics=SupervisorMetrics(registry))

    async def refresh(self) -> None:
        """Set the gauge for every active channel now; drop the series of channels gone."""
        channels = [c for c in await self._service.list_channels(ADMIN) if c.active]
        seen: set[str] = set()
        for i in range(0, len(channels), _PAGE):
            for status in await self._service.guide_status(
                ADMIN, channels[i : i + _PAGE], horizon_hours=_HORIZON_HOURS
            ):
                self.hours_ahead.labels(status.channel.id).set(status.hours_ahead)
                seen.add(status.channel.id)
        for gone in self._shown - seen:
            self.hours_ahead.remove(gone)
        self._shown = seen

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._every)

    async def __aenter__(self) -> GuideMetrics:
        self._tasks.spawn("epg-guide-status", self._refresh_forever)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._tasks.close()


class AlertMetrics:
    """Emergency alerts: how many are in force by severity, and every step taken."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_force = Gauge(
            "epg_alerts_in_force",
            "Emergency alerts in force now (boxes in their regions see them), by severity.",
            ["severity"],
            registry=registry,
        )
        self.steps = Counter(
            "epg_alert_steps_total",
            "Alert steps taken: issue, confirm, cancel, expire, refuse_confirm.",
            ["action"],
            registry=registry,
        )

    def step(self, action: str) -> None:
        """Count one step."""
        self.steps.labels(action).inc()

    def show(self, in_force: Mapping[str, int]) -> None:
        """Set the gauge for every severity (0 where none is in force)."""
        for severity, count in in_force.items():
            self.in_force.labels(severity).set(count)


class CueMetrics:
    """Cues: every change made (``insert``, ``cancel``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.changes = Counter(
            "epg_cue_changes_total",
            "Cue changes made: insert, cancel.",
            ["action"],
            registry=registry,
        )

    def change(self, action: str) -> None:
        """Count one change."""
        self.changes.labels(action).inc()
