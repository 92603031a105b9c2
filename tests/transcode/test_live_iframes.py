"""Live I-frame playlists: keyframes of published segments as EXT-X-I-FRAMES-ONLY entries.

The entries come from real FFmpeg segments (scanned by ``transcode.measure``); the window's
numbering, discontinuities and dates are checked on it directly; a real live channel is
run through a slate and back, its I-frame playlists read at every publication, its byte
ranges read back (a keyframe's TS packet, and FFmpeg decodes each range to one frame), and
the origin serves them as it serves media playlists. An encrypted channel gets none.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from headend.contentkeys import ContentKeyStore, KekRing
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.live import RUNGS, Feed, SnapshotRig, live_channel, make_clip, snapshot_rig
from tests.support.media import ffmpeg
from transcode import hls, hls_parse, ingest
from transcode.archive import ArchiveIndex, RungInfo, live_master, render_master_for
from transcode.domain import ArchiveEntry, ChannelEncryption, ChannelState
from transcode.errors import ContentNotFound
from transcode.live import LiveManager
from transcode.live.encryption import LiveEncryption
from transcode.live.iframes import (
    MAX_PER_SEGMENT,
    IFrame,
    run_base,
    scan_files,
    segment_iframes,
    thinned,
)
from transcode.live.push import Pusher, PushSettings
from transcode.live.window import Window
from transcode.measure import TS_PACKET, VIDEO_PID, Keyframe, SegmentScan, bits_per_second
from transcode.measure import scan_segment as measure_scan
from transcode.origin import start_origin
from transcode.origin.ingest import IngestSettings
from transcode.settings import OriginSettings, SourceSettings
from transcode.sources import SourceGuard

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CODECS = "avc1.42c00d,mp4a.40.2"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SECRET = b"s" * 40


def _frames(*ats: float, duration: float = 2.0) -> tuple[IFrame, ...]:
    """I-frames at ``ats`` seconds into a segment of ``duration`` (1000 bytes apart)."""
    ends = [*ats[1:], duration]
    return tuple(
        IFrame(376 + 1000 * n, 900, at, round(end - at, 6))
        for n, (at, end) in enumerate(zip(ats, ends, strict=True))
    )


def _slide(
    window: Window,
    seq: int,
    iframes: dict[str, tuple[IFrame, ...]],
    *,
    disc: bool = False,
    rungs: tuple[str, ...] = ("90p",),
    length: int = 3,
) -> None:
    start = T0 + timedelta(seconds=2 * seq)
    sizes = dict.fromkeys(rungs, 10_000)
    window.slide(seq, 2.0, start, disc, sizes, None, length=length, iframes=iframes)


def _iframes(window: Window, rung: str = "90p", endlist: bool = False) -> hls.MediaPlaylist:
    text = window.iframe_playlists([rung], segment_seconds=2, endlist=endlist)[rung]
    return hls_parse.parse_media(text)


def _media(window: Window, rung: str = "90p") -> hls.MediaPlaylist:
    return hls_parse.parse_media(
        window.playlists([rung], (), segment_seconds=2, endlist=False)[rung]
    )


# -- entries of one segment ---------------------------------------------------------------


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s MPEG-TS segment, 25 fps, a keyframe every second (no scene-cut keyframes)."""
    path = tmp_path_factory.mktemp("iframes") / "0000000007.ts"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"),
        *("-keyint_min", "25", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k"),
        *("-f", "mpegts", str(path)),
    )
    return path


def test_a_segments_iframes_are_its_keyframes_lasting_until_the_next_or_its_end(
    segment: Path,
) -> None:
    scan = measure_scan(segment)

    frames = segment_iframes(scan, 3.0)

    assert [(f.offset, f.length) for f in frames] == [(k.offset, k.length) for k in scan.keyframes]
    assert [f.at for f in frames] == [0.0, 1.0, 2.0]
    assert [f.duration for f in frames] == [1.0, 1.0, 1.0]
    data = segment.read_bytes()
    for frame in frames:
        assert _is_keyframe_start(data[frame.offset : frame.offset + frame.length])


