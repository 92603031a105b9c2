"""A live channel fed over UDP by a real FFmpeg: source cut, slate, restore, aligned rungs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.media import Media
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, LiveChannel, Window
from transcode.live import LiveManager, source_input
from transcode.settings import SourceSettings
from transcode.sources import SourceGuard, SourceInput

# Live channels encode in real time: run them in one worker so two live tests
# never compete for the same two cores.
pytestmark = pytest.mark.xdist_group("live")

RUNGS = ("90p", "180p")
FAR = datetime(2100, 1, 1, tzinfo=UTC)
PAST = datetime(2000, 1, 1, tzinfo=UTC)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sender(port: int, host: str = "127.0.0.1", extra: str = "") -> subprocess.Popen[bytes]:
    """A real-time MPEG-TS feed (testsrc2 320x180 + tone) to udp://host:port."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
         "-c:a", "aac", "-b:a", "64k",
         "-f", "mpegts", f"udp://{host}:{port}?pkt_size=1316{extra}"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Snapshot:
    """Both rungs' live playlists, read the moment a segment was published."""

    seq: int
    state: ChannelState
    playlists: dict[str, hls.MediaPlaylist]


@dataclass
class Rig:
    manager: LiveManager
    events: asyncio.Queue[Snapshot]
    root: Path
    index: ArchiveIndex
    sources: SourceGuard


@pytest.fixture
async def rig(
    redis: aioredis.Redis, tmp_path: Path, source_settings: SourceSettings
) -> AsyncIterator[Rig]:
    root = tmp_path / "origin"
    events: asyncio.Queue[Snapshot] = asyncio.Queue()

    def observe(channel: str, seq: int, state: ChannelState) -> None:
        # Called right after publishing, before anything else runs: a consistent view.
        lists = {
            r: hls_parse.parse_media((root / "live" / channel / r / "index.m3u8").read_text())
            for r in RUNGS
        }
        events.put_nowait(Snapshot(seq, state, lists))

    index = ArchiveIndex(redis)
    sources = SourceGuard(source_settings)
    manager = LiveManager(
        redis=redis, archive=index, origin_root=root, sources=sources, observer=observe
    )
    yield Rig(manager, events, root, index, sources)
    await manager.close()


async def _segments(rig: Rig, state: ChannelState, count: int, seen: list[Snapshot]) -> None:
    got = 0
    while got < count:
        snap = await rig.events.get()
        seen.append(snap)
        got = got + 1 if snap.state is state else 0


@pytest.mark.slow
async def test_source_cut_and_restored_gives_aligned_discontinuities(rig: Rig) -> None:
    port = _free_udp_port()
    sender = _sender(port)
    seen: list[Snapshot] = []
    try:
        await rig.manager.start(
            LiveChannel(
                id="ch1",
                source=f"udp://127.0.0.1:{port}",
                profile="low",
                segment_seconds=2,
                window_segments=6,
                catchup_days=1,
                source_timeout_seconds=1.5,
            )
        )
        await _segments(rig, ChannelState.LIVE, 3, seen)
        sender.kill()
        sender.wait()
        await _segments(rig, ChannelState.SLATE, 2, seen)
        status = await rig.manager.get("ch1")
        assert status.state is ChannelState.SLATE
        assert "source" in status.reason
        sender = _sender(port)
        await _segments(rig, ChannelState.LIVE, 2, seen)
    finally:
        sender.kill()
        sender.wait()
    stopped = await rig.manager.stop("ch1")
    assert stopped.state is ChannelState.STOPPED
    metrics = rig.manager.metrics.registry
    published = metrics.get_sample_value(
        "transcode_live_segments_published_total", {"channel": "ch1"}
    )
    assert published is not None
    assert published >= len(seen)
    assert (
        metrics.get_sample_value(
            "transcode_live_channel_state", {"channel": "ch1", "state": "STOPPED"}
        )
        == 1
    )

    # Every rung's playlist agreed at every publication: same sequence numbers,
    # same discontinuity points and sequence, program date-times on every segment.
    disc_seqs = []
    for snap in seen:
        a, b = (snap.playlists[r] for r in RUNGS)
        assert a.media_sequence == b.media_sequence
        assert a.discontinuity_sequence == b.discontinuity_sequence
        assert [s.uri for s in a.segments] == [s.uri for s in b.segments]
        assert [s.discontinuity for s in a.segments] == [s.discontinuity for s in b.segments]
        assert [s.program_date_time for s in a.segments] == [
            s.program_date_time for s in b.segments
        ]
        assert all(s.program_date_time is not None for s in a.segments)
        assert a.target_duration == 2
        assert len(a.segments) <= 6
        assert a.segments[-1].uri == f"{snap.seq:010d}.ts"
        disc_seqs.append(a.discontinuity_sequence)
    assert disc_seqs == sorted(disc_seqs)  # monotonic
    assert len(seen[-1].playlists["180p"].segments) == 6  # the window filled up

    # The archive (whole history) shows the same two discontinuities in both rungs,
    # exactly where the channel went to the slate and came back.
    first = seen[0].playlists["180p"].segments[0].program_date_time
    assert first is not None
    history = {r: await rig.index.window("ch1", r, Window(first, FAR)) for r in RUNGS}
    assert [e.sequence for e in history["90p"]] == [e.sequence for e in history["180p"]]
    assert [e.start for e in history["90p"]] == [e.start for e in history["180p"]]
    cuts = [e.sequence for e in history["180p"] if e.discontinuity]
    states = {snap.seq: snap.state for snap in seen}
    assert len(cuts) == 2
    assert states[cuts[0]] is ChannelState.SLATE
    assert states[cuts[0] - 1] is ChannelState.LIVE
    assert states[cuts[1]] is ChannelState.LIVE
    assert states[cuts[1] - 1] is ChannelState.SLATE
    sequences = [e.sequence for e in history["180p"]]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    starts = [e.start for e in history["180p"]]
    assert starts == sorted(starts)
    for rung in RUNGS:
        for entry in history[rung]:
            assert (rig.root / entry.path).stat().st_size == entry.size

    # Stopping ends the live playlists; the master lists both rungs with measured rates.
    final = hls_parse.parse_media((rig.root / "live/ch1/180p/index.m3u8").read_text())
    assert final.endlist
    master = hls_parse.parse_master((rig.root / "live/ch1/master.m3u8").read_text())
    assert [v.uri for v in master.variants] == ["90p/index.m3u8", "180p/index.m3u8"]
    assert all(v.codecs.startswith("avc1.42") and v.average_bandwidth > 0 for v in master.variants)
    assert [v.resolution for v in master.variants] == [(160, 90), (320, 180)]
    assert not (rig.root / "live/ch1/.work").exists()


