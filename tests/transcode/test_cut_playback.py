"""FFmpeg plays a catch-up cut view from the real origin across both joins: real tiny TS
segments of two channels (ch1 at 64x36, the feed at 96x54), spliced by number."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.media import ffmpeg
from tests.transcode.cut_site import CUT, FEED_FIRST, SEGMENTS, WINDOW, make_cut_site
from transcode.origin import start_origin
from transcode.settings import OriginSettings

pytestmark = pytest.mark.slow

RATE = 10  # frames per second: 20 a segment


def _segments(directory: Path, *, first: int, count: int, size: str, source: str) -> None:
    """``count`` 2-second TS segments named by number from ``first``, a key frame each."""
    directory.mkdir(parents=True)
    ffmpeg(
        *("-f", "lavfi", "-i", f"{source}=s={size}:r={RATE}"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(2 * count), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", str(2 * RATE)),
        *("-c:a", "aac", "-f", "segment", "-segment_time", "2", "-segment_format", "mpegts"),
        *("-segment_start_number", str(first)),
        str(directory / "%010d.ts"),
    )


def _frame_widths(url: str) -> list[int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width",
         "-of", "json", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [frame["width"] for frame in json.loads(out)["frames"]]


async def test_ffprobe_reads_the_view_across_both_joins(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "origin"
    _segments(root / "live/ch1/180p", first=0, count=SEGMENTS, size="64x36", source="testsrc2")
    _segments(root / "live/alert/360p", first=FEED_FIRST, count=SEGMENTS + 2, size="96x54",
              source="smptebars")  # fmt: skip
    await make_cut_site(redis, root)
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    try:
        url = f"http://127.0.0.1:{port}/catchup/ch1/{WINDOW}/{CUT}/180p/index.m3u8"
        widths = await asyncio.to_thread(_frame_widths, url)
    finally:
        await runner.cleanup()
    # Numbers 0..6 and 9..11 are ch1's, 7 and 8 the feed's: every frame decoded, in order.
    runs = [(w, len(list(g))) for w, g in itertools.groupby(widths)]
    assert runs == [(64, 7 * 2 * RATE), (96, 2 * 2 * RATE), (64, 3 * 2 * RATE)]
    assert Counter(widths) == {64: 10 * 2 * RATE, 96: 2 * 2 * RATE}
