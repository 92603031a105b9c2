"""The whole farm with origins on their own disks: three ``python -m transcode node``
processes, each on its own ``ORIGIN_ROOT``, push to two ``python -m transcode.origin``
processes on theirs. A player reading one origin over HTTP keeps playing through a
SIGKILL of the node that owns its channel, and both origins still serve the catch-up
window that node wrote before it died."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
import redis.asyncio as aioredis

from headend.redisproc import RedisServer
from tests.support.farm import LiveReader, NodeProcess, discontinuities, http_fetch, until
from tests.support.live import indexed_entries
from tests.support.media import Media
from tests.support.services import ServiceProcess, child_env
from transcode import hls_parse
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, LiveChannel
from transcode.farm import ChannelIntents, NodeDirectory

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live")]

SECRET = "f" * 40
CHANNELS = ("o0", "o1", "o2")
T = TypeVar("T")


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


@pytest.fixture
async def origins(
    tmp_path: Path, farm_redis: tuple[RedisServer, aioredis.Redis]
) -> AsyncIterator[list[ServiceProcess]]:
    server, _ = farm_redis
    started: list[ServiceProcess] = []
    try:
        for name in ("oa", "ob"):
            env = child_env(
                server.url,
                ORIGIN_ROOT=str(tmp_path / name / "root"),
                ORIGIN_PORT="0",
                ORIGIN_INGEST_SECRET=SECRET,
            )
            origin = ServiceProcess("transcode.origin", env, listening="origin listening")
            started.append(origin)
            await origin.start()
        yield started
    finally:
        for origin in started:
            await origin.stop()


async def test_a_player_on_an_origin_plays_through_a_node_kill_and_catchup_survives(
    tmp_path: Path,
    media: Media,
    farm_redis: tuple[RedisServer, aioredis.Redis],
    origins: list[ServiceProcess],
) -> None:
    server, redis = farm_redis
    control, directory = ChannelIntents(redis), NodeDirectory(redis)
    procs: list[NodeProcess] = []
    for i in range(3):
        home = tmp_path / f"n{i}"
        env = child_env(
            server.url,
            ORIGIN_ROOT=str(home / "root"),  # each node its own disk
            TC_ORIGIN_PUSH_URLS=",".join(o.url for o in origins),
            ORIGIN_INGEST_SECRET=SECRET,
            TC_ORIGIN_PUSH_RETRY_MAX_SECONDS="0.5",
            TC_MEDIA_ROOTS=str(media.clip.parent.resolve()),
            TC_NODE_LEASE_SECONDS="2",
            TC_NODE_TICK_SECONDS="0.3",
            TC_NODE_CAPACITY="4",
            TC_LIVE_STORE_RETRY_SECONDS="0.2",
            TC_LIVE_STOP_SECONDS="2",
        )
        home.mkdir()
        procs.append(NodeProcess(f"n{i}", env))
    async with contextlib.AsyncExitStack() as cleanup:
        for proc in procs:
            proc.start()
            cleanup.callback(proc.stop)
        http = await cleanup.enter_async_context(aiohttp.ClientSession())

        async def all_up() -> bool:
            return len(await directory.nodes()) == 3

        await until("3 nodes up", all_up, 30)
        for channel_id in CHANNELS:
            await control.start(_channel(channel_id, media))

        async def all_live() -> dict[str, str] | None:
            statuses = [await control.get(c) for c in CHANNELS]
            if all(s.node and s.state is ChannelState.LIVE for s in statuses):
                return {s.channel.id: s.node for s in statuses}
            return None

        got_placed = await until("all live", all_live, 45)
        assert got_placed is not None
        placed: dict[str, str] = got_placed
        assert len(set(placed.values())) == 3, placed

        # A player on origin A, over HTTP, on o1.
        reader = LiveReader(http_fetch(http, origins[0].url), "live/o1/90p/index.m3u8").start()
        cleanup.push_async_callback(reader.stop)

        async def playing() -> bool:
            return len(reader.seen) >= 4

        await until("the player plays o1 from origin A", playing, 30)
        victim = next(p for p in procs if p.id == placed["o1"])
        before = await control.get("o1")
        played_before = max(reader.seen)
        victim.kill()

        async def moved() -> bool:
            s = await control.get("o1")
            return bool(s.node) and s.node != victim.id and s.token > before.token

        await until("o1 moved to another node", moved, 20)

        async def follows() -> bool:
            return reader.after(played_before) >= 3

        await until("the player follows on the new node", follows, 30)
        await reader.stop()
        got = reader.ordered()
        assert not reader.errors, reader.errors
        assert not reader.reused, f"sequence numbers reused: {reader.reused}"
        seqs = [s.sequence for s in got]
        # At most the segment in flight at the kill is missing (published on the dead
        # node's disk, never pushed).
        missing = set(range(seqs[0], seqs[-1] + 1)) - set(seqs)
        assert len(missing) <= 1, (missing, got)
        assert discontinuities(got) <= 1, got
        entries = await indexed_entries(redis, "o1", "90p")
        indexed = [e[0] for e in entries]
        assert len(indexed) == len(set(indexed)), "a sequence number was indexed twice"
        assert indexed == sorted(indexed)

        # Catch-up written by the dead node before the kill (up to the segment before the
        # last one the player got): on both origins, byte for byte the node's files.
        recent = await ArchiveIndex(redis).recent("o1", "90p", 1000)
        archive = [e for e in recent if e.sequence < played_before]
        assert len(archive) >= 2, archive
        start = int(archive[0].start.timestamp())
        end = int(archive[-1].start.timestamp()) + 1
        expected = [Path(e.path).name for e in archive]
        victim_root = Path(victim.env["ORIGIN_ROOT"])
        for origin in origins:
            base = f"{origin.url}/catchup/o1/w/{start}/{end}/90p"
            async with http.get(f"{base}/index.m3u8") as response:
                assert response.status == 200, (origin.url, await response.text())
                listed = [s.uri for s in hls_parse.parse_media(await response.text()).segments]
            assert set(expected) <= set(listed), (expected, listed)
            for name in listed:
                async with http.get(f"{base}/{name}") as response:
                    assert response.status == 200, (origin.url, name)
                    body = await response.read()
                local = victim_root / "live/o1/90p" / name
                if int(name[:-3]) <= played_before:
                    assert body == local.read_bytes(), name
