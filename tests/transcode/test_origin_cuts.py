"""Cut views at the real origin over a real archive index: the live and catch-up views, the
segments they name, their caching, and what is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.transcode.cut_site import (
    CUT,
    FEED_FIRST,
    LIVE_DISCONTINUITY_SEQUENCE,
    LIVE_FIRST,
    SEGMENTS,
    START,
    T0,
    WINDOW,
    feed_body,
    live_playlist,
    make_cut_site,
    own_body,
    own_start,
    store_cues,
    write,
)
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.cues import StoredCue
from transcode.domain import ArchiveEntry
from transcode.origin import start_origin
from transcode.settings import OriginSettings

PLAYLIST = "application/vnd.apple.mpegurl"


@dataclass
class Site:
    base: str
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(self.base + path) as response:
            return response.status, await response.read(), dict(response.headers)


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    await make_cut_site(redis, root)
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    async with aiohttp.ClientSession() as http:
        yield Site(f"http://127.0.0.1:{port}", http)
    await runner.cleanup()


def _bodies(view: hls.MediaPlaylist) -> list[bytes]:
    """What each listed URI should serve."""
    out = []
    for segment in view.segments:
        seq = int(segment.uri.rsplit("/", 1)[-1].removesuffix(".ts"))
        out.append(feed_body(seq) if segment.uri.startswith("feed/") else own_body(seq))
    return out


async def test_live_view_lists_the_live_window_with_the_feed_inside_the_cut(site: Site) -> None:
    base = f"/live/ch1/{CUT}/180p/"
    status, body, headers = await site.get(base + "index.m3u8")
    assert status == 200
    assert (headers["Content-Type"], headers["Cache-Control"]) == (PLAYLIST, "public, max-age=1")
    view = hls_parse.parse_media(body.decode())
    assert view.media_sequence == LIVE_FIRST
    assert view.discontinuity_sequence == LIVE_DISCONTINUITY_SEQUENCE
    # The feed has no 180p: its nearest video rung, 360p, stands in.
    assert [s.uri for s in view.segments] == [
        "0000000006.ts", "feed/360p/0000000507.ts", "feed/360p/0000000508.ts",
        "0000000009.ts", "0000000010.ts", "0000000011.ts",
    ]  # fmt: skip
    assert [s.discontinuity for s in view.segments] == [False, True, False, True, False, False]
    for segment, expected in zip(view.segments, _bodies(view), strict=True):
        status, data, headers = await site.get(base + segment.uri)
        assert (status, data) == (200, expected), segment.uri
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_catchup_view_and_its_master(site: Site) -> None:
    base = f"/catchup/ch1/{WINDOW}/{CUT}/"
    status, body, headers = await site.get(base + "master.m3u8")
    assert status == 200
    (variant,) = hls_parse.parse_master(body.decode()).variants
    assert variant.uri == "180p/index.m3u8"
    status, body, headers = await site.get(base + variant.uri)
    assert (status, headers["Cache-Control"]) == (200, "public, max-age=3600")
    view = hls_parse.parse_media(body.decode())
    assert (view.playlist_type, view.endlist, view.media_sequence) == ("VOD", True, 0)
    assert len(view.segments) == SEGMENTS
    assert [i for i, s in enumerate(view.segments) if s.discontinuity] == [7, 9]
    for segment, expected in zip(view.segments, _bodies(view), strict=True):
        status, data, _ = await site.get(f"{base}180p/{segment.uri}")
        assert (status, data) == (200, expected), segment.uri


async def test_the_channel_s_cues_show_on_its_own_segments_in_both_views(
    site: Site, redis: aioredis.Redis
) -> None:
    kept = hls.DateRange("splice-00000001-10", own_start(10), planned_duration=2.0,
                         scte35_out=b"\xfc\x30\x11out")  # fmt: skip
    # On number 8, which the cut replaces: the feed's segment carries none of ch1's.
    hidden = hls.DateRange("cmd-0000ABCD-8", own_start(8), scte35_cmd=b"\xfc\x30\x11cmd")
    await store_cues(redis, [StoredCue(own_start(10), kept), StoredCue(own_start(8), hidden)])

    live_view = f"/live/ch1/{CUT}/180p/index.m3u8"
    catchup_view = f"/catchup/ch1/{WINDOW}/{CUT}/180p/index.m3u8"
    for path, first in ((live_view, LIVE_FIRST), (catchup_view, 0)):
        status, body, _ = await site.get(path)
        assert status == 200, path
        view = hls_parse.parse_media(body.decode())
        shown = {n: s.dateranges for n, s in enumerate(view.segments, first) if s.dateranges}
        assert shown == {10: (kept,)}, path
        assert view.segments[8 - first].uri.startswith("feed/"), path


async def test_open_cut_runs_to_the_end_of_the_window(site: Site) -> None:
    status, body, _ = await site.get(
        f"/catchup/ch1/{WINDOW}/x/alert/{START + 14}-0/180p/index.m3u8"
    )
    assert status == 200
    uris = [s.uri for s in hls_parse.parse_media(body.decode()).segments]
    assert uris[7:] == [f"feed/360p/{FEED_FIRST + n:010d}.ts" for n in range(7, SEGMENTS)]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(f"/live/ch1/x/nofeed/{START}-0/180p/index.m3u8", 404, id="feed-no-archive"),
        pytest.param(f"/live/ch1/x/alert/{START}-0/720p/index.m3u8", 404, id="no-such-rung"),
        pytest.param(f"/live/ch9/x/alert/{START}-0/180p/index.m3u8", 404, id="no-such-channel"),
        pytest.param(f"/live/ch1/x/alert/{START + 9}-{START}/180p/index.m3u8", 400,
                     id="reversed"),
        pytest.param(f"/live/ch1/x/al!rt/{START}-0/180p/index.m3u8", 400, id="bad-feed"),
        # In the archive, but behind the live window (the live route's rule).
        pytest.param(f"/live/ch1/{CUT}/180p/0000000001.ts", 404, id="own-behind-live-window"),
        # The feed's segment long before the cut.
        pytest.param(f"/live/ch1/{CUT}/180p/feed/360p/0000000500.ts", 404,
                     id="feed-outside-cut"),
        pytest.param(f"/live/ch1/{CUT}/180p/feed/360p/0000000999.ts", 404,
                     id="feed-not-archived"),
        pytest.param(f"/live/ch1/{CUT}/180p/feed/180p/0000000507.ts", 404,
                     id="feed-wrong-rung"),
        pytest.param(f"/catchup/ch1/w/{START}/{START + 6}/{CUT}/180p/0000000007.ts", 404,
                     id="own-outside-window"),
        pytest.param(f"/catchup/ch1/w/{START}/{START + 15}/{CUT}/180p/feed/360p/0000000508.ts",
                     404, id="feed-outside-window"),
        pytest.param(f"/catchup/ch1/w/{START + 9}/{START}/{CUT}/180p/index.m3u8", 400,
                     id="reversed-window"),
    ],
)  # fmt: skip
async def test_refused(site: Site, path: str, status: int) -> None:
    got, body, headers = await site.get(path)
    assert got == status
    # The origin's problem body, never a file.
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"] in ("InvalidRequest", "ContentNotFound", "ArchiveNotFound")


async def _slide(redis: aioredis.Redis, root: Path, first: int) -> None:
    """ch1's live window moves on to ``first`` .. ``first + 5`` (archived as it goes)."""
    index = ArchiveIndex(redis)
    for seq in range(SEGMENTS, first + 6):
        rel = f"live/ch1/180p/{seq:010d}.ts"
        write(root, rel, own_body(seq))
        start = T0 + timedelta(seconds=2 * seq)
        await index.record("ch1", "180p", ArchiveEntry(seq, start, 2.0, len(own_body(seq)), rel))
    text = live_playlist(first, 6, LIVE_DISCONTINUITY_SEQUENCE)
    write(root, "live/ch1/180p/index.m3u8", text.encode())


