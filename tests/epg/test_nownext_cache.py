"""The NowNext cache (``epg.store.nownext``) on real replicas: two EPG servers on one Redis.

A replica answers NowNext from memory once it follows the change feed; what another
replica changes reaches it through the feed, so every check of a change waits for the
answer with a bound (the feed's latency) instead of sleeping. A write planted in Redis
behind the feed's back shows that answers really come from memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.domain import WritePolicy, programme_id
from epg.server import create_server
from epg.settings import EpgSettings
from epg.store import EpgStore
from epg.store.base import data_key, idx_key
from headend.auth import ADMIN, KeyStore, Principal
from headend.clock import utc_now
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings, bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc
from tests.epg.support import (
    BROADCASTER,
    CARRIER,
    CH,
    DEVICE,
    OTHER,
    PARENT,
    channel,
    pb_create,
    pb_prog,
    plant_programme,
    prog,
)
from tests.support.farm import until
from tests.support.tokens import Tokens

START = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
SLOTS = 48  # half hours from START: a day, however late in a long run these tests come
BOUND_SECONDS = 30.0  # the feed's latency is a block (50 ms here); this only ends a failure


@dataclass
class Replica:
    """One EPG server: its stub and its metrics."""

    stub: epg_pb2_grpc.EpgServiceStub
    registry: CollectorRegistry

    def gauge(self, name: str) -> float:
        value = self.registry.get_sample_value(name)
        assert value is not None, name
        return value

    async def following(self) -> bool:
        return self.gauge("epg_nownext_cache_following") == 1

    async def titles(self, md: Any, cid: str = CH) -> tuple[str, str]:
        request = epg_pb2.NowNextRequest(channel_ids=[cid])
        (entry,) = (await self.stub.NowNext(request, metadata=md)).entries
        return entry.now.titles[0].text, entry.next.titles[0].text


@asynccontextmanager
async def replica(redis: aioredis.Redis, keys: KeyStore, **settings: Any) -> AsyncIterator[Replica]:
    """An EPG server on port 0, following the feed (waited for) before it is used."""
    server, port = await create_server(
        EpgSettings(rpc=RpcSettings(port=0), watch_block_ms=50, **settings),
        redis=redis,
        keys=keys,
    )
    chan = client_channel(f"127.0.0.1:{port}")
    try:
        served = Replica(epg_pb2_grpc.EpgServiceStub(chan), server.metrics.registry)
        await until("the replica follows the change feed", served.following, BOUND_SECONDS)
        yield served
    finally:
        await chan.close()
        await server.stop(0)


async def put_day(writer: Replica, md: Any, title: str, cid: str = CH) -> None:
    """SLOTS half hours from START, titled ``title`` and a number, replacing any."""
    await writer.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=f"channels/{cid}",
            programmes=[
                pb_prog(START + timedelta(minutes=30 * i), title=f"{title} {i}")
                for i in range(SLOTS)
            ],
            policy=epg_pb2.WRITE_POLICY_REPLACE,
        ),
        metadata=md,
    )


async def seed(writer: Replica, md: Any, cid: str = CH, title: str = "old") -> None:
    await writer.stub.CreateChannel(pb_create(cid, owner="gdtv"), metadata=md)
    await put_day(writer, md, title, cid)


def on_air(title: str) -> tuple[str, str]:
    """The titles NowNext gives now for a day written by ``put_day``."""
    i = int((utc_now() - START).total_seconds() // 1800)
    return f"{title} {i}", f"{title} {i + 1}"


async def plant_title(redis: aioredis.Redis, title: str) -> None:
    """Rename every programme of CH in Redis itself, behind the feed's back."""
    for i in range(SLOTS):
        start = START + timedelta(minutes=30 * i)
        await plant_programme(redis, prog(start, pid=programme_id(CH, start), title=f"{title} {i}"))


