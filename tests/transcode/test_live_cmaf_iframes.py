"""Live CMAF I-frame playlists: each CMAF video track's keyframe fragments as byte ranges.

A real TS segment is remuxed and written as live CMAF does; its I-frames are read back
from the file (each range starts with a ``moof`` whose first sample is a sync sample, and
FFmpeg decodes init + range to one keyframe). The playlists' numbering, window,
discontinuities and master entries are checked on ``LiveCmaf`` directly, and a real origin
serves them. A real live channel is run in ``test_live_cmaf.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.iframe_ranges import decoded_frames
from tests.support.media import ffmpeg
from transcode import hls, hls_parse
from transcode.archive import RungInfo
from transcode.fmp4 import MalformedMp4, read_init, read_segment
from transcode.live.cmaf import (
    AUDIO_TRACK,
    CMAF_IFRAMES,
    CMAF_MASTER,
    CMAF_PLAYLIST,
    CmafSegment,
    LiveCmaf,
    Picture,
    remux_files,
)
from transcode.live.cmaf_iframes import scan_media
from transcode.live.iframes import MAX_PER_SEGMENT, run_base, segment_iframes
from transcode.live.window import Window, cmaf_name
from transcode.measure import Keyframe, SegmentScan, bits_per_second
from transcode.origin import start_origin
from transcode.settings import OriginSettings

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HZ = 90_000
VIDEO = "avc1.42c00d"
RUNGS = [RungInfo("90p", f"{VIDEO},mp4a.40.2", 160, 90, 25.0)]
INITS = {"90p": "init-00000001.mp4", AUDIO_TRACK: "init-000000a1.mp4"}


# -- a real segment, written as live CMAF writes it ---------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CmafSegment]]:
    """A 3 s MPEG-TS segment (25 fps, a keyframe every second) written as CMAF segment 7."""
    base = tmp_path_factory.mktemp("cmaf-iframes")
    ts = base / "0000000007.ts"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"),
        *("-keyint_min", "25", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k"),
        *("-f", "mpegts", str(ts)),
    )
    channel = base / "live" / "cm1"
    made = remux_files(
        channel, {"90p": ts}, {"90p": Picture(320, 180)},
        sequence=7, start_seconds=T0.timestamp(), duration=3.0, keep=6,
    )  # fmt: skip
    return channel, made


def test_a_written_segments_keyframe_fragments_are_its_iframes(
    written: tuple[Path, dict[str, CmafSegment]], tmp_path: Path
) -> None:
    channel, made = written
    video = made["90p"]
    assert made[AUDIO_TRACK].scan is None  # audio has no I-frames
    assert video.scan is not None

    frames = segment_iframes(video.scan, 3.0, hz=video.timescale, origin=video.start)

    assert [f.at for f in frames] == [0.0, 1.0, 2.0]
    assert [f.duration for f in frames] == [1.0, 1.0, 1.0]
    data = (channel / "90p" / cmaf_name(7)).read_bytes()
    init = (channel / "90p" / video.init).read_bytes()
    fragments = {f.offset: f for f in read_segment(data, read_init(init)).fragments}
    for frame in frames:
        piece = data[frame.offset : frame.offset + frame.length]
        assert piece[4:8] == b"moof"
        # The range is its fragment's moof up to the end of its first sample, a sync sample.
        fragment = fragments[frame.offset]
        assert fragment.starts_with_sync
        assert frame.offset + frame.length == fragment.first_sample_end
        assert decoded_frames(init, piece, tmp_path) == [(1, "I")]


@pytest.mark.parametrize(
    ("media", "match"),
    [
        pytest.param(b"\x00\x00\x00\x40moof" + b"\x00" * 8, "claims 64 bytes", id="truncated"),
        pytest.param(b"\x00\x00\x00\x10moof\x00\x00\x00\x08traf", "lacks tfhd", id="no-trun"),
        pytest.param(b"garbage!", "claims", id="not-mp4"),
    ],
)
def test_bytes_that_are_not_a_media_segment_are_refused(
    written: tuple[Path, dict[str, CmafSegment]], media: bytes, match: str
) -> None:
    channel, made = written
    (track,) = read_init((channel / "90p" / made["90p"].init).read_bytes())

    with pytest.raises(MalformedMp4, match=match):
        scan_media("x.m4s", media, track)


def test_a_segment_with_no_fragment_has_no_iframes(
    written: tuple[Path, dict[str, CmafSegment]],
) -> None:
    channel, made = written
    (track,) = read_init((channel / "90p" / made["90p"].init).read_bytes())

    assert scan_media("x.m4s", b"\x00\x00\x00\x08styp", track).keyframes == ()


# -- the playlists: numbering, window, discontinuities -------------------------------------


def _facts(seq: int, ats: tuple[float, ...] | None) -> dict[str, CmafSegment]:
    """Segment ``seq``'s CMAF facts: video with keyframes at ``ats`` seconds (None: the
    video track missed it), and audio."""
    start = round((T0.timestamp() + 2 * seq) * HZ)
    out = {AUDIO_TRACK: CmafSegment(300, INITS[AUDIO_TRACK], "mp4a.40.2", 48_000, 0)}
    if ats is not None:
        keys = tuple(
            Keyframe(100 + 1000 * n, 900, start + round(at * HZ)) for n, at in enumerate(ats)
        )
        scan = SegmentScan(cmaf_name(seq), 5000, keys, VIDEO, True)
        out["90p"] = CmafSegment(5000, INITS["90p"], VIDEO, HZ, start, scan)
    return out


def _slide(
    window: Window,
    state: LiveCmaf,
    seq: int,
    ats: tuple[float, ...] | None = (0.0, 1.0),
    *,
    disc: bool = False,
    length: int = 3,
) -> None:
    """Publish segment ``seq`` (2 s) with its CMAF facts."""
    start = T0 + timedelta(seconds=2 * seq)
    at = state.position(start)
    made = _facts(seq, ats)
    window.slide(seq, 2.0, start, disc, {"90p": 10_000}, None, length=length,
                 cmaf={t: (c.size, c.init) for t, c in made.items()})  # fmt: skip
    state.published(window, at, 2.0, start, made)


def _texts(window: Window, state: LiveCmaf, *, endlist: bool = False) -> dict[str, str]:
    return state.texts(window, RUNGS, segment_seconds=2, endlist=endlist, now=T0)


def _both(window: Window, state: LiveCmaf) -> tuple[hls.MediaPlaylist, hls.MediaPlaylist]:
    """The video track's I-frame and media playlists."""
    texts = _texts(window, state)
    return (
        hls_parse.parse_media(texts[f"90p/{CMAF_IFRAMES}"]),
        hls_parse.parse_media(texts[f"90p/{CMAF_PLAYLIST}"]),
    )


