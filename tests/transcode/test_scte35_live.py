"""SCTE-35 end to end: a real UDP MPEG-TS feed with splice signals, a live channel reading it
through its splice relay (real FFmpeg, real Redis), the date ranges in every playlist, in
Redis and in a catch-up window; broken sections dropped and counted; a channel without the
option read directly."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import m3u8
import pytest

from tests.support.live import FAST, channel_processes, live_rig
from tests.support.scte35 import (
    CueFeed,
    Scheduled,
    bad_crc,
    high_tone_windows,
    huge_length,
    section_at,
    splice_insert,
    time_signal,
    tone_change,
    truncated,
    unknown_command,
)
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.cues import dateranges_for, read_cues
from transcode.domain import ChannelState, LiveChannel, Window

pytestmark = pytest.mark.xdist_group("live")

RUNGS = ("90p", "180p")
RENDITIONS = ("audio-zh", "audio-en")
BREAK = 0x6FFFFFF0
OPPORTUNITY = 42
EPSILON = timedelta(milliseconds=10)
BREAK_AT = 9.0  # media seconds of the feed


def _schedule() -> list[Scheduled]:
    out = splice_insert(BREAK, 90_000, out=True, duration=4.0)  # only its length matters
    return [
        Scheduled(1.0, lambda _pts, counter: truncated(counter)),
        Scheduled(1.2, section_at(2, lambda p: bad_crc(splice_insert(1, p, out=True)))),
        Scheduled(1.4, section_at(2, lambda _p: huge_length(out))),
        Scheduled(1.6, section_at(2, lambda p: unknown_command(splice_insert(2, p, out=True)))),
        # The break at 9 s (where the feed's tone turns, mid-segment): announced 3 s ahead
        # (and again), back 4 s later.
        Scheduled(6.0, section_at(3, lambda p: splice_insert(BREAK, p, out=True, duration=4.0))),
        Scheduled(6.5, section_at(2.5, lambda p: splice_insert(BREAK, p, out=True, duration=4.0))),
        Scheduled(10.0, section_at(3, lambda p: splice_insert(BREAK, p, out=False))),
        # A placement opportunity starting 1 s after it is signalled.
        Scheduled(14.0, section_at(1, lambda p: time_signal(
            p, segmentation_type=0x34, event_id=OPPORTUNITY, duration=6.0))),
    ]  # fmt: skip


def _channel(channel_id: str, source: str) -> LiveChannel:
    return LiveChannel(
        id=channel_id,
        source=source,
        profile="low",
        segment_seconds=2,
        window_segments=12,
        catchup_days=1,
        source_timeout_seconds=1.0,
        audio_languages=("zh", "en"),
    )


@pytest.fixture
def feed() -> Iterator[CueFeed]:
    running = CueFeed(_schedule(), audio=tone_change(BREAK_AT)).start()
    yield running
    running.stop()


def _shown(r: hls.DateRange) -> hls.DateRange:
    """``r`` as a playlist shows it (START-DATE to the millisecond)."""
    ms = r.start_date.microsecond // 1000 * 1000
    return dataclasses.replace(r, start_date=r.start_date.replace(microsecond=ms))


def _segments(text: str) -> list[str]:
    return [s.uri for s in hls_parse.parse_media(text).segments]


def _playlists(root: Path, channel: str) -> dict[str, str]:
    return {
        name: (root / "live" / channel / name / "index.m3u8").read_text()
        for name in (*RUNGS, *RENDITIONS)
    }


def _ranges(text: str) -> list[tuple[str, hls.DateRange]]:
    """(segment URI, range) for every date range, as the strict parsers read them."""
    m3u8.loads(text)  # the independent reader accepts it
    playlist = hls_parse.parse_media(text)
    return [(s.uri, r) for s in playlist.segments for r in s.dateranges]


async def test_splice_signals_reach_every_playlist_redis_and_catchup(
    tmp_path: Path, feed: CueFeed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transcode.live.scte35")
    channel = _channel("sc1", feed.source)
    settings = dataclasses.replace(FAST, scte35_channels=frozenset({"sc1"}))
    async with live_rig(tmp_path, settings=settings) as rig:
        await rig.manager.start(channel)
        async with asyncio.timeout(60):
            await rig.recorder.until(lambda: rig.recorder.last_seq("sc1") >= 0)
        # FFmpeg reads the relay's loopback port, not the feed's.
        (encoder,) = [p for p in channel_processes("sc1") if "udp://" in " ".join(p.cmdline())]
        assert f":{feed.port}" not in " ".join(encoder.cmdline())

        def arrived() -> bool:
            path = rig.root / "live" / "sc1" / RUNGS[0] / "index.m3u8"
            return path.exists() and f"seg-{OPPORTUNITY:08X}" in path.read_text()

        async with asyncio.timeout(120):
            await rig.recorder.until(arrived)
            # Every playlist has that segment once the next one is published.
            after = rig.recorder.last_seq("sc1") + 1
            await rig.recorder.until(lambda: rig.recorder.last_seq("sc1") > after)
        texts = _playlists(rig.root, "sc1")
        status = await rig.manager.get("sc1")
        assert status.state is ChannelState.LIVE

        by_name = {name: _ranges(text) for name, text in texts.items()}
        first = by_name[RUNGS[0]]
        # Same IDs, START-DATEs and segments everywhere (a playlist being rewritten as they
        # were read may lack the newest segment).
        common = set.intersection(*(set(_segments(text)) for text in texts.values()))
        assert {uri for uri, _r in first} <= common
        for name, listed in by_name.items():
            assert [x for x in listed if x[0] in common] == first, name
        playlist = hls_parse.parse_media(texts[RUNGS[0]])
        starts: dict[str, datetime] = {}
        for segment in playlist.segments:
            assert segment.program_date_time is not None
            starts[segment.uri] = segment.program_date_time
        ranges = [r for _uri, r in first]
        assert [(r.id.split("-")[0], bool(r.scte35_out), bool(r.scte35_in)) for r in ranges] == [
            ("splice", True, False),
            ("splice", False, True),
            ("seg", True, False),
        ]
        out, back, opportunity = ranges
        # Each on a segment boundary: an out's and a command's START-DATE is its segment's.
        assert out.start_date == starts[first[0][0]]
        assert opportunity.start_date == starts[first[2][0]]
        assert out.planned_duration == 4.0
        assert opportunity.planned_duration == 6.0
        # The return repeats the out's ID and START-DATE, and ends at its own boundary:
        # both splices land the same way on the 2 s grid, 4 s apart.
        assert back.id == out.id
        assert back.start_date == out.start_date
        assert back.duration == pytest.approx(4.0, abs=0.05)
        gap = (starts[first[1][0]] - out.start_date).total_seconds()
        assert gap == pytest.approx(back.duration, abs=0.002)
        # The out is on the first segment starting at or after its splice time, as the sound
        # shows it: the segment before has some of the low tone, the out's none (the edges'
        # 60 ms aside: AAC priming, and 20 ms windows).
        sound = rig.root / "live" / "sc1" / RENDITIONS[0]
        uris = _segments(texts[RENDITIONS[0]])
        at = uris.index(first[0][0])
        assert not all(high_tone_windows(sound / uris[at - 1])[:-3])
        assert all(high_tone_windows(sound / uris[at])[3:])
        # Hex payloads are the sections sent.
        assert out.scte35_out[0] == 0xFC
        assert out.scte35_out.hex().upper() in texts[RUNGS[0]]

        # Kept in Redis; a catch-up window over them shows them on the same segments.
        async with asyncio.timeout(30):
            await rig.recorder.until(
                lambda: rig.recorder.last_indexed("sc1") >= rig.recorder.last_seq("sc1")
            )
        span = Window(starts[playlist.segments[0].uri], starts[first[2][0]] + EPSILON)
        entries = await ArchiveIndex(rig.redis).window("sc1", RUNGS[0], span)
        cues = await read_cues(rig.redis, "sc1", entries[0].start, entries[-1].end)
        assert [_shown(c.range) for c in cues] == ranges
        catchup = dateranges_for(entries, cues)
        shown = [(f"{e.sequence:010d}.ts", _shown(r))
                 for e, rs in zip(entries, catchup, strict=True) for r in rs]  # fmt: skip
        assert shown == first

        # The broken sections were dropped and counted, the channel went on.
        dropped = [r for r in caplog.records if r.getMessage() == "scte-35 section dropped"]
        reasons = {getattr(r, "reason", "") for r in dropped}
        assert reasons == {"truncated", "crc", "length", "unknown_command"}


async def test_a_channel_without_the_option_reads_its_source_directly(
    tmp_path: Path, feed: CueFeed
) -> None:
    async with live_rig(tmp_path) as rig:  # TC_SCTE35_CHANNELS unset
        await rig.manager.start(_channel("plain", feed.source))
        async with asyncio.timeout(90):
            await rig.recorder.until(lambda: rig.recorder.last_seq("plain") >= 9)
        (encoder,) = [p for p in channel_processes("plain") if "udp://" in " ".join(p.cmdline())]
        assert f"udp://127.0.0.1:{feed.port}" in " ".join(encoder.cmdline())
        for text in _playlists(rig.root, "plain").values():
            assert "EXT-X-DATERANGE" not in text
