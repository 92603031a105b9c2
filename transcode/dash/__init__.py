"""MPEG-DASH MPDs from the platform's own HLS playlists: one set of CMAF segments, two views.

The HLS master and media playlists are the source of truth; the MPD lists exactly their
segments. Each video variant becomes a Representation of the video AdaptationSet of its
coding format (H.264 and HEVC rungs are not switchable in one set), each audio rendition
an AdaptationSet of its own (two renditions of one language carry different content, so
they are not switchable). WebVTT subtitle renditions and I-frame
playlists are left out: their segments are not CMAF tracks here. Only variants of the
default content steering pathway are listed (the others are copies on other edges).

Timing. A track's segment ``k`` starts at ``t_k = first_start + round(D_k * timescale)``
ticks, ``D_k`` the sum of the EXTINF durations before it, each rounded once from the
running total (no drift), so the packager must write every segment's ``tfdt`` that way,
across discontinuities too. A new Period starts at each EXT-X-DISCONTINUITY (and, in a
static MPD, where the init segment changes); its ``presentationTimeOffset`` is its first
``t``, its ``@id`` ``p<discontinuity sequence number>`` (stable across reloads).

Static (VOD, catch-up): Periods start at the cumulated HLS durations. Dynamic (live): a
Period starts at its first segment's EXT-X-PROGRAM-DATE-TIME minus availabilityStartTime,
so every segment's wall-clock time, ``availabilityStartTime + Period@start + (t - PTO) /
timescale``, is its PROGRAM-DATE-TIME (checked to the millisecond). ISO/IEC 23009-1
forbids a Period's start to change between MPD updates, but the window's first Period may
have begun before the window: the caller passes when it began (``period_starts``, by
discontinuity sequence number), or its start follows the window. Its
presentationTimeOffset is then worked out from dates kept to the microsecond, so it may
move by one tick (microseconds) between reloads. For the same reason an init segment
change without a discontinuity is refused in a live window.

Clock: ``UTCTiming`` ``urn:mpeg:dash:utc:direct:2014`` carrying the publish time. The
origin has no time endpoint for ``http-iso`` to name, and a live MPD is cached for about a
second (``ORIGIN_LIVE_MAX_AGE_SECONDS``), which bounds the clock error this gives players.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import groupby
from operator import attrgetter, sub

from transcode import hls
from transcode.dash import tracks as dash_tracks
from transcode.dash.model import (
    PROFILE_LIVE,
    ROLE_SCHEME,
    UTC_DIRECT,
    AdaptationSet,
    Descriptor,
    Mpd,
    Period,
    Representation,
    S,
    SegmentTemplate,
    date_time,
    render_mpd,
)
from transcode.dash.tracks import Track, TrackTiming
from transcode.errors import InvalidPlaylist

_DATE = attrgetter("program_date_time")
# How far a live segment's PROGRAM-DATE-TIME may be from its Period's timeline.
_PDT_SLACK = timedelta(milliseconds=1)
# (track, index of the Period's first segment) -> the track's tick at the Period's start.
_Origin = Callable[["Track", int], int]


def vod_mpd(
    master: hls.MasterPlaylist,
    playlists: Mapping[str, hls.MediaPlaylist],
    timings: Mapping[str, TrackTiming],
) -> str:
    """The static MPD of complete playlists (VOD, a settled catch-up window)."""
    return render_mpd(static_mpd(master, playlists, timings))


def live_mpd(
    master: hls.MasterPlaylist,
    playlists: Mapping[str, hls.MediaPlaylist],
    timings: Mapping[str, TrackTiming],
    *,
    availability_start: datetime,
    publish_time: datetime,
    time_shift_buffer_depth: float,
    minimum_update_period: float,
    suggested_presentation_delay: float,
    period_starts: Mapping[int, datetime] | None = None,
) -> str:
    """The dynamic MPD of a live window (every segment dated); see the module docstring.
    ``period_starts``: when a Period began, by discontinuity sequence number (the window's
    first Period's start otherwise follows its first listed segment)."""
    return render_mpd(
        dynamic_mpd(
            master,
            playlists,
            timings,
            availability_start=availability_start,
            publish_time=publish_time,
            time_shift_buffer_depth=time_shift_buffer_depth,
            minimum_update_period=minimum_update_period,
            suggested_presentation_delay=suggested_presentation_delay,
            period_starts=period_starts,
        )
    )


def static_mpd(
    master: hls.MasterPlaylist,
    playlists: Mapping[str, hls.MediaPlaylist],
    timings: Mapping[str, TrackTiming],
) -> Mpd:
    """The model :func:`vod_mpd` renders."""
    tracks = dash_tracks.tracks(master, playlists, timings, trim=False)
    for track in tracks:
        if not track.playlist.endlist:
            raise InvalidPlaylist("endlist", f"{track.key!r} may still grow: no EXT-X-ENDLIST")
    ref = tracks[0]
    scale = ref.timing.timescale
    periods = []
    for first, end, number in _bounds(ref.playlist, dynamic=False):
        start = _seconds(Fraction(ref.ticks[first] - ref.ticks[0], scale))
        periods.append(_period(tracks, first, end, number, start, lambda t, k: t.ticks[k]))
    total = _seconds(Fraction(ref.ticks[-1] - ref.ticks[0], scale))
    longest = timedelta(seconds=hls.target_duration(ref.playlist.segments))
    return Mpd(
        type="static",
        profiles=(PROFILE_LIVE,),
        min_buffer_time=longest,
        max_segment_duration=longest,
        media_presentation_duration=total,
        periods=tuple(periods),
    )


def dynamic_mpd(
    master: hls.MasterPlaylist,
    playlists: Mapping[str, hls.MediaPlaylist],
    timings: Mapping[str, TrackTiming],
    *,
    availability_start: datetime,
    publish_time: datetime,
    time_shift_buffer_depth: float,
    minimum_update_period: float,
    suggested_presentation_delay: float,
    period_starts: Mapping[int, datetime] | None = None,
) -> Mpd:
    """The model :func:`live_mpd` renders."""
    date_time(availability_start, "availability_start")  # checks it is zoned
    date_time(publish_time, "publish_time")
    if publish_time < availability_start:
        raise InvalidPlaylist("publish_time", "is before availability_start")
    lengths = {}
    for field, seconds in (
        ("time_shift_buffer_depth", time_shift_buffer_depth),
        ("minimum_update_period", minimum_update_period),
        ("suggested_presentation_delay", suggested_presentation_delay),
    ):
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidPlaylist(field, f"must be a finite number of seconds >= 0: {seconds}")
        lengths[field] = _seconds(Fraction(seconds))
    tracks = dash_tracks.tracks(master, playlists, timings, trim=True)
    ref = tracks[0]
    starts = period_starts or {}
    periods = []
    for first, end, number in _bounds(ref.playlist, dynamic=True):
        dated = ref.playlist.segments[first].program_date_time
        assert dated is not None  # dash_tracks.tracks checked every live segment is dated
        began = starts.get(number, dated)
        date_time(began, "period_starts")
        if began < availability_start:
            raise InvalidPlaylist(
                "availability_start", f"is after Period p{number}'s start, {began.isoformat()}"
            )
        if began > dated + _PDT_SLACK:
            raise InvalidPlaylist(
                "period_starts", f"Period p{number} starts after its first segment, at {began}"
            )
        lead = dated - began  # how long the Period ran before its first listed segment

        def origin(track: Track, k: int, lead: timedelta = lead) -> int:
            return track.ticks[k] - round(lead.total_seconds() * track.timing.timescale)

        period = _period(tracks, first, end, number, began - availability_start, origin)
        _check_dates(tracks, first, end, began, period)
        periods.append(period)
    longest = timedelta(seconds=max(hls.target_duration(t.playlist.segments) for t in tracks))
    return Mpd(
        type="dynamic",
        profiles=(PROFILE_LIVE,),
        min_buffer_time=longest,
        max_segment_duration=longest,
        availability_start_time=availability_start,
        publish_time=publish_time,
        minimum_update_period=lengths["minimum_update_period"],
        time_shift_buffer_depth=lengths["time_shift_buffer_depth"],
        suggested_presentation_delay=lengths["suggested_presentation_delay"],
        periods=tuple(periods),
        utc_timings=(Descriptor(UTC_DIRECT, date_time(publish_time, "publish_time")),),
    )


def _bounds(playlist: hls.MediaPlaylist, *, dynamic: bool) -> list[tuple[int, int, int]]:
    """The Periods as (first segment index, end index, discontinuity sequence number)."""
    out: list[tuple[int, int, int]] = []
    number = playlist.discontinuity_sequence
    first = 0
    for i, disrupted in zip(*dash_tracks.cuts(playlist), strict=True):
        if not disrupted and dynamic:
            raise InvalidPlaylist(
                "segments.map",
                f"segment {playlist.media_sequence + i}: the init segment changes without "
                "EXT-X-DISCONTINUITY, so a live Period's start could not be kept across reloads",
            )
        out.append((first, i, number))
        number += disrupted
        first = i
    out.append((first, len(playlist.segments), number))
    return out


def _period(
    tracks: Sequence[Track],
    first: int,
    end: int,
    number: int,
    start: timedelta,
    origin: _Origin,
) -> Period:
    """The Period of segments ``first`` to ``end`` of every track; ``origin(track, first)``
    is the track's tick at the Period's start (its presentationTimeOffset)."""
    ident = f"p{number}"
    if first and tracks[0].playlist.segments[first].discontinuity is False:
        ident += f"-{tracks[0].playlist.media_sequence + first}"  # an init change (static)
    video: list[tuple[Representation, SegmentTemplate]] = []
    sets: list[AdaptationSet] = []
    timelines: dict[int, tuple[S, ...]] = {}
    for track in tracks:
        offset = origin(track, first)
        if offset < 0:
            raise InvalidPlaylist("period_starts", f"Period {ident} starts before tick 0")
        init = track.playlist.segments[first].map
        assert init is not None  # checked by _check_segments
        template = SegmentTemplate(
            media=track.template.media,
            initialization=track.template.init(init.uri),
            timescale=track.timing.timescale,
            start_number=track.playlist.media_sequence + first,
            presentation_time_offset=offset,
            timeline=_timeline(track.ticks, first, end, timelines),
        )
        if track.kind == "video":
            video.append((track.rep, template))
            continue
        rendition = track.rendition
        assert rendition is not None
        sets.append(
            AdaptationSet(
                id=len(sets) + 1,
                content_type="audio",
                mime_type="audio/mp4",
                representations=(track.rep,),
                lang=rendition.language,
                label=rendition.name,
                roles=(Descriptor(ROLE_SCHEME, "main"),) if rendition.default else (),
                segment_template=template,
            )
        )
    families: dict[str, list[tuple[Representation, SegmentTemplate]]] = {}
    for rep, template in video:
        families.setdefault(dash_tracks.codec_family(rep), []).append((rep, template))
    video_sets = tuple(_video_set(n, reps) for n, reps in enumerate(families.values()))
    # Audio sets are numbered after the video ones (one per coding format, H.264 first).
    sets = [replace(s, id=s.id + len(video_sets) - 1) for s in sets]
    return Period(id=ident, start=start, adaptation_sets=(*video_sets, *sets))


def _video_set(ident: int, video: list[tuple[Representation, SegmentTemplate]]) -> AdaptationSet:
    """The video Representations of one coding format, sharing their template if alike."""
    shared = video[0][1]
    if all(template == shared for _, template in video):
        reps = tuple(rep for rep, _ in video)
        return AdaptationSet(ident, "video", "video/mp4", reps, segment_template=shared)
    reps = tuple(replace(rep, segment_template=template) for rep, template in video)
    return AdaptationSet(ident, "video", "video/mp4", reps)


def _timeline(
    ticks: tuple[int, ...], first: int, end: int, made: dict[int, tuple[S, ...]]
) -> tuple[S, ...]:
    """Segments ``first`` to ``end`` as S entries: a t on the first, runs of equal d as r
    (``made``: by the id of ``ticks``, those of this Period already made: alike tracks
    share one ticks object, so their templates are equal at a glance)."""
    known = made.get(id(ticks))
    if known is not None:
        return known
    span = ticks[first : end + 1]
    runs = [(d, sum(1 for _ in group)) for d, group in groupby(map(sub, span[1:], span))]
    head = S(d=runs[0][0], r=runs[0][1] - 1, t=span[0])
    made[id(ticks)] = timeline = (head, *[S(d=d, r=n - 1) for d, n in runs[1:]])
    return timeline


def _check_dates(
    tracks: Sequence[Track], first: int, end: int, began: datetime, period: Period
) -> None:
    """Every segment's wall-clock time in the MPD is its PROGRAM-DATE-TIME (as POSIX
    seconds: a double keeps today's dates to a quarter of a microsecond)."""
    origin = began.timestamp()
    slack = _PDT_SLACK.total_seconds()
    checked: list[tuple[int, int, list[datetime]]] = []
    for track, offset in zip(tracks, _offsets(period), strict=True):
        scale = track.timing.timescale
        dated: list[datetime] = list(map(_DATE, track.playlist.segments[first:end]))
        if any(i == id(track.ticks) and o == offset and d == dated for i, o, d in checked):
            continue  # the same dates on the same ticks as a track already checked
        dates = list(map(datetime.timestamp, dated))
        walls = [origin + (t - offset) / scale for t in track.ticks[first:end]]
        if max(map(abs, map(sub, dates, walls))) <= slack:
            checked.append((id(track.ticks), offset, dated))
            continue
        k = next(k for k, (a, b) in enumerate(zip(dates, walls, strict=True)) if abs(a - b) > slack)
        raise InvalidPlaylist(
            "segments.program_date_time",
            f"{track.key!r} segment {track.playlist.media_sequence + first + k} is dated "
            f"{(dates[k] - walls[k]) * 1e3:.1f} ms off its Period's timeline "
            "(durations and dates disagree)",
        )


def _offsets(period: Period) -> list[int]:
    """Each track's presentationTimeOffset in the Period, in track order."""
    out = []
    for aset in period.adaptation_sets:
        for rep in aset.representations:
            template = rep.segment_template or aset.segment_template
            assert template is not None
            out.append(template.presentation_time_offset)
    return out


def _seconds(value: Fraction) -> timedelta:
    """An exact number of seconds as a timedelta, rounded to the microsecond."""
    return timedelta(microseconds=round(value * 1_000_000))


__all__ = ["TrackTiming", "dynamic_mpd", "live_mpd", "static_mpd", "vod_mpd"]
