"""The real CDN process faces for attack tests: the public front door and the admin
listener of one :class:`cdn_ctl.server.RoutingProcess`, in front of real EPG and
subscriber gRPC servers, a real nginx edge and a stand-in origin (the origin's own
attacks are in ``test_origin.py`` against the real origin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings, RoutingSettings
from cdn_ctl.signing import KeyRing, SigningKey
from cdn_ctl.store import EdgeStore
from headend.auth import PLAYBACK, KeyStore
from headend.rpc import RpcSettings
from tests.support.cdn import FakeOrigin, eventually
from tests.support.net import free_port
from tests.support.security import Platform
from tests.support.world import LIVE, REGION, frontdoor_settings, seed_world, start_services

RING = KeyRing((SigningKey("k1", b"security-edge-secret-0123"),), "k1")
# Limits small enough to reach in a test.
DOOR_LIMITS: dict[str, Any] = {
    "entitlement_ttl_seconds": 0.5,
    "fetches_per_minute": 200,
    "login_failures_per_mac": 3,
    "login_failures_per_address": 20,
    "max_connections_per_address": 400,
    "idle_timeout_seconds": 2.0,
}


@pytest.fixture
async def fake_origin() -> AsyncIterator[FakeOrigin]:
    """A stand-in origin (fixed playlists and segments) behind the edge."""
    fake = FakeOrigin()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def platform(
    redis: aioredis.Redis, fake_origin: FakeOrigin, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Platform]:
    """The CDN process's two faces over real services; ``@pytest.mark.door(**overrides)``
    changes front door settings for one test."""
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    keys = KeyStore(redis)
    _, playback_key = await keys.create(PLAYBACK)
    edge = EdgeProcess(
        EdgeConfig(edge_id="v1", listen_port=free_port(), upstream=fake_origin.address),
        prefix=tmp_path / "v1",
        keys=RING,
    )
    await edge.start()
    await EdgeStore(redis).create(
        Edge("v1", REGION, Tier.EDGE, "127.0.0.1", edge.config.listen_port, 100, 1e4, 1e4)
    )
    marker = request.node.get_closest_marker("door")
    overrides = marker.kwargs if marker is not None else {}
    settings = CdnSettings(
        rpc=RpcSettings(port=0),
        keys=RING,
        http_port=0,
        admin_port=0,
        routing=RoutingSettings(),
        refresh_seconds=0.2,
        probe_interval_seconds=0.2,
        replica_id="security",
        frontdoor=frontdoor_settings(
            services, api_key=playback_key, **{**DOOR_LIMITS, **overrides}
        ),
    )
    http = aiohttp.ClientSession()
    process = RoutingProcess(settings, redis=redis, http=http)
    try:
        await process.start()
        assert process.frontdoor is not None

        async def routable() -> bool:
            return bool(process.routing.candidates(LIVE, REGION))

        # A new edge serves after a few good probes; a loaded machine could otherwise
        # ask for a master first and get 503 no_edge (no lease), not what a test checks.
        await eventually(routable)
        yield Platform(
            url=f"http://127.0.0.1:{process.port}",
            admin_url=f"http://127.0.0.1:{process.admin_port}",
            process=process,
            world=world,
            services=services,
            redis=redis,
            keys=keys,
            edge=edge,
            origin=fake_origin,
            ring=RING,
        )
    finally:
        await process.stop()
        await http.close()
        await edge.stop()
        await services.stop()
