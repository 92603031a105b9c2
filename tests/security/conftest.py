"""The real CDN process faces for attack tests: the public front door and the admin
listener of one :class:`cdn_ctl.server.RoutingProcess`, in front of real EPG and
subscriber gRPC servers, a real nginx edge and a stand-in origin (the origin's own
attacks are in ``test_origin.py`` against the real origin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from cdn_ctl.signing import KeyRing, SigningKey
from tests.support.cdn import FakeOrigin
from tests.support.security import Platform, routing_process

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
    marker = request.node.get_closest_marker("door")
    overrides = marker.kwargs if marker is not None else {}
    async with routing_process(
        redis,
        tmp_path,
        fake_origin.address,
        RING,
        replica_id="security",
        door={**DOOR_LIMITS, **overrides},
        refresh_seconds=0.2,
        probe_interval_seconds=0.2,
    ) as door:
        yield Platform(
            url=door.url,
            admin_url=door.admin_url,
            process=door.process,
            world=door.world,
            services=door.services,
            redis=redis,
            keys=door.keys,
            edge=door.edge,
            origin=fake_origin,
            ring=RING,
        )
