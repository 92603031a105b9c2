"""The origin's cut views: a channel's playlist with a feed spliced in (``transcode.cuts``).

Routes, below a channel's live directory or a catch-up window, ``{cut}`` being
``x/{feed}/{start}-{end}`` (epoch seconds, end 0: open), the part of the path the front
door's signed scope ends with:

- ``/live/{channel}/{cut}/{rung}/index.m3u8``: the live view, the numbers of the rung's
  live playlist (no master: the front door serves the channel's own);
- ``/catchup/{channel}/w/{from}/{to}/{cut}/master.m3u8`` and ``.../{rung}/index.m3u8``:
  the catch-up window's master (the window's own) and its view, settled or growing as
  catch-up decides;
- ``.../{rung}/{segment}``: one of the channel's segments the view lists (in the live
  window or the catch-up window, and in the archive);
- ``.../{rung}/feed/{frung}/{segment}``: one of the feed's, in its archive and inside the
  cut (and the catch-up window).

A malformed cut is a 400 naming it; a feed with no archive, or none of the rung's kind, a
404. The view's own numbers come from the live playlist's head (``guard.LiveHead``) and
the archive; the feed's segments from the feed's archive; the channel's SCTE-35 date
ranges on its own numbers from its cues, placed as catch-up places them
(``transcode.cues``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web

from headend.clock import utc_now
from transcode import cuts
from transcode.archive import ArchiveIndex, window_state
from transcode.cues import dateranges_for, read_cues
from transcode.domain import ArchiveEntry, Window, validate_rung
from transcode.errors import ArchiveNotFound, ContentNotFound, InvalidRequest
from transcode.measure import bits_per_second
from transcode.origin import guard
from transcode.origin.http import IMMUTABLE, playlist, respond

if TYPE_CHECKING:
    from transcode.origin.app import Origin

# The numbers a live view reads: a live window holds at most this many (``Channel``).
LIVE_WINDOW_MAX = 100
# Live views whose tallies one origin keeps (cleared wholesale when full: then counted afresh).
_TALLIES = 4096
# Segments a feed rung's bandwidth is measured over, when a rung of C's name is missing.
_MEASURED_SEGMENTS = 10


def _cut(request: web.Request) -> cuts.Cut:
    info = request.match_info
    return cuts.parse_cut(info["channel"], info["feed"], info["span"])


class CutViews:
    """The cut view handlers, over the origin's archive, live heads and files."""

    def __init__(self, origin: Origin, *, redis: aioredis.Redis) -> None:
        self._origin = origin
        self._redis = redis
        self._archive: ArchiveIndex = origin.archive
        # Each live view's tally (``transcode.cuts.Tally``), by channel, rung, cut, feed rung.
        self._tallies: dict[tuple[str, str, cuts.Cut, str], cuts.Tally] = {}

    async def _feed_rung(
        self, channel: str, rung: str, feed: str, own: Sequence[ArchiveEntry]
    ) -> str:
        """F's rung or rendition for C's ``rung`` (:func:`transcode.cuts.feed_rung`)."""
        feed_rungs = await self._archive.rungs(feed)
        if not feed_rungs:
            raise ContentNotFound(f"the feed {feed} has no archive")
        info = next((r for r in await self._archive.rungs(channel) if r.name == rung), None)
        if info is None:
            raise ContentNotFound(f"no rung {rung} of {channel}")
        # Measured only when F has no rung of that name (which wins whatever it measures).
        measure = all(r.name != rung for r in feed_rungs)
        candidates = []
        for r in feed_rungs:
            if not measure:
                candidates.append((r, 0))
            elif r.kind == info.kind:
                recent = await self._archive.recent(feed, r.name, _MEASURED_SEGMENTS)
                measured = bits_per_second([e.size for e in recent], [e.duration for e in recent])
                candidates.append((r, measured[1]))
        own_rate = bits_per_second([e.size for e in own], [e.duration for e in own])[1]
        chosen = cuts.feed_rung(info, own_rate, candidates)
        if chosen is None:
            raise ContentNotFound(f"the feed {feed} has no {info.kind} to show for {rung}")
        return chosen

    async def _feed_entries(
        self, cut: cuts.Cut, frung: str, own: Sequence[ArchiveEntry], slack: float
    ) -> list[ArchiveEntry]:
        """F's segments that can replace the numbers of ``own`` inside the cut (and those
        just after, which settle the last one's choice)."""
        inside = [e for e in own if cut.covers(e.start, e.duration)]
        if not inside:
            return []
        reach = timedelta(seconds=slack)
        span = Window(inside[0].start - reach, inside[-1].start + 2 * reach)
        return await self._archive.window(cut.feed, frung, span)

    async def _dateranges(
        self, channel: str, own: Sequence[ArchiveEntry], start: datetime, end: datetime
    ) -> cuts.DateRanges:
        """C's date ranges on the numbers of ``own`` (in order), from its cues in
        ``[start, end]`` (:func:`transcode.cues.read_cues`)."""
        cues = await read_cues(self._redis, channel, start, end)
        return dict(zip((e.sequence for e in own), dateranges_for(own, cues), strict=True))

    async def _live_reach(self, channel: str, rung: str) -> datetime:
        """How far back a live view's numbers reach: the live window's first segment, and
        the live route's slack behind it (``guard.LIVE_BEHIND_SEGMENTS``), and one more for
        an F segment starting before the number it stands for."""
        first = await self._origin.live_windows.first_sequence(channel, rung)
        entry = None if first is None else await self._archive.find(channel, rung, first)
        if entry is None:
            raise ContentNotFound(f"{channel} has no live {rung}")
        behind = guard.LIVE_BEHIND_SEGMENTS + 1
        return entry.start - timedelta(seconds=behind * entry.duration)

    async def live_media(self, request: web.Request) -> web.StreamResponse:
        """A live rung's cut view."""
        origin = self._origin
        channel, rung, cut = origin.path_channel(request), origin.path_rung(request), _cut(request)
        head = await origin.live_windows.head(channel, rung)
        if head is None:
            raise ContentNotFound(f"{channel} has no live {rung}")
        own = [
            e
            for e in await self._archive.recent(channel, rung, LIVE_WINDOW_MAX)
            if e.sequence >= head.media_sequence
        ]
        if not own:
            raise ArchiveNotFound(f"nothing of the live window of {channel} is archived yet")
        first = own[0].sequence
        frung = await self._feed_rung(channel, rung, cut.feed, own)
        feed_head = await origin.live_windows.head(cut.feed, frung)
        target = max(head.target_duration, feed_head.target_duration if feed_head else 0)
        slack = cuts.slack_seconds((), target)
        # The numbers that slid out since the cut began (or since the last reload's tally):
        # the view's additions to them count in its discontinuity sequence.
        key = (channel, rung, cut, frung)
        tally = self._tallies.get(key)
        if tally is not None and tally.piece.number > first:
            tally = None  # the channel's numbers went back: count afresh
        since = cut.start - timedelta(seconds=slack) if tally is None else tally.piece.own_start
        history: list[ArchiveEntry] = []
        if since < own[0].start:
            after = -1 if tally is None else tally.piece.number
            history = [
                e
                for e in await self._archive.window(channel, rung, Window(since, own[0].start))
                if after < e.sequence < first
            ]
        entries = [*history, *(e for e in own if tally is None or e.sequence > tally.piece.number)]
        feed = await self._feed_entries(cut, frung, entries, slack)
        # The listed numbers' (those from ``first`` on), as C's own playlist shows them.
        dateranges = await self._dateranges(channel, own, own[0].start, own[-1].end)
        text, tally = cuts.render_live_cut(
            entries,
            feed,
            first=first,
            discontinuity_sequence=head.discontinuity_sequence,
            target_duration=target,
            cut=cut,
            channel=channel,
            feed_rung=frung,
            key_base_url=origin.key_base_url,
            tally=tally,
            dateranges=dateranges,
        )
        if tally is not None:
            if len(self._tallies) >= _TALLIES:
                self._tallies.clear()
            self._tallies[key] = tally
        return await respond(request, playlist(text, origin.live_cache))

    async def catchup_master(self, request: web.Request) -> web.StreamResponse:
        """The window's own master: its rung URIs are relative, so they name the views."""
        _cut(request)
        return await self._origin.catchup_master(request)

    async def catchup_media(self, request: web.Request) -> web.StreamResponse:
        """A catch-up window's cut view of one rung."""
        origin = self._origin
        channel, rung, cut = origin.path_channel(request), origin.path_rung(request), _cut(request)
        now = utc_now()
        window = await origin.path_window(request, channel, now)
        own = await self._archive.window(channel, rung, window)
        if not own:
            raise ArchiveNotFound("no archived segments in the window")
        frung = await self._feed_rung(channel, rung, cut.feed, own)
        slack = cuts.slack_seconds(own)
        feed = await self._feed_entries(cut, frung, own, slack)
        pieces = cuts.splice(own, feed, cut, slack_seconds=slack)
        state = cuts.view_state(window_state(own, window, now), pieces, own)
        dateranges = await self._dateranges(channel, own, window.start, window.end)
        text = cuts.render_catchup_cut(
            pieces, state=state, channel=channel, cut=cut, feed_rung=frung,
            key_base_url=origin.key_base_url, dateranges=dateranges,
        )  # fmt: skip
        return await respond(request, playlist(text, origin.catchup_cache(state)))

    async def own_segment(self, request: web.Request) -> web.StreamResponse:
        """One of the channel's segments under a cut: as the live or catch-up route serves
        it (the live window, or the catch-up window and the archive)."""
        _cut(request)
        if "from" in request.match_info:
            return await self._origin.catchup_segment(request)
        origin = self._origin
        channel, rung = origin.path_channel(request), origin.path_rung(request)
        segment = request.match_info["segment"]
        sequence = guard.segment_sequence(segment)
        await guard.check_live_segment(origin.live_windows, channel, rung, sequence)
        entry = await origin.archived(channel, rung, segment)
        return await respond(request, await origin.file_body(entry.path.split("/"), IMMUTABLE))

    async def feed_segment(self, request: web.Request) -> web.StreamResponse:
        """One of the feed's segments: in its archive, and inside the cut (and the window)."""
        origin = self._origin
        channel, rung = origin.path_channel(request), origin.path_rung(request)
        cut = _cut(request)
        try:
            frung = validate_rung(request.match_info["frung"])
        except InvalidRequest as err:
            raise ContentNotFound(f"no rung {request.match_info['frung'][:64]}") from err
        segment = request.match_info["segment"]
        entry = await origin.archived(cut.feed, frung, segment)
        # An F segment stands for a number starting inside the cut, at most a segment away.
        reach = timedelta(seconds=entry.duration)
        if not _overlaps(entry, cut.start - reach, cut.end + reach if cut.end else None):
            raise ContentNotFound(f"segment {segment} of {cut.feed} is outside the cut")
        if "from" in request.match_info:
            window = await origin.path_window(request, cut.feed, utc_now())
            if not _overlaps(entry, window.start, window.end):
                raise ContentNotFound(f"segment {segment} is outside the catch-up window")
        elif entry.end <= await self._live_reach(channel, rung):
            raise ContentNotFound(f"segment {segment} is behind the live window of {channel}")
        return await respond(request, await origin.file_body(entry.path.split("/"), IMMUTABLE))


def _overlaps(entry: ArchiveEntry, start: datetime, end: datetime | None) -> bool:
    return entry.end > start and (end is None or entry.start < end)


def add_cut_routes(
    app: web.Application, origin: Origin, segment: str, *, redis: aioredis.Redis
) -> None:
    """The cut views' routes (``segment``: the origin's segment file pattern; ``redis``
    holds the channels' cues)."""
    views = CutViews(origin, redis=redis)
    span = "x/{feed}/{span}"
    for base in ("/live/{channel}", "/catchup/{channel}/w/{from}/{to}"):
        cut = f"{base}/{span}"
        if base.startswith("/catchup"):
            app.router.add_get(f"{cut}/master.m3u8", views.catchup_master)
            app.router.add_get(f"{cut}/{{rung}}/index.m3u8", views.catchup_media)
        else:
            app.router.add_get(f"{cut}/{{rung}}/index.m3u8", views.live_media)
        app.router.add_get(f"{cut}/{{rung}}/{segment}", views.own_segment)
        feed = f"{cut}/{{rung}}/{cuts.FEED_DIR}/{{frung}}/{segment}"
        app.router.add_get(feed, views.feed_segment)