async def test_a_change_through_another_replica_is_seen_within_the_feeds_latency(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> None:
    md = bearer(await tokens(ADMIN))
    async with replica(redis, keys) as a, replica(redis, keys) as b:
        await seed(b, md)
        assert await a.titles(md) == on_air("old")
        assert a.gauge("epg_nownext_cached_channels") == 1
        # Planted behind the feed's back: replica A keeps answering from memory.
        await redis.delete(idx_key(CH), data_key(CH))
        await plant_title(redis, "planted")
        assert await a.titles(md) == on_air("old")
        await put_day(b, md, "new")

        async def sees_new() -> bool:
            return await a.titles(md) == on_air("new")

        await until("replica A answers with B's change", sees_new, BOUND_SECONDS)
        # B made the change itself: its own next answer has it, with no wait.
        assert await b.titles(md) == on_air("new")


async def test_a_channel_deleted_through_another_replica_disappears(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> None:
    md = bearer(await tokens(ADMIN))
    async with replica(redis, keys) as a, replica(redis, keys) as b:
        await seed(b, md)
        assert await a.titles(md) == on_air("old")
        await b.stub.DeleteChannel(
            epg_pb2.DeleteChannelRequest(name=PARENT, force=True), metadata=md
        )

        async def gone() -> bool:
            try:
                await a.titles(md)
            except grpc.aio.AioRpcError as err:
                return err.code() == grpc.StatusCode.NOT_FOUND
            return False

        await until("replica A says the channel is gone", gone, BOUND_SECONDS)
        assert a.gauge("epg_nownext_cached_channels") == 0


@pytest.mark.parametrize(
    ("who", "code"),
    [
        pytest.param(BROADCASTER, None, id="its-broadcaster"),
        pytest.param(CARRIER, None, id="a-carrier"),
        pytest.param(OTHER, grpc.StatusCode.PERMISSION_DENIED, id="another-broadcaster"),
        pytest.param(DEVICE, grpc.StatusCode.PERMISSION_DENIED, id="a-device"),
    ],
)
async def test_access_is_checked_on_every_call_of_a_cached_channel(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    who: Principal,
    code: grpc.StatusCode | None,
) -> None:
    md = bearer(await tokens(ADMIN))
    async with replica(redis, keys) as a:
        await seed(a, md)
        assert await a.titles(md) == on_air("old")  # cached by the admin's call
        assert a.gauge("epg_nownext_cached_channels") == 1
        caller = bearer(await tokens(who))
        for _ in range(2):  # the second call is answered from memory, or refused again
            if code is None:
                assert await a.titles(caller) == on_air("old")
                continue
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await a.titles(caller)
            assert err.value.code() == code


async def test_an_owner_changed_through_another_replica_moves_access(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> None:
    md = bearer(await tokens(ADMIN))
    gdtv, hntv = bearer(await tokens(BROADCASTER)), bearer(await tokens(OTHER))
    async with replica(redis, keys) as a, replica(redis, keys) as b:
        await seed(b, md)
        assert await a.titles(gdtv) == on_air("old")
        current = await b.stub.GetChannel(epg_pb2.GetChannelRequest(name=PARENT), metadata=md)
        await b.stub.UpdateChannel(
            epg_pb2.UpdateChannelRequest(
                channel=epg_pb2.Channel(name=PARENT, owner="hntv"),
                update_mask={"paths": ["owner"]},
                expected_version=current.version,
            ),
            metadata=md,
        )

        async def moved() -> bool:
            try:
                await a.titles(gdtv)
            except grpc.aio.AioRpcError as err:
                return err.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        await until("the old owner is refused on replica A", moved, BOUND_SECONDS)
        assert await a.titles(hntv) == on_air("old")


async def test_the_cache_holds_at_most_its_bound(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> None:
    md = bearer(await tokens(ADMIN))
    ids = [f"c{n}.gdtv.cn" for n in range(6)]
    async with replica(redis, keys, nownext_cache_channels=3) as a:
        for n, cid in enumerate(ids):
            await seed(a, md, cid, title=f"ch{n}")
        for _ in range(2):
            for n, cid in enumerate(ids):
                assert await a.titles(md, cid) == on_air(f"ch{n}")
                assert a.gauge("epg_nownext_cached_channels") <= 3
        assert a.gauge("epg_nownext_cached_channels") == 3
        both = await a.stub.NowNext(epg_pb2.NowNextRequest(channel_ids=ids), metadata=md)
        assert [e.now.titles[0].text for e in both.entries] == [
            on_air(f"ch{n}")[0] for n in range(len(ids))
        ]
        assert a.gauge("epg_nownext_cached_channels") == 3


async def test_a_store_whose_versions_went_back_drops_the_cache(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, store: EpgStore
) -> None:
    md = bearer(await tokens(ADMIN))
    async with replica(redis, keys) as a:
        await seed(a, md)
        for title in ("second", "third", "old"):  # the feed's version well past a reseed's
            await put_day(a, md, title)
        assert await a.titles(md) == on_air("old")
        # A replaced Redis: empty, then written again from scratch (versions from 1) by
        # another writer, whose changes the feed numbers below what replica A has seen.
        await redis.flushall()
        await store.create_channel(channel(CH))
        starts = [START + timedelta(minutes=30 * i) for i in range(SLOTS)]
        day = [
            prog(t, pid=programme_id(CH, t), title=f"restored {i}") for i, t in enumerate(starts)
        ]
        await store.write_programmes(CH, day, policy=WritePolicy.REFUSE)
        _, token = await KeyStore(redis).create(ADMIN)

        async def restored() -> bool:
            return await a.titles(bearer(token)) == on_air("restored")

        await until("replica A drops what the old store had", restored, BOUND_SECONDS)


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    """A redis-server of this test's own, which it stops and starts again."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_a_redis_outage_stops_answers_from_memory(own_redis: RedisServer) -> None:
    client = connect(own_redis.url)
    keys = KeyStore(client)
    md = bearer((await keys.create(ADMIN))[1])
    try:
        async with replica(client, keys) as a:
            await seed(a, md)
            assert await a.titles(md) == on_air("old")
            own_redis.stop()

            async def refused() -> bool:
                try:
                    await a.titles(md)
                except grpc.aio.AioRpcError as err:
                    return err.code() == grpc.StatusCode.UNAVAILABLE
                return False

            await until("NowNext fails while Redis is down", refused, BOUND_SECONDS)
            assert not await a.following()
            assert a.gauge("epg_nownext_cached_channels") == 0
            own_redis.start()
            await until("the replica follows the feed again", a.following, BOUND_SECONDS)
            assert await a.titles(md) == on_air("old")
            assert a.gauge("epg_nownext_cached_channels") == 1
    finally:
        await client.aclose()
