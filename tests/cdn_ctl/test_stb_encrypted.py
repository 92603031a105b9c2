"""The Python set-top box on an encrypted live channel (issue 15): it fetches each key once
from the front door with its box token, decrypts every segment to MPEG-TS (live and
catch-up), and says why a key was refused.

The whole stack runs once for the module, its live channel's key rotating every 6 s of media
(three 2-second segments)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio

from cdn_ctl.sim.stb import SetTopBox
from headend.contentkeys import ContentKeySettings, KekRing
from headend.redisproc import RedisServer
from tests.support.journey import Stack, build_stack
from tests.support.world import LIVE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("stb-encrypted"),
    pytest.mark.asyncio(loop_scope="module"),
]

ROTATION_SECONDS = 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The platform with its live channel encrypted, up once for the module."""
    keys = ContentKeySettings(keks=KekRing.generate("stb"), rotation_seconds=ROTATION_SECONDS)
    folder = tmp_path_factory.mktemp("stb-encrypted")
    async with build_stack(redis_server.url, folder, content_keys=keys) as up:
        yield up


def _box(stack: Stack, label: str, http: aiohttp.ClientSession) -> SetTopBox:
    b = stack.world.boxes[label]
    return SetTopBox(http, stack.url, mac=b.mac, secret=b.secret)


def _key_uri(stack: Stack) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(stack.url)}/keys/{re.escape(LIVE)}/[0-9a-f]{{32}}")


async def test_the_box_plays_an_encrypted_channel_across_key_rotations(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        box = _box(stack, "c1", http)
        await box.login()
        # Over 16 s of wall time the box plays at least two rotation periods' segments.
        stats = await box.play_live(LIVE, seconds=16)
        await box.stop(stats.lease)
    assert stats.errors == []
    assert stats.segments >= 6
    assert stats.decrypted == stats.segments
    assert len(stats.key_uris) >= 2
    assert len(set(stats.key_uris)) == len(stats.key_uris)  # each key fetched once
    assert all(_key_uri(stack).fullmatch(uri) for uri in stats.key_uris), stats.key_uris
    assert stats.key_refusals == 0


async def test_the_box_decrypts_a_catchup_window(stack: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with aiohttp.ClientSession() as http:
        box = _box(stack, "b1", http)
        await box.login()
        # The last minute: whatever of it the channel has archived so far.
        stats = await box.play_catchup(LIVE, now - timedelta(minutes=1), now)
        async with http.get(stats.playlist) as resp:
            assert "#EXT-X-KEY:METHOD=AES-128," in await resp.text()
    assert stats.errors == []
    assert stats.segments >= 1
    assert stats.decrypted == stats.segments
    assert stats.key_uris
    assert all(_key_uri(stack).fullmatch(u) for u in stats.key_uris)


async def test_a_playlist_url_handed_to_another_box_gets_its_key_refused(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        c1 = _box(stack, "c1", http)
        await c1.login()
        played = await c1.play_live(LIVE, seconds=1)
        # e1 may watch the channel, but never started it (nor its catch-up): it holds no
        # lease for its keys.
        e1 = _box(stack, "e1", http)
        await e1.login()
        stats = await e1.play_media(played.playlist)
        await c1.stop(played.lease)
    assert played.decrypted >= 1
    assert stats.key_refusals == 1
    assert (stats.segments, stats.decrypted, stats.key_uris) == (0, 0, [])
    assert len(stats.errors) == 1
    assert stats.errors[0].startswith("key refused: 403 no_lease: "), stats.errors
