"""MPDs from the HLS playlists: the DASH view must list the HLS view's segments exactly.

Every MPD here is read back with ``transcode.dash.parse`` (``xml.etree``) and expanded
segment by segment by this module's own SegmentTemplate arithmetic (not the generator's),
then compared with the HLS playlists: numbers, URLs, init URLs per Period, times and
durations to the tick (computed here with exact fractions), Periods at the
discontinuities, and for live MPDs every segment's wall-clock time against its rendered
EXT-X-PROGRAM-DATE-TIME, to the millisecond.
The MPDs were checked once by hand against the ISO/IEC 23009-1 schema (MPEGGroup/DASHSchema
``DASH-MPD.xsd`` at fb663fd, with lxml); the schema is not redistributable here, so these
tests state the structure they need instead (``transcode.dash.parse`` refuses an MPD
missing what players read).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from urllib.parse import urljoin

import pytest

from transcode import hls
from transcode.dash import TrackTiming, dynamic_mpd, live_mpd, static_mpd, vod_mpd
from transcode.dash.model import Mpd, render_mpd, timeline_ticks
from transcode.dash.parse import MAX_MPD_BYTES, parse_mpd
from transcode.dash.tracks import frame_rate
from transcode.errors import InvalidPlaylist
from transcode.hls_parse import parse_media

T0 = datetime(2026, 11, 29, 20, 0, 0, 120000, tzinfo=UTC)
AST = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
NAIVE = datetime(2026, 11, 29, 21)  # noqa: DTZ001  # refused: a date without its zone
VIDEO = ("1080p/index.m3u8", "720p/index.m3u8", "360p/index.m3u8")
AUDIO = ("audio-zh/index.m3u8", "audio-en/index.m3u8")
KEYS = (*VIDEO, *AUDIO)
# 29.97 fps video: segments of 60 and 59 frames (2.002 s and 1.968633 s) at 90 kHz; AAC at
# 48 kHz: segments of 94 and 93 frames of 1024 samples.
VIDEO_DURATIONS = (2.002, 1.9686333333333332, 2.002, 2.002)
AUDIO_DURATIONS = (94 * 1024 / 48000, 93 * 1024 / 48000, 94 * 1024 / 48000)


@dataclass(frozen=True)
class Window:
    """Aligned HLS playlists of every track and their timings (what the packager has)."""

    master: hls.MasterPlaylist
    playlists: dict[str, hls.MediaPlaylist]
    timings: dict[str, TrackTiming]


def master() -> hls.MasterPlaylist:
    variants = [
        hls.Variant(
            uri,
            6_000_000 >> i,
            5_000_000 >> i,
            f"avc1.6400{0x28 - i:02x},mp4a.40.2",
            (1920 >> i, 1080 >> i),
            29.97,
            audio="audio",
        )
        for i, uri in enumerate(VIDEO)
    ]
    renditions = [
        hls.Rendition("AUDIO", "audio", "普通话 & <main>", AUDIO[0], "zh", True, True, 2),
        hls.Rendition("AUDIO", "audio", "English", AUDIO[1], "en", False, True, 6),
        hls.Rendition("SUBTITLES", "subs", "English", "subs-en/index.m3u8", "en", False, False),
    ]
    return hls.MasterPlaylist(variants=variants, renditions=renditions)


def playlist(
    key: str,
    n: int,
    *,
    first: int = 0,
    cuts: tuple[int, ...] = (),
    dated: bool = False,
    uri: str = "seg_{:05d}.m4s",
    vod: bool = True,
) -> hls.MediaPlaylist:
    """``n`` CMAF segments numbered from ``first``, a discontinuity and a new init at each of
    ``cuts`` (sequence numbers), dated from T0 by their durations when ``dated``. Audio has
    its own durations (AAC frames) in a VOD playlist; a live window lists every track with
    the video's durations and dates, as ``transcode.live.window`` does."""
    durations = AUDIO_DURATIONS if key in AUDIO and not dated else VIDEO_DURATIONS
    segments = []
    # Dates are the sequence number's whatever the window: T0 is segment 0's.
    elapsed = sum((Fraction(durations[q % len(durations)]) for q in range(first)), Fraction(0))
    for i in range(n):
        seq = first + i
        duration = durations[seq % len(durations)]
        epoch = sum(1 for c in cuts if c <= seq)
        segments.append(
            hls.Segment(
                uri=uri.format(seq),
                duration=duration,
                program_date_time=T0 + timedelta(seconds=float(elapsed) + 0.5 * epoch)
                if dated
                else None,
                discontinuity=seq in cuts and i > 0,
                map=hls.SegmentMap(f"init_{epoch}.mp4"),
            )
        )
        elapsed += Fraction(duration)
    return hls.MediaPlaylist(
        segments=tuple(segments),
        media_sequence=first,
        discontinuity_sequence=7 + sum(1 for c in cuts if c <= first),
        playlist_type="VOD" if vod else None,
        endlist=vod,
    )