def test_a_segment_lists_at_most_max_per_segment_iframes_evenly_from_its_first() -> None:
    keys = [Keyframe(TS_PACKET * n, TS_PACKET, 3600 * n) for n in range(100)]  # 25 fps
    scan = SegmentScan("x.ts", TS_PACKET * 100, tuple(keys), "avc1.42c00d", True)

    frames = segment_iframes(scan, 4.0)

    assert len(frames) == MAX_PER_SEGMENT
    assert frames[0].offset == 0
    assert [f.offset for f in frames] == sorted({f.offset for f in frames})
    assert sum(f.duration for f in frames) == pytest.approx(4.0)
    assert thinned(keys[:5], MAX_PER_SEGMENT) == tuple(keys[:5])


@pytest.mark.parametrize(
    ("pts", "ats"),
    [
        # A keyframe with no PTS (read as 0) after others: a wrap, clamped to the end.
        pytest.param((9000, 99_000, 0), (0.0, 1.0, 2.0), id="missing-pts"),
        # Out of order: kept in order, never a negative duration.
        pytest.param((0, 90_000, 45_000), (0.0, 1.0, 1.0), id="out-of-order"),
        # A PTS far past the segment: clamped to its end, never longer than the segment.
        pytest.param((0, 90_000, 9_000_000), (0.0, 1.0, 2.0), id="pts-past-the-end"),
        # A segment straddling the 33-bit wrap.
        pytest.param(((1 << 33) - 45_000, 45_000), (0.0, 1.0), id="pts-wrap"),
    ],
)
def test_broken_keyframe_times_stay_inside_the_segment(
    pts: tuple[int, ...], ats: tuple[float, ...]
) -> None:
    keys = tuple(Keyframe(TS_PACKET * n, TS_PACKET, p) for n, p in enumerate(pts))
    frames = segment_iframes(SegmentScan("x.ts", 9400, keys, None, True), 2.0)

    assert tuple(f.at for f in frames) == ats
    assert all(0.001 <= f.duration <= 2.0 for f in frames)