def _check_follows(iframes: hls.MediaPlaylist, media: hls.MediaPlaylist) -> None:
    """The I-frame playlist lists a tail of the media playlist's segments, its way."""
    assert iframes.iframes_only
    assert iframes.target_duration == media.target_duration
    uris = list(dict.fromkeys(s.uri for s in iframes.segments))
    assert uris == [s.uri for s in media.segments][len(media.segments) - len(uris) :]
    for segment in media.segments[len(media.segments) - len(uris) :]:
        own = [s for s in iframes.segments if s.uri == segment.uri]
        assert own[0].program_date_time == segment.program_date_time
        assert sum(s.duration for s in own) == pytest.approx(segment.duration)
        assert all(s.map == segment.map and s.byterange is not None for s in own)


def test_entries_keep_their_numbers_and_cover_the_cmaf_playlist() -> None:
    window, state = Window(), LiveCmaf()
    seen: dict[tuple[str, int], int] = {}
    for seq, count in enumerate([2, 3, 1, 2, 2]):
        _slide(window, state, seq, tuple(0.5 * n for n in range(count)))
        text = _texts(window, state)[f"90p/{CMAF_IFRAMES}"]
        # The version VOD's CMAF I-frame playlists have: EXT-X-MAP in an I-frames-only one.
        assert "#EXT-X-VERSION:5\n" in text
        assert "#EXT-X-I-FRAMES-ONLY\n" in text
        iframes, media = _both(window, state)
        assert iframes.discontinuity_sequence == media.discontinuity_sequence
        _check_follows(iframes, media)
        assert len({s.uri for s in iframes.segments}) == len(media.segments)  # the whole window
        for number, entry in enumerate(iframes.segments, iframes.media_sequence):
            assert entry.byterange is not None
            assert seen.setdefault((entry.uri, entry.byterange[1]), number) == number
    # Three segments left: the first two (2 + 3 I-frames) slid out.
    iframes, _ = _both(window, state)
    assert iframes.media_sequence == run_base(0) + 5
    assert len(iframes.segments) == 1 + 2 + 2


