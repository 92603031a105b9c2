"""Catch-up windows as CMAF-HLS and static MPEG-DASH, packaged on request from the archive.

The archive holds MPEG-TS only (live ``.m4s`` files go with the live window); a clear
channel's catch-up window is also served as CMAF by remuxing its archived TS segments when
asked (``transcode.live.cmaf.remux``, the live remuxer), writing nothing. Routes, in the
window path form the front door signs (``{w}`` = ``/catchup/{channel}/w/{from}/{to}``):

- ``{w}/master-cmaf.m3u8``: a variant per video rung with segments in the window, and the
  ``audio`` rendition (the audio muxed in the first such rung, in name order); CODECS as
  the init segments state them;
- ``{w}/{track}/cmaf.m3u8``: the TS catch-up playlist of the window (the same model, so
  the same numbers, durations, dates, discontinuities and date ranges), each segment
  ``{seq}.m4s`` with an ``EXT-X-MAP`` per run (the window's first segment and each one
  after a discontinuity): ``init-{seq}.mp4``, ``seq`` the run's first segment;
- ``{w}/{track}/init-{seq}.mp4`` and ``{w}/{track}/{seq}.m4s``: made from archived
  ``{seq:010d}.ts`` of the track's rung;
- ``{w}/manifest.mpd``: the MPD of those playlists (``transcode.dash``): static once the
  window has ended (``transcode.archive.window_state``), dynamic while it grows.

Timeline (the ``transcode.dash`` timing contract): segment ``k`` of a window starts at
``track_start(first start) + round(D_k * timescale)`` ticks, the first start being the
window's first segment's archived start (epoch seconds) and ``D_k`` the running total of
the EXTINF durations before ``k``; so every video ``tfdt`` is the MPD's ``t``, and in an
archive without gaps it is ``track_start(entry start)`` to a tick. Audio keeps its lip
sync with its segment's video, as live CMAF does (a fraction of a frame off the contract).

An encrypted channel's segments cannot be read, so its CMAF catch-up is a 404 that says so.
Remuxing reads a TS file whole: it runs on a worker thread, a few at a time; init
segments (and what the master and MPD need of them) are kept, a bounded number.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web

from headend.clock import utc_now
from transcode import hls, tags
from transcode.archive import (
    RungInfo,
    WindowState,
    catchup_media,
    live_master,
    window_state,
)
from transcode.cues import dateranges_for, read_cues
from transcode.dash import live_mpd, vod_mpd
from transcode.dash.tracks import TrackTiming
from transcode.domain import ArchiveEntry, Window
from transcode.errors import ArchiveNotFound, ContentNotFound, InvalidPlaylist
from transcode.fmp4 import read_init
from transcode.fmp4.writer import VIDEO_TIMESCALE, media_segment
from transcode.live.cmaf import AUDIO_TRACK, LIVE_INDEX, Picture, remux, track_start
from transcode.live.remux import RemuxFailed
from transcode.live.window import cmaf_name
from transcode.measure import bits_per_second
from transcode.names import CMAF_MASTER, CMAF_PLAYLIST, CMAF_RUN_INIT, MPD_NAME
from transcode.origin import guard
from transcode.origin.http import IMMUTABLE, Body, etag_bytes, playlist, respond

if TYPE_CHECKING:
    from transcode.origin.app import Origin

# Remuxes at once per origin: each reads a TS segment whole and is CPU-bound.
REMUX_SLOTS = 2
# Init segments kept (a few hundred bytes each), by archived file.
_KEPT_INITS = 1024
# mfhd numbers: segment N's fragments from N * this (mod 2^32), as live CMAF numbers them.
_FRAGMENTS_PER_SEGMENT = 1000
_SEGMENT = re.compile(r"(0|[1-9][0-9]{0,14})\.m4s", re.ASCII)
# A start-over MPD: players start this many segments behind its growing edge, as live.
_DELAY_SEGMENTS = 3


@dataclass(frozen=True, slots=True)
class Made:
    """One track of an archived segment remuxed: its init segment and facts, and the media
    segment's size (an audio rendition's bandwidth is measured on it)."""

    init: bytes
    codec: str  # RFC 6381, as the init segment states it
    timescale: int
    size: int


@dataclass(frozen=True, slots=True)
class Source:
    """A CMAF track of a window: the rung whose archived TS it is made from, and that rung's
    segments in the window (oldest first)."""

    track: str
    rung: RungInfo
    entries: Sequence[ArchiveEntry]


def init_name(sequence: int) -> str:
    """The init segment of the run starting at segment ``sequence``."""
    return f"init-{sequence}.mp4"


def cmaf_playlist(
    entries: Sequence[ArchiveEntry],
    *,
    channel: str,
    state: WindowState,
    dateranges: Sequence[tuple[hls.DateRange, ...]] = (),
) -> hls.MediaPlaylist:
    """The window's TS catch-up playlist (``transcode.archive.catchup_media``) with CMAF
    segment names and an ``EXT-X-MAP`` per run: the same numbers, durations, dates and
    discontinuities by construction."""
    ts = catchup_media(
        entries, channel=channel, key_base_url="", state=state, dateranges=dateranges
    )
    segments = []
    init: hls.SegmentMap | None = None
    for segment, entry in zip(ts.segments, entries, strict=True):
        if init is None or segment.discontinuity:
            init = hls.SegmentMap(init_name(entry.sequence))
        segments.append(replace(segment, uri=cmaf_name(entry.sequence), map=init))
    return replace(ts, segments=segments)


def ticks(entries: Sequence[ArchiveEntry], timescale: int) -> tuple[int, ...]:
    """Each segment's start on the window's CMAF timeline, then the last one's end (ticks;
    see the module docstring: what ``transcode.dash`` derives from the playlist)."""
    first = track_start(entries[0].start.timestamp(), timescale)
    totals = accumulate(e.duration for e in entries)
    return (first, *(first + round(total * timescale) for total in totals))


def remux_archived(
    root: Path, source: Source, index: int, span: tuple[int, int]
) -> dict[str, tuple[Made, bytes]]:
    """Archived segment ``index`` of ``source`` remuxed: each track (the rung's video, and
    ``audio`` if it has any) as its facts and media segment, ``span`` its start and end on
    the 90 kHz timeline. Reads the file whole: run it on a worker thread."""
    entry = source.entries[index]
    parts = entry.path.split("/")
    opened = guard.open_under(root, parts)  # a regular file under the root, or 404
    os.close(opened.fd)
    rung = source.rung
    start, end = span
    tracks = remux(
        {rung.name: root.joinpath(*parts)},
        {rung.name: Picture(rung.width, rung.height)},
        start_seconds=start / VIDEO_TIMESCALE,
        duration=(end - start) / VIDEO_TIMESCALE,
    )
    if rung.name not in tracks:
        raise RemuxFailed(f"archived segment {entry.sequence} of {rung.name} cannot be remuxed")
    out = {}
    number = entry.sequence * _FRAGMENTS_PER_SEGMENT % (1 << 32)
    for name, track in tracks.items():
        info = read_init(track.init)[0]
        media = media_segment(info.track_id, number, track.fragments)
        made = Made(track.init, info.codec, track.timescale, len(media))
        out[name] = (made, media)
    return out


class CatchupCmaf:
    """The CMAF catch-up handlers, over the origin's archive index and files."""

    def __init__(self, origin: Origin, *, root: Path, redis: aioredis.Redis) -> None:
        self._origin = origin
        self._root = root
        self._redis = redis
        self._slots = asyncio.Semaphore(REMUX_SLOTS)
        # (archived path, size) -> each track's facts, least recently used first.
        self._made: OrderedDict[tuple[str, int], dict[str, Made]] = OrderedDict()

    async def _window(self, request: web.Request) -> tuple[str, Window, datetime]:
        channel = self._origin.path_channel(request)
        now = utc_now()
        return channel, await self._origin.path_window(request, channel, now), now

    async def _sources(self, channel: str, window: Window, only: str | None) -> list[Source]:
        """The window's tracks (``only``: just that one): each video rung with segments in
        it, in name order, then ``audio`` from the first of them. Refuses an encrypted one."""
        video = [r for r in await self._origin.archive.rungs(channel) if r.kind == "video"]
        if only not in (None, AUDIO_TRACK) and all(r.name != only for r in video):
            raise ContentNotFound(f"no CMAF track {only} of {channel}")
        found: list[Source] = []
        for rung in video:
            if only not in (None, AUDIO_TRACK, rung.name):
                continue
            entries = await self._origin.archive.window(channel, rung.name, window)
            if any(e.key_id for e in entries):
                raise ContentNotFound(
                    f"{channel} is encrypted: its archive cannot be repackaged as CMAF"
                )
            if entries:
                found.append(Source(rung.name, rung, entries))
                if only is not None:
                    break
        if not found:
            raise ArchiveNotFound("no archived segments in the window")
        if only == AUDIO_TRACK:
            return [replace(found[0], track=AUDIO_TRACK)]
        if only is None:
            found.append(replace(found[0], track=AUDIO_TRACK))
        return found

    async def _remux(self, source: Source, index: int) -> dict[str, tuple[Made, bytes]]:
        timeline = ticks(source.entries, VIDEO_TIMESCALE)
        span = timeline[index], timeline[index + 1]
        async with self._slots:
            out = await asyncio.to_thread(remux_archived, self._root, source, index, span)
        entry = source.entries[index]
        self._keep((entry.path, entry.size), {t: made for t, (made, _) in out.items()})
        return out

    def _keep(self, key: tuple[str, int], made: dict[str, Made]) -> None:
        self._made[key] = made
        self._made.move_to_end(key)
        while len(self._made) > _KEPT_INITS:
            self._made.popitem(last=False)

    async def _facts(self, source: Source, index: int) -> dict[str, Made]:
        """Each track's facts of archived segment ``index`` (kept, or remuxed now)."""
        entry = source.entries[index]
        kept = self._made.get((entry.path, entry.size))
        if kept is not None:
            self._made.move_to_end((entry.path, entry.size))
            return kept
        return {t: made for t, (made, _) in (await self._remux(source, index)).items()}

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A track's CMAF playlist of the window (its state as the TS one's)."""
        channel, window, now = await self._window(request)
        track = self._origin.path_rung(request)
        source = (await self._sources(channel, window, track))[0]
        if track == AUDIO_TRACK and AUDIO_TRACK not in await self._facts(source, 0):
            raise ContentNotFound(f"the archive of {channel} has no audio to package")
        state = window_state(source.entries, window, now)
        cues = await read_cues(self._redis, channel, window.start, window.end)
        made = cmaf_playlist(
            source.entries,
            channel=channel,
            state=state,
            dateranges=dateranges_for(source.entries, cues),
        )
        text = hls.render_media(made)
        return await respond(request, playlist(text, self._origin.catchup_cache(state)))

    def _position(self, source: Source, sequence: int, what: str) -> int:
        for index, entry in enumerate(source.entries):
            if entry.sequence == sequence:
                return index
        raise ContentNotFound(f"{what} is outside the catch-up window")

    async def segment(self, request: web.Request) -> web.StreamResponse:
        """A media segment, remuxed from the archived TS segment of that number."""
        name = request.match_info["segment"]
        match = _SEGMENT.fullmatch(name)
        if match is None:
            raise ContentNotFound(f"no such segment: {name[:64]}")
        channel, window, _ = await self._window(request)
        track = self._origin.path_rung(request)
        source = (await self._sources(channel, window, track))[0]
        index = self._position(source, int(match.group(1)), f"segment {name}")
        made = (await self._remux(source, index)).get(track)
        if made is None:
            raise ContentNotFound(f"segment {name} of {channel} has no {track}")
        data = made[1]
        body = Body(tags.MIME_MP4, IMMUTABLE, etag_bytes(data), data=data)
        return await respond(request, body)

    async def init(self, request: web.Request) -> web.StreamResponse:
        """The init segment of the window's run starting at ``{seq}``."""
        name = request.match_info["init"]
        match = CMAF_RUN_INIT.fullmatch(name)
        if match is None:
            raise ContentNotFound(f"no such init segment: {name[:64]}")
        channel, window, _ = await self._window(request)
        track = self._origin.path_rung(request)
        source = (await self._sources(channel, window, track))[0]
        index = self._position(source, int(match.group(1)), name)
        if index and not source.entries[index].discontinuity:
            raise ContentNotFound(f"{name}: no run of the window starts at that segment")
        made = (await self._facts(source, index)).get(track)
        if made is None:
            raise ContentNotFound(f"{name} of {channel} has no {track}")
        body = Body(tags.MIME_MP4, IMMUTABLE, etag_bytes(made.init), data=made.init)
        return await respond(request, body)

    async def _master(
        self, channel: str, window: Window
    ) -> tuple[hls.MasterPlaylist, dict[str, tuple[Source, Made]]]:
        """The window's CMAF master and its tracks (by URI), with their first runs' facts."""
        sources = await self._sources(channel, window, None)
        video = sources[:-1]
        facts = await asyncio.gather(*(self._facts(s, 0) for s in video))
        audio = facts[0].get(AUDIO_TRACK)
        codec = audio.codec if audio is not None else ""
        infos = [
            replace(s.rung, codecs=",".join(c for c in (f[s.track].codec, codec) if c))
            for s, f in zip(video, facts, strict=True)
        ]
        measured = {s.track: ([e.size for e in s.entries], [e.duration for e in s.entries])
                    for s in video}  # fmt: skip
        tracks = {s.track: (s, f[s.track]) for s, f in zip(video, facts, strict=True)}
        if audio is not None:
            first = sources[-1].entries[0]
            infos.append(RungInfo(AUDIO_TRACK, codec, 0, 0, 0.0, "audio", title="Audio",
                                  default=True))  # fmt: skip
            measured[AUDIO_TRACK] = ([audio.size], [first.duration])
            tracks[AUDIO_TRACK] = (sources[-1], audio)
        master = live_master(infos, measured)

        def uri(value: str) -> str:
            return value.replace(f"/{LIVE_INDEX}", f"/{CMAF_PLAYLIST}")

        master = replace(
            master,
            variants=[replace(v, uri=uri(v.uri)) for v in master.variants],
            renditions=tuple(replace(r, uri=uri(r.uri)) for r in master.renditions),
        )
        return master, {f"{t}/{CMAF_PLAYLIST}": made for t, made in tracks.items()}

    async def master(self, request: web.Request) -> web.StreamResponse:
        """The window's CMAF-HLS master playlist."""
        channel, window, now = await self._window(request)
        master, _ = await self._master(channel, window)
        text = hls.render_master(master)
        cache = self._origin.catchup_cache(window_state((), window, now))
        return await respond(request, playlist(text, cache))

    async def mpd(self, request: web.Request) -> web.StreamResponse:
        """The window's MPD: static once it has ended, dynamic while it grows."""
        channel, window, now = await self._window(request)
        master, tracks = await self._master(channel, window)
        state = window_state(next(iter(tracks.values()))[0].entries, window, now)
        playlists = {
            uri: cmaf_playlist(s.entries, channel=channel, state=state)
            for uri, (s, _) in tracks.items()
        }
        timings = {
            uri: TrackTiming(
                made.timescale,
                track_start(s.entries[0].start.timestamp(), made.timescale),
                bits_per_second([made.size], [s.entries[0].duration])[0]
                if s.track == AUDIO_TRACK
                else 0,
            )
            for uri, (s, made) in tracks.items()
        }
        try:
            if state != "growing":
                text = vod_mpd(master, playlists, timings)
            else:
                first = next(iter(playlists.values()))
                longest = float(hls.target_duration(first.segments))
                text = live_mpd(
                    master,
                    playlists,
                    timings,
                    # The first segment's archived start: its first Period's start.
                    availability_start=first.segments[0].program_date_time or now,
                    publish_time=now,
                    time_shift_buffer_depth=sum(s.duration for s in first.segments),
                    minimum_update_period=longest,
                    suggested_presentation_delay=_DELAY_SEGMENTS * longest,
                )
        except InvalidPlaylist as err:
            raise ContentNotFound(f"this window has no MPD: {err.message}") from err
        data = text.encode()
        body = Body(tags.MIME_MPD, self._origin.catchup_cache(state), etag_bytes(data), data=data)
        return await respond(request, body)


def add_cmaf_catchup_routes(
    app: web.Application, origin: Origin, *, root: Path, redis: aioredis.Redis
) -> None:
    """The CMAF catch-up routes, in the window path form only (``root``: the origin root;
    ``redis`` holds the channels' cues)."""
    views = CatchupCmaf(origin, root=root, redis=redis)
    window = "/catchup/{channel}/w/{from}/{to}"
    app.router.add_get(f"{window}/{CMAF_MASTER}", views.master)
    app.router.add_get(f"{window}/{MPD_NAME}", views.mpd)
    app.router.add_get(f"{window}/{{rung}}/{CMAF_PLAYLIST}", views.media)
    app.router.add_get(f"{window}/{{rung}}/{{init:init-[0-9]+\\.mp4}}", views.init)
    app.router.add_get(f"{window}/{{rung}}/{{segment:[0-9]+\\.m4s}}", views.segment)
