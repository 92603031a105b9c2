"""The whole platform (as for the set-top box journey: :mod:`tests.support.journey`), its
live channel clear or encrypted, and headless Chromium, each started once per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from headend.contentkeys import ContentKeySettings, KekRing
from headend.redisproc import RedisServer
from tests.support.browser import chromium
from tests.support.journey import Stack, build_stack


@pytest.fixture(scope="module")
def browser_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the module's stack."""
    return tmp_path_factory.mktemp("browser")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, browser_dir: Path) -> AsyncIterator[Stack]:
    """The platform, up once for the module."""
    async with build_stack(redis_server.url, browser_dir) as up:
        yield up


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium, up once for the module."""
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def encrypted_stack(redis_server: RedisServer, browser_dir: Path) -> AsyncIterator[Stack]:
    """The platform with its live channel encrypted, the key rotating every 4 s of media
    (two 2 s segments per key), up once for the module."""
    keys = ContentKeySettings(keks=KekRing.generate("kek1"), rotation_seconds=4)
    async with build_stack(redis_server.url, browser_dir, content_keys=keys) as up:
        yield up
