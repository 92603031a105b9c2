"""The whole platform for the set-top box journey, built once per module (see
:mod:`tests.support.journey`; the world it is seeded with is
:func:`tests.support.world.journey_plan`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from headend.redisproc import RedisServer
from tests.support.journey import Stack, build_stack


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the module's stack."""
    return tmp_path_factory.mktemp("e2e")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, e2e_dir: Path) -> AsyncIterator[Stack]:
    """The platform, up once for the module."""
    async with build_stack(redis_server.url, e2e_dir) as up:
        yield up