@pytest.mark.parametrize(
    ("source", "url", "options"),
    [
        pytest.param(
            SourceInput("udp", "udp://239.1.1.1:5000", {"protocol_whitelist": "udp"}),
            "udp://239.1.1.1:5000?timeout=2000000&overrun_nonfatal=1&fifo_size=1000000",
            {"fflags": "+genpts+discardcorrupt", "protocol_whitelist": "udp"},
            id="udp-multicast",
        ),
        pytest.param(
            SourceInput("http", "http://feed.example/ch1.ts", {"max_redirects": "0"}),
            "http://feed.example/ch1.ts",
            {"fflags": "+genpts+discardcorrupt", "max_redirects": "0", "rw_timeout": "2000000"},
            id="http",
        ),
        pytest.param(
            SourceInput("file", "/media/loop.ts", {"protocol_whitelist": "file"}),
            "/media/loop.ts",
            {
                "fflags": "+genpts+discardcorrupt",
                "protocol_whitelist": "file",
                "stream_loop": -1,
                "re": None,
            },
            id="looped-file",
        ),
    ],
)
def test_source_input(source: SourceInput, url: str, options: dict[str, object]) -> None:
    assert source_input(source, timeout_seconds=2.0) == (url, options)


@pytest.mark.slow
async def test_control_restart_resumes_channel_with_continuing_sequence(
    rig: Rig, redis: aioredis.Redis, media: Media
) -> None:
    channel = LiveChannel(
        id="loop", source=f"file://{media.clip}", profile="low", segment_seconds=2, catchup_days=1
    )
    await rig.manager.start(channel)
    first = await rig.events.get()
    await rig.manager.close()
    paused = await rig.manager.get("loop")
    assert paused.state is ChannelState.STOPPED
    assert "resumes" in paused.reason
    assert not hls_parse.parse_media((rig.root / "live/loop/180p/index.m3u8").read_text()).endlist

    events: asyncio.Queue[int] = asyncio.Queue()
    again = LiveManager(
        redis=redis,
        archive=rig.index,
        origin_root=rig.root,
        sources=rig.sources,
        observer=lambda _c, seq, _s: events.put_nowait(seq),
    )
    try:
        await again.resume()
        assert (await again.get("loop")).state is ChannelState.STARTING
        resumed = await events.get()
    finally:
        await again.close()
    assert resumed == first.seq + 1
    history = await rig.index.window("loop", "90p", Window(PAST, FAR))
    assert [e.sequence for e in history] == [first.seq, resumed]
    # The restart is a timestamp discontinuity for anyone stitching the archive.
    assert [e.discontinuity for e in history] == [False, True]


@pytest.mark.slow
async def test_multicast_source_goes_live(rig: Rig) -> None:
    port = _free_udp_port()
    group = "239.255.42.7"
    sender = _sender(port, group, "&localaddr=127.0.0.1&ttl=0")
    try:
        await rig.manager.start(
            LiveChannel(
                id="mcast",
                source=f"udp://{group}:{port}?localaddr=127.0.0.1",
                profile="low",
                segment_seconds=2,
                source_timeout_seconds=3,
            )
        )
        try:
            async with asyncio.timeout(90):
                snap = await rig.events.get()
                while snap.state is not ChannelState.LIVE:
                    snap = await rig.events.get()
        except TimeoutError:
            status = await rig.manager.get("mcast")
            pytest.fail(f"multicast channel never went live: {status.state} {status.reason}")
        # Stopped while its source still runs (stopping in every other state is
        # tests/faults/test_live_faults.py's subject).
        async with asyncio.timeout(60):
            await rig.manager.stop("mcast")
    finally:
        sender.kill()
        sender.wait()
    assert all(len(snap.playlists[r].segments) >= 1 for r in RUNGS)
    assert (await rig.manager.get("mcast")).state is ChannelState.STOPPED
