"""EPG fixtures: the service on the test Redis and a gRPC server on port 0 (builders are in
``tests.epg.support``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from epg.service import EpgService
from epg.store import EpgStore
from headend.auth import KeyStore
from tests.epg.support import Grpc, serve_epg


@pytest.fixture
def store(redis: aioredis.Redis) -> EpgStore:
    """The EPG store on the test database, with a short change history."""
    return EpgStore(redis, changes_maxlen=1000)


@pytest.fixture
def service(store: EpgStore) -> EpgService:
    """The EPG use cases with small bounds so limits are easy to hit."""
    return EpgService(store=store, max_batch=500, max_import_bytes=2_000_000, watch_block_ms=50)


@pytest.fixture
async def grpc_epg(redis: aioredis.Redis, keys: KeyStore, tokens: Any) -> AsyncIterator[Grpc]:
    """The EPG served on port 0 with real auth; stopped in teardown."""
    async with serve_epg(redis, keys, tokens) as served:
        yield served