def test_a_segment_that_cannot_be_scanned_is_left_out(segment: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.ts"
    short.write_bytes(segment.read_bytes()[:1000])  # not a whole number of TS packets

    scans = scan_files({"90p": segment, "180p": short, "360p": tmp_path / "gone.ts"})

    assert list(scans) == ["90p"]


# -- the window: numbering, discontinuities, dates ------------------------------------------


def test_iframe_numbers_count_iframes_and_grow_by_what_slid_out() -> None:
    window = Window()
    counts = [2, 3, 1, 2, 2]
    seen: dict[tuple[str, int], int] = {}
    for seq, count in enumerate(counts):
        _slide(window, seq, {"90p": _frames(*(0.5 * n for n in range(count)))})
        playlist = _iframes(window)
        media = _media(window)
        assert playlist.iframes_only
        assert playlist.discontinuity_sequence == media.discontinuity_sequence
        for number, entry in enumerate(playlist.segments, playlist.media_sequence):
            assert entry.byterange is not None
            # An entry keeps its number (and date) across reloads.
            assert seen.setdefault((entry.uri, entry.byterange[1]), number) == number
        # Each segment's I-frames, in order, cover its media segment from its date on.
        assert sorted({s.uri for s in playlist.segments}) == [s.uri for s in media.segments]
        for media_segment in media.segments:
            own = [s for s in playlist.segments if s.uri == media_segment.uri]
            assert own[0].program_date_time == media_segment.program_date_time
            assert sum(s.duration for s in own) == pytest.approx(media_segment.duration)
    # Three segments left: the first two (2 + 3 I-frames) slid out.
    assert _iframes(window).media_sequence == run_base(0) + 5
    assert len(_iframes(window).segments) == 1 + 2 + 2


def test_discontinuities_are_the_media_playlists() -> None:
    window = Window(discontinuity_sequence=4)
    for seq in range(5):
        _slide(window, seq, {"90p": _frames(0.0, 1.0)}, disc=seq in (2, 4), length=3)
        playlist, media = _iframes(window), _media(window)
        assert playlist.discontinuity_sequence == media.discontinuity_sequence
        tagged = [s.uri for s in media.segments if s.discontinuity]
        assert [s.uri for s in playlist.segments if s.discontinuity] == tagged
        # The tag goes on a segment's first I-frame only.
        assert all(s.byterange == (900, 376) for s in playlist.segments if s.discontinuity)
    # Segment 2's discontinuity is now the window's first: implied by the sequence numbers.
    assert _iframes(window).discontinuity_sequence == 5


def test_a_run_that_starts_again_never_numbers_below_the_old_one() -> None:
    window = Window()
    for seq in range(40):  # MAX_PER_SEGMENT I-frames a segment: the most a run can count
        _slide(window, seq, {"90p": _frames(*(n / 16 for n in range(MAX_PER_SEGMENT)))})
    before = _iframes(window)
    last = before.media_sequence + len(before.segments) - 1

    # A new window (a restarted node, a handover between nodes) from the next segment.
    again = Window()
    _slide(again, 40, {"90p": _frames(0.0)})

    assert _iframes(again).media_sequence > last
    assert _iframes(again).media_sequence == run_base(40)


@pytest.mark.parametrize(
    "iframes",
    [
        pytest.param({}, id="not-scanned"),
        pytest.param({"90p": ()}, id="no-keyframe"),
    ],
)
def test_a_segment_without_iframes_ends_the_run(iframes: dict[str, tuple[IFrame, ...]]) -> None:
    window = Window()
    for seq in range(3):
        _slide(window, seq, {"90p": _frames(0.0, 1.0)}, length=6)

    _slide(window, 3, iframes, length=6)

    assert window.iframe_playlists(["90p"], segment_seconds=2, endlist=False) == {}
    assert window.iframe_measured() == {}
    _slide(window, 4, {"90p": _frames(0.0, 1.0)}, length=6)
    playlist = _iframes(window)
    assert [s.uri for s in playlist.segments] == ["0000000004.ts"] * 2
    assert playlist.media_sequence == run_base(4)
    # The media playlist is not cut short: it lists the whole window still.
    assert len(_media(window).segments) == 5


def test_iframes_of_a_rung_missing_from_the_segment_are_ignored() -> None:
    window = Window()
    _slide(window, 0, {"90p": _frames(0.0), "180p": _frames(0.0)}, rungs=("90p",))

    assert set(window.iframes) == {"90p"}
    assert window.iframe_playlists(["90p", "180p"], segment_seconds=2, endlist=False).keys() == {
        "90p"
    }


def test_ended_iframe_playlists_carry_endlist() -> None:
    window = Window()
    _slide(window, 0, {"90p": _frames(0.0, 1.0)})

    assert _iframes(window, endlist=True).endlist
    assert not _iframes(window).endlist


# -- the master ---------------------------------------------------------------------------


def test_the_live_master_lists_an_iframe_variant_per_rung_with_iframes() -> None:
    rungs = [
        RungInfo("90p", CODECS, 160, 90, 25.0),
        RungInfo("180p", "avc1.4d401e,mp4a.40.2", 320, 180, 25.0),
        RungInfo("360p", CODECS, 640, 360, 25.0),  # no I-frames: no I-frame variant
    ]
    measured = {r.name: ([100_000, 120_000], [2.0, 2.0]) for r in rungs}
    iframes = {"90p": ([5000, 6000], [1.0, 1.0]), "180p": ([20_000, 9000], [1.0, 0.5])}

    master = hls_parse.parse_master(
        hls.render_master(live_master(rungs, measured, iframes=iframes))
    )

    assert [(v.uri, v.codecs, v.resolution) for v in master.iframe_variants] == [
        ("90p/iframes.m3u8", "avc1.42c00d", (160, 90)),
        ("180p/iframes.m3u8", "avc1.4d401e", (320, 180)),
    ]
    for variant, rung in zip(master.iframe_variants, ("90p", "180p"), strict=True):
        peak, average = bits_per_second(*iframes[rung])
        assert (variant.bandwidth, variant.average_bandwidth) == (peak, average)
    assert len(master.variants) == 3


def test_a_catchup_master_lists_no_iframe_variants() -> None:
    rungs = [RungInfo("90p", CODECS, 160, 90, 25.0)]
    entry = ArchiveEntry(0, T0, 2.0, 10_000, "live/ch1/90p/0000000000.ts")

    master = hls_parse.parse_master(render_master_for(rungs, {"90p": [entry]}))

    assert master.variants
    assert master.iframe_variants == ()


# -- pushed origins -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "ok"),
    [
        pytest.param("90p/iframes.m3u8", True, id="iframes"),
        pytest.param("90p/index.m3u8", True, id="index"),
        pytest.param("iframes.m3u8", False, id="channel-level"),
        pytest.param("90p/iframe.m3u8", False, id="misspelt"),
        pytest.param("90p/iframes.m3u8.tmp", False, id="suffix"),
        pytest.param("../iframes.m3u8", False, id="traversal"),
    ],
)
def test_ingest_takes_a_rungs_iframe_playlist(tail: str, ok: bool) -> None:
    if ok:
        assert ingest.parse_path("ch1", tail).parts[-1] == tail.rsplit("/", 1)[-1]
    else:
        with pytest.raises(ContentNotFound):
            ingest.parse_path("ch1", tail)


