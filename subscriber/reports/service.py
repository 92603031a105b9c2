"""Viewing reports: who may read which figures, and the sweep that ends expired leases.

The admin reads everything; a carrier only its own boxes' figures (its carrier is
forced as a filter, another carrier's refused). A broadcaster is refused: the
subscriber service does not know who owns a channel (its catalogue holds packages of
channel ids; owners are the guide's, ``epg``), so it cannot tell a broadcaster's
channels from others'. Every other role is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Gauge

from headend.auth import Principal, require_tenant
from headend.clock import utc_now
from headend.errors import PermissionDenied
from headend.tasks import Supervisor
from subscriber import domain
from subscriber.reports.domain import (
    ChannelViewers,
    Dimension,
    Granularity,
    ViewingQuery,
    ViewingRow,
    window,
)
from subscriber.reports.settings import ReportSettings
from subscriber.reports.store import CellId, ViewingStore
from subscriber.service.base import Clock


class ViewingMetrics:
    """Boxes playing now, by channel and carrier, and the leases live on the platform."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.viewers = Gauge(
            "subscriber_viewers",
            "Boxes playing a channel now (live leases), by channel and carrier.",
            ["channel", "carrier"],
            registry=self.registry,
        )
        self.leases = Gauge(
            "subscriber_leases_active",
            "Live stream leases on the platform.",
            registry=self.registry,
        )

    def update(self, counts: dict[CellId, int]) -> None:
        """Set the gauges from a sweep's live counts per cell."""
        total = 0
        for (cell, value), count in counts.items():
            if cell == (Dimension.CHANNEL, Dimension.CARRIER):
                self.viewers.labels(*value.split("/")).set(count)
            elif cell == (Dimension.CARRIER,):
                total += count
        self.leases.set(total)


class ViewingReports:
    """Watch time, distinct boxes and peaks per bucket; viewers now; the expiry sweep."""

    def __init__(
        self, *, store: ViewingStore, settings: ReportSettings, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    @staticmethod
    def _carrier_scope(principal: Principal, carrier_id: str) -> str:
        """The carrier filter ``principal`` reads under: a carrier its own, always."""
        if principal.role == "broadcaster":
            raise PermissionDenied(
                f"{principal} may not read viewing figures here: the subscriber service "
                "does not know who owns a channel"
            )
        if principal.role not in ("admin", "carrier"):
            raise PermissionDenied(f"{principal} may not read viewing figures")
        if principal.role == "carrier":
            require_tenant(principal, "carrier", carrier_id or principal.tenant)
            return principal.tenant
        if carrier_id:
            domain.validate_carrier_id(carrier_id)
        return carrier_id

    async def query_viewing(
        self,
        principal: Principal,
        *,
        start: datetime | None,
        end: datetime | None,
        granularity: Granularity,
        group_by: Dimension,
        channel_id: str = "",
        carrier_id: str = "",
        region: str = "",
    ) -> list[ViewingRow]:
        """The figures of a window (at most 92 days, inside retention), by bucket then key."""
        carrier_id = self._carrier_scope(principal, carrier_id)
        if channel_id:
            domain.validate_id(channel_id, "channel_id")
        if region:
            domain.validate_region_code(region, "region")
        first, last = window(
            domain.validate_aware(start, "start_time"),
            domain.validate_aware(end, "end_time"),
            granularity,
            now=self._clock(),
            retention=timedelta(days=self._settings.retention_days),
        )
        query = ViewingQuery(first, last, granularity, group_by, channel_id, carrier_id, region)
        return await self._store.query(query)

    async def count_viewers(
        self, principal: Principal, channel_id: str
    ) -> tuple[list[ChannelViewers], datetime]:
        """Boxes playing now by channel and carrier (a carrier: its own), and when read."""
        carrier_id = self._carrier_scope(principal, "")
        if channel_id:
            domain.validate_id(channel_id, "channel_id")
        read_at = self._clock()
        return await self._store.viewers(channel_id, carrier_id), read_at

    async def sweep(self, metrics: ViewingMetrics) -> None:
        """End the leases that expired by now and set the gauges from what is left."""
        metrics.update(await self._store.sweep(self._clock()))

    @contextlib.asynccontextmanager
    async def sweeping(self, metrics: ViewingMetrics) -> AsyncIterator[None]:
        """Sweep every ``sweep_seconds`` while the server runs (a server component)."""
        tasks = Supervisor()

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._settings.sweep_seconds)
                await self.sweep(metrics)

        tasks.spawn("viewing-sweep", loop)
        try:
            yield
        finally:
            await tasks.close()