def test_discontinuities_are_the_cmaf_playlists() -> None:
    window, state = Window(discontinuity_sequence=4), LiveCmaf()
    for seq in range(6):
        _slide(window, state, seq, disc=seq in (2, 4))
        iframes, media = _both(window, state)
        assert iframes.discontinuity_sequence == media.discontinuity_sequence
        tagged = [s.uri for s in media.segments if s.discontinuity]
        assert [s.uri for s in iframes.segments if s.discontinuity] == tagged
        # On a segment's first I-frame only.
        assert all(s.byterange == (900, 100) for s in iframes.segments if s.discontinuity)
    assert _both(window, state)[0].discontinuity_sequence == 5


@pytest.mark.parametrize(
    "ats",
    [
        pytest.param(None, id="track-missed-the-segment"),
        pytest.param((), id="no-keyframe-fragment"),
    ],
)
def test_a_segment_without_iframes_ends_the_run(ats: tuple[float, ...] | None) -> None:
    window, state = Window(), LiveCmaf()
    for seq in range(3):
        _slide(window, state, seq, length=6)

    _slide(window, state, 3, ats, length=6)

    texts = _texts(window, state)
    assert f"90p/{CMAF_IFRAMES}" not in texts
    if ats is not None:  # the track has the segment: its master entry, no I-frame one
        assert hls_parse.parse_master(texts[CMAF_MASTER]).iframe_variants == ()
    _slide(window, state, 4, length=6)
    iframes, media = _both(window, state)
    assert [s.uri for s in iframes.segments] == ["4.m4s"] * 2
    assert iframes.media_sequence == run_base(4)
    _check_follows(iframes, media)
    # A track that had the segment keeps its whole media playlist.
    assert len(media.segments) == (5 if ats is not None else 1)


def test_a_run_that_starts_again_never_numbers_below_the_old_one() -> None:
    window, state = Window(), LiveCmaf()
    most = tuple(n / 16 for n in range(MAX_PER_SEGMENT))
    for seq in range(40):
        _slide(window, state, seq, most)
    before, _ = _both(window, state)
    last = before.media_sequence + len(before.segments) - 1

    # A restarted node: a new window and CMAF state from the next segment.
    again, fresh = Window(), LiveCmaf()
    _slide(again, fresh, 40, (0.0,))

    assert _both(again, fresh)[0].media_sequence == run_base(40) > last


def test_a_segment_with_more_keyframes_than_the_most_is_thinned() -> None:
    window, state = Window(), LiveCmaf()
    _slide(window, state, 0, tuple(n / 50 for n in range(100)))

    iframes, media = _both(window, state)

    assert len(iframes.segments) == MAX_PER_SEGMENT
    _check_follows(iframes, media)


def test_iframes_are_timed_from_the_segments_start_not_its_first_keyframe() -> None:
    window, state = Window(), LiveCmaf()
    # A segment whose first fragment is not a keyframe (a passthrough source cut elsewhere).
    _slide(window, state, 0, (0.5, 1.5))

    iframes, media = _both(window, state)

    segment = media.segments[0]
    assert segment.program_date_time is not None
    assert [s.program_date_time for s in iframes.segments] == [
        segment.program_date_time + timedelta(seconds=at) for at in (0.5, 1.5)
    ]
    assert [s.duration for s in iframes.segments] == [1.0, 0.5]


def test_a_window_taken_over_at_a_later_number_starts_the_run_again() -> None:
    window, state = Window(), LiveCmaf()
    for seq in range(3):
        _slide(window, state, seq)
    # This publisher continues another's window, numbered past its own.
    taken = Window()
    for seq in (10, 11):
        _slide(taken, LiveCmaf(), seq)
    _slide(taken, state, 12)

    iframes, media = _both(taken, state)

    assert [s.uri for s in iframes.segments] == ["12.m4s"] * 2
    assert iframes.media_sequence == run_base(12)
    _check_follows(iframes, media)


