"""The front door's copy of the emergency alerts (``AlertService``), indexed by region.

Every variant reload asks "is an alert in force for this box on this channel?", so the
answer must cost no I/O and no scan: the alerts are held in memory, indexed by the area
codes they target, and a box's region is looked up under its county, city and province
codes (exactly the areas ``headend.regions.covers`` says contain it). Three dict reads,
however many alerts and regions there are.

The copy is re-read when the EPG's change feed says an alert changed (the front door's
``EpgCache`` follows that feed and calls :meth:`AlertCache.changed`), when the feed is
(re)positioned, and every ``refresh_seconds`` as a safety net. It keeps the alerts still
in force or ended within ``keep`` (the longest catch-up window a box may ask for). While
the EPG cannot answer, the last copy stays in force: an alert that was switching boxes
keeps switching them, and the reader retries (it runs under the front door's
supervisor, which restarts it with backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from cdn_ctl.upstream.common import CHANNEL_OPTIONS, unavailable
from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, ranked
from headend.errors import HeadendError
from headend.regions import Level
from headend.rpc import ClientTls

log = logging.getLogger("cdn_ctl.upstream")


@functools.lru_cache(maxsize=65_536)
def areas_of(region: str) -> tuple[str, ...]:
    """The area codes that contain a box in ``region``: its county, city and province
    (memoised: a province has a few thousand county codes)."""
    city = region[: Level.CITY] + "00"
    province = region[: Level.PROVINCE] + "0000"
    return (region, city, province)


class AlertCache:
    """The alerts in force (or recently), looked up by channel, box region and time."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        keep: timedelta = timedelta(days=8),
        refresh_seconds: float = 30.0,
        timeout_seconds: float = 3.0,
        tls: ClientTls | None = None,
        now: Callable[[], datetime],
    ) -> None:
        self.keep = keep
        self.refresh_seconds = refresh_seconds
        self._now = now
        self._client = AlertClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )
        self.alerts: tuple[Alert, ...] = ()
        self._by_area: dict[str, tuple[Alert, ...]] = {}
        # Set once the first copy is in: before that, nothing is known to be in force.
        self.loaded = asyncio.Event()
        self._wanted = asyncio.Event()
        # When the copy was last read (monotonic), for the metrics and the logs.
        self.read_at = 0.0

    async def ready(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the first copy: a front door just started must not
        send a box in an alert's region its channel; past that (the EPG is down) it goes
        on without (and switches the box at a later reload, once the copy is in)."""
        if not self.loaded.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.loaded.wait(), seconds)

    def changed(self) -> None:
        """The feed said an alert changed (or the feed restarted): read them again."""
        self._wanted.set()

    def hold(self, alerts: Iterable[Alert]) -> None:
        """Keep ``alerts`` that were or are in force (a pending one reaches no box, nor one
        cancelled the moment it was confirmed)."""
        kept = tuple(
            a
            for a in alerts
            if a.in_force_from is not None
            and (a.in_force_until is None or a.in_force_until > a.in_force_from)
        )
        by_area: dict[str, list[Alert]] = {}
        for alert in kept:
            for area in set(alert.regions):
                by_area.setdefault(area, []).append(alert)
        self.alerts = kept
        self._by_area = {area: tuple(found) for area, found in by_area.items()}

    async def refresh(self) -> None:
        """Read the alerts again (raises ``UpstreamUnavailable`` when the EPG cannot say)."""
        try:
            # The EPG refuses sub-second instants.
            since = (self._now() - self.keep).replace(microsecond=0)
            alerts = await self._client.list_alerts(ended_after=since)
        except HeadendError as err:
            raise unavailable("epg", err) from err
        before = {(a.id, a.version) for a in self.alerts}
        self.hold(alerts)
        self.read_at = time.monotonic()
        self.loaded.set()
        if {(a.id, a.version) for a in self.alerts} != before:
            log.info(
                "alerts changed",
                extra={"alerts": len(self.alerts), "ids": [a.id for a in self.alerts][:20]},
            )

    async def run(self) -> None:
        """Re-read on every change, and every ``refresh_seconds`` (a supervised task)."""
        while True:
            self._wanted.clear()
            await self.refresh()
            try:
                await asyncio.wait_for(self._wanted.wait(), self.refresh_seconds)
            except TimeoutError:
                pass

    def _candidates(self, channel: str, region: str) -> list[Alert]:
        by_area = self._by_area
        found: list[Alert] = []
        for area in areas_of(region):
            for alert in by_area.get(area, ()):
                if alert.reaches(channel, region):
                    found.append(alert)
        return found

    def live(self, channel: str, region: str, at: datetime, *, linger: timedelta) -> Alert | None:
        """The alert a box in ``region`` playing ``channel`` live sees at ``at``: the winner
        of those in force, or ended less than ``linger`` ago (a player still crossing the
        join back to its channel must keep the playlist that has it)."""
        if not self._by_area:
            return None
        found = [
            a
            for a in self._candidates(channel, region)
            if a.in_force_from is not None
            and a.in_force_from <= at
            and (a.in_force_until is None or at < a.in_force_until + linger)
        ]
        return _first(found)

    def window(self, channel: str, region: str, start: datetime, stop: datetime) -> Alert | None:
        """The alert that replaces part of ``[start, stop)`` of ``channel`` for a box in
        ``region`` (catch-up, start-over and timeshift), if any."""
        if not self._by_area:
            return None
        return _first([a for a in self._candidates(channel, region) if a.overlaps(start, stop)])

    def reaching(self, region: str, at: datetime) -> list[Alert]:
        """The alerts in force at ``at`` for a box in ``region`` (any channel), winner first."""
        found = {a.id: a for area in areas_of(region) for a in self._by_area.get(area, ())}
        return ranked(a for a in found.values() if a.in_force(at))

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._client.close()


def _first(alerts: list[Alert]) -> Alert | None:
    if len(alerts) <= 1:
        return alerts[0] if alerts else None
    return ranked(alerts)[0]
