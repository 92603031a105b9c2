"""The edge registry, health verdicts and lease counts on a real Redis (a cluster too)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from cdn_ctl.domain import Edge, EdgeHealth, Health, Tier
from cdn_ctl.errors import EdgeExists, EdgeNotFound
from cdn_ctl.store import EdgeStore
from headend.errors import Aborted

T = 1_000_000.0


def edge(edge_id: str, **kw: object) -> Edge:
    base: dict[str, object] = {
        "edge_id": edge_id,
        "region": "440100",
        "tier": Tier.EDGE,
        "host": "10.0.0.1",
        "port": 8080,
        "capacity_sessions": 100,
        "capacity_mbps": 1000.0,
        "uplink_mbps": 10_000.0,
    }
    return Edge(**{**base, **kw})  # type: ignore[arg-type]


async def test_registry_refuses_taken_ids_and_stale_versions(redis: aioredis.Redis) -> None:
    store = EdgeStore(redis)
    await store.create(edge("e2"))
    await store.create(edge("e1"))
    with pytest.raises(EdgeExists):
        await store.create(edge("e1", port=1))
    moved = await store.replace(edge("e1", port=9090, version=2), expected_version=1)
    assert await store.get("e1") == moved
    with pytest.raises(Aborted):
        await store.replace(edge("e1", version=3), expected_version=1)
    with pytest.raises(EdgeNotFound):
        await store.replace(edge("nope"), expected_version=0)
    assert [e.edge_id for e in await store.all()] == ["e1", "e2"]
    assert await store.get_or_none("nope") is None


async def test_health_verdicts_round_trip(redis: aioredis.Redis) -> None:
    store = EdgeStore(redis)
    verdict = EdgeHealth(Health.DOWN, T, 3, 5, 12.5, "3 of last 5 probes failed")
    await store.put_health({"e1": verdict, "e2": replace(verdict, state=Health.UP)})
    got = await store.health()
    assert got["e1"] == verdict
    assert got["e2"].state == Health.UP


async def test_lease_counts_are_summed_over_live_replicas(redis: aioredis.Redis) -> None:
    store = EdgeStore(redis)
    assert await store.publish_leases("a", {"e1": 3}, now=T, ttl_seconds=60) == {}
    others = await store.publish_leases("b", {"e1": 2, "e2": 1}, now=T + 1, ttl_seconds=60)
    assert others == {"e1": 3}
    assert await store.leases(now=T + 2, ttl_seconds=60) == {"e1": 5, "e2": 1}
    # A replica that stopped publishing drops out once its last publish is a TTL old.
    await store.publish_leases("b", {}, now=T + 61, ttl_seconds=60)
    assert await store.leases(now=T + 61, ttl_seconds=60) == {}