def _write_node(node: Path, segment: Path) -> None:
    """What a publisher leaves on a node for three segments of one rung: files, playlists."""
    window = Window()
    directory = node / "live" / "ch1" / "90p"
    directory.mkdir(parents=True)
    for seq in range(3):
        (directory / f"{seq:010d}.ts").write_bytes(segment.read_bytes())
        _slide(window, seq, {"90p": segment_iframes(measure_scan(segment), 2.0)})
    texts = window.playlists(["90p"], (), segment_seconds=3, endlist=False)
    (directory / "index.m3u8").write_text(texts["90p"])
    iframes = window.iframe_playlists(["90p"], segment_seconds=3, endlist=False)
    (directory / "iframes.m3u8").write_text(iframes["90p"])
    (node / "live" / "ch1" / "master.m3u8").write_text("#EXTM3U\n")


async def test_a_pushed_origin_gets_the_iframe_playlists(
    redis: aioredis.Redis, tmp_path: Path, segment: Path
) -> None:
    node = tmp_path / "node"
    _write_node(node, segment)
    origin_root = tmp_path / "origin"
    origin_root.mkdir()
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=origin_root, port=0),
        redis=redis,
        ingest=IngestSettings(secrets=(SECRET,)),
    )
    url = f"http://127.0.0.1:{port}"
    pusher = Pusher(
        PushSettings(origins=(url,), secret=SECRET, timeout_seconds=5.0, keep_local_seconds=0.0),
        root=node,
    )
    pusher.start()
    try:
        pusher.observe("ch1", 2, ChannelState.LIVE)
        await asyncio.wait_for(pusher.drained(), 10)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/live/ch1/90p/iframes.m3u8") as response:
                assert response.status == 200
                body = await response.read()
            assert body == (node / "live/ch1/90p/iframes.m3u8").read_bytes()
            # Every segment it names reached the origin first.
            for entry in hls_parse.parse_media(body.decode()).segments:
                assert (origin_root / "live/ch1/90p" / entry.uri).is_file()
    finally:
        await pusher.close(drain_seconds=0)
        await runner.cleanup()


# -- a real live channel ------------------------------------------------------------------


@dataclass
class Snapshot:
    """Each rung's media and I-frame playlists, and the master, as one publication left them."""

    seq: int
    state: ChannelState
    media: dict[str, hls.MediaPlaylist]
    iframes: dict[str, hls.MediaPlaylist]
    master: hls.MasterPlaylist


def _snapshot(base: Path, seq: int, state: ChannelState) -> Snapshot:
    def read(name: str) -> dict[str, hls.MediaPlaylist]:
        return {r: hls_parse.parse_media((base / r / name).read_text()) for r in RUNGS}

    master = hls_parse.parse_master((base / "master.m3u8").read_text())
    return Snapshot(seq, state, read("index.m3u8"), read("iframes.m3u8"), master)


@pytest.fixture
async def rig(
    redis: aioredis.Redis, tmp_path: Path, source_settings: SourceSettings
) -> AsyncIterator[SnapshotRig[Snapshot]]:
    async with snapshot_rig(redis, tmp_path / "origin", source_settings, _snapshot) as up:
        yield up


