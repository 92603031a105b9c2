"""Viewing reports: who may read which figures, and the sweep that ends expired leases.

The admin reads everything; a carrier only its own boxes' figures (its carrier is
forced as a filter, another carrier's refused). A broadcaster reads the figures of the
channels it owns: owners are the guide's, so the EPG is asked with the broadcaster's own
key (``Owners``). By channel, its rows are its channels'; by carrier or region, it names
one of its channels (those cells are exact; a sum over channels would not be: distinct
boxes and peaks do not add up); another broadcaster's channel is refused as the EPG
refuses it (PERMISSION_DENIED). Every other role is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from headend.auth import Principal, require_tenant
from headend.clock import utc_now
from headend.errors import PermissionDenied
from headend.tasks import Supervisor
from subscriber import domain
from subscriber.errors import InvalidField
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


class Owners(Protocol):
    """The channels a broadcaster owns, as the EPG tells its key (``epg.owners.ChannelOwners``)."""

    async def owned(self, principal: Principal, api_key: str) -> frozenset[str]: ...
    async def require(self, principal: Principal, api_key: str, channel_id: str) -> None: ...


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
        self,
        *,
        store: ViewingStore,
        settings: ReportSettings,
        owners: Owners,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._owners = owners
        self._settings = settings
        self._clock = clock

    @staticmethod
    def _carrier_scope(principal: Principal, carrier_id: str) -> str:
        """The carrier filter ``principal`` reads under: a carrier its own, always."""
        if principal.role not in ("admin", "carrier", "broadcaster"):
            raise PermissionDenied(f"{principal} may not read viewing figures")
        if principal.role == "carrier":
            require_tenant(principal, "carrier", carrier_id or principal.tenant)
            return principal.tenant
        if carrier_id:
            domain.validate_carrier_id(carrier_id)
        return carrier_id

    async def _channel_scope(
        self, principal: Principal, api_key: str, channel_id: str, group_by: Dimension
    ) -> frozenset[str] | None:
        """The channels a broadcaster's rows by channel are kept to (None: the query's own
        filter is the scope); its ``channel_id`` must be one of its own, and is required
        when grouping by another dimension."""
        if principal.role != "broadcaster":
            return None
        if channel_id:
            await self._owners.require(principal, api_key, channel_id)
            return None
        if group_by is not Dimension.CHANNEL:
            raise InvalidField(
                "channel_id",
                f"a broadcaster reads figures by {group_by.value} for one of its channels: name it",
            )
        return await self._owners.owned(principal, api_key)

    async def query_viewing(
        self,
        principal: Principal,
        *,
        api_key: str,
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
        owned = await self._channel_scope(principal, api_key, channel_id, group_by)
        query = ViewingQuery(first, last, granularity, group_by, channel_id, carrier_id, region)
        rows = await self._store.query(query)
        return rows if owned is None else [r for r in rows if r.key in owned]

    async def count_viewers(
        self, principal: Principal, channel_id: str, *, api_key: str
    ) -> tuple[list[ChannelViewers], datetime]:
        """Boxes playing now by channel and carrier (a carrier: its own boxes; a broadcaster:
        its own channels), and when read."""
        carrier_id = self._carrier_scope(principal, "")
        if channel_id:
            domain.validate_id(channel_id, "channel_id")
        owned = await self._channel_scope(principal, api_key, channel_id, Dimension.CHANNEL)
        read_at = self._clock()
        found = await self._store.viewers(channel_id, carrier_id)
        return [v for v in found if owned is None or v.channel_id in owned], read_at

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
