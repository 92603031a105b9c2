"""A channel published as CMAF too, end to end on the real stack: ffprobe reads it live as
MPEG-DASH through the front door (the MPD's signed BaseURL on an edge, on the box's one
lease), and FFmpeg plays a catch-up window of it as DASH and as CMAF-HLS, granted by the
front door and packaged on request by the origin from the TS archive. (dash.js plays it
live through the front door for 20 s in ``make test-browser``: FFmpeg's DASH demuxer is no
live player, it reloads the MPD far faster than a box may.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio

from cdn_ctl.sim.stb import SetTopBox
from headend.redisproc import RedisServer
from tests.support.journey import Stack, build_stack, ffmpeg_play
from tests.support.media import probe_streams
from tests.support.world import LIVE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-formats"),
    pytest.mark.asyncio(loop_scope="module"),
]

# Archive a catch-up window can reach: the stack's channel must have run this long.
ARCHIVED_SECONDS = 16


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The platform, its live channel published as CMAF too, up once for the module."""
    async with build_stack(redis_server.url, tmp_path_factory.mktemp("formats"), cmaf=True) as up:
        yield up


@pytest.fixture(scope="module")
def up_since() -> float:
    return time.monotonic()


async def _token(stack: Stack) -> str:
    b = stack.world.boxes["c1"]
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(http, stack.url, mac=b.mac, secret=b.secret)
        await box.login()
    return box.token


async def test_ffprobe_reads_live_dash_through_the_front_door_on_the_boxs_lease(
    stack: Stack,
) -> None:
    token = await _token(stack)
    mpd = f"{stack.url}/live/{LIVE}/manifest.mpd?token={token}"
    async with aiohttp.ClientSession() as http, http.get(mpd) as resp:
        assert resp.status == 200
        lease = resp.headers["X-Lease-Id"]
    # ffprobe (FFmpeg's DASH demuxer) reads the MPD, then the init and media segments its
    # signed BaseURL names on an edge.
    streams = await asyncio.to_thread(probe_streams, mpd)
    codecs = sorted(str(s["codec_name"]) for s in streams)
    assert "h264" in codecs
    assert "aac" in codecs
    # It asked without the lease (it never reads the MPD's Location): the box kept its one.
    held = stack.frontdoor.leases.of_box(stack.world.boxes["c1"].mac)
    assert held is not None
    assert (held.lease_id, held.channel) == (lease, LIVE)


async def _window(up_since: float) -> str:
    await asyncio.sleep(max(0.0, ARCHIVED_SECONDS - (time.monotonic() - up_since)))
    now = datetime.now(UTC).replace(microsecond=0)
    start, stop = now - timedelta(seconds=14), now - timedelta(seconds=4)
    return f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"


@pytest.mark.parametrize("name", ["manifest.mpd", "master-cmaf.m3u8"])
async def test_ffmpeg_plays_a_catchup_window_as_cmaf_through_the_front_door(
    stack: Stack, up_since: float, name: str
) -> None:
    token = await _token(stack)
    query = await _window(up_since)
    played, err = await ffmpeg_play(f"{stack.url}/catchup/{LIVE}/{name}?{query}&token={token}")
    # The 10 s window, to a segment (2 s) at each end.
    assert 6 <= played <= 14, err


async def test_catchup_segments_come_from_an_edge_packaged_by_the_origin(
    stack: Stack, up_since: float
) -> None:
    token = await _token(stack)
    query = await _window(up_since)
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{stack.url}/catchup/{LIVE}/manifest.mpd?{query}&token={token}"
        ) as resp:
            assert resp.status == 200
            text = await resp.text()
        assert 'type="static"' in text
        base = text.partition("<BaseURL>")[2].partition("</BaseURL>")[0]
        assert "/t/" in base  # a signed edge URL, the window's own
        assert f"/catchup/{LIVE}/w/" in base
        start = int(text.partition('startNumber="')[2].partition('"')[0])
        rung = text.partition('<Representation id="')[2].partition('"')[0]
        async with http.get(f"{base}{rung}/{start}.m4s") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "video/mp4"
            body = await resp.read()
        async with http.get(f"{base}{rung}/init-{start}.mp4") as resp:
            assert resp.status == 200
            init = await resp.read()
    assert body[4:8] in (b"styp", b"moof")
    assert init[4:8] == b"ftyp"