def _is_keyframe_start(data: bytes) -> bool:
    """The bytes start with the TS packet of a video PES start flagged random access."""
    pid = (data[1] & 0x1F) << 8 | data[2]
    start = bool(data[1] & 0x40)
    adaptation = bool(data[3] & 0x20) and data[4] > 0
    return data[0] == 0x47 and pid == VIDEO_PID and start and adaptation and bool(data[5] & 0x40)


def _psi(data: bytes) -> bytes:
    """The packets a segment has before its first video packet (its PAT and PMT)."""
    for offset in range(0, len(data), TS_PACKET):
        if (data[offset + 1] & 0x1F) << 8 | data[offset + 2] == VIDEO_PID:
            return data[:offset]
    return b""


def _decoded_frames(data: bytes) -> int:
    """Video frames FFmpeg decodes from TS bytes; fails on any FFmpeg error."""
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "mpegts", "-i", "pipe:0", "-map", "0:v",
         "-f", "framemd5", "-"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    assert run.stderr == b"", run.stderr.decode()
    return sum(1 for line in run.stdout.splitlines() if not line.startswith(b"#"))


def _check_snapshot(snap: Snapshot, numbers: dict[tuple[str, str, int], int]) -> None:
    """Each rung's I-frame playlist agrees with its media playlist at one publication."""
    for rung in RUNGS:
        media, iframes = snap.media[rung], snap.iframes[rung]
        assert iframes.iframes_only
        assert iframes.target_duration == media.target_duration
        assert iframes.discontinuity_sequence == media.discontinuity_sequence
        # Every segment of the window, in order, each with its I-frames.
        uris = list(dict.fromkeys(s.uri for s in iframes.segments))
        assert uris == [s.uri for s in media.segments]
        for segment in media.segments:
            own = [s for s in iframes.segments if s.uri == segment.uri]
            assert own[0].discontinuity == segment.discontinuity
            assert not any(s.discontinuity for s in own[1:])
            assert own[0].program_date_time == segment.program_date_time
            assert sum(s.duration for s in own) == pytest.approx(segment.duration, abs=1e-5)
        for number, entry in enumerate(iframes.segments, iframes.media_sequence):
            assert entry.byterange is not None
            # The same I-frame keeps its number across reloads, and numbers only grow.
            assert numbers.setdefault((rung, entry.uri, entry.byterange[1]), number) == number
    variants = {v.uri.split("/")[0]: v for v in snap.master.variants}
    assert {v.uri for v in snap.master.iframe_variants} == {f"{r}/iframes.m3u8" for r in RUNGS}
    for variant in snap.master.iframe_variants:
        rung = variant.uri.split("/")[0]
        assert variant.resolution == variants[rung].resolution
        assert variant.codecs == variants[rung].codecs.split(",")[0]
        assert 0 < variant.average_bandwidth <= variant.bandwidth


