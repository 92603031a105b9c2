"""Fixtures: the REST face on port 0 in front of a real subscriber server (SubscriberService
and KeyService) on real Redis, and API keys for any principal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings
from tests.support.rest import RestClient, rest_face


@pytest.fixture
async def subscriber_target(redis: aioredis.Redis, keys: KeyStore) -> AsyncIterator[str]:
    """A real subscriber server (SubscriberService and KeyService) on port 0."""
    server, port = await create_server(
        SubscriberSettings(rpc=RpcSettings(port=0)), redis=redis, keys=keys
    )
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def api(subscriber_target: str) -> AsyncIterator[RestClient]:
    """The face with SUBSCRIBER_TARGET at the real server; the other services are unreachable;
    bodies are bounded at 4 KiB."""
    async with rest_face({"SUBSCRIBER_TARGET": subscriber_target}, max_body_bytes=4096) as client:
        yield client