async def test_live_view_discontinuity_sequence_as_the_window_slides(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "origin"
    await make_cut_site(redis, root)
    settings = OriginSettings(redis_url="unused://", origin_root=root, port=0)
    warm, port = await start_origin(settings, redis=redis)
    view = f"/live/ch1/{CUT}/180p/index.m3u8"
    seen = []
    async with aiohttp.ClientSession() as http:
        site = Site(f"http://127.0.0.1:{port}", http)
        for first in (LIVE_FIRST, LIVE_FIRST, 8, 10, 13):
            await _slide(redis, root, first)
            status, body, _ = await site.get(view)
            assert status == 200
            seen.append(hls_parse.parse_media(body.decode()))
        # Another origin, which never saw the cut, counts from the cut's start.
        cold, cold_port = await start_origin(settings, redis=redis)
        status, body, _ = await Site(f"http://127.0.0.1:{cold_port}", http).get(view)
        await cold.cleanup()
    await warm.cleanup()
    assert hls_parse.parse_media(body.decode()) == seen[-1]
    assert seen[0] == seen[1]
    # 7 (the first join) slid out by 8, 9 (the second) by 10.
    assert [v.discontinuity_sequence for v in seen] == [2, 2, 3, 4, 4]
    assert [v.media_sequence for v in seen] == [6, 6, 8, 10, 13]
    assert not any(s.discontinuity for s in seen[-1].segments)
