"""A live channel with two audio languages and a subtitle track: renditions encoded once each,
aligned with the rungs across a restart, archived, and in the catch-up master."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import webvtt

from tests.support.media import Media, dominant_hz, multilingual_clip, probe_streams
from transcode import hls_parse
from transcode.archive import ArchiveIndex, render_master_for
from transcode.domain import LiveChannel, Window
from transcode.live import LiveManager
from transcode.measure import scan_segment
from transcode.origin import start_origin
from transcode.settings import OriginSettings, SourceSettings
from transcode.sources import SourceGuard

pytestmark = pytest.mark.xdist_group("live")

RUNGS = ("90p", "180p")
TRACKS = ("audio-zh", "audio-en", "subs-en")
ALL = (*RUNGS, *TRACKS)
PAST, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def source(media: Media) -> Path:
    """Seven seconds of video, Mandarin and English audio and English SubRip, looped live."""
    path = media.clip.parent / "live-multilingual.mkv"
    if not path.exists():
        multilingual_clip(path, 7)
    return path


async def _run(
    manager: LiveManager, channel: LiveChannel, events: asyncio.Queue[int], n: int
) -> list[int]:
    await manager.start(channel)
    return [await asyncio.wait_for(events.get(), 60) for _ in range(n)]


@pytest.fixture
async def archive(redis: aioredis.Redis) -> ArchiveIndex:
    return ArchiveIndex(redis)


async def test_live_renditions_are_aligned_archived_and_in_the_catchup_master(
    redis: aioredis.Redis, archive: ArchiveIndex, tmp_path: Path, source: Path,
    source_settings: SourceSettings,
) -> None:  # fmt: skip
    root = tmp_path / "origin"
    events: asyncio.Queue[int] = asyncio.Queue()
    channel = LiveChannel(
        id="multi", source=f"file://{source}", profile="low", segment_seconds=2, catchup_days=1,
        audio_languages=("zh", "en"), subtitle_languages=("en",), audio_language="en",
    )  # fmt: skip

    def manager() -> LiveManager:
        return LiveManager(
            redis=redis, archive=archive, origin_root=root, sources=SourceGuard(source_settings),
            observer=lambda _c, seq, _s: events.put_nowait(seq),
        )  # fmt: skip

    first = manager()
    try:
        await first.start(channel)
        for _ in range(5):
            await asyncio.wait_for(events.get(), 60)
    finally:
        await first.close()
    # A second run of the channel: its first segment is a discontinuity in every rendition.
    second = manager()
    try:
        await second.resume()
        for _ in range(2):
            await asyncio.wait_for(events.get(), 60)
        live = root / "live" / "multi"
        master = hls_parse.parse_master((live / "master.m3u8").read_text())
        playlists = {
            name: hls_parse.parse_media((live / name / "index.m3u8").read_text()) for name in ALL
        }
        # Segment age is measurable: when the newest segment was published, and the target.
        registry = second.metrics.registry
        published = registry.get_sample_value(
            "transcode_live_last_segment_timestamp_seconds", {"channel": "multi"}
        )
        target = registry.get_sample_value(
            "transcode_live_target_duration_seconds", {"channel": "multi"}
        )
        assert published is not None
        assert 0 <= time.time() - published < 60
        assert target == 2.0
    finally:
        await second.close()

    assert [(r.type, r.language, r.default) for r in master.renditions] == [
        ("AUDIO", "zh", False), ("AUDIO", "en", True), ("SUBTITLES", "en", False),
    ]  # fmt: skip
    assert {(v.audio, v.subtitles) for v in master.variants} == {("audio", "subs")}

    # The live window: the same numbers in every rung and rendition.
    top = playlists["180p"]
    for name in ALL:
        playlist = playlists[name]
        assert playlist.media_sequence == top.media_sequence
        assert [s.uri.split(".")[0] for s in playlist.segments] == [
            s.uri.split(".")[0] for s in top.segments
        ]

    # The archive: the same sequence numbers and discontinuities for all of them.
    history = {name: await archive.window("multi", name, Window(PAST, FAR)) for name in ALL}
    numbers = [e.sequence for e in history["90p"]]
    assert len(numbers) >= 6
    flags = [e.discontinuity for e in history["90p"]]
    assert any(flags)  # the second run
    for name in ALL:
        assert [e.sequence for e in history[name]] == numbers
        assert [e.discontinuity for e in history[name]] == flags

    # Rungs are video only; each audio rendition is its own language's track.
    rung_segment = root / history["90p"][-1].path
    assert [s["codec_type"] for s in probe_streams(rung_segment)] == ["video"]
    assert dominant_hz(root / history["audio-zh"][-1].path) == pytest.approx(440, rel=0.05)
    assert dominant_hz(root / history["audio-en"][-1].path) == pytest.approx(880, rel=0.05)

    # Subtitles: each segment maps its start to its video segment's first keyframe, and the
    # source's cues show up as it loops.
    texts = set()
    for video, subs in zip(history["90p"], history["subs-en"], strict=True):
        text = (root / subs.path).read_text()
        found = re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:", text)
        assert found is not None
        assert int(found.group(1)) == scan_segment(root / video.path).keyframes[0].pts
        texts |= {c.text for c in webvtt.from_string(text).captions}
    assert "first line" in " ".join(texts)

    # Catch-up of the archive lists the same renditions.
    rungs = await archive.rungs("multi")
    catchup = hls_parse.parse_master(render_master_for(rungs, history))
    assert [(r.type, r.language) for r in catchup.renditions] == [
        ("AUDIO", "en"), ("AUDIO", "zh"), ("SUBTITLES", "en"),
    ]  # fmt: skip

    # The origin serves them over HTTP, subtitles as text/vtt, in the live window and in a
    # catch-up window.
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    oldest, newest = history["subs-en"][0], history["subs-en"][-1]
    window = f"w/{int(oldest.start.timestamp())}/{int(newest.end.timestamp()) + 1}"
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/catchup/multi/{window}/master.m3u8") as resp:
                assert resp.status == 200
                served = hls_parse.parse_master(await resp.text())
            assert {r.uri for r in served.renditions} == {f"{n}/index.m3u8" for n in TRACKS}
            async with http.get(f"{base}/catchup/multi/{window}/subs-en/index.m3u8") as resp:
                media = hls_parse.parse_media(await resp.text())
            assert [s.uri for s in media.segments] == [
                Path(e.path).name for e in history["subs-en"]
            ]
            for path in (f"/catchup/multi/{window}/subs-en/{media.segments[0].uri}",
                         f"/live/multi/subs-en/{Path(newest.path).name}"):  # fmt: skip
                async with http.get(base + path) as resp:
                    assert (resp.status, resp.content_type) == (200, "text/vtt"), path
                    assert (await resp.text()).startswith("WEBVTT")
    finally:
        await runner.cleanup()
