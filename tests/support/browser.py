"""A real HLS player in a real browser: hls.js in headless Chromium, driven by Playwright.

The browser tests (``make test-browser``) prove what a simulated box cannot: that a
browser's own MSE pipeline plays what the platform packages, and that a real player's
playlist reloads, key loading and AES-128 decryption work through the front door and the
edges. Playwright drives Debian's ``chromium`` (``executable_path``: nothing is downloaded,
no ``playwright install``); hls.js comes from node_modules, pinned in package-lock.json,
never from a CDN.

The player page (``tests/browser/player.html``) is served at the front door's own origin,
by Playwright's request routing for one path prefix the front door does not have: the front
door sends no CORS headers, so a page on another origin could not read its playlists or
keys (the edges allow any origin). Every other request the page makes reaches the real
front door and edges, under the browser's ordinary same-origin and CORS rules.

The operator console's tests use the same browser on the console's own pages
(:func:`console_page`: logged in through its form, every console error kept).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, Route, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from cdn_ctl.sim.stb import SetTopBox
from headend.seed import Box

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PAGES = {
    "player.html": ROOT / "tests" / "browser" / "player.html",
    "hls.min.js": ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js",
}
# Where the page lives on the front door's origin: a prefix the front door does not route.
PLAYER_PREFIX = "/_browser_test/"
# How often a wait re-reads the page's report (a requestAnimationFrame poll would cost the
# loaded test machine 60 evaluations a second).
POLL_MS = 200


@dataclass(frozen=True, slots=True)
class HlsError:
    """One hls.js ERROR event."""

    type: str
    details: str
    fatal: bool
    status: int
    url: str


@dataclass(frozen=True, slots=True)
class KeyRefusal:
    """A key request the front door refused, as the page received it."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Rendition:
    """An audio or subtitle rendition as hls.js lists it."""

    name: str
    lang: str
    default: bool


@dataclass(frozen=True, slots=True)
class Report:
    """What the page saw so far (its ``window.report``)."""

    hls_version: str
    started: float | None
    time: float
    played_seconds: float  # since playback started
    frames: int
    errors: tuple[HlsError, ...]
    fatal: HlsError | None
    keys_requested: tuple[str, ...]
    keys_loaded: tuple[str, ...]
    keys_played: tuple[str, ...]
    key_refusals: tuple[KeyRefusal, ...]
    fragments_played: int
    audio_tracks: tuple[Rendition, ...]
    subtitle_tracks: tuple[Rendition, ...]
    audio_track: int  # the one in use, -1: none (muxed audio)
    subtitle_track: int
    audio_fragments: tuple[str, ...]  # URLs of the audio fragments loaded
    cues: tuple[str, ...]  # texts of the subtitle cues shown

    @classmethod
    def from_page(cls, raw: dict[str, Any]) -> Report:
        """The report from the page's JSON."""
        errors = tuple(HlsError(**e) for e in raw["errors"])
        return cls(
            hls_version=raw["hlsVersion"],
            started=raw["started"],
            time=raw["time"],
            played_seconds=raw["played"],
            frames=raw["frames"],
            errors=errors,
            fatal=HlsError(**raw["fatal"]) if raw["fatal"] else None,
            keys_requested=tuple(raw["keysRequested"]),
            keys_loaded=tuple(raw["keysLoaded"]),
            keys_played=tuple(raw["keysPlayed"]),
            key_refusals=tuple(KeyRefusal(**r) for r in raw["keyRefusals"]),
            fragments_played=raw["fragmentsPlayed"],
            audio_tracks=tuple(Rendition(**t) for t in raw["audioTracks"]),
            subtitle_tracks=tuple(Rendition(**t) for t in raw["subtitleTracks"]),
            audio_track=raw["audioTrack"],
            subtitle_track=raw["subtitleTrack"],
            audio_fragments=tuple(raw["audioFragments"]),
            cues=tuple(raw["cues"]),
        )


