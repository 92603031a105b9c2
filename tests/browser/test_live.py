"""hls.js in headless Chromium plays a clear live channel through the front door (see
:mod:`tests.support.browser`): the box logs in over HTTP and the page gets its token."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.support.browser import box_token, player
from tests.support.journey import Stack
from tests.support.world import LIVE

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SEGMENT_SECONDS = 2  # the journey stack's live channel
# Generous: the first segments wait for the player's start-up on a loaded machine.
WAIT_SECONDS = 60


async def test_hls_js_plays_a_clear_live_channel_through_the_front_door(
    stack: Stack, browser: Browser
) -> None:
    token = await box_token(stack.url, stack.world.boxes["c1"])
    async with player(browser, stack.url) as page:
        # The token in the header on every front door request (master, variant reloads);
        # the edges get none: their URLs are signed.
        await page.play(f"{stack.url}/live/{LIVE}/master.m3u8", token, authorise=[stack.url])
        report = await page.until(
            f"r => r.fatal !== null || r.played > {3 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
    assert report.fatal is None, "\n".join(page.console)
    assert report.played_seconds > 2 * SEGMENT_SECONDS, (report, page.console)
    # Played means decoded: 25 frames a second of H.264 went through the browser's decoder.
    assert report.frames >= 25 * 2 * SEGMENT_SECONDS
    assert report.keys_requested == ()


async def test_hls_js_without_a_box_token_is_refused_the_master(
    stack: Stack, browser: Browser
) -> None:
    async with player(browser, stack.url) as page:
        await page.play(f"{stack.url}/live/{LIVE}/master.m3u8")
        report = await page.until("r => r.fatal !== null", timeout_seconds=WAIT_SECONDS)
    assert report.fatal is not None
    assert (report.fatal.details, report.fatal.status) == ("manifestLoadError", 401)
    assert report.frames == 0
