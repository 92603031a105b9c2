"""The operator console in headless Chromium against the seeded real stack (the journey's:
a live channel fed by FFmpeg, three nginx edges, the front door and every gRPC service),
logged in through its form: every page loads for each role with no console errors and
shows the stack's data; the mosaic shows a thumbnail and turns a channel red when its
source is cut; draining an edge moves new routes; a dead letter retried from the console
completes; a carrier sees only its own subscribers; the helpdesk explains a refused box.

``CONSOLE_SCREENSHOTS=1`` saves each page to ``docs/console/<page>.png`` (the README's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from headend.auth import KeyStore, Principal
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import bearer, client_channel
from protos import subscriber_pb2, subscriber_pb2_grpc
from tests.support.browser import console_page
from tests.support.cdn import eventually
from tests.support.console import dead_letters
from tests.support.journey import Stack, build_stack
from tests.support.media import ffmpeg
from tests.support.world import CARRIER, LIVE, PREMIUM, REGION
from transcode.queue import JobQueue
from transcode.settings import QueueSettings, SourceSettings
from transcode.sources import SourceGuard
from transcode.worker import Worker, vod_packager

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# Generous: the machine running these is loaded; the pages poll every 5 s.
WAIT_MS = 60_000
# Each role's pages, in its navigation's order.
PAGES = {
    "admin": (
        "channels",
        "edges",
        "jobs",
        "guide",
        "subscribers",
        "helpdesk",
        "reports",
        "alerts",
    ),
    "broadcaster:demo": ("channels", "guide", "reports"),
    f"carrier:{CARRIER}": ("subscribers", "helpdesk", "reports"),
}
# What each page shows of the seeded stack (a CSS selector that must be present).
SHOWS = {
    "channels": f'[data-channel="{LIVE}"]',
    "edges": '[data-edge="edge-a"]',
    "jobs": "#dead",
    "guide": f'[data-channel="{LIVE}"]',
    "subscribers": f'[data-carrier="{CARRIER}"]',
    "helpdesk": "#mac",
    "reports": "#rows",
    "alerts": "#open",
}


@pytest.fixture(scope="module")
def console_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the module's stack."""
    return tmp_path_factory.mktemp("console")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, console_dir: Path) -> AsyncIterator[Stack]:
    """The journey's platform with the console, up once for the module."""
    async with build_stack(redis_server.url, console_dir, console=True) as up:
        yield up


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def keys(stack: Stack, redis_server: RedisServer) -> AsyncIterator[dict[str, str]]:
    """An API key per role (and one of another carrier, and the front door's role)."""
    redis = connect(redis_server.url)
    store = KeyStore(redis)
    made = {}
    for principal in (*PAGES, "carrier:rival", "playback"):
        _, made[principal] = await store.create(Principal.parse(principal))
    yield made
    await redis.aclose()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 60) -> None:
    """Until ``check`` holds (the controller and the worker offer no event to await from
    here), failing after ``seconds``."""
    async with asyncio.timeout(seconds):
        await eventually(check)


@pytest.mark.parametrize("principal", list(PAGES))
async def test_every_page_loads_for_each_role_with_no_console_errors(
    stack: Stack, browser: Browser, keys: dict[str, str], principal: str
) -> None:
    async with console_page(browser, stack.console_url, keys[principal]) as tab:
        await expect(tab.page.locator("#principal")).to_have_text(principal)
        nav = await tab.page.locator("header nav a").evaluate_all(
            "links => links.map(a => a.dataset.nav)"
        )
        assert tuple(nav) == PAGES[principal]
        for name in PAGES[principal]:
            await tab.open(f"/{name}")
            assert await tab.page.locator(SHOWS[name]).count() > 0, (name, await tab.page.content())
            assert not await tab.page.locator(".missing").count(), await tab.page.content()
            if principal == "admin" and name != "channels":  # the mosaic's: with its picture
                await tab.screenshot(name)
        # One poll round at least: the live updates log nothing either.
        await tab.page.wait_for_timeout(6000)
        assert tab.errors == []


async def test_the_mosaic_shows_a_thumbnail_and_goes_red_when_the_source_is_cut(
    stack: Stack, browser: Browser, keys: dict[str, str]
) -> None:
    assert stack.feed is not None
    async with console_page(browser, stack.console_url, keys["admin"]) as tab:
        tile = tab.page.locator(f'.tile[data-channel="{LIVE}"]')
        await expect(tile).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        await expect(tile).not_to_have_class("tile red")
        # A picture of the latest segment, decoded by the browser: a JPEG (the placeholder,
        # shown until the first capture, is an SVG).
        picture = f'.tile[data-channel="{LIVE}"] img'

        async def jpeg_shown() -> bool:
            await asyncio.sleep(1)  # the page re-renders every 5 s
            src = await tab.page.evaluate(
                f"""() => {{
                    const img = document.querySelector('{picture}');
                    return img && img.complete && img.naturalWidth > 0 ? img.src : null;
                }}"""
            )
            if src is None:
                return False
            response = await tab.page.request.get(src)
            return response.headers["content-type"] == "image/jpeg"

        await until(jpeg_shown)
        if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
            await tab.page.wait_for_timeout(6000)  # one more render: the picture in place
            await tab.screenshot("channels")
        await tab.open(f"/channels/{LIVE}")
        await tab.screenshot("channel")
        await tab.open("/channels")
        stack.feed.stop()
        try:
            # The page polls its JSON and swaps in the new render: no reload.
            await expect(tab.page.locator(f'.tile[data-channel="{LIVE}"]')).to_have_class(
                "tile red", timeout=WAIT_MS * 2
            )
            await tab.screenshot("channels-red")
        finally:
            stack.feed.start()
        assert tab.errors == []


