"""Scheduled SCTE-35 out end to end: a real live channel (real FFmpeg looping a tiny clip,
real Redis) whose queue gets a break through ``sync_queue``; every rung's live playlist
shows its out on the first segment starting at or after its time and the paired return
with its DURATION, catch-up holds both, the queue is empty afterwards and the placement is
remembered. A Redis that fails while the node reads the queue does not stop publishing,
and a signal queued once it is back is placed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import m3u8
import pytest

from epg.cues.domain import Cue, CueKind
from headend.clock import utc_now
from tests.support.live import LiveRig, live_rig, make_clip
from transcode import hls_parse
from transcode.cueq import signals_of, sync_queue
from transcode.cues import read_cues
from transcode.domain import LiveChannel
from transcode.live.cuequeue import placed_key, queue_key

pytestmark = pytest.mark.xdist_group("live")

RUNGS = ("90p", "180p")
LATE = timedelta(minutes=1)
MS = timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "loop.ts")


def _channel(channel_id: str, clip: Path) -> LiveChannel:
    return LiveChannel(id=channel_id, source=f"file://{clip}", profile="low", segment_seconds=1,
                       window_segments=40, catchup_days=1, source_timeout_seconds=1.0)  # fmt: skip


def _playlist(rig: LiveRig, channel: str, rung: str) -> str:
    path = rig.root / "live" / channel / rung / "index.m3u8"
    return path.read_text() if path.exists() else ""


def _shows(rig: LiveRig, channel: str, needle: str) -> Callable[[], bool]:
    return lambda: all(needle in _playlist(rig, channel, rung) for rung in RUNGS)


async def _start(rig: LiveRig, channel: LiveChannel) -> None:
    await rig.manager.start(channel)
    async with asyncio.timeout(60):
        await rig.recorder.until(lambda: rig.recorder.last_seq(channel.id) >= 1)


async def test_a_queued_break_reaches_every_rung_and_catchup_and_leaves_the_queue(
    tmp_path: Path, clip: Path
) -> None:
    async with live_rig(tmp_path, media_roots=(clip.parent,)) as rig:
        await _start(rig, _channel("cq1", clip))
        out_at = utc_now() + timedelta(seconds=3)
        cue = Cue("brk", "cq1", CueKind.BREAK, out_at, 3.0, event_id=0xBEEF)
        signals = signals_of(cue)
        assert await sync_queue(rig.redis, "cq1", signals, now=utc_now(), late=LATE) == (2, 0)
        async with asyncio.timeout(60):
            await rig.recorder.until(_shows(rig, "cq1", "SCTE35-IN"))
            last = rig.recorder.last_seq("cq1")
            await rig.recorder.until(lambda: rig.recorder.last_indexed("cq1") >= last)

        for rung in RUNGS:
            text = _playlist(rig, "cq1", rung)
            m3u8.loads(text)  # the independent reader accepts it
            segments = hls_parse.parse_media(text).segments
            starts: list[datetime] = []
            for s in segments:
                assert s.program_date_time is not None
                starts.append(s.program_date_time)
            placed = [(i, r) for i, s in enumerate(segments) for r in s.dateranges]
            assert [(bool(r.scte35_out), bool(r.scte35_in)) for _i, r in placed] == [
                (True, False), (False, True)]  # fmt: skip
            (at_out, out), (at_in, back) = placed
            # The first segment starting at or after each signal's time (shown to the ms).
            assert starts[at_out] >= out_at - MS > starts[at_out - 1]
            assert starts[at_in] >= cue.end - MS > starts[at_in - 1]
            assert out.start_date == starts[at_out]
            assert out.id == f"splice-0000BEEF-{int(segments[at_out].uri.split('.')[0])}"
            assert out.planned_duration == 3.0
            assert out.scte35_out == signals[0].section
            # The return repeats the out's ID and START-DATE, with the break's length.
            assert (back.id, back.start_date, back.scte35_in) == (
                out.id, out.start_date, signals[1].section)  # fmt: skip
            assert back.duration == pytest.approx((starts[at_in] - starts[at_out]).total_seconds(),
                                                  abs=0.002)  # fmt: skip
            assert back.duration == pytest.approx(3.0, abs=1.01)  # on the 1 s grid

        # Kept for catch-up, off the queue, remembered as placed.
        cues = await read_cues(rig.redis, "cq1", out_at - timedelta(minutes=1), utc_now())
        assert [(bool(c.range.scte35_out), c.range.id) for c in cues] == [
            (True, out.id), (False, out.id)]  # fmt: skip
        assert await rig.redis.zcard(queue_key("cq1")) == 0
        ids = await rig.redis.zrange(placed_key("cq1"), 0, -1)
        assert sorted(ids) == sorted(s.id.encode() for s in signals)
        # A reconciler pass with the same cue queues nothing again.
        assert await sync_queue(rig.redis, "cq1", signals, now=utc_now(), late=LATE) == (0, 0)
        registry = rig.manager.metrics.registry
        for kind in ("out", "in"):
            labels = {"channel": "cq1", "kind": kind}
            assert registry.get_sample_value("transcode_live_cue_signals_total", labels) == 1


async def test_a_failing_redis_does_not_stop_publishing_and_signals_follow_once_back(
    tmp_path: Path, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="transcode.cueq")
    async with live_rig(tmp_path, media_roots=(clip.parent,)) as rig:
        await _start(rig, _channel("cq2", clip))
        await rig.kill_redis()
        before = rig.recorder.last_seq("cq2")
        async with asyncio.timeout(60):
            await rig.recorder.until(lambda: rig.recorder.last_seq("cq2") >= before + 4)
        unreadable = [r for r in caplog.records if r.getMessage().startswith("cue queue")]
        assert len(unreadable) == 1  # once per outage
        assert getattr(unreadable[0], "channel", "") == "cq2"

        await rig.start_redis()
        cue = Cue("pt", "cq2", CueKind.SEGMENT, utc_now(), 0.0, segmentation_type_id=0x01)
        (point,) = signals_of(cue)
        assert await sync_queue(rig.redis, "cq2", [point], now=utc_now(), late=LATE) == (1, 0)
        async with asyncio.timeout(60):
            await rig.recorder.until(_shows(rig, "cq2", "SCTE35-CMD"))
        for rung in RUNGS:
            assert point.section.hex().upper() in _playlist(rig, "cq2", rung)
