"""One set of CMAF segments, two real players: dash.js plays a CMAF VOD asset's
``manifest.mpd`` and hls.js its ``master.m3u8`` (EXT-X-MAP), both in headless Chromium,
from a real origin (``transcode.origin`` on a port) serving what the packager published.
The same for a live channel packaged as CMAF too: dash.js plays its dynamic MPD and hls.js
its ``master-cmaf.m3u8`` while the channel runs (``transcode.live.cmaf``), from the origin
and, as a box does, through the whole platform: the front door (token, lease, the MPD's
signed BaseURL and its Location back) and the nginx edges."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route
from playwright.async_api import TimeoutError as PlaywrightTimeout

from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.browser import PLAYER_PREFIX, POLL_MS, ROOT, Report, box_token, player
from tests.support.journey import Stack, build_stack
from tests.support.live import Feed, live_channel, live_rig
from tests.support.media import ffmpeg, tiny_profile
from transcode.jobs import PackageFormat
from transcode.origin import start_origin
from transcode.package import package_vod
from transcode.settings import OriginSettings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ASSET = "formats"
SOURCE_SECONDS = 26
PLAY_SECONDS = 20  # media seconds each player must play
# Real time: 20 s of playback plus start-up on a loaded machine.
WAIT_SECONDS = 90
DASH_PAGES = {
    "dash_player.html": ROOT / "tests" / "browser" / "dash_player.html",
    "dash.all.min.js": ROOT / "node_modules" / "dashjs" / "dist" / "modern" / "umd"
    / "dash.all.min.js",
}  # fmt: skip


@pytest.fixture(scope="module")
def origin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 26 s asset packaged as CMAF (the tiny ladder: 2 s segments, two rungs, the audio
    as a rendition of its own) into an origin tree."""
    root = tmp_path_factory.mktemp("formats")
    source = root / "source.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(SOURCE_SECONDS), "-pix_fmt", "yuv420p", "-c:v", "libx264"),
        *("-preset", "ultrafast", "-c:a", "aac", str(source)),
    )
    dest = root / "origin" / "vod" / ASSET
    asyncio.run(package_vod(str(source), dest, tiny_profile(), package_format=PackageFormat.CMAF))
    return root / "origin"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def origin(redis_server: RedisServer, origin_root: Path) -> AsyncIterator[str]:
    """The origin serving the tree, on a port of its own (on the tests' module loop)."""
    client = connect(redis_server.url, RedisSettings(socket_timeout_seconds=2.0))
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=origin_root, port=0), redis=client
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await client.aclose()


@dataclass(frozen=True, slots=True)
class DashReport:
    """What the DASH page saw (its ``window.report``)."""

    played_seconds: float
    frames: int
    errors: tuple[dict[str, Any], ...]
    fragments: tuple[dict[str, str], ...]


async def _serve_dash(route: Route) -> None:
    path = DASH_PAGES.get(route.request.url.split(PLAYER_PREFIX, 1)[1])
    if path is None:
        await route.fulfill(status=404)
    else:
        await route.fulfill(path=path)


@contextlib.asynccontextmanager
async def dash_page(browser: Browser, origin: str) -> AsyncIterator[Page]:
    """The DASH player page at ``origin``'s address (same-origin with the manifest), in a
    fresh browser context."""
    for path in DASH_PAGES.values():
        assert path.is_file(), f"{path} missing: make test-browser runs npm ci for dash.js"
    context = await browser.new_context()
    await context.grant_permissions(["local-network-access"], origin=origin)
    try:
        page = await context.new_page()
        await page.route(f"{origin}{PLAYER_PREFIX}**", _serve_dash)
        await page.goto(f"{origin}{PLAYER_PREFIX}dash_player.html")
        yield page
    finally:
        await context.close()


async def _dash_until(page: Page, predicate: str) -> DashReport:
    with contextlib.suppress(PlaywrightTimeout):
        await page.wait_for_function(
            f"() => ({predicate})(window.report)", polling=POLL_MS, timeout=WAIT_SECONDS * 1000
        )
    raw = await page.evaluate("() => window.report")
    return DashReport(raw["played"], raw["frames"], tuple(raw["errors"]), tuple(raw["fragments"]))


def _kinds(fragments: Iterator[dict[str, str]] | tuple[dict[str, str], ...]) -> set[str]:
    return {f["type"] for f in fragments if f["url"].endswith(".m4s")}


async def _hls_plays(
    browser: Browser, origin: str, src: str, token: str = ""
) -> tuple[Report, str]:
    """hls.js at ``origin`` plays ``src`` (``token`` sent to ``origin`` only) until
    :data:`PLAY_SECONDS` of media or a fatal error: what it saw, and its console."""
    async with player(browser, origin) as page:
        await page.play(src, token, authorise=[origin] if token else [])
        report = await page.until(
            f"r => r.fatal !== null || r.played > {PLAY_SECONDS}", timeout_seconds=WAIT_SECONDS
        )
    return report, "\n".join(page.console)


