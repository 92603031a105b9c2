"""``python -m cdn_ctl.local``'s pieces: settings, start + register + stop of real edges."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from cdn_ctl.domain import Tier
from cdn_ctl.local import LocalEdges, LocalSettings, parse_edges
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend.settings import SettingsError
from tests.cdn_ctl.conftest import FakeOrigin, free_port

pytestmark = pytest.mark.slow


def env(ring: KeyRing, **extra: str) -> dict[str, str]:
    return {"CDN_SIGNING_KEYS": ring.render(), "REDIS_URL": "unix:///tmp/x.sock", **extra}


async def test_start_register_twice_and_stop(
    tmp_path: Path, ring: KeyRing, origin: FakeOrigin, redis: aioredis.Redis
) -> None:
    a, b = free_port(), free_port()
    settings = LocalSettings.from_env(
        env(
            ring,
            CDN_LOCAL_EDGES=f"la:110101:{a},lb:110102:{b}",
            CDN_ORIGIN_ADDRESS=origin.address,
            CDN_EDGE_DIR=str(tmp_path),
        )
    )
    edges = LocalEdges(settings)
    await edges.start()
    try:
        await edges.register(redis)
        await edges.register(redis)  # idempotent: a restart of `headend up` updates
        stored = await EdgeStore(redis).all()
        assert [(e.edge_id, e.region, e.port, e.tier, e.version) for e in stored] == [
            ("la", "110101", a, Tier.EDGE, 2),
            ("lb", "110102", b, Tier.EDGE, 2),
        ]
        async with aiohttp.ClientSession() as http:
            for port in (a, b):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    assert resp.status == 200
    finally:
        await edges.stop()
    assert not any(p.running for p in edges.processes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a:110101", "id:region:port", id="no-port"),
        pytest.param("A:110101:8101", "edge_id", id="bad-id"),
        pytest.param("a:1101:8101", "region", id="bad-region"),
        pytest.param(" , ", "no edges", id="empty"),
    ],
)
def test_bad_edge_lists_name_the_variable(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_edges(text)
    assert err.value.name == "CDN_LOCAL_EDGES"
    assert message in str(err.value)


def test_keys_and_redis_are_required(ring: KeyRing) -> None:
    with pytest.raises(SettingsError) as no_keys:
        LocalSettings.from_env({"REDIS_URL": "unix:///x"})
    assert no_keys.value.name == "CDN_SIGNING_KEYS"
    with pytest.raises(SettingsError) as no_redis:
        LocalSettings.from_env({"CDN_SIGNING_KEYS": ring.render()})
    assert no_redis.value.name == "REDIS_URL"
