"""Two archived channels for cut views: ``ch1`` (rung 180p, live window on disk) and the feed
``alert`` (rung 360p only: ch1's 180p maps to it as the nearest video rung), written into
an origin root and a real archive index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis

from transcode import hls
from transcode.archive import ArchiveIndex, RungInfo
from transcode.cues import StoredCue, cue_writes
from transcode.domain import ArchiveEntry
from transcode.live.store import PlainWriter

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = int(T0.timestamp())
SEGMENTS = 12  # ch1: numbers 0..11, [T0 + 2k, T0 + 2k + 2)
FEED_FIRST = 500  # alert: numbers 500.., 0.3 s after ch1's
LIVE_FIRST = 6  # ch1's live window: 6..11
LIVE_DISCONTINUITY_SEQUENCE = 2
# The cut: ch1's numbers 7 and 8 show alert's 507 and 508.
CUT = f"x/alert/{START + 14}-{START + 18}"
WINDOW = f"w/{START}/{START + 2 * SEGMENTS}"


def own_body(seq: int) -> bytes:
    return f"ch1-{seq:04d}|".encode() * 64


def feed_body(seq: int) -> bytes:
    return f"alert-{seq:04d}|".encode() * 64


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _channel(
    index: ArchiveIndex, root: Path, channel: str, rung: RungInfo, first: int, *,
    count: int, offset: float, duration: float, body: Callable[[int], bytes],
) -> None:  # fmt: skip
    await index.register_channel(channel, catchup_days=7, rungs=[rung])
    for i in range(count):
        seq = first + i
        rel = f"live/{channel}/{rung.name}/{seq:010d}.ts"
        if not (root / rel).exists():
            write(root, rel, body(seq))
        size = (root / rel).stat().st_size
        start = T0 + timedelta(seconds=offset + 2 * i)
        await index.record(channel, rung.name, ArchiveEntry(seq, start, duration, size, rel))


def live_playlist(first: int, count: int, discontinuity_sequence: int) -> str:
    """The rung playlist the live supervisor would have written."""
    segments = [
        hls.Segment(f"{seq:010d}.ts", 2.0, T0 + timedelta(seconds=2 * seq))
        for seq in range(first, first + count)
    ]
    return hls.render_media(
        hls.MediaPlaylist(segments, media_sequence=first,
                          discontinuity_sequence=discontinuity_sequence, target_duration=2)
    )  # fmt: skip


async def make_cut_site(redis: aioredis.Redis, root: Path, *, duration: float = 2.0) -> None:
    """Index both channels; write any segment file not already in ``root`` (a test may put
    real media there first) and ch1's and alert's live playlists."""
    index = ArchiveIndex(redis)
    own = RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)
    feed = RungInfo("360p", "avc1.42c01e,mp4a.40.2", 640, 360, 25.0)
    await _channel(index, root, "ch1", own, 0, count=SEGMENTS, offset=0.0,
                   duration=duration, body=own_body)  # fmt: skip
    await _channel(index, root, "alert", feed, FEED_FIRST, count=SEGMENTS + 2, offset=0.3,
                   duration=duration, body=feed_body)  # fmt: skip
    own_live = live_playlist(LIVE_FIRST, SEGMENTS - LIVE_FIRST, LIVE_DISCONTINUITY_SEQUENCE)
    write(root, "live/ch1/180p/index.m3u8", own_live.encode())
    write(root, "live/alert/360p/index.m3u8", live_playlist(FEED_FIRST + 8, 6, 0).encode())


def own_start(seq: int) -> datetime:
    """When ch1's segment ``seq`` starts."""
    return T0 + timedelta(seconds=2 * seq)


async def store_cues(redis: aioredis.Redis, cues: Sequence[StoredCue]) -> None:
    """Keep SCTE-35 cues of ch1 as its node does (the channel store's writes, in Redis)."""
    await PlainWriter(redis).write(cue_writes("ch1", cues))
