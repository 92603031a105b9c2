"""Fixtures: every gRPC server of the platform on port 0 over real Redis, seeded with the
journey world, a rival carrier and three edges; the console in front of them; keys for
the admin, both carriers and the channels' broadcaster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.seed import World
from tests.support.console import ConsoleFace, console_face, seed_console_world
from tests.support.rest import every_service
from tests.support.tokens import Tokens


@pytest.fixture
async def targets(
    redis: aioredis.Redis, keys: KeyStore, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """Every service's address (``EPG_TARGET`` -> ``127.0.0.1:port`` ...)."""
    async with every_service(redis, keys, tmp_path) as up:
        yield up


@pytest.fixture
async def world(targets: dict[str, str], tokens: Tokens) -> World:
    """The seeded world (carrier acme's boxes by label)."""
    return await seed_console_world(targets, await tokens())


@pytest.fixture
async def console(targets: dict[str, str], world: World) -> AsyncIterator[ConsoleFace]:
    """The console over the seeded services."""
    async with console_face(targets) as face:
        yield face
