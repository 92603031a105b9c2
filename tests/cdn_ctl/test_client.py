"""``CdnClient`` against a real CdnControl server: domain values in and out, errors rebuilt."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from cdn_ctl.client import CdnClient
from cdn_ctl.domain import Edge, EdgeHealth, Health, Tier
from cdn_ctl.errors import EdgeConflict, EdgeExists, EdgeNotFound, InvalidEdge, NotAdmin
from cdn_ctl.server import create_server
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend.auth import KeyStore
from headend.rpc import RpcSettings, ServiceUnavailable
from tests.support.net import free_port
from tests.support.tokens import Tokens

MID = Edge("mid1", "110100", Tier.MID, "127.0.0.1", 8100, 400, 4000.0, 1000.0)
EDGE = Edge("v1", "110101", Tier.EDGE, "127.0.0.1", 8101, 200, 1000.0, 100.0, parent_id="mid1")


@pytest.fixture
async def target(redis: aioredis.Redis, keys: KeyStore, ring: KeyRing) -> AsyncIterator[str]:
    server, port = await create_server(
        CdnSettings(rpc=RpcSettings(port=0), keys=ring), redis=redis, keys=keys
    )
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_the_registry_round_trips_domain_values(
    target: str, tokens: Tokens, redis: aioredis.Redis
) -> None:
    async with CdnClient(target, await tokens()) as cdn:
        assert await cdn.register_edge(MID) == MID
        registered = await cdn.register_edge(EDGE)
        assert (registered, registered.version) == (EDGE, 1)
        drained = await cdn.drain_edge("v1")
        assert (drained.draining, drained.version) == (True, 2)
        moved = await cdn.update_edge(replace(EDGE, port=8102, capacity_sessions=100))
        # An update keeps the registry's draining flag and bumps its version.
        assert (moved.port, moved.draining, moved.version) == (8102, True, 3)
        resumed = await cdn.drain_edge("v1", resume=True)
        assert (resumed.draining, resumed.version) == (False, 4)

        store = EdgeStore(redis)
        verdict = EdgeHealth(Health.DEGRADED, 1.0, 1, 5, 42.0, "1 of last 5 probes failed")
        await store.put_health({"v1": verdict})
        await store.publish_leases("replica-a", {"v1": 25}, now=time.time(), ttl_seconds=60)
        listed = {s.edge.edge_id: s for s in await cdn.list_edges()}

    assert list(listed) == ["mid1", "v1"]
    v1 = listed["v1"]
    assert (v1.edge, v1.leases, v1.load) == (resumed, 25, pytest.approx(0.25))
    # Everything but when the verdict began travels.
    assert v1.health == replace(verdict, since=0.0)
    assert listed["mid1"].health is None


async def test_a_domain_error_comes_back_as_the_same_leaf(target: str, tokens: Tokens) -> None:
    async with (
        CdnClient(target, await tokens()) as cdn,
        CdnClient(target, await tokens("carrier:acme")) as carrier,
    ):
        await cdn.register_edge(MID)
        with pytest.raises(EdgeExists):
            await cdn.register_edge(MID)
        with pytest.raises(EdgeNotFound):
            await cdn.drain_edge("nope")
        with pytest.raises(InvalidEdge) as bad:
            await cdn.register_edge(replace(EDGE, region="1101"))
        assert bad.value.field == "region"
        with pytest.raises(EdgeConflict):
            await cdn.register_edge(replace(EDGE, parent_id="unknown"))
        with pytest.raises(NotAdmin):
            await carrier.list_edges()
        assert [s.edge.edge_id for s in await cdn.list_edges()] == ["mid1"]


async def test_the_controller_down_is_service_unavailable() -> None:
    async with CdnClient(f"127.0.0.1:{free_port()}", "key", timeout_seconds=2) as cdn:
        with pytest.raises(ServiceUnavailable) as down:
            await cdn.list_edges()
    assert (down.value.service, down.value.reason) == ("cdn_ctl", "UNAVAILABLE")
