"""Live channels on a farm of real ``python -m transcode node`` processes: placement,
failover after SIGKILL with the numbering continued, and fenced writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis

from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.live import indexed_entries
from tests.support.media import Media
from tests.support.services import REPO, child_env
from transcode.archive import RedisWrite, index_key
from transcode.domain import ChannelState, LiveChannel
from transcode.errors import LeaseLost
from transcode.farm import ChannelIntents, NodeDirectory, Ownership
from transcode.farm.ownership import owner_key

pytestmark = pytest.mark.xdist_group("live")


@pytest.fixture
async def farm_redis(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, aioredis.Redis]]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
    try:
        yield server, client
    finally:
        await client.aclose()
        server.stop()


async def test_stale_token_writes_are_refused(
    farm_redis: tuple[RedisServer, aioredis.Redis],
) -> None:
    _, redis = farm_redis
    ownership = Ownership(redis, ttl_seconds=5.0)
    old = await ownership.claim("ch1", "a")
    assert old is not None
    assert await ownership.claim("ch1", "b") is None  # owned: nobody else gets it
    await redis.delete(owner_key("ch1"))  # as if the lease expired while "a" was paused
    new = await ownership.claim("ch1", "b")
    assert new is not None
    assert new.token > old.token
    write = [RedisWrite("ZADD", "tc:archive:ch1:90p", ("1.0", "late"))]
    with pytest.raises(LeaseLost):
        await ownership.write(old, write)  # locally still valid: Redis refuses it
    assert await redis.zcard("tc:archive:ch1:90p") == 0
    assert ownership.metrics.fenced.labels("ch1")._value.get() == 1
    await ownership.write(new, write)
    assert await redis.zcard("tc:archive:ch1:90p") == 1
    assert not await ownership.renew(old)
    assert not await ownership.release(old)
    assert await ownership.owner("ch1") == ("b", new.token)


class NodeProcess:
    """``python -m transcode node`` as a child (its own session: its FFmpeg runs are found
    as its descendants and killed with it)."""

    def __init__(self, node_id: str, env: dict[str, str]) -> None:
        self.id = node_id
        self.env = {**env, "TC_NODE_ID": node_id}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["ORIGIN_ROOT"]).parent / f"{node_id}.log"

    def start(self) -> NodeProcess:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "transcode", "node"], cwd=REPO, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        return self

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """Power loss: the node and every FFmpeg it ran die at once."""
        doomed = self.descendants()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for child in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return
        doomed = self.descendants()
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        for child in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@contextlib.contextmanager
def nodes(count: int, env: dict[str, str]) -> Iterator[list[NodeProcess]]:
    started = [NodeProcess(f"n{i}", env).start() for i in range(count)]
    try:
        yield started
    finally:
        for node in started:
            node.stop()


def _channel(channel_id: str, media: Media) -> LiveChannel:
    return LiveChannel(
        id=channel_id,
        source=f"file://{media.clip}",
        profile="low",
        segment_seconds=1,
        window_segments=6,
        catchup_days=1,
        source_timeout_seconds=1.0,
    )


async def _until(what: str, check: object, bound_seconds: float = 30.0) -> object:
    async with asyncio.timeout(bound_seconds):
        while True:
            got = await check()  # type: ignore[operator]
            if got:
                return got
            await asyncio.sleep(0.2)
    raise AssertionError(what)  # pragma: no cover


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

        await _until("3 nodes up", all_up, 30)
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

        placed: dict[str, str] = await _until("all live", all_live, 45)  # type: ignore[assignment]
        assert len(set(placed.values())) == 3, placed  # one per node: least-loaded first

        # SIGKILL the node running ch1: another node takes it, numbering goes on.
        victim = by_id[placed["ch1"]]
        before = await control.get("ch1")

        async def indexed_seqs() -> list[int]:
            return [e[0] for e in await indexed_entries(redis, "ch1", "90p")]

        await _until("ch1 indexed", indexed_seqs)
        victim.kill()

        async def moved() -> bool:
            s = await control.get("ch1")
            return bool(s.node) and s.node != victim.id and s.token > before.token

        await _until("ch1 moved", moved, 20)
        last_before = max(await indexed_seqs())

        async def continued() -> bool:
            return max(await indexed_seqs()) > last_before + 1

        await _until("ch1 continues", continued, 30)
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
            await _until("ch2 taken over", taken, 20)
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
