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
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings, RoutingSettings
from cdn_ctl.signing import KeyRing, SigningKey
from cdn_ctl.store import EdgeStore
from headend.auth import PLAYBACK, KeyStore
from headend.rpc import RpcSettings
from tests.cdn_ctl.conftest import FakeOrigin, free_port
from tests.e2e.conftest import REGION, SESSION_KEY, seed_world, start_services
from tests.support.security import Platform

RING = KeyRing((SigningKey("k1", b"security-edge-secret-0123"),), "k1")


@pytest.fixture
async def fake_origin() -> AsyncIterator[FakeOrigin]:
    """A stand-in origin (fixed playlists and segments) behind the edge."""
    fake = FakeOrigin()
    await fake.start()
    yield fake
    await fake.stop()


def door_settings(
    epg_target: str, subscriber_target: str, api_key: str, **overrides: Any
) -> FrontDoorSettings:
    """Front door settings with limits small enough to reach in a test."""
    values: dict[str, Any] = {
        "epg_target": epg_target,
        "subscriber_target": subscriber_target,
        "api_key": api_key,
        "session_keys": (("s1", SESSION_KEY),),
        "session_active_kid": "s1",
        "entitlement_ttl_seconds": 0.5,
        "heartbeat_seconds": 1.0,
        "master_ttl_seconds": 2.0,
        "fetches_per_minute": 200,
        "login_failures_per_mac": 3,
        "login_failures_per_address": 20,
        "max_connections_per_address": 400,
        "idle_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return FrontDoorSettings(**values)


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
        frontdoor=door_settings(
            services.epg_target, services.subscriber_target, playback_key, **overrides
        ),
    )
    http = aiohttp.ClientSession()
    process = RoutingProcess(settings, redis=redis, http=http)
    try:
        await process.start()
        assert process.frontdoor is not None
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