@pytest.mark.slow
async def test_a_live_channels_iframe_playlists_follow_its_window_through_a_slate(
    rig: SnapshotRig[Snapshot],
) -> None:
    feed = Feed().start()
    seen: list[Snapshot] = []
    try:
        await rig.manager.start(live_channel("if1", feed.source))
        await asyncio.wait_for(rig.until(ChannelState.LIVE, 3, seen), 60)
        feed.stop()
        await asyncio.wait_for(rig.until(ChannelState.SLATE, 2, seen), 60)
        feed.start()
        await asyncio.wait_for(rig.until(ChannelState.LIVE, 2, seen), 60)
    finally:
        feed.stop()
    await rig.manager.stop("if1")  # the playlists end (and stop changing)
    while not rig.events.empty():  # segments published while stopping
        seen.append(rig.events.get_nowait())
    base = rig.root / "live" / "if1"
    for rung in RUNGS:
        ended = hls_parse.parse_media((base / rung / "iframes.m3u8").read_text())
        assert ended.endlist
        assert ended.segments == seen[-1].iframes[rung].segments

    numbers: dict[tuple[str, str, int], int] = {}
    for snap in seen:
        _check_snapshot(snap, numbers)
    # Both ways across the slate: each a discontinuity in the I-frame playlists too.
    tagged = {s.uri for snap in seen for s in snap.iframes["90p"].segments if s.discontinuity}
    assert len(tagged) >= 2
    assert {snap.state for snap in seen} == {ChannelState.LIVE, ChannelState.SLATE}

    # Every byte range of the last playlists is a keyframe that decodes on its own.
    for rung in RUNGS:
        for entry in seen[-1].iframes[rung].segments:
            assert entry.byterange is not None
            length, offset = entry.byterange
            data = (base / rung / entry.uri).read_bytes()
            assert offset + length <= len(data)
            assert _is_keyframe_start(data[offset : offset + length])
            assert _decoded_frames(_psi(data) + data[offset : offset + length]) == 1

    # The origin serves them as it serves the media playlists, and the ranges they name.
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=rig.root, port=0), redis=rig.redis
    )
    url = f"http://127.0.0.1:{port}/live/if1"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/90p/iframes.m3u8") as response:
                iframes_status, iframes_type = response.status, response.content_type
                iframes_cache = response.headers["Cache-Control"]
                body = await response.text()
            async with http.get(f"{url}/90p/index.m3u8") as response:
                media_cache = response.headers["Cache-Control"]
            assert (iframes_status, iframes_type) == (200, PLAYLIST_TYPE)
            assert iframes_cache == media_cache
            assert body == (base / "90p" / "iframes.m3u8").read_text()
            entry = hls_parse.parse_media(body).segments[-1]
            assert entry.byterange is not None
            length, offset = entry.byterange
            wanted = {"Range": f"bytes={offset}-{offset + length - 1}"}
            async with http.get(f"{url}/90p/{entry.uri}", headers=wanted) as response:
                assert response.status == 206
                got = await response.read()
            assert got == (base / "90p" / entry.uri).read_bytes()[offset : offset + length]
            for path in (
                "/live/if1/nope/{name}",  # no such rung
                "/live/nope/90p/{name}",  # no such channel
                "/live/if1/.work/{name}",  # a hidden directory
                "/live/i%2Ff1/90p/{name}",  # not a channel id
                "/live/if1/9%2E0p/{name}",  # not a rung name
            ):
                statuses = []
                for name in ("index.m3u8", "iframes.m3u8"):
                    target = f"http://127.0.0.1:{port}{path.format(name=name)}"
                    async with http.get(target) as response:
                        statuses.append(response.status)
                assert statuses == [404, 404], path
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_an_encrypted_channel_has_no_iframe_playlists(tmp_path: Path) -> None:
    keys_server = RedisServer(tmp_path / "keys-redis")
    keys_server.start()
    server = RedisServer(tmp_path / "redis")
    server.start()
    keys_client = connect(keys_server.url, RedisSettings(socket_timeout_seconds=2.0))
    client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
    root = tmp_path / "origin"
    # One left from a clear run of the channel: the master stops listing it, so it goes.
    stale = root / "live" / "enc1" / "90p" / "iframes.m3u8"
    stale.parent.mkdir(parents=True)
    stale.write_text("#EXTM3U\n")
    published: asyncio.Queue[int] = asyncio.Queue()
    manager = LiveManager(
        redis=client,
        archive=ArchiveIndex(client),
        origin_root=root,
        sources=SourceGuard(SourceSettings(media_roots=(tmp_path,))),
        observer=lambda _channel, seq, _state: published.put_nowait(seq),
        encryption=LiveEncryption(
            ContentKeyStore(keys_client, KekRing.generate("kek1")),
            base_url="http://127.0.0.1:9",
            rotation_seconds=600,
        ),
    )
    try:
        clip = make_clip(tmp_path / "enc1.ts")
        channel = replace(
            live_channel("enc1", f"file://{clip}"),
            encryption=ChannelEncryption(enabled=True, rotation_seconds=600),
        )
        await manager.start(channel)
        for _ in range(2):
            await asyncio.wait_for(published.get(), 60)
        base = root / "live" / "enc1"
        master = hls_parse.parse_master((base / "master.m3u8").read_text())
        assert master.variants
        assert master.iframe_variants == ()
        assert not list(base.glob("*/iframes.m3u8"))
        assert "#EXT-X-KEY" in (base / "90p" / "index.m3u8").read_text()
    finally:
        await manager.close()
        await client.aclose()
        await keys_client.aclose()
        server.stop()
        keys_server.stop()
