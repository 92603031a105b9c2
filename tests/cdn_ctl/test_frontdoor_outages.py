"""The front door's upstream caches when the EPG or subscriber service goes away and back.

Real EPG and subscriber gRPC servers on the test Redis; the change-feed reader
runs under a real ``Supervisor``. (The whole stack through a Redis crash is in
``tests/faults/test_frontdoor_faults.py``.)
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from cdn_ctl.errors import UpstreamUnavailable
from cdn_ctl.upstream import EpgCache, Outage, SubscriberCache
from epg.domain import Channel, Text
from epg.server import create_server as create_epg
from epg.service import EpgService
from epg.settings import EpgSettings
from epg.store import EpgStore
from headend.auth import ADMIN, KeyStore
from headend.errors import PermissionDenied
from headend.rpc import RpcServer, RpcSettings, ServiceUnavailable
from headend.tasks import Backoff, Supervisor
from subscriber.domain import Decision
from tests.support.cdn import eventually
from tests.support.world import LIVE, seed_world, start_services

FAST = Backoff(first_seconds=0.05, cap_seconds=0.2, jitter=0.0)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _channel(cid: str, number: int) -> Channel:
    return Channel(id=cid, number=number, names=(Text("en", cid),), owner="demo", active=True)


async def _serve_epg(redis: aioredis.Redis, keys: KeyStore, port: int = 0) -> RpcServer:
    server, _ = await create_epg(
        EpgSettings(rpc=RpcSettings(port=port), watch_block_ms=100), redis=redis, keys=keys
    )
    return server


async def test_epg_cache_resumes_the_feed_after_the_epg_restarts_and_drops_nothing(
    redis: aioredis.Redis, keys: KeyStore
) -> None:
    _, key = await keys.create(ADMIN)
    epg = EpgService(store=EpgStore(redis))
    await epg.create_channel(ADMIN, _channel("a.cn", 1))
    server = await _serve_epg(redis, keys)
    port = server.port
    cache = EpgCache(f"127.0.0.1:{port}", key)
    tasks = Supervisor(backoff=FAST)
    tasks.spawn("epg-changes", cache.watch)
    try:
        await asyncio.wait_for(cache.watching.wait(), 10)
        assert set(await cache.channels()) == {"a.cn"}
        await server.stop(0)  # the feed breaks

        async def broken() -> bool:
            return not cache.watching.is_set()

        await asyncio.wait_for(eventually(broken), 10)
        # A change the front door cannot see now: the EPG is away.
        await epg.create_channel(ADMIN, _channel("b.cn", 2))
        server = await _serve_epg(redis, keys, port)
        await asyncio.wait_for(cache.watching.wait(), 15)
        # The resumed feed replays the change: the channel list is refreshed, nothing else.
        generation = cache.generation

        async def replayed() -> bool:
            return cache.generation > generation

        await asyncio.wait_for(eventually(replayed), 10)
        assert set(await cache.channels()) == {"a.cn", "b.cn"}
        assert cache.drops == 0
        status = tasks.status("epg-changes")
        assert status is not None
        assert (status.state, status.restarts >= 1) == ("running", True)
    finally:
        await tasks.close()
        await cache.close()
        await server.stop(0)


async def test_an_expired_entitlement_stands_in_while_the_subscriber_service_is_down(
    redis: aioredis.Redis,
) -> None:
    services = await start_services(redis)
    try:
        world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
        clock = Clock()
        client = SubscriberCache(
            services.subscriber_target,
            services.api_key,
            entitlement_ttl_seconds=10.0,
            stale_seconds=60.0,
            clock=clock,
        )
        mac = world.boxes["c1"].mac
        allowed = await client.authorize(mac, LIVE)
        assert allowed.allowed
        await services.subscriber.stop(0)
        clock.now += 11  # past the entitlement lifetime
        assert await client.authorize(mac, LIVE) is allowed
        assert client.outage.active  # the next polls do not even try for a while
        assert await client.authorize(mac, LIVE) is allowed
        clock.now += 60  # past the stale bound too: the box is told to come back later
        with pytest.raises(UpstreamUnavailable) as refused:
            await client.authorize(mac, LIVE)
        assert refused.value.details["reason"] == "subscriber_unavailable"
        await client.close()
    finally:
        await services.stop()


async def test_requests_finding_the_answer_expired_share_one_authorize_call(
    redis: aioredis.Redis,
) -> None:
    services = await start_services(redis)
    try:
        world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
        clock = Clock()
        client = SubscriberCache(
            services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0, clock=clock
        )
        calls = 0
        real = client._client.authorize

        async def counted(mac: str, channel_id: str) -> Decision:
            nonlocal calls
            calls += 1
            return await real(mac, channel_id)

        client._client.authorize = counted  # type: ignore[method-assign]
        mac = world.boxes["c1"].mac
        first = await asyncio.gather(*(client.authorize(mac, LIVE) for _ in range(16)))
        assert calls == 1
        assert first[0].allowed
        assert all(v is first[0] for v in first)
        clock.now += 11  # expired: the next burst asks again, once
        again = await asyncio.gather(*(client.authorize(mac, LIVE) for _ in range(16)))
        assert calls == 2
        assert again[0] is not first[0]
        assert all(v is again[0] for v in again)
        await client.close()
    finally:
        await services.stop()


def test_an_outage_lasts_the_retry_delay_the_service_gave() -> None:
    clock = Clock()
    outage = Outage(clock)
    outage.failed(
        ServiceUnavailable("epg", "down", reason="DEPENDENCY_UNAVAILABLE", retry_delay_seconds=5)
    )
    clock.now += 4.9
    assert outage.active
    clock.now += 0.2
    assert not outage.active
    outage.failed(PermissionDenied("the key may not read the guide"))  # said nothing: 1 s
    assert outage.active
    clock.now += 1.0
    assert not outage.active
    outage.failed(ServiceUnavailable("epg", "gone", reason="UNAVAILABLE", retry_delay_seconds=None))
    outage.recovered()
    assert not outage.active