async def test_dash_js_plays_the_cmaf_manifest(browser: Browser, origin: str) -> None:
    async with dash_page(browser, origin) as page:
        await page.evaluate("(src) => play(src)", f"{origin}/vod/{ASSET}/manifest.mpd")
        report = await _dash_until(page, f"r => r.errors.length > 0 || r.played > {PLAY_SECONDS}")
    assert report.errors == (), report
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 15 * PLAY_SECONDS  # the low rung runs at 15 fps
    # Video and audio came as separate CMAF tracks, each from its own rendition folder.
    assert _kinds(report.fragments) == {"video", "audio"}
    assert any("/audio-1/" in f["url"] for f in report.fragments if f["type"] == "audio")


async def test_hls_js_plays_the_same_segments_over_hls(browser: Browser, origin: str) -> None:
    report, console = await _hls_plays(browser, origin, f"{origin}/vod/{ASSET}/master.m3u8")
    assert report.fatal is None, console
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 15 * PLAY_SECONDS
    assert report.audio_fragments
    assert all(url.endswith(".m4s") and "/audio-1/" in url for url in report.audio_fragments)


LIVE_CHANNEL = "cmaflive"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_origin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A live channel packaged as CMAF too (2 s segments, the low ladder) from a real-time
    feed, and an origin serving its tree, once it has published a few segments."""
    workdir = tmp_path_factory.mktemp("cmaflive")
    feed = Feed().start()
    try:
        async with live_rig(workdir) as rig:
            channel = live_channel(LIVE_CHANNEL, feed.source)
            await rig.manager.start(replace(channel, formats=(PackageFormat.CMAF,)))
            mpd = rig.root / "live" / LIVE_CHANNEL / "manifest.mpd"
            for _ in range(600):  # until three segments are out (the player starts 3 back)
                if mpd.exists() and rig.recorder.last_seq(LIVE_CHANNEL) >= 3:
                    break
                await asyncio.sleep(0.1)
            runner, port = await start_origin(
                OriginSettings(redis_url="unused://", origin_root=rig.root, port=0),
                redis=rig.redis,
            )
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                await runner.cleanup()
                await rig.manager.stop(LIVE_CHANNEL)
    finally:
        feed.stop()


async def test_dash_js_plays_a_live_cmaf_channels_mpd(browser: Browser, live_origin: str) -> None:
    async with dash_page(browser, live_origin) as page:
        await page.evaluate("(src) => play(src)", f"{live_origin}/live/{LIVE_CHANNEL}/manifest.mpd")
        report = await _dash_until(page, f"r => r.errors.length > 0 || r.played > {PLAY_SECONDS}")
    assert report.errors == (), report
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 20 * PLAY_SECONDS  # the feed runs at 25 fps
    assert _kinds(report.fragments) == {"video", "audio"}
    assert any("/audio/" in f["url"] for f in report.fragments if f["type"] == "audio")


async def test_hls_js_plays_a_live_cmaf_channels_master(browser: Browser, live_origin: str) -> None:
    src = f"{live_origin}/live/{LIVE_CHANNEL}/master-cmaf.m3u8"
    report, console = await _hls_plays(browser, live_origin, src)
    assert report.fatal is None, console
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 20 * PLAY_SECONDS
    assert report.audio_fragments
    assert all(url.endswith(".m4s") and "/audio/" in url for url in report.audio_fragments)


# ------------------------------------------------------------------- through the platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cmaf_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The whole platform, its live channel published as CMAF too."""
    async with build_stack(redis_server.url, tmp_path_factory.mktemp("cmafstack"), cmaf=True) as up:
        yield up


async def test_dash_js_plays_live_dash_through_the_front_door(
    browser: Browser, cmaf_stack: Stack
) -> None:
    token = await box_token(cmaf_stack.url, cmaf_stack.world.boxes["c1"])
    mpd = f"{cmaf_stack.url}/live/{cmaf_stack.channel}/manifest.mpd"
    async with dash_page(browser, cmaf_stack.url) as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        # A player without headers: the token in the query, which the MPD's Location keeps.
        await page.evaluate("(src) => play(src)", f"{mpd}?token={token}")
        report = await _dash_until(page, f"r => r.errors.length > 0 || r.played > {PLAY_SECONDS}")
    assert report.errors == (), report
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 20 * PLAY_SECONDS
    assert _kinds(report.fragments) == {"video", "audio"}
    # Every segment from an edge, under a signed path; every MPD reload back at the front
    # door with the lease the first one started (one stream).
    assert all("/t/" in f["url"] for f in report.fragments), report.fragments
    reloads = [url for url in requested if url.startswith(mpd)]
    assert len(reloads) >= PLAY_SECONDS // 2 // 2, reloads
    leases = {url.partition("lease_id=")[2].partition("&")[0] for url in reloads[1:]}
    assert len(leases) == 1
    assert leases != {""}


async def test_hls_js_plays_live_cmaf_hls_through_the_front_door(
    browser: Browser, cmaf_stack: Stack
) -> None:
    token = await box_token(cmaf_stack.url, cmaf_stack.world.boxes["c1"])
    src = f"{cmaf_stack.url}/live/{cmaf_stack.channel}/master-cmaf.m3u8"
    report, console = await _hls_plays(browser, cmaf_stack.url, src, token)
    assert report.fatal is None, console
    assert report.played_seconds > PLAY_SECONDS
    assert report.frames >= 20 * PLAY_SECONDS
    assert report.audio_fragments
    assert all(url.endswith(".m4s") and "/t/" in url for url in report.audio_fragments)
