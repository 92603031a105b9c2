"""hls.js in headless Chromium lists a live channel's two audio languages and its subtitles,
switches between them, and shows the cues, all through the front door and the edges."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from headend.redisproc import RedisServer
from tests.support.browser import box_token, player
from tests.support.journey import Stack, build_stack
from tests.support.media import multilingual_clip
from tests.support.world import LIVE

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SEGMENT_SECONDS = 2
WAIT_SECONDS = 60


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def multilingual_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The platform with its live channel looping a source with Mandarin and English audio
    and English subtitles."""
    workdir = tmp_path_factory.mktemp("tracks")
    media = workdir / "media"
    media.mkdir()
    source = multilingual_clip(media / "multilingual.mkv", 7)
    async with build_stack(redis_server.url, workdir, multilingual=source) as up:
        yield up


async def test_hls_js_lists_and_switches_audio_languages_and_subtitles(
    multilingual_stack: Stack, browser: Browser
) -> None:
    stack = multilingual_stack
    token = await box_token(stack.url, stack.world.boxes["c1"])
    async with player(browser, stack.url) as page:
        await page.play(f"{stack.url}/live/{LIVE}/master.m3u8", token, authorise=[stack.url])
        report = await page.until(
            f"r => r.fatal !== null || r.played > {2 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
        assert report.fatal is None, "\n".join(page.console)
        assert [(t.lang, t.default) for t in report.audio_tracks] == [("zh", True), ("en", False)]
        assert [(t.name, t.lang) for t in report.subtitle_tracks] == [("English", "en")]
        assert all("/audio-zh/" in url for url in report.audio_fragments)

        await page.select_audio("en")
        await page.show_subtitles("en")
        loaded = len(report.audio_fragments)
        report = await page.until(
            "r => r.fatal !== null || (r.audioTrack === 1 && r.subtitleTrack === 0"
            f" && r.audioFragments.slice({loaded}).some(u => u.includes('/audio-en/'))"
            " && r.cues.length > 0)",
            timeout_seconds=WAIT_SECONDS,
        )
        played = report.played_seconds
        report = await page.until(
            f"r => r.fatal !== null || r.played > {played + 2 * SEGMENT_SECONDS}",
            timeout_seconds=WAIT_SECONDS,
        )
    assert report.fatal is None, "\n".join(page.console)
    assert (report.audio_track, report.subtitle_track) == (1, 0)
    assert any("/audio-en/" in url for url in report.audio_fragments[loaded:])
    # The source's cues, on the video's clock, shown by the browser's text track.
    assert set(report.cues) & {"第一句 first line", "across the cut", "last"}
    assert report.played_seconds > played + SEGMENT_SECONDS
    assert report.frames >= 25 * 2 * SEGMENT_SECONDS