def window(n: int = 9, **kwargs: object) -> Window:
    """Every track's playlist and timing. Media time runs on from segment 0 (3003 ticks of
    video, 1024 of audio), across discontinuities too: each track's first listed segment's
    tfdt is that plus its durations before it, as the packager writes it."""
    playlists = {key: playlist(key, n, **kwargs) for key in KEYS}  # type: ignore[arg-type]
    first = int(kwargs.get("first", 0))  # type: ignore[call-overload]
    timings = {}
    for key, p in playlists.items():
        scale, zero, rate = (48000, 1024, 130_000) if key in AUDIO else (90000, 3003, 0)
        durations = (
            VIDEO_DURATIONS if p.segments[0].program_date_time or key in VIDEO else AUDIO_DURATIONS
        )
        before = sum((Fraction(durations[q % len(durations)]) for q in range(first)), Fraction(0))
        timings[key] = TrackTiming(scale, zero + round(before * scale), bandwidth=rate)
    return Window(master(), playlists, timings)


def live(w: Window, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "availability_start": AST,
        "publish_time": T0 + timedelta(minutes=1),
        "time_shift_buffer_depth": 7200.0,
        "minimum_update_period": 2.0,
        "suggested_presentation_delay": 6.0,
    } | overrides
    return live_mpd(w.master, w.playlists, w.timings, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Listed:
    """One segment as a DASH player would fetch and place it."""

    period: str
    number: int
    url: str
    init: str
    t: int
    d: int
    timescale: int
    wall: Fraction  # seconds on the MPD timeline (static: from 0; dynamic: from the AST)


def expand(mpd: Mpd) -> dict[str, list[Listed]]:
    """Every Representation's segments, by Representation id, in order (ISO/IEC 23009-1
    section 5.3.9.4.4 identifiers; section 5.3.9.6 timeline)."""
    out: dict[str, list[Listed]] = {}
    for period in mpd.periods:
        start = Fraction(period.start // timedelta(microseconds=1), 1_000_000)
        for aset in period.adaptation_sets:
            for rep in aset.representations:
                tpl = rep.segment_template or aset.segment_template
                assert tpl is not None
                pto = tpl.presentation_time_offset
                for i, (t, d) in enumerate(timeline_ticks(tpl.timeline, pto)):
                    number = tpl.start_number + i
                    out.setdefault(rep.id, []).append(
                        Listed(
                            period.id,
                            number,
                            substitute(tpl.media, rep.id, number),
                            substitute(tpl.initialization, rep.id, number),
                            t,
                            d,
                            tpl.timescale,
                            start + Fraction(t - pto, tpl.timescale),
                        )
                    )
    return out


def substitute(template: str, ident: str, number: int) -> str:
    def one(match: re.Match[str]) -> str:
        name, width = match.group(1), match.group(2)
        if name == "":
            return "$"
        if name == "RepresentationID":
            return ident
        return f"{number:0{int(width or 0)}d}"

    return re.sub(r"\$(RepresentationID|Number|)(?:%0(\d+)d)?\$", one, template)


def expected_ticks(p: hls.MediaPlaylist, timing: TrackTiming) -> list[tuple[int, int]]:
    """(t, d) of every segment from exact sums of the durations (each t rounded once)."""
    total = Fraction(0)
    starts = [timing.first_start]
    for segment in p.segments:
        total += Fraction(segment.duration)
        starts.append(timing.first_start + round(total * timing.timescale))
    return [(starts[k], starts[k + 1] - starts[k]) for k in range(len(p.segments))]


def assert_same_segments(w: Window, mpd: Mpd) -> dict[str, list[Listed]]:
    """The DASH view lists each HLS playlist's segments (cut to what all share) exactly."""
    listed = expand(mpd)
    first = max(p.media_sequence for p in w.playlists.values())
    for key in KEYS:
        p, timing = w.playlists[key], w.timings[key]
        ident = key.split("/")[0]
        ticks = expected_ticks(p, timing)
        skip = first - p.media_sequence
        got = listed[ident]
        assert len(got) == len(p.segments) - skip
        number = p.discontinuity_sequence
        for k, segment in enumerate(p.segments):
            number += segment.discontinuity
            if k < skip:
                continue
            seg = got[k - skip]
            assert seg.number == p.media_sequence + k
            assert seg.url == urljoin(key, segment.uri)
            assert segment.map is not None
            assert seg.init == urljoin(key, segment.map.uri)
            assert (seg.t, seg.d) == ticks[k]
            assert seg.timescale == timing.timescale
            assert seg.period.split("-")[0] == f"p{number}"
    return listed


def test_vod_mpd_lists_the_hls_segments_in_one_period() -> None:
    w = window()
    mpd = parse_mpd(vod_mpd(w.master, w.playlists, w.timings))
    listed = assert_same_segments(w, mpd)
    assert mpd.type == "static"
    assert [p.id for p in mpd.periods] == ["p7"]
    assert mpd.periods[0].start == timedelta(0)
    total = sum(Fraction(s.duration) for s in w.playlists[VIDEO[0]].segments)
    assert mpd.media_presentation_duration == timedelta(microseconds=round(total * 10**6))
    assert listed["1080p"][0].wall == 0  # presentationTimeOffset is the first t
    video, zh, en = mpd.periods[0].adaptation_sets
    # The rungs share one template; the subtitles are left out.
    assert video.segment_template is not None
    assert video.segment_template.media == "$RepresentationID$/seg_$Number%05d$.m4s"
    assert [(r.id, r.codecs, r.width, r.frame_rate) for r in video.representations] == [
        ("1080p", "avc1.640028", 1920, "30000/1001"),
        ("720p", "avc1.640027", 960, "30000/1001"),
        ("360p", "avc1.640026", 480, "30000/1001"),
    ]
    assert (zh.lang, zh.label, [r.value for r in zh.roles]) == ("zh", "普通话 & <main>", ["main"])
    assert (en.lang, en.roles) == ("en", ())
    zh_rep, en_rep = zh.representations[0], en.representations[0]
    assert (zh_rep.codecs, zh_rep.audio_sampling_rate, zh_rep.bandwidth) == (
        "mp4a.40.2",
        48000,
        130_000,
    )
    assert zh_rep.audio_channels is not None
    assert zh_rep.audio_channels.value == "2"
    assert en_rep.audio_channels is not None
    assert en_rep.audio_channels.value == "6"


def test_vod_mpd_starts_a_period_at_each_discontinuity() -> None:
    w = window(12, cuts=(4, 9))
    mpd = parse_mpd(vod_mpd(w.master, w.playlists, w.timings))
    listed = assert_same_segments(w, mpd)
    assert [p.id for p in mpd.periods] == ["p7", "p8", "p9"]
    # Each Period starts where the HLS durations before its first segment add up to, and
    # its init segment is the one EXT-X-MAP names there.
    ref = w.playlists[VIDEO[0]].segments
    for period, first in zip(mpd.periods, (0, 4, 9), strict=True):
        elapsed = sum(Fraction(s.duration) for s in ref[:first])
        assert period.start == timedelta(microseconds=round(elapsed * 10**6))
        tpl = period.adaptation_sets[0].segment_template
        assert tpl is not None
        assert tpl.start_number == first
        assert (
            tpl.presentation_time_offset
            == expected_ticks(w.playlists[VIDEO[0]], w.timings[VIDEO[0]])[first][0]
        )
    assert {s.init for s in listed["720p"] if s.period == "p8"} == {"720p/init_1.mp4"}
    # Presentation times run on across the Periods with no gap or overlap.
    video = listed["1080p"]
    for a, b in pairwise(video):
        assert abs(b.wall - (a.wall + Fraction(a.d, a.timescale))) < Fraction(1, 10**6)


def test_a_new_init_without_a_discontinuity_starts_a_static_period() -> None:
    w = window(6)
    w.playlists.update(
        {
            key: replace(
                p,
                segments=tuple(
                    replace(s, map=hls.SegmentMap("init_b.mp4")) if i >= 3 else s
                    for i, s in enumerate(p.segments)
                ),
            )
            for key, p in w.playlists.items()
        }
    )
    mpd = parse_mpd(vod_mpd(w.master, w.playlists, w.timings))
    assert [p.id for p in mpd.periods] == ["p7", "p7-3"]
    assert_same_segments(w, mpd)


def test_rungs_with_their_own_timeline_get_their_own_template() -> None:
    w = window()
    w.timings[VIDEO[2]] = TrackTiming(30000, 1001)
    mpd = parse_mpd(vod_mpd(w.master, w.playlists, w.timings))
    video = mpd.periods[0].adaptation_sets[0]
    assert video.segment_template is None
    assert all(r.segment_template is not None for r in video.representations)
    assert_same_segments(w, mpd)


def test_live_mpd_dates_every_segment_as_its_program_date_time() -> None:
    w = window(40, first=1000, cuts=(1010, 1031), dated=True, uri="{:010d}.m4s", vod=False)
    mpd = parse_mpd(live(w))
    listed = assert_same_segments(w, mpd)
    assert mpd.type == "dynamic"
    assert [p.id for p in mpd.periods] == ["p7", "p8", "p9"]
    assert mpd.availability_start_time == AST
    assert mpd.time_shift_buffer_depth == timedelta(hours=2)
    assert mpd.minimum_update_period == timedelta(seconds=2)
    assert mpd.suggested_presentation_delay == timedelta(seconds=6)
    assert [(u.scheme_id_uri, u.value) for u in mpd.utc_timings] == [
        ("urn:mpeg:dash:utc:direct:2014", "2026-11-29T20:01:00.120000Z")
    ]
    tpl = mpd.periods[0].adaptation_sets[0].segment_template
    assert tpl is not None
    assert tpl.media == "$RepresentationID$/$Number%010d$.m4s"
    # The wall-clock time a DASH player gives each segment is the HLS playlist's
    # PROGRAM-DATE-TIME as rendered (to the millisecond), in every track.
    for key in KEYS:
        hls_view = parse_media(hls.render_media(w.playlists[key]))
        for seg, segment in zip(listed[key.split("/")[0]], hls_view.segments, strict=True):
            wall = AST + timedelta(microseconds=round(seg.wall * 10**6))
            assert segment.program_date_time is not None
            assert _ms(wall) == _ms(segment.program_date_time), (key, seg.number)


def _ms(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def test_live_periods_keep_their_start_and_id_as_the_window_slides() -> None:
    long = window(60, first=1000, cuts=(1010, 1031), dated=True, uri="{:010d}.m4s", vod=False)
    began = {
        number: long.playlists[VIDEO[0]].segments[first - 1000].program_date_time
        for number, first in ((7, 1000), (8, 1010), (9, 1031))
    }
    seen: dict[str, tuple[timedelta, tuple[int, ...]]] = {}
    for slide in (0, 5, 10, 15, 31, 35):
        w = window(
            25, first=1000 + slide, cuts=(1010, 1031), dated=True, uri="{:010d}.m4s", vod=False
        )
        mpd = parse_mpd(live(w, period_starts=began))
        assert_same_segments(w, mpd)
        for period in mpd.periods:
            ptos = tuple(
                (r.segment_template or a.segment_template).presentation_time_offset  # type: ignore[union-attr]
                for a in period.adaptation_sets
                for r in a.representations
            )
            start, known = seen.setdefault(period.id, (period.start, ptos))
            assert period.start == start
            # Once the Period's first segment has left the window its offset is worked out
            # from dates kept to the microsecond: it may move by a tick (21 us at 48 kHz).
            assert all(abs(a - b) <= 1 for a, b in zip(ptos, known, strict=True))
    assert sorted(seen) == ["p7", "p8", "p9"]
    # Without the Periods' starts, the window's first Period starts at its first segment.
    w = window(25, first=1005, cuts=(1010,), dated=True, uri="{:010d}.m4s", vod=False)
    first = parse_mpd(live(w)).periods[0]
    assert AST + first.start == w.playlists[VIDEO[0]].segments[0].program_date_time


def test_live_mpd_lists_the_segments_every_track_has() -> None:
    w = window(12, first=500, cuts=(505,), dated=True, uri="{:010d}.m4s", vod=False)
    # A rung missed segments 500-502 (its run starts again) and audio lacks the newest.
    late = w.playlists[VIDEO[1]]
    w.playlists[VIDEO[1]] = replace(
        late,
        segments=(replace(late.segments[3], discontinuity=False), *late.segments[4:]),
        media_sequence=503,
    )
    zh = w.playlists[AUDIO[0]]
    w.playlists[AUDIO[0]] = replace(zh, segments=zh.segments[:-1])
    mpd = parse_mpd(live(w))
    listed = expand(mpd)
    for ident in ("1080p", "720p", "360p", "audio-zh", "audio-en"):
        assert [s.number for s in listed[ident]] == list(range(503, 511))
    assert [p.id for p in mpd.periods] == ["p7", "p8"]


def test_mpd_reads_back_as_rendered() -> None:
    w = window(12, first=20, cuts=(25,), dated=True, uri="{:010d}.m4s", vod=False)
    for model in (
        static_mpd(
            w.master, {k: replace(p, endlist=True) for k, p in w.playlists.items()}, w.timings
        ),
        dynamic_mpd(
            w.master,
            w.playlists,
            w.timings,
            availability_start=AST,
            publish_time=T0,
            time_shift_buffer_depth=60.5,
            minimum_update_period=1.0,
            suggested_presentation_delay=4.25,
        ),
    ):
        assert parse_mpd(render_mpd(model)) == model


@pytest.mark.parametrize(
    ("key", "uri", "first", "media"),
    [
        pytest.param(
            "720p/index.m3u8",
            "seg_{:05d}.m4s",
            0,
            "$RepresentationID$/seg_$Number%05d$.m4s",
            id="vod",
        ),
        pytest.param(
            "720p/index.m3u8",
            "{:010d}.m4s",
            123456,
            "$RepresentationID$/$Number%010d$.m4s",
            id="live",
        ),
        pytest.param(
            "720p/index.m3u8", "{}.m4s", 98, "$RepresentationID$/$Number$.m4s", id="unpadded"
        ),
        pytest.param(
            "720p/index.m3u8?from=1&to=2",
            "/archive/ch1/720p/{:010d}.m4s?sig=a$b",
            42,
            "/archive/ch1/$RepresentationID$/$Number%010d$.m4s?sig=a$$b",
            id="absolute-with-query",
        ),
        pytest.param(
            "ch9/hd/index.m3u8", "../ts/{:06d}.m4s", 7, "ch9/ts/$Number%06d$.m4s", id="dot-dot"
        ),
    ],
)
def test_segment_uris_become_one_number_template(
    key: str, uri: str, first: int, media: str
) -> None:
    segments = tuple(
        hls.Segment(uri.format(n), 2.0, map=hls.SegmentMap("init.mp4"))
        for n in range(first, first + 4)
    )
    variant = hls.Variant(key, 1_000_000, 900_000, "avc1.64001f", (640, 360), 25.0)
    mpd = parse_mpd(
        vod_mpd(
            hls.MasterPlaylist([variant]),
            {key: hls.MediaPlaylist(segments, media_sequence=first, endlist=True)},
            {key: TrackTiming(90000, 0)},
        )
    )
    video = mpd.periods[0].adaptation_sets[0]
    assert video.segment_template is not None
    assert video.segment_template.media == media
    urls = [s.url for s in expand(mpd)[video.representations[0].id]]
    assert urls == [urljoin(key, s.uri) for s in segments]


@pytest.mark.parametrize(
    ("fps", "text"),
    [
        (25.0, "25"),
        (29.97, "30000/1001"),
        (23.976, "24000/1001"),
        (59.94, "60000/1001"),
        (12.5, "25/2"),
        (50.0, "50"),
    ],
)
def test_frame_rates_are_rationals(fps: float, text: str) -> None:
    assert frame_rate(fps) == text


def _variant_only(w: Window, **changes: object) -> Window:
    return Window(replace(w.master, **changes), w.playlists, w.timings)  # type: ignore[arg-type]


Breaks = Callable[[Window], Window]
PlaylistChange = Callable[[str, hls.MediaPlaylist], hls.MediaPlaylist]


def _each(w: Window, change: PlaylistChange) -> Window:
    return Window(w.master, {k: change(k, p) for k, p in w.playlists.items()}, w.timings)


def _segments(change: Callable[[int, hls.Segment], hls.Segment]) -> PlaylistChange:
    return lambda k, p: replace(p, segments=tuple(change(i, s) for i, s in enumerate(p.segments)))


BAD_STATIC = [
    pytest.param(
        lambda w: _each(
            w, _segments(lambda i, s: replace(s, uri=s.uri.replace(".m4s", ".ts"), map=None))
        ),
        "segments.map",
        id="mpeg-ts-segments",
    ),
    pytest.param(
        lambda w: _each(
            w, _segments(lambda i, s: replace(s, key=hls.SegmentKey("https://k/1", i)))
        ),
        "segments.key",
        id="aes-128-whole-segments",
    ),
    pytest.param(
        lambda w: _each(w, _segments(lambda i, s: replace(s, byterange=(100, 0)))),
        "segments.byterange",
        id="byte-ranges",
    ),
    pytest.param(
        lambda w: _each(
            w, _segments(lambda i, s: replace(s, map=hls.SegmentMap("i.mp4", (800, 0))))
        ),
        "segments.byterange",
        id="ranged-init",
    ),
    pytest.param(
        lambda w: _each(w, _segments(lambda i, s: replace(s, uri=f"seg_{i + (i > 3):05d}.m4s"))),
        "segments.uri",
        id="uri-not-its-number",
    ),
    pytest.param(
        lambda w: _each(w, _segments(lambda i, s: replace(s, uri=f"part-{i % 2}.m4s"))),
        "segments.uri",
        id="uri-without-number",
    ),
    pytest.param(lambda w: _each(w, lambda k, p: replace(p, segments=())), "segments", id="empty"),
    pytest.param(
        lambda w: _each(w, _segments(lambda i, s: replace(s, duration=0.0) if i == 2 else s)),
        "segments.duration",
        id="zero-duration",
    ),
    pytest.param(
        lambda w: Window(w.master, w.playlists, w.timings | {AUDIO[1]: TrackTiming(25, 0, 1)}),
        "timings.timescale",
        id="audio-timescale-too-coarse",
    ),
    pytest.param(
        lambda w: Window(w.master, w.playlists, w.timings | {VIDEO[0]: TrackTiming(10, 0)}),
        "timings.timescale",
        id="video-timescale-too-coarse",
    ),
    pytest.param(
        lambda w: Window(w.master, w.playlists, w.timings | {VIDEO[0]: TrackTiming(0, 0)}),
        "timings.timescale",
        id="zero-timescale",
    ),
    pytest.param(
        lambda w: Window(w.master, w.playlists, w.timings | {VIDEO[0]: TrackTiming(90000, -1)}),
        "timings.first_start",
        id="negative-first-start",
    ),
    pytest.param(
        lambda w: Window(w.master, w.playlists, w.timings | {AUDIO[0]: TrackTiming(48000, 0)}),
        "timings.bandwidth",
        id="audio-bandwidth-unknown",
    ),
    pytest.param(
        lambda w: Window(
            w.master, {k: p for k, p in w.playlists.items() if k != AUDIO[1]}, w.timings
        ),
        "playlists",
        id="missing-playlist",
    ),
    pytest.param(
        lambda w: Window(
            w.master, w.playlists, {k: t for k, t in w.timings.items() if k != VIDEO[2]}
        ),
        "timings",
        id="missing-timing",
    ),
    pytest.param(
        lambda w: _each(
            w, lambda k, p: replace(p, segments=p.segments[:-1]) if k == VIDEO[1] else p
        ),
        "playlists",
        id="rung-not-aligned",
    ),
    pytest.param(
        lambda w: _each(w, lambda k, p: replace(p, endlist=False)),
        "endlist",
        id="still-growing",
    ),
    pytest.param(
        lambda w: _variant_only(
            w, variants=[replace(v, codecs="mp4a.40.2") for v in w.master.variants]
        ),
        "variants.codecs",
        id="variant-without-video-codec",
    ),
    pytest.param(
        lambda w: _variant_only(
            w, variants=[replace(v, codecs="avc1.64001f") for v in w.master.variants]
        ),
        "variants.codecs",
        id="audio-codec-unknown",
    ),
    pytest.param(
        lambda w: _variant_only(w, variants=[replace(v, audio=None) for v in w.master.variants]),
        "variants.codecs",
        id="audio-muxed-into-the-rungs",
    ),
    pytest.param(
        lambda w: _variant_only(
            w, renditions=[replace(w.master.renditions[0], name="bad\x01name")]
        ),
        "adaptation_sets.label",
        id="character-xml-cannot-carry",
    ),
]


@pytest.mark.parametrize(("breaks", "field"), BAD_STATIC)
def test_vod_mpd_refuses(breaks: Breaks, field: str) -> None:
    w = window()
    bad = breaks(w)
    with pytest.raises(InvalidPlaylist) as caught:
        vod_mpd(bad.master, bad.playlists, bad.timings)
    assert caught.value.field == field
    assert vod_mpd(w.master, w.playlists, w.timings)  # the good input still renders


def _later(segment: hls.Segment) -> datetime:
    assert segment.program_date_time is not None
    return segment.program_date_time + timedelta(seconds=1)


def _live_window() -> Window:
    return window(12, first=300, cuts=(306,), dated=True, uri="{:010d}.m4s", vod=False)


BAD_LIVE = [
    pytest.param(
        lambda w: _each(
            w, _segments(lambda i, s: replace(s, program_date_time=None) if i == 4 else s)
        ),
        {},
        "segments.program_date_time",
        id="undated-segment",
    ),
    pytest.param(
        lambda w: _each(
            w,
            _segments(lambda i, s: replace(s, program_date_time=_later(s)) if i == 3 else s),
        ),
        {},
        "segments.program_date_time",
        id="date-jumps-inside-a-period",
    ),
    pytest.param(
        lambda w: _each(
            w, _segments(lambda i, s: replace(s, map=hls.SegmentMap("other.mp4")) if i >= 2 else s)
        ),
        {},
        "segments.map",
        id="init-change-without-discontinuity",
    ),
    pytest.param(
        lambda w: w,
        {"publish_time": AST - timedelta(1)},
        "publish_time",
        id="published-before-start",
    ),
    pytest.param(
        lambda w: w,
        {"availability_start": T0 + timedelta(hours=1), "publish_time": T0 + timedelta(hours=2)},
        "availability_start",
        id="segments-before-availability-start",
    ),
    pytest.param(
        lambda w: w,
        {"time_shift_buffer_depth": -1.0},
        "time_shift_buffer_depth",
        id="negative-depth",
    ),
    pytest.param(
        lambda w: w,
        {"minimum_update_period": float("nan")},
        "minimum_update_period",
        id="nan-period",
    ),
    pytest.param(lambda w: w, {"publish_time": NAIVE}, "publish_time", id="naive-date"),
    pytest.param(
        lambda w: w,
        {"period_starts": {7: T0 + timedelta(hours=1)}},
        "period_starts",
        id="period-starting-after-its-segments",
    ),
    pytest.param(
        lambda w: _each(w, lambda k, p: replace(p, media_sequence=p.media_sequence + 100)),
        {},
        "segments.uri",
        id="numbers-not-the-uris",
    ),
]


@pytest.mark.parametrize(("breaks", "overrides", "field"), BAD_LIVE)
def test_live_mpd_refuses(breaks: Breaks, overrides: dict[str, object], field: str) -> None:
    w = _live_window()
    bad = breaks(w)
    with pytest.raises(InvalidPlaylist) as caught:
        live(bad, **overrides)
    assert caught.value.field == field
    assert live(w)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("<MPD", "mpd", id="malformed"),
        pytest.param(
            '<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY a "b">]><MPD/>', "mpd", id="doctype"
        ),
        pytest.param("<html/>", "mpd", id="not-an-mpd"),
        pytest.param(" " * (MAX_MPD_BYTES + 1), "mpd", id="too-large"),
        pytest.param(
            f'<MPD xmlns="{"urn:mpeg:dash:schema:mpd:2011"}" profiles="x"/>',
            "MPD@minBufferTime",
            id="no-min-buffer",
        ),
        pytest.param(
            f'<MPD xmlns="{"urn:mpeg:dash:schema:mpd:2011"}" profiles="x" minBufferTime="2 s"/>',
            "MPD@minBufferTime",
            id="bad-duration",
        ),
    ],
)
def test_parse_mpd_refuses(text: str, field: str) -> None:
    with pytest.raises(InvalidPlaylist) as caught:
        parse_mpd(text)
    assert caught.value.field == field


def test_measured_track_bandwidth_replaces_the_variants() -> None:
    w = window()
    w.timings[VIDEO[0]] = replace(w.timings[VIDEO[0]], bandwidth=5_200_000)
    mpd = parse_mpd(vod_mpd(w.master, w.playlists, w.timings))
    reps = mpd.periods[0].adaptation_sets[0].representations
    # Measured: the track alone; else the variant's BANDWIDTH, which counts its audio too.
    assert [r.bandwidth for r in reps] == [5_200_000, 3_000_000, 1_500_000]


def test_playlists_in_directories_of_one_name_get_positional_ids() -> None:
    keys = ("a/hd/index.m3u8", "b/hd/index.m3u8")
    variants = [
        hls.Variant(key, 2_000_000 >> i, 1_000_000 >> i, "avc1.64001f", (640, 360), 25.0)
        for i, key in enumerate(keys)
    ]
    segments = tuple(
        hls.Segment(f"{n:05d}.m4s", 2.0, map=hls.SegmentMap("init.mp4")) for n in range(3)
    )
    p = hls.MediaPlaylist(segments, endlist=True)
    mpd = parse_mpd(
        vod_mpd(
            hls.MasterPlaylist(variants),
            dict.fromkeys(keys, p),
            dict.fromkeys(keys, TrackTiming(90000, 0)),
        )
    )
    listed = expand(mpd)
    assert sorted(listed) == ["r0", "r1"]
    assert [s.url for s in listed["r1"]] == ["b/hd/00000.m4s", "b/hd/00001.m4s", "b/hd/00002.m4s"]