class Player:
    """One player page: :meth:`play` a stream, :meth:`until` the report says enough."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []  # the page's console and uncaught errors, for messages
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))

    async def play(self, src: str, token: str = "", authorise: Sequence[str] = ()) -> None:
        """Start playing ``src``; ``token`` goes in ``Authorization: Bearer`` on the requests
        whose URL starts with one of ``authorise``."""
        await self.page.evaluate(
            "([src, token, authorise]) => play(src, token, authorise)",
            [src, token, list(authorise)],
        )

    async def select_audio(self, language: str) -> None:
        """Switch to the audio rendition of ``language``."""
        await self.page.evaluate("(lang) => selectAudio(lang)", language)

    async def show_subtitles(self, language: str) -> None:
        """Show the subtitles of ``language``."""
        await self.page.evaluate("(lang) => showSubtitles(lang)", language)

    async def report(self) -> Report:
        """The page's report now."""
        return Report.from_page(await self.page.evaluate("() => window.report"))

    async def until(self, predicate: str, *, timeout_seconds: float) -> Report:
        """Wait until the JavaScript ``predicate`` (a function of the report) holds, or for
        at most ``timeout_seconds``: then return the report either way, for the test's
        assertions to say what was missing."""
        with contextlib.suppress(PlaywrightTimeout):
            await self.page.wait_for_function(
                f"() => ({predicate})(window.report)",
                polling=POLL_MS,
                timeout=timeout_seconds * 1000,
            )
        return await self.report()


async def box_token(frontdoor: str, box: Box) -> str:
    """The box's token from the front door's ``POST /api/login``, as the page gets it."""
    async with aiohttp.ClientSession() as http:
        client = SetTopBox(http, frontdoor, mac=box.mac, secret=box.secret)
        await client.login()
    return client.token


async def _serve(route: Route) -> None:
    """The page and hls.js, from the repository (nothing else under the prefix)."""
    name = route.request.url.split(PLAYER_PREFIX, 1)[1]
    path = PAGES.get(name)
    if path is None:
        await route.fulfill(status=404)
    else:
        await route.fulfill(path=path)


def _require_installed() -> None:
    """Say what to run when the browser or the player is missing."""
    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: make test-browser installs Debian's chromium"
    for path in PAGES.values():
        assert path.is_file(), f"{path} missing: make test-browser runs npm ci for hls.js"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless system Chromium for the duration."""
    _require_installed()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Muted video may autoplay anyway; this keeps a policy change from stalling play().
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def player(browser: Browser, origin: str) -> AsyncIterator[Player]:
    """A player page at ``origin`` (the front door's), in a fresh browser context: no
    cookies, cache or key shared with another page."""
    context = await browser.new_context()
    # A routed page has no address, so Chromium counts it as public and asks before letting
    # it reach loopback (Local Network Access): the permission a viewer would give. Served
    # for real, the page, the front door and the edges would share an address space.
    await context.grant_permissions(["local-network-access"], origin=origin)
    try:
        page = await context.new_page()
        await page.route(f"{origin}{PLAYER_PREFIX}**", _serve)
        watched = Player(page)
        await page.goto(f"{origin}{PLAYER_PREFIX}player.html")
        yield watched
    finally:
        await context.close()


# A laptop screen: the console's pages must be usable at this size.
LAPTOP = {"width": 1366, "height": 768}
SCREENSHOTS = ROOT / "docs" / "console"


class ConsolePage:
    """One operator's browser tab on the console, logged in with a key; every console
    message and page error it logged (a page must log none)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"{msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))

    async def open(self, path: str) -> None:
        """Go to ``path`` and wait until it has loaded."""
        await self.page.goto(self.base + path, wait_until="load")

    async def screenshot(self, name: str) -> None:
        """Save the page as ``docs/console/<name>.png`` when CONSOLE_SCREENSHOTS=1."""
        if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=SCREENSHOTS / f"{name}.png")


@contextlib.asynccontextmanager
async def console_page(browser: Browser, base: str, key: str) -> AsyncIterator[ConsolePage]:
    """A fresh browser context on the console at ``base``, logged in with ``key`` through
    the login form."""
    context = await browser.new_context(viewport=LAPTOP)  # type: ignore[arg-type]
    try:
        tab = ConsolePage(await context.new_page(), base)
        await tab.open("/login")
        await tab.page.fill("#key", key)
        async with tab.page.expect_navigation():
            await tab.page.click("#login")
        yield tab
    finally:
        await context.close()
