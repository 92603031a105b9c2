"""The change feed through quiet spells, restarts and stores that lost history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from epg.convert import VERSION_HEADER
from epg.domain import WritePolicy
from epg.errors import ProgrammeIdInUse
from epg.service import EpgService
from epg.store import EpgStore
from headend.auth import ADMIN, KeyStore
from headend.redisconn import RedisSettings, block_ms, connect
from headend.redisproc import RedisServer
from protos import epg_pb2
from tests.epg.support import BROADCASTER, CH, T0, channel, prog, serve_epg


class StopsBeforeTheFeed(EpgStore):
    """A store whose writer stops after the channel script, before the emit: the crash
    between the two steps of a change (``epg.store.feed``)."""

    async def _forward(self, client: Any, channel_id: str, entries: Any, mode: str) -> Any:
        if mode == "writer":
            raise ConnectionError("the writer stopped")
        return await super()._forward(client, channel_id, entries, mode)


@pytest.fixture
async def short_timeout(
    redis: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[EpgStore]:
    """A store whose client times reads out after 1 s (redis-py 8 does after 5 s)."""
    client = connect(redis_server.url, RedisSettings(socket_timeout_seconds=1.0))
    yield EpgStore(client)
    await client.aclose()


@pytest.mark.parametrize(
    ("timeout", "wanted", "capped"),
    [
        pytest.param(5.0, 5_000, 2_500, id="redis-py-8-default-5s"),
        pytest.param(5.0, 100, 100, id="short-block-kept"),
        pytest.param(60.0, 5_000, 5_000, id="long-timeout"),
        pytest.param(1.0, 0, 1, id="never-block-forever"),
    ],
)
def test_blocking_reads_are_capped_below_the_socket_timeout(
    redis_server: RedisServer, timeout: float, wanted: int, capped: int
) -> None:
    client = connect(redis_server.url, RedisSettings(socket_timeout_seconds=timeout))
    assert block_ms(client, wanted) == capped


async def test_a_quiet_feed_outlives_the_socket_timeout(short_timeout: EpgStore) -> None:
    service = EpgService(store=short_timeout, watch_block_ms=60_000)
    await service.create_channel(BROADCASTER, channel())
    feed = await service.open_changes(ADMIN)
    following = asyncio.ensure_future(anext(feed))
    # Three socket timeouts without a change: the feed neither fails nor ends.
    done, _ = await asyncio.wait({following}, timeout=3)
    assert done == set()
    await service.put_programmes(BROADCASTER, channel().id, [prog(T0)])
    change = await asyncio.wait_for(following, 5)
    assert change.kind == "programmes"
    await feed.aclose()


async def test_a_feed_ahead_of_the_store_starts_with_resync(service: EpgService) -> None:
    """A Redis restored from an older state (or replaced) has versions the caller already
    saw: it cannot resume, so it is told to drop its cache."""
    await service.create_channel(BROADCASTER, channel())
    latest = (await service.open_changes(ADMIN)).version
    feed = await service.open_changes(ADMIN, from_version=latest + 50)
    first = await anext(feed)
    assert (first.kind, first.version, feed.version) == ("resync", latest, latest)
    await service.put_programmes(BROADCASTER, channel().id, [prog(T0)])
    assert (await anext(feed)).version == latest + 1
    await feed.aclose()


async def test_watch_changes_says_where_it_is_positioned(
    redis: aioredis.Redis, keys: KeyStore, tokens: Any
) -> None:
    async with serve_epg(redis, keys, tokens) as epg:
        md = await epg.md()
        await epg.stub.CreateChannel(
            epg_pb2.CreateChannelRequest(
                channel_id="gd1.gdtv.cn",
                channel=epg_pb2.Channel(
                    number=1, owner="gdtv",
                    names=[epg_pb2.LocalizedText(lang="en", text="GD")],
                )
            ),
            metadata=md,
        )  # fmt: skip
        for start, expected in ((0, "1"), (1, "1")):
            call = epg.stub.WatchChanges(
                epg_pb2.WatchChangesRequest(from_version=start), metadata=md
            )
            headers = dict(await asyncio.wait_for(call.initial_metadata(), 10))
            call.cancel()
            assert headers[VERSION_HEADER] == expected


async def _left_behind(redis: aioredis.Redis, store: EpgStore) -> None:
    """Channel CH at version 1, then programme p1 stored but not in the feed."""
    await store.create_channel(channel())
    with pytest.raises(ConnectionError):
        await StopsBeforeTheFeed(redis).write_programmes(
            CH, [prog(T0, pid="p1")], policy=WritePolicy.REFUSE
        )
    assert [p.id for p in await store.range(CH, T0, T0 + timedelta(hours=1))] == ["p1"]


async def test_a_change_left_behind_reaches_the_feed_once(
    redis: aioredis.Redis, store: EpgStore
) -> None:
    await _left_behind(redis, store)
    # Its claim is recent: the writer may still be on its way, so readers leave it alone.
    assert await store.read_changes(1, block_ms=1) == []
    assert await store.settle(older_than_seconds=0) == 1
    changes = await store.read_changes(1, block_ms=1)
    assert [(c.version, c.channel_id, c.programme_ids) for c in changes] == [(2, CH, ("p1",))]
    assert await store.settle(older_than_seconds=0) == 0
    assert await store.read_changes(2, block_ms=1) == []


async def test_the_next_change_of_the_channel_forwards_the_one_left_behind(
    redis: aioredis.Redis, store: EpgStore
) -> None:
    await _left_behind(redis, store)
    later = await store.write_programmes(
        CH, [prog(T0 + timedelta(hours=1), pid="p2")], policy=WritePolicy.REFUSE
    )
    assert later.version == 3
    changes = await store.read_changes(1, block_ms=1)
    assert [(c.version, c.programme_ids) for c in changes] == [(2, ("p1",)), (3, ("p2",))]
    await store.settle(older_than_seconds=0)
    assert await store.read_changes(3, block_ms=1) == []


async def test_a_removed_programme_frees_its_id_for_other_channels(store: EpgStore) -> None:
    await store.create_channel(channel())
    await store.create_channel(channel("gd2.gdtv.cn"))
    await store.write_programmes(CH, [prog(T0, pid="p1")], policy=WritePolicy.REFUSE)
    moved = prog(T0, ch="gd2.gdtv.cn", pid="p1")
    with pytest.raises(ProgrammeIdInUse):
        await store.write_programmes("gd2.gdtv.cn", [moved], policy=WritePolicy.REFUSE)
    await store.delete_programmes(CH, ids=["p1"])
    await store.write_programmes("gd2.gdtv.cn", [moved], policy=WritePolicy.REFUSE)
    assert [p.id for p in await store.range("gd2.gdtv.cn", T0, T0 + timedelta(hours=1))] == ["p1"]
    assert await store.range(CH, T0, T0 + timedelta(hours=1)) == []
    got = await store.get_programme("p1")
    assert got is not None
    assert got.channel_id == "gd2.gdtv.cn"
    with pytest.raises(ProgrammeIdInUse):
        await store.write_programmes(CH, [prog(T0, pid="p1")], policy=WritePolicy.REFUSE)
