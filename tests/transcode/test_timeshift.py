"""Start-over and timeshift windows at the origin (a real port over a real Redis archive
index): a window whose end is ahead is an EVENT playlist from its first segment that
grows with the archive, gains ENDLIST at its end and settles to VOD; it is cached as
briefly as live until then; encrypted segments keep their keys; every playlist parses
with the m3u8 library's strict parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from m3u8 import parser

from transcode import hls, hls_parse
from transcode.archive import (
    SETTLED,
    ArchiveIndex,
    RungInfo,
    render_catchup_media,
    window_state,
)
from transcode.domain import ArchiveEntry, Window
from transcode.origin import start_origin
from transcode.settings import OriginSettings

SEGMENT = b"\x47" * 188 * 4
BASE = "http://door.example"
KEY_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Site:
    base: str
    http: aiohttp.ClientSession
    root: Path
    index: ArchiveIndex
    start: datetime  # the first archived segment's start (whole seconds)

    async def archive(self, seq: int, *, key_id: str = "") -> ArchiveEntry:
        """Archive segment ``seq`` (2 s each from ``start``) on disk and in the index."""
        rel = f"live/ch1/180p/{seq:010d}.ts"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(SEGMENT)
        entry = ArchiveEntry(
            seq, self.start + timedelta(seconds=2 * seq), 2.0, len(SEGMENT), rel, key_id=key_id
        )
        await self.index.record("ch1", "180p", entry)
        return entry

    def window(self, first: datetime, last: datetime) -> str:
        return f"/catchup/ch1/w/{int(first.timestamp())}/{int(last.timestamp())}"

    async def get(self, path: str) -> tuple[str, str]:
        """The body and Cache-Control of a 200."""
        async with self.http.get(self.base + path) as response:
            body = await response.text()
            assert response.status == 200, body
            return body, response.headers["Cache-Control"]


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    index = ArchiveIndex(redis)
    await index.register_channel(
        "ch1", catchup_days=1, rungs=[RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)]
    )
    # Five segments up to about now: the archive of a channel that is on air.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0, content_key_base_url=BASE),
        redis=redis,
    )
    async with aiohttp.ClientSession() as http:
        site = Site(f"http://127.0.0.1:{port}", http, root, index, start)
        for seq in range(5):
            await site.archive(seq)
        yield site
    await runner.cleanup()


def strictly(text: str) -> hls.MediaPlaylist:
    """The playlist, after the m3u8 library's strict parser accepted every line of it."""
    parser.parse(text, strict=True)
    return hls_parse.parse_media(text)


async def test_a_window_ending_ahead_grows_as_an_event_then_ends(site: Site) -> None:
    # A programme that began before the archive's first segment and ends 20 s from it.
    window = site.window(site.start - timedelta(seconds=30), site.start + timedelta(seconds=20))
    text, cache = await site.get(f"{window}/180p/index.m3u8")
    first = strictly(text)
    assert (first.playlist_type, first.endlist, first.start_offset_seconds) == ("EVENT", False, 0)
    assert first.media_sequence == 0
    assert [s.uri for s in first.segments] == [f"{n:010d}.ts" for n in range(5)]
    assert cache == "public, max-age=1"
    _master, master_cache = await site.get(f"{window}/master.m3u8")
    assert master_cache == "public, max-age=1"

    # The archive grows: the same playlist with the new segment appended, nothing else moved.
    await site.archive(5)
    grown = strictly((await site.get(f"{window}/180p/index.m3u8"))[0])
    assert grown.segments[:5] == first.segments
    assert [s.uri for s in grown.segments[5:]] == ["0000000005.ts"]
    assert (grown.playlist_type, grown.endlist, grown.media_sequence) == ("EVENT", False, 0)
    # A segment of the grown window is served under the window's path.
    async with site.http.get(f"{site.base}{window}/180p/0000000005.ts") as seg:
        assert seg.status == 200

    # Up to the window's end: still EVENT (players that watched it grow), now ended.
    for seq in range(6, 10):
        await site.archive(seq)
    text, cache = await site.get(f"{window}/180p/index.m3u8")
    ended = strictly(text)
    assert (ended.playlist_type, ended.endlist, ended.start_offset_seconds) == ("EVENT", True, 0)
    assert len(ended.segments) == 10
    assert ended.segments[:6] == grown.segments
    assert cache == "public, max-age=1"


async def test_an_encrypted_growing_window_names_each_segments_key(site: Site) -> None:
    await site.archive(5, key_id=KEY_ID)
    window = site.window(site.start, site.start + timedelta(minutes=5))
    playlist = strictly((await site.get(f"{window}/180p/index.m3u8"))[0])
    assert playlist.endlist is False
    assert [s.key for s in playlist.segments[:5]] == [None] * 5
    key = playlist.segments[5].key
    assert key is not None
    assert key.uri == f"{BASE}/keys/ch1/{KEY_ID}"


def test_window_states() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    entry = ArchiveEntry(7, now - timedelta(seconds=4), 2.0, 10, "live/ch1/180p/0000000007.ts")
    ahead = Window(now - timedelta(minutes=10), now + timedelta(minutes=5))
    assert window_state([entry], ahead, now) == "growing"
    # The archive reached the end: ended, though the clock has not.
    reached = Window(now - timedelta(minutes=10), now - timedelta(seconds=2))
    assert window_state([entry], reached, now - timedelta(seconds=3)) == "ended"
    # The end has come without its last segment (a source cut): ended all the same.
    assert window_state([entry], Window(ahead.start, now), now) == "ended"
    assert window_state([entry], Window(ahead.start, now - SETTLED), now) == "ended"
    settled = Window(ahead.start, now - SETTLED - timedelta(seconds=1))
    assert window_state([entry], settled, now) == "settled"
    text = render_catchup_media([entry], channel="ch1", key_base_url=BASE, state="settled")
    vod = strictly(text)
    assert (vod.playlist_type, vod.endlist, vod.start_offset_seconds) == ("VOD", True, None)


async def test_a_settled_window_is_vod_and_cached_long(site: Site) -> None:
    # The same segments, asked for as a window that ended well before now.
    end = datetime.now(UTC) - SETTLED - timedelta(seconds=5)
    for seq in range(3):
        entry = ArchiveEntry(
            100 + seq, end - timedelta(seconds=6 - 2 * seq), 2.0, len(SEGMENT),
            f"live/ch1/180p/{100 + seq:010d}.ts",
        )  # fmt: skip
        (site.root / entry.path).write_bytes(SEGMENT)
        await site.index.record("ch1", "180p", entry)
    text, cache = await site.get(f"{site.window(end - timedelta(seconds=6), end)}/180p/index.m3u8")
    playlist = strictly(text)
    assert (playlist.playlist_type, playlist.endlist) == ("VOD", True)
    assert cache == "public, max-age=3600"
