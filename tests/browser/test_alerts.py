"""hls.js in headless Chromium keeps playing a live channel through an emergency alert for
its box's county: switched to the emergency feed within a few reloads of the
confirmation (a discontinuity hls.js must handle: another picture, other timestamps), and
back to the channel once the alert is cancelled, with no fatal error and no stall."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Severity
from headend.redisproc import RedisServer
from tests.support.browser import box_token, player
from tests.support.journey import EMERGENCY, Stack, build_stack
from tests.support.world import LIVE, REGION

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SEGMENT_SECONDS = 2  # the journey stack's live channels
WAIT_SECONDS = 60
# A cut view names the feed's segments below this part of their URL (transcode.cuts).
FEED_PART = "/feed/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emergency_stack(redis_server: RedisServer, browser_dir: Path) -> AsyncIterator[Stack]:
    """The platform with its emergency feed, up once for the module."""
    async with build_stack(redis_server.url, browser_dir, emergency=True) as up:
        yield up


async def test_hls_js_plays_through_an_alert_and_back(
    emergency_stack: Stack, browser: Browser
) -> None:
    stack = emergency_stack
    token = await box_token(stack.url, stack.world.boxes["c1"])
    issuer_key, confirmer_key = stack.emergency_keys
    segments: list[str] = []
    async with (
        player(browser, stack.url) as page,
        AlertClient(stack.services.epg_target, issuer_key, tls=stack.services.tls) as issuer,
        AlertClient(stack.services.epg_target, confirmer_key, tls=stack.services.tls) as second,
    ):
        page.page.on("request", lambda r: segments.append(r.url) if r.url.endswith(".ts") else None)
        await page.play(f"{stack.url}/live/{LIVE}/master.m3u8", token, authorise=[stack.url])
        before = await page.until(
            f"r => r.fatal !== null || r.played > {2 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
        assert before.fatal is None, "\n".join(page.console)
        alert = Alert(
            id="",
            severity=Severity.EXTREME,
            headline="Flood warning",
            regions=(REGION,),
            feed_channel_id=EMERGENCY,
        )
        issued = await issuer.issue(alert, alert_id="flood-browser")
        await second.confirm(issued.id)
        during = await page.until(
            f"r => r.fatal !== null || r.played > {before.played_seconds + 8 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
        switched = [url for url in segments if FEED_PART in url]
        await issuer.cancel(issued.id, reason="water receding")
        after_cancel = len(segments)
        after = await page.until(
            f"r => r.fatal !== null || r.played > {during.played_seconds + 8 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
    assert after.fatal is None, "\n".join(page.console)
    # The feed's segments were fetched during the alert, the channel's after it.
    assert switched, segments
    returned = segments[after_cancel:]
    assert returned, segments
    assert FEED_PART not in returned[-1]
    # Decoded throughout: 25 frames a second through the join and back.
    assert after.frames >= 25 * (after.played_seconds - 2 * SEGMENT_SECONDS)
    assert after.played_seconds > during.played_seconds > before.played_seconds
