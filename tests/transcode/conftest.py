"""Tiny real media made once per session with FFmpeg, packaged outputs shared by tests
(the builders are in ``tests.support.media``), and the control server rig."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.media import Media, Packaged, conformance_profile, make_media
from tests.support.tokens import Tokens
from tests.support.transcode_rig import Rig, server_rig
from transcode.package import package_vod, remux_vod
from transcode.settings import SourceSettings


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Make every test source once (a second or two of FFmpeg in total)."""
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def packaged_ladder(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip through the one-process ladder with production GOP/segment rules."""
    dest = tmp_path_factory.mktemp("origin") / "vod" / "ladder"
    profile = conformance_profile()
    result = asyncio.run(package_vod(str(media.long_clip), dest, profile))
    return Packaged("ladder", result, profile)


@pytest.fixture(scope="session")
def packaged_remux(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip stream-copied into HLS (its own 2 s GOPs, 6 s segments)."""
    dest = tmp_path_factory.mktemp("origin") / "vod" / "remux"
    result = asyncio.run(remux_vod(str(media.long_clip), dest))
    return Packaged("remux", result, None)


@pytest.fixture(scope="session")
def source_settings(media: Media) -> SourceSettings:
    """The production allow-lists, with the session's media folder as the one media root."""
    return SourceSettings(media_roots=(media.clip.parent.resolve(),))


@pytest.fixture
async def rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    """The transcode control server on port 0 (modules with a rig of their own override it)."""
    async with server_rig(redis, keys, tokens, tmp_path, source_settings) as up:
        yield up


@pytest.fixture
async def farm_redis(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, aioredis.Redis]]:
    """A Redis of the test's own, and a client of it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
    try:
        yield server, client
    finally:
        await client.aclose()
        server.stop()
