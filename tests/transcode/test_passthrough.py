"""The ``passthrough`` live profile: an H.264/AAC feed repackaged without re-encoding (one
rung per programme when it carries several), the slate encoded to the feed's own
parameters, and anything else refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.media import (
    TWO_PROGRAMMES,
    Media,
    h264_ts_clip,
    stream_facts,
    two_programme_ts,
    video_packet_hashes,
)
from tests.support.net import free_udp_port
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, LiveChannel
from transcode.errors import SourceRefused, UnsupportedSource
from transcode.ffmpeg_cmd import h264_level_name, h264_profile_name
from transcode.live import LiveManager, Phase
from transcode.live.commands import plan_passthrough, probe_passthrough
from transcode.live.detect import Thresholds
from transcode.live.switching import check_source
from transcode.probe import (
    MAX_PROGRAMMES,
    AudioInfo,
    SourceInfo,
    VideoInfo,
    parse_probe,
    probe,
    require_remuxable,
)
from transcode.profiles import resolve_profile
from transcode.settings import SourceSettings
from transcode.sources import SourceGuard

pytestmark = pytest.mark.xdist_group("live")

RUNG = "src"
# The rungs of a channel fed ``two_programme_ts``, top first, and the programme each copies.
PROGRAMME_RUNGS = {"src": 2, "src1": 1}


@pytest.mark.parametrize(
    ("probed", "x264"),
    [
        pytest.param("Constrained Baseline", "baseline", id="constrained-baseline"),
        pytest.param("Baseline", "baseline", id="baseline"),
        pytest.param("Main", "main", id="main"),
        pytest.param("High", "high", id="high"),
    ],
)
def test_h264_profile_names(probed: str, x264: str) -> None:
    assert h264_profile_name(probed) == x264


def test_h264_level_names() -> None:
    assert [h264_level_name(n) for n in (0, 9, 21, 30, 40, 51)] == [
        "",
        "1b",
        "2.1",
        "3.0",
        "4.0",
        "5.1",
    ]


def test_passthrough_profile_is_one_rung_following_the_probe() -> None:
    profile = resolve_profile("passthrough", segment_seconds=2)
    assert profile.passthrough
    assert [r.name for r in profile.rungs] == [RUNG]
    probed = SourceInfo(
        uri="udp://x",
        format_name="mpegts",
        duration_seconds=0.0,
        video=VideoInfo("h264", 720, 576, 25.0, 64 / 45, "High", 30, "yuv420p", 2_500_000),
        audio=AudioInfo("aac", "LC", 44100, 1, 96_000),
    )
    (rung,) = plan_passthrough(profile, probed)
    assert (rung.name, rung.width, rung.height, rung.frame_rate) == (RUNG, 720, 576, 25.0)
    assert (rung.h264_profile, rung.h264_level, rung.video_kbps) == ("high", "3.0", 2500)
    assert rung.audio_kbps == 96
    # Before any probe: the nominal rung, so a slate can still run.
    assert [r.name for r in plan_passthrough(profile, None)] == [RUNG]


def _ffprobe_json(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         "-show_programs", str(path)],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out))


async def test_probe_learns_each_programme_and_the_plan_gets_a_rung_for_each(
    tmp_path: Path,
) -> None:
    feed = str(two_programme_ts(tmp_path / "two.ts", seconds=1))
    info = await probe(feed, live=True, programmes=True)
    assert [(p.program_id, p.video.width, p.video.height) for p in info.programmes] == [
        (2, 320, 180),
        (1, 160, 90),
    ]
    assert [(p.audio.sample_rate, p.audio.channels) for p in info.programmes if p.audio] == [
        (48000, 2),
        (44100, 1),
    ]
    assert (info.video, info.audio) == (info.programmes[0].video, info.programmes[0].audio)
    require_remuxable(info)
    profile = resolve_profile("passthrough", segment_seconds=2)
    plan = plan_passthrough(profile, info)
    assert [(r.name, r.width, r.height, r.h264_profile, r.h264_level) for r in plan] == [
        ("src", 320, 180, "main", "3.0"),
        ("src1", 160, 90, "baseline", "1.3"),
    ]
    # Stable: the programmes listed the other way round give the same rungs.
    data = _ffprobe_json(Path(feed))
    reordered = parse_probe(feed, {**data, "programs": data["programs"][::-1]}, live=True)
    assert plan_passthrough(profile, reordered) == plan


async def test_a_single_programme_source_probes_as_before(tmp_path: Path) -> None:
    clip = str(h264_ts_clip(tmp_path / "one.ts", seconds=1))
    asked = await probe(clip, live=True, programmes=True)
    assert asked.programmes == ()
    assert asked == await probe(clip, live=True)


def test_programmes_are_bounded_and_each_must_be_h264_aac(tmp_path: Path) -> None:
    feed = two_programme_ts(tmp_path / "two.ts", seconds=1)
    data = _ffprobe_json(feed)
    small, large = data["programs"]
    video, aac = small["streams"]

    def parsed(*programs: dict) -> SourceInfo:
        return parse_probe(str(feed), {**data, "programs": list(programs)}, live=True)

    # A programme without video (a radio service) is no rung.
    radio = {**small, "program_id": 9, "streams": [aac]}
    assert [p.program_id for p in parsed(radio, small, large).programmes] == [2, 1]
    # A programme's first AAC is taken, after a track a copy could not take.
    dubbed = {**small, "streams": [video, {**aac, "codec_name": "mp2"}, aac]}
    (_, programme) = parsed(large, dubbed).programmes
    assert (programme.audio_index, programme.audio and programme.audio.codec) == (1, "aac")
    # More programmes than a ladder has rungs: a multiplex of channels.
    many = [{**large, "program_id": n} for n in range(1, MAX_PROGRAMMES + 2)]
    assert len(parsed(*many[:MAX_PROGRAMMES]).programmes) == MAX_PROGRAMMES
    with pytest.raises(UnsupportedSource, match=f"more than {MAX_PROGRAMMES} programmes"):
        parsed(*many)
    # One programme a copy cannot take refuses the source.
    mpeg2 = {**small, "streams": [{**video, "codec_name": "mpeg2video"}, aac]}
    with pytest.raises(UnsupportedSource, match="'mpeg2video' in programme 1"):
        require_remuxable(parsed(large, mpeg2))
    mute = {**small, "streams": [video]}
    with pytest.raises(UnsupportedSource, match="in programme 1 has no audio"):
        require_remuxable(parsed(large, mute))


async def test_probe_refuses_a_source_that_is_not_h264_aac(media: Media) -> None:
    guard = SourceGuard(SourceSettings(media_roots=(media.mpeg2.parent.resolve(),)))
    source = await guard.live(str(media.mpeg2))
    with pytest.raises(SourceRefused, match=r"needs H\.264 video and AAC audio.*mpeg2video"):
        await probe_passthrough(source, timeout_seconds=1.0)


@dataclass
class Published:
    seq: int
    state: ChannelState
    playlist: hls.MediaPlaylist  # the top rung's
    rungs: dict[str, hls.MediaPlaylist]
    master: hls.MasterPlaylist


@dataclass
class Rig:
    manager: LiveManager
    events: asyncio.Queue[Published]
    phases: asyncio.Queue[Phase]
    root: Path


@pytest.fixture
async def rig(
    redis: aioredis.Redis, tmp_path: Path, source_settings: SourceSettings
) -> AsyncIterator[Rig]:
    root = tmp_path / "origin"
    events: asyncio.Queue[Published] = asyncio.Queue()
    phases: asyncio.Queue[Phase] = asyncio.Queue()

    def observe(channel: str, seq: int, state: ChannelState) -> None:
        channel_dir = root / "live" / channel
        rungs = {
            path.parent.name: hls_parse.parse_media(path.read_text())
            for path in channel_dir.glob("*/index.m3u8")
        }
        master = hls_parse.parse_master((channel_dir / "master.m3u8").read_text())
        events.put_nowait(Published(seq, state, rungs[RUNG], rungs, master))

    manager = LiveManager(
        redis=redis,
        archive=ArchiveIndex(redis),
        origin_root=root,
        sources=SourceGuard(source_settings),
        observer=observe,
        on_phase=lambda _channel, phase: phases.put_nowait(phase),
    )
    yield Rig(manager, events, phases, root)
    await manager.close()


def _channel(source: str) -> LiveChannel:
    return LiveChannel(
        id="pt1",
        source=source,
        profile="passthrough",
        segment_seconds=2,
        window_segments=6,
        catchup_days=1,
        source_timeout_seconds=1.0,
    )


def _send(clip: Path, port: int, *options: str, loop: bool = True) -> subprocess.Popen[bytes]:
    """Send ``clip`` (looped for ever unless not ``loop``) to the UDP port in real time,
    stream-copied (kill it when done)."""
    looped = ("-stream_loop", "-1") if loop else ()
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", *looped,
         "-i", str(clip), "-c", "copy", *options, "-f", "mpegts",
         f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _until(rig: Rig, state: ChannelState, count: int, seen: list[Published]) -> None:
    got = 0
    while got < count:
        event = await rig.events.get()
        seen.append(event)
        got = got + 1 if event.state is state else 0


@pytest.mark.slow
async def test_passthrough_channel_copies_the_feed_and_matches_it_on_the_slate(
    rig: Rig, tmp_path: Path
) -> None:
    # Main@3.0 at 30 fps, AAC 44.1 kHz mono: none of it the platform's defaults, so a
    # slate that only used the profile's figures would not match.
    clip = h264_ts_clip(tmp_path / "feed.ts", seconds=6)
    port = free_udp_port()
    sender = _send(clip, port)
    seen: list[Published] = []
    try:
        async with asyncio.timeout(60):
            await rig.manager.start(_channel(f"udp://127.0.0.1:{port}"))
            await _until(rig, ChannelState.LIVE, 3, seen)
            sender.kill()
            sender.wait()
            await _until(rig, ChannelState.SLATE, 2, seen)
    finally:
        sender.kill()
        sender.wait()
    channel_dir = rig.root / "live" / "pt1"
    live = [e for e in seen if e.state is ChannelState.LIVE]
    slate = [e for e in seen if e.state is ChannelState.SLATE]

    # Conformant: durations follow the feed's 1 s GOPs, none over TARGETDURATION (which the
    # publisher takes from the real durations).
    for event in seen:
        playlist = event.playlist
        assert playlist.target_duration is not None
        assert all(round(s.duration) <= playlist.target_duration for s in playlist.segments)
        assert all(s.program_date_time is not None for s in playlist.segments)
    # Cut on the feed's keyframes: after the first (cut wherever the feed was joined) each
    # is whole 1 s GOPs, ending at the first keyframe past each 2 s mark.
    durations = [s.duration for s in live[2].playlist.segments[1:]]
    assert durations
    assert all(round(d) in (1, 2) and abs(d - round(d)) < 0.05 for d in durations), durations
    assert [s.discontinuity for s in slate[0].playlist.segments][-1]  # the switch is marked

    # No re-encode: every video packet of a live segment is one of the feed's, in order.
    feed = video_packet_hashes(clip)
    segment = channel_dir / RUNG / f"{live[1].seq:010d}.ts"
    copied = video_packet_hashes(segment)
    assert copied
    start = feed.index(copied[0])
    assert (feed * 3)[start : start + len(copied)] == copied
    source_facts = stream_facts(clip)
    assert stream_facts(segment) == source_facts

    # The slate: the feed's size, rate, H.264 profile and level, AAC rate and channels.
    slate_facts = stream_facts(channel_dir / RUNG / f"{slate[-1].seq:010d}.ts")
    assert slate_facts == source_facts

    master = hls_parse.parse_master((channel_dir / "master.m3u8").read_text())
    (variant,) = master.variants
    assert variant.resolution == (320, 180)
    assert variant.codecs.startswith("avc1.4d401e")  # Main, level 3.0, as the feed
    status = await rig.manager.stop("pt1")
    assert status.state is ChannelState.STOPPED


def _numbered(playlist: hls.MediaPlaylist) -> dict[str, tuple[int, int]]:
    """Each segment's media sequence and discontinuity sequence numbers, by URI."""
    numbers, discontinuity = {}, playlist.discontinuity_sequence
    for offset, segment in enumerate(playlist.segments):
        discontinuity += segment.discontinuity
        numbers[segment.uri] = (playlist.media_sequence + offset, discontinuity)
    return numbers