def test_after_a_handover_it_lists_what_this_publisher_wrote() -> None:
    window, earlier = Window(), LiveCmaf()
    for seq in range(2):
        _slide(window, earlier, seq)
    taken = LiveCmaf()  # the window, not the other publisher's CMAF state
    _slide(window, taken, 2, disc=True)

    iframes, media = _both(window, taken)

    assert len(media.segments) == 3
    assert [s.uri for s in iframes.segments] == ["2.m4s"] * 2
    assert iframes.media_sequence == run_base(2)
    # The discontinuity before its first segment is implied by the sequence.
    assert iframes.discontinuity_sequence == media.discontinuity_sequence + 1
    assert not any(s.discontinuity for s in iframes.segments)
    _check_follows(iframes, media)


def test_the_cmaf_master_lists_each_tracks_iframe_playlist() -> None:
    window, state = Window(), LiveCmaf()
    for seq in range(3):
        _slide(window, state, seq, (0.0, 0.5, 1.0))

    master = hls_parse.parse_master(_texts(window, state)[CMAF_MASTER])

    (variant,) = master.iframe_variants
    assert (variant.uri, variant.codecs, variant.resolution) == (
        f"90p/{CMAF_IFRAMES}",
        VIDEO,
        (160, 90),
    )
    iframes, _ = _both(window, state)
    sizes = [s.byterange[0] for s in iframes.segments if s.byterange is not None]
    peak, average = bits_per_second(sizes, [s.duration for s in iframes.segments])
    assert (variant.bandwidth, variant.average_bandwidth) == (peak, average)
    assert [v.uri for v in master.variants] == [f"90p/{CMAF_PLAYLIST}"]


def test_ended_iframe_playlists_carry_endlist() -> None:
    window, state = Window(), LiveCmaf()
    _slide(window, state, 0)

    ended = _texts(window, state, endlist=True)

    assert hls_parse.parse_media(ended[f"90p/{CMAF_IFRAMES}"]).endlist
    assert not _both(window, state)[0].endlist


# -- the origin -----------------------------------------------------------------------------


async def test_the_origin_serves_them_and_the_ranges_they_name(
    written: tuple[Path, dict[str, CmafSegment]], redis: aioredis.Redis
) -> None:
    channel, made = written
    window, state = Window(), LiveCmaf()
    window.slide(7, 3.0, T0, False, {"90p": 10_000}, None, length=3,
                 cmaf={t: (c.size, c.init) for t, c in made.items()})  # fmt: skip
    state.published(window, T0.timestamp(), 3.0, T0, made)
    for name, text in _texts(window, state).items():
        (channel / name).write_text(text)
    # A channel without CMAF: TS playlists only.
    ts_only = channel.parent / "ts1" / "90p"
    ts_only.mkdir(parents=True)
    for name in ("index.m3u8", "iframes.m3u8"):
        (ts_only / name).write_text("#EXTM3U\n")
    root = channel.parent.parent
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    url = f"http://127.0.0.1:{port}/live"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/cm1/90p/{CMAF_IFRAMES}") as response:
                assert response.status == 200
                assert response.content_type == "application/vnd.apple.mpegurl"
                assert response.headers["Cache-Control"] == "public, max-age=1"
                playlist = hls_parse.parse_media(await response.text())
            assert len(playlist.segments) == 3
            data = (channel / "90p" / cmaf_name(7)).read_bytes()
            for entry in playlist.segments:
                assert entry.byterange is not None
                length, offset = entry.byterange
                headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
                async with http.get(f"{url}/cm1/90p/{entry.uri}", headers=headers) as response:
                    assert response.status == 206
                    assert await response.read() == data[offset : offset + length]
            for path, why in [
                (f"ts1/90p/{CMAF_IFRAMES}", "a channel without CMAF"),
                (f"cm1/{AUDIO_TRACK}/{CMAF_IFRAMES}", "audio has none"),
                (f"cm1/720p/{CMAF_IFRAMES}", "no such rung"),
                (f"cm1/Bad..Rung/{CMAF_IFRAMES}", "not a rung name"),
                (f"nochannel/90p/{CMAF_IFRAMES}", "no such channel"),
            ]:
                async with http.get(f"{url}/{path}") as response:
                    assert response.status == 404, why
                    assert (await response.json())["error"] == "ContentNotFound", why
    finally:
        await runner.cleanup()
