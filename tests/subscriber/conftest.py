"""Fixtures: a real SubscriberService over gRPC on port 0, a manual clock, and a seeded world."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from subscriber.settings import SubscriberSettings
from tests.support.subscriber import Api, ManualClock, lease_settings, seed_world, serve
from tests.support.tokens import Tokens


@pytest.fixture
def clock() -> ManualClock:
    """Time stands still unless the test advances it."""
    return ManualClock()


@pytest.fixture
def settings() -> SubscriberSettings:
    """Small, readable lease numbers."""
    return lease_settings()


@pytest.fixture
async def api(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    clock: ManualClock,
    settings: SubscriberSettings,
) -> AsyncIterator[Api]:
    """The service on a real gRPC server bound to port 0."""
    async with serve(redis, keys, tokens, clock, settings) as client:
        yield client


@pytest.fixture
async def world(api: Api) -> Api:
    """Carriers acme (telecom) and beta (cable); packages basic and sports; acme's alice with an
    activated box entitled to basic; beta's bob."""
    return await seed_world(api)
