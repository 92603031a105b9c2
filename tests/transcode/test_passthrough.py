"""The ``passthrough`` live profile: an H.264/AAC feed repackaged without re-encoding, the
slate encoded to the feed's own parameters, and anything else refused."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.media import Media, h264_ts_clip, stream_facts, video_packet_hashes
from tests.support.net import free_udp_port
from transcode import hls
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, LiveChannel
from transcode.errors import SourceRefused
from transcode.ffmpeg_cmd import h264_level_name, h264_profile_name
from transcode.live import LiveManager, Phase
from transcode.live.commands import plan_passthrough, probe_passthrough
from transcode.probe import AudioInfo, SourceInfo, VideoInfo
from transcode.profiles import resolve_profile
from transcode.settings import SourceSettings
from transcode.sources import SourceGuard

pytestmark = pytest.mark.xdist_group("live")

RUNG = "src"


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


async def test_probe_refuses_a_source_that_is_not_h264_aac(media: Media) -> None:
    guard = SourceGuard(SourceSettings(media_roots=(media.mpeg2.parent.resolve(),)))
    source = await guard.live(str(media.mpeg2))
    with pytest.raises(SourceRefused, match=r"needs H\.264 video and AAC audio.*mpeg2video"):
        await probe_passthrough(source, timeout_seconds=1.0)


@dataclass
class Published:
    seq: int
    state: ChannelState
    playlist: hls.MediaPlaylist


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
        text = (root / "live" / channel / RUNG / "index.m3u8").read_text()
        events.put_nowait(Published(seq, state, hls.parse_media(text)))

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
    sender = subprocess.Popen(  # noqa: ASYNC220  # killed below; never awaited
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(clip), "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
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

    master = hls.parse_master((channel_dir / "master.m3u8").read_text())
    (variant,) = master.variants
    assert variant.resolution == (320, 180)
    assert variant.codecs.startswith("avc1.4d401e")  # Main, level 3.0, as the feed
    status = await rig.manager.stop("pt1")
    assert status.state is ChannelState.STOPPED


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
