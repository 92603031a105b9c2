"""Encrypted live end to end (issue 15): the whole stack with the live channel's segments
AES-128 encrypted under keys rotating every few seconds, played by FFmpeg through the front
door and an edge with the box token in a header, across key rotations; the keys come from
the front door only; and its timeshift, from some segments back into live."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

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
    pytest.mark.xdist_group("e2e-encrypted"),
    pytest.mark.asyncio(loop_scope="module"),
]

# Three 2-second segments per key: a 20-second play crosses several rotations.
ROTATION_SECONDS = 6
_KEY_URI = re.compile(rf"/keys/{re.escape(LIVE)}/([0-9a-f]{{32}})")


@pytest.fixture(scope="module")
def encrypted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the module's stack."""
    return tmp_path_factory.mktemp("e2e-encrypted")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, encrypted_dir: Path) -> AsyncIterator[Stack]:
    """The platform with its live channel encrypted, up once for the module."""
    keys = ContentKeySettings(keks=KekRing.generate("e2e"), rotation_seconds=ROTATION_SECONDS)
    async with build_stack(redis_server.url, encrypted_dir, content_keys=keys) as up:
        yield up


async def _login(stack: Stack, label: str) -> str:
    b = stack.world.boxes[label]
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(http, stack.url, mac=b.mac, secret=b.secret)
        await box.login()
    assert box.token
    return box.token


async def _ffmpeg_plays_with_front_door_keys(
    stack: Stack, url: str, token: str, seconds: int, *options: str
) -> None:
    """FFmpeg plays ``url`` with the box token for ``seconds`` across key changes, every
    key from the front door (``options``: its own, e.g. where in the playlist to start)."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "verbose", *options,
        "-headers", f"Authorization: Bearer {token}\r\n", "-i", url,
        "-t", str(seconds), "-c", "copy", "-f", "null", "-progress", "pipe:1", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    log = err.decode(errors="replace")
    played = max(
        (int(line.split("=")[1]) for line in out.decode().splitlines()
         if line.startswith("out_time_us=") and line.split("=")[1].isdigit()),
        default=0,
    ) / 1e6  # fmt: skip
    assert proc.returncode == 0, log[-3000:]
    assert played >= seconds - 0.5, log[-3000:]
    # Keys came from the front door, and playback went on across key changes.
    fetched = set(_KEY_URI.findall(log))
    assert len(fetched) >= 3, log[-3000:]
    assert f"{stack.url}/keys/{LIVE}/" in log
    assert "Unable to open key file" not in log
    assert "Invalid data found" not in log


async def test_ffmpeg_plays_encrypted_live_across_rotations(stack: Stack) -> None:
    token = await _login(stack, "c1")
    await _ffmpeg_plays_with_front_door_keys(
        stack, f"{stack.url}/live/{LIVE}/master.m3u8", token, 21
    )


async def test_a_box_that_did_not_start_the_channel_gets_no_key(stack: Stack) -> None:
    token = await _login(stack, "c1")
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{stack.url}/live/{LIVE}/master.m3u8", headers=headers) as resp:
            assert resp.status == 200
            variant = next(
                line for line in (await resp.text()).splitlines() if line and line[0] != "#"
            )
        async with http.get(f"{stack.url}/live/{LIVE}/{variant}", headers=headers) as resp:
            media = await resp.text()
        key_ids = _KEY_URI.findall(media)
        assert key_ids, media
        url = f"{stack.url}/keys/{LIVE}/{key_ids[-1]}"
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert len(await resp.read()) == 16
        other = await _login(stack, "b1")
        async with http.get(url, headers={"Authorization": f"Bearer {other}"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["reason"] == "no_lease"
        async with http.get(url) as resp:
            assert resp.status == 401
        # The edge that served the playlist never serves or forwards a key.
        edge = stack.edges[0].config
        async with http.get(
            f"http://127.0.0.1:{edge.listen_port}/keys/{LIVE}/{key_ids[-1]}", headers=headers
        ) as resp:
            assert resp.status == 404


async def test_ffmpeg_plays_an_encrypted_timeshift_into_live(stack: Stack) -> None:
    token = await _login(stack, "c1")
    # Timeshift of the encrypted channel: its window grants the keys, as catch-up's does.
    # Wait until the archive reaches 6 s back (the channel has only just started).
    url = f"{stack.url}/timeshift/{LIVE}/master.m3u8?offset=6"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        while True:  # the live supervisor offers no event to await from outside
            async with http.get(url, headers=headers) as resp:
                if resp.status == 200:
                    break
                assert resp.status == 404, await resp.text()
            await asyncio.sleep(0.5)
    await _ffmpeg_plays_with_front_door_keys(stack, url, token, 18, "-prefer_x_start", "1")
