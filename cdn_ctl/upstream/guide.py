"""The front door's cache of the EPG: channels, programmes and cues around now.

Cues (``CueService``, served by the EPG server) are cached per channel like its
programmes: a running cue that blacks out a box's region switches its picture as a
blacked-out programme does. Entries are kept until the EPG's ``WatchChanges`` feed says
they changed (``"programmes"``, ``"cues"``, ``"channel"`` of a channel), with
``guide_ttl_seconds`` as a safety net. The feed reader (:meth:`EpgCache.watch`) runs
under a ``Supervisor``: when the feed breaks (the EPG or its Redis is down) it fails and
is restarted with backoff, and it resumes from the last version it saw, so the changes
missed meanwhile are replayed and the cache is kept. Only a ``resync`` change (history
trimmed, or a store that lost versions) or a server that cannot say where its feed
starts drops everything. While the EPG cannot answer, expired entries keep being served
for up to ``stale_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from cdn_ctl.errors import ProgrammeUnknown, UpstreamUnavailable
from cdn_ctl.upstream.common import CHANNEL_OPTIONS, Clock, Outage, unavailable
from epg.client import EpgClient
from epg.cues.client import CueClient
from epg.cues.domain import Cue
from epg.domain import Channel, Programme
from epg.errors import ChannelNotFound, InvalidProgramme, NotAllowed, ProgrammeNotFound
from headend.errors import HeadendError
from headend.rpc import ClientTls

log = logging.getLogger("cdn_ctl.upstream")

T = TypeVar("T")


@dataclass
class _Span(Generic[T]):
    """One channel's programmes (or cues) over ``[start, stop)``, read at ``at``."""

    items: tuple[T, ...]
    start: datetime
    stop: datetime
    at: float


class EpgCache:
    """The EPG's channels, programmes and cues around now, invalidated by ``WatchChanges``."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        guide_ttl_seconds: float = 300.0,
        stale_seconds: float = 120.0,
        past: timedelta = timedelta(days=7),
        future: timedelta = timedelta(days=8),
        cue_future: timedelta = timedelta(days=1),
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
        # Cues are read from ``now - past`` too (catch-up reaches as far back as the
        # programmes it checks), ahead only this far: ListCues spans at most 8 days.
        self.cue_future = cue_future
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
        self._guides: dict[str, _Span[Programme]] = {}
        self._cues: dict[str, _Span[Cue]] = {}
        self._version = 0
        self._client = EpgClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )
        self._cue_client = CueClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )

    def invalidate(
        self, channel_id: str | None = None, *, channels: bool = False, cues: bool = False
    ) -> None:
        """Drop one channel's programmes (its cues, with ``cues``), the channel list, or
        (no argument) everything."""
        self.generation += 1
        if channel_id is None and not channels:
            if self._channels is not None or self._guides or self._cues:
                self.drops += 1
                log.info("epg cache dropped", extra={"drops": self.drops})
            self._channels = None
            self._guides.clear()
            self._cues.clear()
            return
        if channels:
            self._channels = None
        if channel_id is not None:
            (self._cues if cues else self._guides).pop(channel_id, None)

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
        return await self._span(
            self._guides,
            channel_id,
            now,
            self.future,
            lambda start, stop: self._client.range(channel_id, start, stop),
        )

    async def cues(self, channel_id: str, now: datetime) -> tuple[Cue, ...]:
        """The channel's cues (cancelled ones too) that run, or were to run, at any time
        from ``now - past`` to ``now + cue_future`` (cached)."""
        return await self._span(
            self._cues,
            channel_id,
            now,
            self.cue_future,
            lambda start, stop: self._cue_client.list_cues(channel_id, start, stop),
        )

    async def _span(
        self,
        spans: dict[str, _Span[T]],
        channel_id: str,
        now: datetime,
        future: timedelta,
        fetch: Callable[[datetime, datetime], Awaitable[Sequence[T]]],
    ) -> tuple[T, ...]:
        """One channel's entries from ``now - past`` to ``now + future``: the cached span
        while it reaches half as far both ways and is younger than the TTL, else fetched
        (stale ones served for ``stale_seconds`` while the EPG cannot answer); a channel
        the EPG does not have, or will not show, has none."""
        span = spans.get(channel_id)
        covers = (
            span is not None and span.start <= now - self.past / 2 and now + future / 2 <= span.stop
        )
        age = self.clock() - span.at if span is not None else 0.0
        if span is not None and covers and age < self.guide_ttl_seconds:
            return span.items
        stale = span.items if span is not None and covers and age < self.stale_seconds else None
        # The EPG refuses sub-second instants.
        now = now.replace(microsecond=0)
        start, stop = now - self.past, now + future
        generation = self.generation

        async def call() -> tuple[T, ...]:
            return tuple(await fetch(start, stop))

        try:
            items, fresh = await self.outage.answer(
                "epg", call, stale=stale, passes=(ChannelNotFound, NotAllowed)
            )
        except (ChannelNotFound, NotAllowed):
            return ()
        if not fresh:
            return items
        # A change that arrived during the call makes this answer stale: do not keep it.
        if generation == self.generation:
            spans[channel_id] = _Span(items, start, stop, self.clock())
        return items

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
        elif kind == "cues" and channel_id:
            self.invalidate(channel_id, cues=True)
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
        """Close the gRPC channels."""
        await self._client.close()
        await self._cue_client.close()


def on_air(programmes: Iterable[Programme], at: datetime) -> Programme | None:
    """The programme airing at ``at``."""
    for p in programmes:
        if p.start <= at < p.stop:
            return p
    return None