async def test_draining_an_edge_from_the_console_moves_new_routes(
    stack: Stack, browser: Browser, keys: dict[str, str]
) -> None:
    router = stack.controller.router
    before = router.route(LIVE, REGION).edge.edge_id
    async with console_page(browser, stack.console_url, keys["admin"]) as tab:
        await tab.open("/edges")
        row = tab.page.locator(f'tr[data-edge="{before}"]')
        await row.locator("button.drain").click()
        await expect(row.locator("button.undrain")).to_be_visible(timeout=WAIT_MS)

        async def moved() -> bool:
            return router.route(LIVE, REGION).edge.edge_id != before

        await until(moved)
        await tab.page.locator(f'tr[data-edge="{before}"] button.undrain').click()
        await expect(tab.page.locator(f'tr[data-edge="{before}"] button.drain')).to_be_visible(
            timeout=WAIT_MS
        )

        async def back() -> bool:
            return router.route(LIVE, REGION).edge.edge_id == before

        await until(back)
        assert tab.errors == []


@contextlib.asynccontextmanager
async def _worker(redis_server: RedisServer, origin: Path, media: Path) -> AsyncIterator[None]:
    """A real worker (FFmpeg) taking jobs from the stack's queue."""
    redis = connect(redis_server.url)
    worker = Worker(
        queue=JobQueue(redis),
        packager=vod_packager(
            origin_root=origin,
            work_dir=None,
            sources=SourceGuard(SourceSettings(media_roots=(media,))),
        ),
        consumer="console-browser",
        settings=QueueSettings(),
        heartbeat_seconds=0.5,
        block_ms=200,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await redis.aclose()


async def test_a_dead_letter_retried_from_the_console_completes(
    stack: Stack, browser: Browser, keys: dict[str, str], redis_server: RedisServer,
    console_dir: Path,
) -> None:  # fmt: skip
    media = console_dir / "media"
    media.mkdir(exist_ok=True)
    clip = media / "retry.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25", "-f", "lavfi", "-i",
           "sine=sample_rate=48000", "-t", "3", "-pix_fmt", "yuv420p", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", str(clip))  # fmt: skip
    redis = connect(redis_server.url)
    try:
        await dead_letters(redis, "retry1", source=str(clip), profile="low")
    finally:
        await redis.aclose()
    async with console_page(browser, stack.console_url, keys["admin"]) as tab:
        await tab.open("/jobs")
        dead = tab.page.locator('#dead tr[data-job="retry1"]')
        await expect(dead).to_contain_text("DiskFull")
        await tab.screenshot("jobs")
        async with _worker(redis_server, console_dir / "vod-origin", media):
            await dead.locator("button.retry").click()
            await expect(tab.page.locator('#dead tr[data-job="retry1"]')).to_have_count(0)

            async def done() -> bool:
                await asyncio.sleep(0.5)  # one look at the queue every half second
                response = await tab.page.request.get(f"{stack.console_url}/api/jobs.json")
                data = await response.json()
                return not any(
                    j["id"] == "retry1" for j in data["queued"] + data["running"]
                ) and not any(j["id"] == "retry1" for j in data["dead_letters"])

            await until(done, 120)
        assert (console_dir / "vod-origin" / "vod" / "retry1").is_dir()
        assert tab.errors == []


async def test_a_carrier_cannot_see_another_carriers_subscribers(
    stack: Stack, browser: Browser, keys: dict[str, str]
) -> None:
    async with console_page(browser, stack.console_url, keys["carrier:rival"]) as tab:
        await tab.open("/subscribers")
        assert await tab.page.locator(f'[data-carrier="{CARRIER}"]').count() == 0
        box = stack.world.boxes["a1"].mac
        await tab.open(f"/helpdesk?mac={box}")
        await expect(tab.page.locator("h1")).to_contain_text("Error")
        assert "alice" not in (await tab.page.content()).lower()
        response = await tab.page.request.get(f"{stack.console_url}/api/helpdesk.json?mac={box}")
        assert response.status in (403, 404)
        response = await tab.page.request.get(f"{stack.console_url}/api/subscribers.json")
        assert CARRIER not in [c["carrier"] for c in (await response.json())["carriers"]]


async def test_the_helpdesk_explains_a_refused_box(
    stack: Stack, browser: Browser, keys: dict[str, str]
) -> None:
    box = stack.world.boxes["e1"].mac
    async with client_channel(stack.services.subscriber_target) as channel:
        answer = await subscriber_pb2_grpc.SubscriberServiceStub(channel).Authorize(
            subscriber_pb2.AuthorizeRequest(mac=box, channel_id=PREMIUM),
            metadata=bearer(keys["playback"]),
        )
    assert not answer.allowed
    async with console_page(browser, stack.console_url, keys[f"carrier:{CARRIER}"]) as tab:
        await tab.open("/helpdesk")
        await tab.page.fill("#mac", box.upper())
        async with tab.page.expect_navigation():
            await tab.page.click("#find")
        refused = tab.page.locator('#events tr[data-reason="NOT_ENTITLED"]')
        await expect(refused.first).to_contain_text(PREMIUM)
        await expect(refused.first.locator(".why")).to_contain_text("not entitled")
        await tab.screenshot("helpdesk")
        await tab.open(f"/helpdesk?mac={box}&lang=zh")
        await expect(refused.first.locator(".why")).to_contain_text("未订购")
        await tab.screenshot("helpdesk-zh")
        assert tab.errors == []
