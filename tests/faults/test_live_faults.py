"""Live channels through the faults a real night brings, with real processes throughout.

A private redis-server (SIGKILLed and started again on the same data and
socket), live channels fed by real FFmpeg over UDP loopback (or a looped real
file), a 2 MiB tmpfs origin filled until ENOSPC and freed, and StopChannel
issued in every state a channel can be in. States are reached through the
manager's phase hook, never by sleeping; the only sleeps are the lengths of
the outages themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.live import (
    FAST,
    RUNGS,
    Feed,
    LiveRig,
    channel_processes,
    check_index,
    fill,
    live_channel,
    live_rig,
    make_clip,
    tmpfs,
)
from transcode import hls_parse
from transcode.domain import ChannelState
from transcode.errors import StoreUnavailable
from transcode.live import Phase, channel_key

# Live channels encode in real time: one worker runs every live test so they never
# compete for the same two cores.
pytestmark = [pytest.mark.xdist_group("live"), pytest.mark.timeout(240)]

TARGET = 2.0  # seconds: the channels' segment (and target) duration
RECOVERY_BOUND = 2 * TARGET  # the goal: publishing resumes within two target durations
STOP_BOUND = 30.0  # generous; a stop that hangs is what this catches
ROUNDS = 3


@pytest.fixture
def small_origin(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the origin root (skipped where mounting is not allowed)."""
    disk = tmpfs(tmp_path / "origin", "2M")
    try:
        root = disk.__enter__()
    except PermissionError as err:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root / CAP_SYS_ADMIN): {err}")
    try:
        yield root
    finally:
        disk.__exit__(None, None, None)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 4 s clip to loop as a source (starts in a second: no live probing)."""
    return make_clip(tmp_path_factory.mktemp("media") / "loop.ts")


async def _settle(rig: LiveRig, channel: str, segments: int = 2) -> None:
    """Wait until the channel published ``segments`` LIVE segments and indexed them."""
    r = rig.recorder

    def ready() -> bool:
        live = [p for p in r.published[channel] if p.state is ChannelState.LIVE]
        return len(live) >= segments and r.last_indexed(channel) >= live[segments - 1].seq

    async with asyncio.timeout(60):
        await r.until(ready)


def _assert_monotonic(rig: LiveRig, channel: str) -> None:
    published = rig.recorder.published[channel]
    seqs = [p.seq for p in published]
    assert seqs == sorted(set(seqs)), f"{channel}: a sequence number was reused"
    media = [p.media_sequence for p in published]
    assert media == sorted(media), f"{channel}: media sequence went back"
    for p in published:
        assert p.uris[-1] == f"{p.seq:010d}.ts"


# --- Redis restarts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outage_seconds",
    [
        pytest.param(2.0, id="2s"),
        pytest.param(30.0, id="30s", marks=pytest.mark.slow),
    ],
)
async def test_channels_keep_encoding_through_a_redis_restart_and_catch_up(
    tmp_path: Path, outage_seconds: float
) -> None:
    channels = ("news.ch", "sport.ch")
    feeds = {c: Feed().start() for c in channels}
    try:
        async with live_rig(tmp_path) as rig:
            r = rig.recorder
            for channel, feed in feeds.items():
                await rig.manager.start(live_channel(channel, feed.source))
            for channel in channels:
                await _settle(rig, channel)

            loop = asyncio.get_running_loop()
            await rig.kill_redis()
            killed_at = loop.time()
            async with asyncio.timeout(10):
                await r.until(lambda: all(Phase.STORE_DOWN in r.phases[c] for c in channels))
            # Encoding and the playlists on disk carry on without Redis.
            at_kill = {c: r.last_seq(c) for c in channels}
            async with asyncio.timeout(3 * TARGET + 5):
                await r.until(lambda: all(r.last_seq(c) > at_kill[c] for c in channels))
            for channel in channels:
                status = await rig.manager.get(channel)
                assert status.state is ChannelState.DEGRADED
                assert "store unavailable" in status.reason
                on_disk = hls_parse.parse_media(
                    (rig.root / "live" / channel / "90p" / "index.m3u8").read_text()
                )
                assert on_disk.segments[-1].uri == f"{r.last_seq(channel):010d}.ts"
            # The outage itself: its length is the fault, not a synchronisation.
            await asyncio.sleep(max(0.0, outage_seconds - (loop.time() - killed_at)))

            await rig.start_redis()
            back = {c: r.last_seq(c) for c in channels}
            # Within two target durations of Redis answering, every channel has indexed
            # its whole backlog and a segment published after Redis came back.
            async with asyncio.timeout(RECOVERY_BOUND):
                await r.until(lambda: all(r.last_indexed(c) > back[c] for c in channels))
            for channel in channels:
                assert Phase.STORE_UP in r.phases[channel]
                assert (await rig.manager.get(channel)).state is ChannelState.LIVE
                saved = await rig.redis.hgetall(channel_key(channel))
                assert saved[b"state"] == b"LIVE"
                assert int(saved[b"next_sequence"]) > back[channel]

            for channel in channels:
                async with asyncio.timeout(STOP_BOUND):
                    await rig.manager.stop(channel)
                _assert_monotonic(rig, channel)
                indexed = await check_index(rig.redis, rig.root, channel, RUNGS)
                published = [p.seq for p in r.published[channel]]
                # Every published segment indexed, once. A segment is queued for the index
                # before its playlist is written, so a stop in between leaves at most one
                # archived segment that no playlist listed (whole on disk: check_index).
                assert indexed[: len(published)] == published
                assert len(indexed) - len(published) <= 1
                # No restart happened: no discontinuity anywhere.
                assert r.count(channel, Phase.STARTING) == 1
    finally:
        for feed in feeds.values():
            feed.stop()


# --- a full disk ----------------------------------------------------------------------------


async def test_a_full_disk_degrades_the_channel_which_resumes_once_space_is_back(
    tmp_path: Path, small_origin: Path
) -> None:
    root = small_origin
    feed = Feed().start()
    try:
        async with live_rig(tmp_path, root) as rig:
            r = rig.recorder
            await rig.manager.start(live_channel("news.ch", feed.source))
            await _settle(rig, "news.ch")
            filler = root / "filler"
            await asyncio.to_thread(fill, filler)
            async with asyncio.timeout(30):
                await r.until(lambda: Phase.DISK_FULL in r.phases["news.ch"])
            status = await rig.manager.get("news.ch")
            assert status.state is ChannelState.DEGRADED
            assert "ENOSPC" in status.reason
            assert not channel_processes("news.ch")  # nothing runs that cannot write
            before = r.mark("news.ch")
            filler.unlink()
            async with asyncio.timeout(60):
                await r.until(r.live_again("news.ch", before))
            assert (await rig.manager.get("news.ch")).state is ChannelState.LIVE
            async with asyncio.timeout(STOP_BOUND):
                await rig.manager.stop("news.ch")
            _assert_monotonic(rig, "news.ch")
            # Never an index entry for a segment FFmpeg could not finish; every segment
            # played out is indexed (one moved in as the disk filled may be indexed while
            # its playlist could not be written).
            indexed = await check_index(rig.redis, rig.root, "news.ch", RUNGS)
            assert {p.seq for p in r.published["news.ch"]} <= set(indexed)
            resumed = next(p.seq for p in r.published["news.ch"] if p.seq > before[1])
            last = hls_parse.parse_media((root / "live/news.ch/90p/index.m3u8").read_text())
            assert last.endlist
            again = next(s for s in last.segments if s.uri == f"{resumed:010d}.ts")
            assert again.discontinuity or last.discontinuity_sequence > 0
    finally:
        feed.stop()


# --- a supervisor that fails ----------------------------------------------------------------


async def test_a_failed_supervisor_is_reported_counted_and_restarted(
    tmp_path: Path, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow_restart = replace(FAST, restart_first_seconds=1.0, restart_max_seconds=1.0)
    async with live_rig(tmp_path, settings=slow_restart, media_roots=(clip.parent,)) as rig:
        r = rig.recorder
        await rig.manager.start(live_channel("loop.ch", f"file://{clip}"))
        await _settle(rig, "loop.ch")
        # A bug in the supervisor while it runs: the phase hook raises as the source (a
        # real FFmpeg, killed under it) is retired.
        r.fail_on = ("loop.ch", Phase.RETIRING)
        supervisor = rig.manager.supervisor("loop.ch")
        assert supervisor is not None
        mark = r.mark("loop.ch")
        with caplog.at_level(logging.ERROR, logger="headend.tasks"):
            for process in channel_processes("loop.ch"):
                process.kill()
            async with asyncio.timeout(30):
                await r.until(lambda: Phase.FAILED in r.phases["loop.ch"])
            status = await rig.manager.get("loop.ch")
            assert status.state is ChannelState.RECOVERING
            assert "injected failure" in status.reason
            async with asyncio.timeout(30):
                await r.until(r.live_again("loop.ch", mark))
        failures = [rec for rec in caplog.records if rec.getMessage().startswith("background task")]
        assert [getattr(rec, "task", "") for rec in failures] == ["live/loop.ch/supervise"]
        restarts = rig.manager.metrics.registry.get_sample_value(
            "headend_task_restarts_total", {"task": "live/loop.ch/supervise"}
        )
        assert restarts == 1
        assert (await rig.manager.get("loop.ch")).state is ChannelState.LIVE
        async with asyncio.timeout(STOP_BOUND):
            await rig.manager.stop("loop.ch")
        _assert_monotonic(rig, "loop.ch")
        assert await check_index(rig.redis, rig.root, "loop.ch", RUNGS) == [
            p.seq for p in r.published["loop.ch"]
        ]


# --- StopChannel in every state -------------------------------------------------------------

Driver = Callable[[LiveRig, str, Path], Awaitable[None]]


async def _until_phase(rig: LiveRig, channel: str, phase: Phase) -> None:
    async with asyncio.timeout(60):
        await rig.recorder.until(lambda: phase in rig.recorder.phases[channel])


async def _starting(rig: LiveRig, channel: str, clip: Path) -> None:
    await rig.manager.start(live_channel(channel, Feed().source, segment_seconds=1))
    await _until_phase(rig, channel, Phase.STARTING)


async def _live(rig: LiveRig, channel: str, clip: Path) -> None:
    await rig.manager.start(live_channel(channel, f"file://{clip}", segment_seconds=1))
    await _settle(rig, channel, 1)


async def _retiring(rig: LiveRig, channel: str, clip: Path) -> None:
    feed = Feed().start()
    try:
        await rig.manager.start(live_channel(channel, feed.source, segment_seconds=1))
        await _settle(rig, channel, 1)
    finally:
        feed.stop()  # the source fails on demand
    await _until_phase(rig, channel, Phase.RETIRING)


async def _slate(rig: LiveRig, channel: str, clip: Path) -> None:
    await rig.manager.start(live_channel(channel, Feed().source, segment_seconds=1))
    await _until_phase(rig, channel, Phase.RETRYING)  # the slate runs, the source is retried


async def _backoff(rig: LiveRig, channel: str, clip: Path) -> None:
    await rig.manager.start(live_channel(channel, Feed().source, segment_seconds=1))
    await _until_phase(rig, channel, Phase.BACKOFF)


async def _recovering(rig: LiveRig, channel: str, clip: Path) -> None:
    # A file where the work directory goes: the supervisor fails at once, and again.
    (rig.root / "live" / channel).mkdir(parents=True, exist_ok=True)
    (rig.root / "live" / channel / ".work").write_text("in the way")
    await rig.manager.start(live_channel(channel, f"file://{clip}", segment_seconds=1))
    await _until_phase(rig, channel, Phase.FAILED)
    assert (await rig.manager.get(channel)).state is ChannelState.RECOVERING


async def _store_down(rig: LiveRig, channel: str, clip: Path) -> None:
    await _live(rig, channel, clip)
    await rig.kill_redis()
    await _until_phase(rig, channel, Phase.STORE_DOWN)


async def _disk_full(rig: LiveRig, channel: str, clip: Path) -> None:
    await _live(rig, channel, clip)
    await asyncio.to_thread(fill, rig.root / "filler")
    await _until_phase(rig, channel, Phase.DISK_FULL)


STATES: dict[str, Driver] = {
    "starting": _starting,
    "live": _live,
    "retiring": _retiring,
    "slate": _slate,
    "backoff": _backoff,
    "recovering": _recovering,
    "store_down": _store_down,
    "disk_full": _disk_full,
}


@pytest.mark.parametrize("state", [pytest.param(s, id=s) for s in STATES])
async def test_stop_finishes_in_every_state(
    tmp_path: Path, clip: Path, state: str, request: pytest.FixtureRequest
) -> None:
    slow_restart = replace(FAST, restart_first_seconds=5.0, restart_max_seconds=5.0)
    settings = slow_restart if state == "recovering" else FAST
    root = request.getfixturevalue("small_origin") if state == "disk_full" else None
    async with live_rig(tmp_path, root, settings, media_roots=(clip.parent,)) as rig:
        for n in range(ROUNDS):
            channel = f"{state.replace('_', '-')}-{n}.ch"
            await STATES[state](rig, channel, clip)
            try:
                async with asyncio.timeout(STOP_BOUND):
                    status = await rig.manager.stop(channel)
                assert status.state is ChannelState.STOPPED
            except StoreUnavailable:
                assert state == "store_down"  # stopped; saving that waits for Redis
                assert rig.manager.supervisor(channel) is None
                await rig.start_redis()
                async with asyncio.timeout(STOP_BOUND):
                    status = await rig.manager.stop(channel)  # what a client's retry does
                assert status.state is ChannelState.STOPPED
            assert rig.manager.supervisor(channel) is None
            assert not channel_processes(channel)
            assert not (rig.root / "live" / channel / ".work").is_dir()
            saved = await rig.redis.hgetall(channel_key(channel))
            assert saved[b"desired"] == b"stopped"
            (rig.root / "filler").unlink(missing_ok=True)
            if state == "recovering":
                (rig.root / "live" / channel / ".work").unlink()