def _start_seconds(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=start_time", "-of", "csv=p=0", str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout  # fmt: skip
    return float(out.split()[0])  # the stream, then again under its programme


@pytest.mark.slow
async def test_passthrough_channel_of_two_programmes_copies_each_into_its_own_rung(
    rig: Rig, tmp_path: Path
) -> None:
    # Not looped: FFmpeg 5.1 drops the first keyframe of the second programme's video at
    # each loop, and the rungs' cuts would differ there. Long enough for the test.
    feed = two_programme_ts(tmp_path / "feed.ts", seconds=30)
    port = free_udp_port()
    channel = _channel(f"udp://127.0.0.1:{port}")
    seen: list[Published] = []
    sender: subprocess.Popen[bytes] | None = None
    try:
        async with asyncio.timeout(90):
            # Nothing arrives at first: the slate runs as the nominal rung (nothing probed).
            await rig.manager.start(channel)
            await _until(rig, ChannelState.SLATE, 1, seen)
            # The feed starts as a retry's pause does, so the retry's probe finds it (one
            # that ran out as the feed began would leave FFmpeg copying the nominal plan).
            while not rig.phases.empty():
                rig.phases.get_nowait()
            while await rig.phases.get() is not Phase.BACKOFF:
                pass
            sender = _send(feed, port, "-map", "0", *TWO_PROGRAMMES, loop=False)
            await _until(rig, ChannelState.LIVE, 3, seen)
            sender.kill()
            sender.wait()
            await _until(rig, ChannelState.SLATE, 2, seen)
    finally:
        if sender is not None:
            sender.kill()
            sender.wait()
    channel_dir = rig.root / "live" / "pt1"
    first_live = next(i for i, e in enumerate(seen) if e.state is ChannelState.LIVE)
    before, live = seen[:first_live], [e for e in seen if e.state is ChannelState.LIVE]
    after = seen[-2:]

    # Before the source was probed: one nominal rung.
    assert set(before[0].rungs) == {RUNG}
    assert [v.resolution for v in before[0].master.variants] == [(1920, 1080)]
    # From the first live segment on, a rung per programme, top first; the new rung's
    # playlist starts there, numbered as the same segment is in the other rung.
    assert set(live[0].rungs) == set(PROGRAMME_RUNGS)
    assert [s.uri for s in live[0].rungs["src1"].segments] == [f"{live[0].seq:010d}.ts"]
    assert live[0].rungs["src"].segments[-1].discontinuity
    for event in [*live, *after]:
        top, low = (_numbered(event.rungs[name]) for name in PROGRAMME_RUNGS)
        assert low.items() <= top.items()
    # The master lists both, each with its own size and codecs (measured again once the
    # source, not the nominal slate, fills the top rung).
    for event in (live[-1], after[-1]):
        variants = {v.uri: v for v in event.master.variants}
        assert sorted(variants) == ["src/index.m3u8", "src1/index.m3u8"]
        assert variants["src/index.m3u8"].resolution == (320, 180)
        assert variants["src/index.m3u8"].codecs.startswith("avc1.4d401e")  # Main@3.0
        assert variants["src1/index.m3u8"].resolution == (160, 90)
        assert variants["src1/index.m3u8"].codecs.startswith("avc1.42c00d")  # CBP@1.3

    for rung, programme in PROGRAMME_RUNGS.items():
        # No re-encode: every video packet of a live segment is one of its programme's, in
        # order, and the decoder configuration is the programme's.
        segment = channel_dir / rung / f"{live[1].seq:010d}.ts"
        copied = video_packet_hashes(segment)
        source_packets = video_packet_hashes(feed, stream=f"p:{programme}:v:0")
        assert copied
        start = source_packets.index(copied[0])
        assert source_packets[start : start + len(copied)] == copied
        source_facts = stream_facts(feed, programme=programme)
        assert stream_facts(segment) == source_facts
        # The slate: each rung encoded as its programme is.
        slate = channel_dir / rung / f"{after[-1].seq:010d}.ts"
        assert stream_facts(slate) == source_facts
    # Aligned: the programmes' keyframes coincide, so both rungs cut at the same instants.
    for event in live:
        starts = [_start_seconds(channel_dir / r / f"{event.seq:010d}.ts") for r in PROGRAMME_RUNGS]
        assert abs(starts[0] - starts[1]) < 0.001, starts
    await rig.manager.stop("pt1")


async def test_health_check_of_a_passthrough_source_reads_a_multi_programme_feed(
    tmp_path: Path,
) -> None:
    feed = two_programme_ts(tmp_path / "feed.ts", seconds=2)
    port = free_udp_port()
    channel = _channel(f"udp://127.0.0.1:{port}")
    source = await SourceGuard(SourceSettings()).live(channel.source, field_name="s")
    continuity_only = Thresholds(freeze_seconds=0, black_seconds=0, silence_seconds=0)
    sender = _send(feed, port, "-map", "0", *TWO_PROGRAMMES)
    try:
        async with asyncio.timeout(30):
            trouble = await check_source(
                channel, source, continuity_only, seconds=1.0, passthrough=True
            )
    finally:
        sender.kill()
        sender.wait()
    assert trouble is None
    # And without the feed, the same check says so.
    async with asyncio.timeout(30):
        lost = await check_source(channel, source, continuity_only, seconds=1.0, passthrough=True)
    assert lost is not None
    assert lost.kind == "input_lost"


@pytest.mark.slow
async def test_passthrough_channel_refuses_a_non_h264_source(rig: Rig, media: Media) -> None:
    async with asyncio.timeout(30):
        await rig.manager.start(_channel(str(media.mpeg2)))
        while await rig.phases.get() is not Phase.REFUSED:
            pass
    status = await rig.manager.get("pt1")
    assert status.state is ChannelState.STOPPED
    assert "needs H.264 video and AAC audio" in status.reason
    assert "mpeg2video" in status.reason
    assert not (rig.root / "live" / "pt1" / RUNG).exists()  # nothing was copied


def test_clip_helper_makes_what_it_says(tmp_path: Path) -> None:
    clip = h264_ts_clip(tmp_path / "c.ts", seconds=1)
    facts = stream_facts(clip)
    assert facts["video"] == ("h264", "Main", 30, 320, 180, "30/1")
    assert facts["audio"] == ("aac", "LC", "44100", 1)
