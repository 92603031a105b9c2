"""Live channels on a farm of real ``python -m transcode node`` processes: placement,
failover after SIGKILL with the numbering continued, fenced writes, make-before-break
drains, node groups, and two control processes starting one channel (the farm's stores
on their own: ``test_farm_store.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
import redis.asyncio as aioredis

from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from tests.support.farm import (
    LiveReader,
    NodeProcess,
    discontinuities,
    disk_fetch,
    largest_pdt_step,
    largest_wait,
    nodes,
    until,
)
from tests.support.live import channel_processes, indexed_entries
from tests.support.media import Media
from tests.support.services import ServiceProcess, child_env
from transcode.archive import index_key
from transcode.client import TranscodeClient
from transcode.domain import ChannelState, LiveChannel
from transcode.errors import ChannelRunning
from transcode.farm import ChannelIntents, NodeDirectory
from transcode.farm.handover import handover_key
from transcode.farm.ownership import owner_key

T = TypeVar("T")

pytestmark = pytest.mark.xdist_group("live")


def _channel(channel_id: str, media: Media, *, group: str = "") -> LiveChannel:
    return LiveChannel(
        node_group=group,
        id=channel_id,
        source=f"file://{media.clip}",
        profile="low",
        segment_seconds=1,
        window_segments=6,
        catchup_days=1,
        source_timeout_seconds=1.0,
    )


@pytest.fixture
def farm_env(
    tmp_path: Path, media: Media, farm_redis: tuple[RedisServer, aioredis.Redis]
) -> dict[str, str]:
    server, _ = farm_redis
    return child_env(
        server.url,
        ORIGIN_ROOT=str(tmp_path / "origin"),
        TC_MEDIA_ROOTS=str(media.clip.parent.resolve()),
        TC_NODE_LEASE_SECONDS="2",
        TC_NODE_TICK_SECONDS="0.3",
        TC_NODE_CAPACITY="4",
        TC_LIVE_STORE_RETRY_SECONDS="0.2",
        TC_LIVE_STOP_SECONDS="2",
    )


async def test_channels_spread_fail_over_and_fence(
    farm_env: dict[str, str], farm_redis: tuple[RedisServer, aioredis.Redis], media: Media
) -> None:
    _, redis = farm_redis
    control, replica = ChannelIntents(redis), ChannelIntents(redis)
    ids = ("ch0", "ch1", "ch2")
    with nodes(3, farm_env) as procs:
        by_id = {p.id: p for p in procs}
        directory = NodeDirectory(redis)

        async def all_up() -> bool:
            return len(await directory.nodes()) == 3

        await until("3 nodes up", all_up, 30)
        # Two control replicas start the same channel at once: one owner.
        results = await asyncio.gather(
            control.start(_channel("ch0", media)),
            replica.start(_channel("ch0", media)),
            return_exceptions=True,
        )
        assert any(not isinstance(r, BaseException) for r in results)
        for channel_id in ids[1:]:
            await control.start(_channel(channel_id, media))

        async def all_live() -> dict[str, str] | None:
            statuses = [await control.get(c) for c in ids]
            if all(s.node and s.state is ChannelState.LIVE for s in statuses):
                return {s.channel.id: s.node for s in statuses}
            return None

        placed: dict[str, str] = await until("all live", all_live, 45)
        assert len(set(placed.values())) == 3, placed  # one per node: least-loaded first

        # SIGKILL the node running ch1: another node takes it, numbering goes on.
        victim = by_id[placed["ch1"]]
        before = await control.get("ch1")

        async def indexed_seqs() -> list[int]:
            return [e[0] for e in await indexed_entries(redis, "ch1", "90p")]

        await until("ch1 indexed", indexed_seqs)
        reader = LiveReader(disk_fetch(Path(farm_env["ORIGIN_ROOT"])), "live/ch1/90p/index.m3u8")
        reader.start()
        await until("the reader plays ch1", _async(lambda: len(reader.seen) >= 2))
        encoders = [p for p in victim.descendants() if p.name() == "ffmpeg"]
        assert encoders, "the victim runs its channel's FFmpeg"
        victim.signal(signal.SIGKILL)  # the node only: its FFmpeg must die with it
        _, alive = await asyncio.to_thread(psutil.wait_procs, encoders, 10)
        assert alive == [], "FFmpeg outlived its SIGKILLed node"

        async def moved() -> bool:
            s = await control.get("ch1")
            return bool(s.node) and s.node != victim.id and s.token > before.token

        await until("ch1 moved", moved, 20)
        last_before = max(await indexed_seqs())

        async def continued() -> bool:
            return max(await indexed_seqs()) > last_before + 1

        await until("ch1 continues", continued, 30)
        await until("the reader follows", _async(lambda: reader.after(last_before) >= 2), 10)
        await reader.stop()
        got = reader.ordered()
        assert not reader.errors, reader.errors
        assert [s.sequence for s in got] == list(range(got[0].sequence, got[-1].sequence + 1))
        assert discontinuities(got) <= 1, got
        entries = await indexed_entries(redis, "ch1", "90p")
        seqs = [e[0] for e in entries]
        assert len(seqs) == len(set(seqs)), "a sequence number was used twice"
        assert seqs == sorted(seqs)
        assert any(disc for seq, _s, _z, _p, disc in entries if seq > before.media_sequence)

        # SIGSTOP the node running ch2 past its lease, then SIGCONT: its writes are refused.
        paused = by_id[placed["ch2"]]
        owner = await control.get("ch2")
        paused.signal(signal.SIGSTOP)

        async def taken() -> bool:
            s = await control.get("ch2")
            return bool(s.node) and s.node != paused.id

        try:
            await until("ch2 taken over", taken, 20)
        finally:
            paused.signal(signal.SIGCONT)
        new_owner = await control.get("ch2")
        assert new_owner.token > owner.token
        await asyncio.sleep(2.0)  # the old owner wakes up, finds its lease gone
        lines = paused.log.read_text()
        assert "lease lost" in lines or "fenced" in lines, lines[-2000:]
        # Everything indexed since the takeover came from the new owner's files.
        assert await redis.get(owner_key("ch2")) == f"{new_owner.node}|{new_owner.token}".encode()
        assert await redis.zcard(index_key("ch2", "90p")) > 0

        stopped = await control.stop("ch0")
        assert stopped.state is ChannelState.STOPPED
        assert stopped.node == ""
    assert not os.environ.get("TC_NODE_ID")


def _async(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def run() -> T:
        return check()

    return run


async def _live_on(control: ChannelIntents, channel_id: str) -> str:
    s = await control.get(channel_id)
    return s.node if s.node and s.state is ChannelState.LIVE else ""


async def test_drain_hands_over_without_a_gap(
    farm_env: dict[str, str], farm_redis: tuple[RedisServer, aioredis.Redis], media: Media
) -> None:
    _, redis = farm_redis
    control, directory = ChannelIntents(redis), NodeDirectory(redis)
    root = Path(farm_env["ORIGIN_ROOT"])
    with nodes(2, farm_env) as procs:
        await until("2 nodes up", _async_nodes(directory, 2), 30)
        await control.start(_channel("d0", media))
        first = await until("d0 live", lambda: _live_on(control, "d0"), 45)
        other = next(p.id for p in procs if p.id != first)
        reader = LiveReader(disk_fetch(root), "live/d0/90p/index.m3u8").start()
        await until("the reader plays d0", _async(lambda: len(reader.seen) >= 3))
        before = await control.get("d0")
        await directory.drain(str(first))

        async def moved() -> bool:
            s = await control.get("d0")
            return s.node == other and s.token > before.token

        await until("d0 handed over", moved, 30)
        last_old = max(reader.seen)
        await until("the reader follows", _async(lambda: reader.after(last_old) >= 3), 15)
        await reader.stop()
        got = reader.ordered()
        assert not reader.errors, reader.errors
        seqs = [s.sequence for s in got]
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "a segment was skipped"
        assert discontinuities(got) <= 1, got
        # Make-before-break: the new owner's first segment follows at the usual pace.
        assert largest_pdt_step(got) <= 1.0 + 0.5, got
        assert largest_wait(got) <= 2.0, got
        entries = await indexed_entries(redis, "d0", "90p")
        indexed = [e[0] for e in entries]
        assert len(indexed) == len(set(indexed))
        assert indexed == sorted(indexed)
        assert sum(1 for e in entries if e[4] and e[0] > before.media_sequence) <= 1
        assert not await redis.exists(handover_key("d0"))
        assert (await directory.get(str(first))).channels == ()

        # A drained node that comes back (restarted, then resumed) takes nothing back.
        drained = next(p for p in procs if p.id == first)
        drained.stop()
        drained.start()
        await until("n back", _async_nodes(directory, 2), 30)
        assert (await directory.get(drained.id)).draining
        await directory.drain(drained.id, resume=True)
        await asyncio.sleep(1.5)  # several placement ticks
        assert (await control.get("d0")).node == other
        assert (await directory.get(drained.id)).channels == ()


def _async_nodes(directory: NodeDirectory, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await directory.nodes()) == count

    return check


async def test_pinned_channel_runs_only_in_its_group(
    farm_env: dict[str, str], farm_redis: tuple[RedisServer, aioredis.Redis], media: Media
) -> None:
    _, redis = farm_redis
    control, directory = ChannelIntents(redis), NodeDirectory(redis)
    plain = NodeProcess("n0", farm_env).start()
    county: NodeProcess | None = None
    try:
        await until("n0 up", _async_nodes(directory, 1), 30)
        await control.start(_channel("p0", media, group="county-a"))
        await asyncio.sleep(1.5)  # several placement ticks: n0 is not in the group
        waiting = await control.get("p0")
        assert waiting.node == ""
        assert waiting.state is ChannelState.STARTING
        county = NodeProcess("a0", farm_env, TC_NODE_GROUP="county-a").start()
        assert await until("p0 live in its group", lambda: _live_on(control, "p0"), 45) == "a0"
        assert (await directory.get("n0")).channels == ()
    finally:
        plain.stop()
        if county is not None:
            county.stop()


async def test_two_control_processes_start_one_channel_once(
    farm_env: dict[str, str], farm_redis: tuple[RedisServer, aioredis.Redis], media: Media
) -> None:
    _server, redis = farm_redis
    env = {**farm_env, "TC_EMBEDDED_NODE": "false"}
    _, key = await KeyStore(redis).create(ADMIN)
    controls = [ServiceProcess("transcode", env), ServiceProcess("transcode", env)]
    try:
        await asyncio.gather(*(c.start() for c in controls))
        with nodes(2, farm_env):
            clients = [TranscodeClient(c.target, key) for c in controls]
            source = f"file://{media.clip}"
            results = await asyncio.gather(
                *(c.start_channel("c0", source, profile="low", segment_seconds=1) for c in clients),
                return_exceptions=True,
            )
            assert sum(not isinstance(r, BaseException) for r in results) >= 1, results
            for r in results:
                assert not isinstance(r, BaseException) or isinstance(r, ChannelRunning), r
            control = ChannelIntents(redis)
            node = await until("c0 live", lambda: _live_on(control, "c0"), 45)
            await asyncio.sleep(1.0)  # both control processes and nodes settled
            advertised = [n.id for n in await NodeDirectory(redis).nodes() if "c0" in n.channels]
            assert advertised == [node]
            assert len(channel_processes("c0")) == 1  # one FFmpeg in the whole farm
            for client in clients:
                assert (await client.get_channel("c0")).node == node
                await client.close()
    finally:
        for control_process in controls:
            await control_process.stop()
