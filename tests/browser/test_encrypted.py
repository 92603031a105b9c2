"""hls.js in headless Chromium plays an AES-128 encrypted live channel through the front
door across key rotations, and is refused the key without a token or without a lease
(see :mod:`tests.support.browser`; the stack: conftest's ``encrypted_stack``)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.support.browser import box_token, player
from tests.support.journey import Stack
from tests.support.world import LIVE

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# Generous: three key periods of media, after the player's start-up on a loaded machine.
WAIT_SECONDS = 90


def master(stack: Stack, token: str = "") -> str:
    """The live master at the front door (``token``: in the query, so that the variant
    URIs carry it too, for a page that sends no header)."""
    query = f"?token={token}" if token else ""
    return f"{stack.url}/live/{LIVE}/master.m3u8{query}"


async def test_hls_js_plays_an_encrypted_channel_across_two_key_rotations(
    encrypted_stack: Stack, browser: Browser
) -> None:
    stack = encrypted_stack
    token = await box_token(stack.url, stack.world.boxes["c1"])
    async with player(browser, stack.url) as page:
        # The header on every front door request: the master, variant reloads and keys.
        await page.play(master(stack), token, authorise=[stack.url])
        report = await page.until(
            "r => r.fatal !== null || r.keysPlayed.length >= 3", timeout_seconds=WAIT_SECONDS
        )
    assert report.fatal is None, "\n".join(page.console)
    # Three keys played: the play head crossed two rotations, each with a freshly loaded key.
    assert len(report.keys_played) >= 3, (report, page.console)
    assert set(report.keys_played) <= set(report.keys_loaded)
    assert all(k.startswith(f"{stack.url}/keys/{LIVE}/") for k in report.keys_requested)
    assert report.frames > 0
    assert report.errors == ()
    assert report.key_refusals == ()


async def test_hls_js_without_a_token_on_key_requests_is_refused_the_key(
    encrypted_stack: Stack, browser: Browser
) -> None:
    stack = encrypted_stack
    token = await box_token(stack.url, stack.world.boxes["c1"])
    async with player(browser, stack.url) as page:
        # Playlists with the token in their query; key requests with nothing.
        await page.play(master(stack, token))
        report = await page.until("r => r.fatal !== null", timeout_seconds=WAIT_SECONDS)
    assert report.keys_requested, (report, page.console)
    assert report.fatal is not None
    assert (report.fatal.details, report.fatal.status) == ("keyLoadError", 401)
    assert {(r.status, r.reason) for r in report.key_refusals} == {(401, "session_missing")}
    assert report.keys_loaded == ()
    assert report.frames == 0


async def test_hls_js_with_a_token_that_holds_no_lease_is_refused_the_key(
    encrypted_stack: Stack, browser: Browser
) -> None:
    stack = encrypted_stack
    playing = await box_token(stack.url, stack.world.boxes["c1"])
    # Another entitled box in the region that never asked for the channel: no lease.
    idle = await box_token(stack.url, stack.world.boxes["e1"])
    async with player(browser, stack.url) as page:
        await page.play(master(stack, playing), idle, authorise=[f"{stack.url}/keys/"])
        report = await page.until("r => r.fatal !== null", timeout_seconds=WAIT_SECONDS)
    assert report.keys_requested, (report, page.console)
    assert report.fatal is not None
    assert (report.fatal.details, report.fatal.status) == ("keyLoadError", 403)
    assert {(r.status, r.reason) for r in report.key_refusals} == {(403, "no_lease")}
    assert report.keys_loaded == ()
    assert report.frames == 0
