"""The front door's cache of ``EpgService``: channels and programmes around now.

Entries are kept until the EPG's ``WatchChanges`` feed says they changed,
with ``guide_ttl_seconds`` as a safety net. The feed reader
(:meth:`EpgCache.watch`) runs under a ``Supervisor``: when the feed breaks
(the EPG or its Redis is down) it fails and is restarted with backoff, and it
resumes from the last version it saw, so the changes missed meanwhile are
replayed and the cache is kept. Only a ``resync`` change (history trimmed, or
a store that lost versions) or a server that cannot say where its feed starts
drops everything. While the EPG cannot answer, expired entries keep being
served for up to ``stale_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cdn_ctl.errors import ProgrammeUnknown, UpstreamUnavailable
from cdn_ctl.upstream.common import CHANNEL_OPTIONS, Clock, Outage, unavailable
from epg.client import EpgClient
from epg.domain import Channel, Programme
from epg.errors import ChannelNotFound, InvalidProgramme, NotAllowed, ProgrammeNotFound
from headend.errors import HeadendError
from headend.rpc import ClientTls

log = logging.getLogger("cdn_ctl.upstream")


@dataclass
class _Guide:
    programmes: tuple[Programme, ...]
    start: datetime
    stop: datetime
    at: float


class EpgCache:
    """``EpgService`` channels and programmes around now, invalidated by ``WatchChanges``."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        guide_ttl_seconds: float = 300.0,
        stale_seconds: float = 120.0,
        past: timedelta = timedelta(days=7),
        future: timedelta = timedelta(days=8),
        timeout_seconds: float = 3.0,
        clock: Clock = time.monotonic,
        tls: ClientTls | None = None,
        on_alerts: Callable[[], None] | None = None,
    ) -> None:
        # Called when the feed says an emergency alert changed, and whenever the feed is
        # (re)positioned (changes may have been missed): ``AlertCache.changed``.
        self.on_alerts = on_alerts
        self.guide_ttl_seconds = guide_ttl_seconds
        self.stale_seconds = stale_seconds
        self.past = past
        self.future = future
        self.clock = clock
        self.outage = Outage(clock)
        # Set while the watch stream is positioned (every later change will be seen).
        self.watching = asyncio.Event()
        # Bumped on every invalidation: lets callers cache what they derive.
        self.generation = 0
        # Times the whole cache was thrown away while it held something.
        self.drops = 0
        self._channels: dict[str, Channel] | None = None
        self._channels_at = 0.0
        self._guides: dict[str, _Guide] = {}
        self._version = 0
        self._client = EpgClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )

    def invalidate(self, channel_id: str | None = None, *, channels: bool = False) -> None:
        """Drop one channel's programmes, the channel list, or (no argument) everything."""
        self.generation += 1
        if channel_id is None and not channels:
            if self._channels is not None or self._guides:
                self.drops += 1
                log.info("epg cache dropped", extra={"drops": self.drops})
            self._channels = None
            self._guides.clear()
            return
        if channels:
            self._channels = None
        if channel_id is not None:
            self._guides.pop(channel_id, None)

    async def channels(self) -> dict[str, Channel]:
        """Every active channel by id."""
        age = self.clock() - self._channels_at
        if self._channels is not None and age < self.guide_ttl_seconds:
            return self._channels
        stale = self._channels if age < self.stale_seconds else None

        async def fetch() -> dict[str, Channel]:
            return {c.id: c for c in await self._client.list_channels(active_only=True)}

        channels, fresh = await self.outage.answer("epg", fetch, stale=stale)
        if fresh:
            self._channels, self._channels_at = channels, self.clock()
        return channels

    async def programmes(self, channel_id: str, now: datetime) -> tuple[Programme, ...]:
        """The channel's programmes from ``now - past`` to ``now + future`` (cached)."""
        guide = self._guides.get(channel_id)
        covers = (
            guide is not None
            and guide.start <= now - self.past / 2
            and now + self.future / 2 <= guide.stop
        )
        age = self.clock() - guide.at if guide is not None else 0.0
        if guide is not None and covers and age < self.guide_ttl_seconds:
            return guide.programmes
        stale = (
            guide.programmes if guide is not None and covers and age < self.stale_seconds else None
        )
        # The EPG refuses sub-second instants.
        now = now.replace(microsecond=0)
        start, stop = now - self.past, now + self.future
        generation = self.generation
        try:
            programmes, fresh = await self.outage.answer(
                "epg",
                lambda: self._client.range(channel_id, start, stop),
                stale=stale,
                passes=(ChannelNotFound, NotAllowed),
            )
        except (ChannelNotFound, NotAllowed):
            return ()
        if not fresh:
            return programmes
        # A change that arrived during the call makes this answer stale: do not keep it.
        if generation == self.generation:
            self._guides[channel_id] = _Guide(programmes, start, stop, self.clock())
        return programmes

    async def programme(self, channel_id: str, programme_id: str, now: datetime) -> Programme:
        """One programme of the channel (from the cached window, else ``GetProgramme``)."""
        for p in await self.programmes(channel_id, now):
            if p.id == programme_id:
                return p
        try:
            found = await self._client.get_programme(programme_id)
        except (ProgrammeNotFound, ChannelNotFound, InvalidProgramme) as err:
            raise ProgrammeUnknown(
                f"no programme {programme_id[:64]}", reason="unknown_programme"
            ) from err
        except HeadendError as err:
            raise unavailable("epg", err) from err
        if found.channel_id != channel_id:
            raise ProgrammeUnknown(
                f"no programme {programme_id[:64]} on this channel", reason="unknown_programme"
            )
        return found

    def apply(self, kind: str, channel_id: str, version: int) -> None:
        """One change from the feed."""
        self._version = max(self._version, version)
        if kind == "programmes" and channel_id:
            self.invalidate(channel_id)
        elif kind == "channel":
            self.invalidate(channel_id or None, channels=True)
        elif kind == "alerts":
            self._alerts_changed()
        else:  # "resync" or anything new: drop everything
            self.invalidate()
            self._alerts_changed()

    def _alerts_changed(self) -> None:
        if self.on_alerts is not None:
            self.on_alerts()

    async def watch(self) -> None:
        """Follow ``WatchChanges`` from the last version seen until the feed breaks, then
        raise ``UpstreamUnavailable`` (the supervisor running it reconnects with backoff).

        A quiet feed stays open for as long as it is quiet; the cache is kept across
        reconnects (the feed replays what was missed, or says ``resync``).
        """
        resume = self._version
        try:
            async with self._client.watch_changes(from_version=resume) as feed:
                if feed.version == 0 or resume == 0:
                    # Nothing to resume from: whatever the cache holds may predate the feed.
                    self.invalidate()
                self._version = max(self._version, feed.version)
                self.watching.set()
                self._alerts_changed()
                async for change in feed:
                    self.apply(change.kind, change.channel_id, change.version)
        except HeadendError as err:
            raise unavailable("epg", err) from err
        finally:
            self.watching.clear()
        raise UpstreamUnavailable("the epg change feed ended", reason="epg_unavailable")

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._client.close()


def on_air(programmes: Iterable[Programme], at: datetime) -> Programme | None:
    """The programme airing at ``at``."""
    for p in programmes:
        if p.start <= at < p.stop:
            return p
    return None
