"""Backup sources: a cut primary hands over to its backup and comes back after the hold-down;
black and silent sources are left; with every source down the slate runs (real FFmpeg)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.live import BLACK, FAST, SILENT, Feed, LiveRig, live_channel, live_rig
from transcode.domain import ChannelState, ChannelStatus, LiveChannel
from transcode.live.store import status_from_hash, status_mapping

pytestmark = [pytest.mark.xdist_group("live"), pytest.mark.slow]

SETTINGS = replace(
    FAST,
    freeze_seconds=3.0,
    black_seconds=1.0,
    silence_seconds=1.0,
    source_holddown_seconds=2.0,
)


async def _until(
    rig: LiveRig, channel: str, check: Callable[[ChannelStatus], bool]
) -> ChannelStatus:
    async with asyncio.timeout(25):
        while True:
            status = await rig.manager.get(channel)
            if check(status):
                return status
            await asyncio.sleep(0.2)


def _reasons(status: ChannelStatus) -> list[tuple[int, int, str]]:
    return [(s.from_index, s.to_index, s.reason) for s in status.source_history]


async def test_a_cut_primary_hands_over_to_its_backup_and_returns(tmp_path: Path) -> None:
    primary, backup = Feed().start(), Feed().start()
    channel = replace(live_channel("bk1", primary.source), backup_sources=(backup.source,))
    try:
        async with live_rig(tmp_path, settings=SETTINGS) as rig:
            await rig.manager.start(channel)
            await _until(rig, "bk1", lambda s: s.state is ChannelState.LIVE)
            primary.stop()
            on_backup = await _until(rig, "bk1", lambda s: s.source_index == 1)
            assert on_backup.source_url == backup.source
            assert on_backup.state is ChannelState.LIVE
            primary.start()
            back = await _until(
                rig, "bk1", lambda s: s.source_index == 0 and len(s.source_history) >= 3
            )
            assert _reasons(back)[-3:] == [
                (-1, 0, "start"),
                (0, 1, "input_lost"),
                (1, 0, "preferred"),
            ]
            seqs = [p.seq for p in rig.recorder.published["bk1"]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no repeat
            switches = rig.manager.metrics.registry.get_sample_value(
                "transcode_live_source_switches_total", {"channel": "bk1", "reason": "preferred"}
            )
            assert switches == 1
            # Saved with the status, and read back as it was.
            raw: dict[bytes, bytes] = await rig.redis.hgetall("tc:channel:bk1")  # type: ignore[assignment]
            saved = status_from_hash(raw)
            assert saved.channel.backup_sources == (backup.source,)
            await rig.manager.stop("bk1")
    finally:
        primary.stop()
        backup.stop()


async def test_black_and_silent_sources_are_left_and_the_slate_runs_when_all_are(
    tmp_path: Path,
) -> None:
    black, silent = Feed(video=BLACK).start(), Feed(audio=SILENT).start()
    channel = replace(live_channel("bk2", black.source), backup_sources=(silent.source,))
    try:
        async with live_rig(tmp_path, settings=SETTINGS) as rig:
            await rig.manager.start(channel)
            status = await _until(rig, "bk2", lambda s: s.state is ChannelState.SLATE)
            reasons = [r for _f, _t, r in _reasons(status)]
            assert reasons[:3] == ["start", "black", "silent"]
            assert status.source_history[2].to_index == -1
            assert "all sources down" in status.source_history[2].detail
            assert status.source_index == -1
            await rig.manager.stop("bk2")
    finally:
        black.stop()
        silent.stop()


def test_a_channel_saved_before_backups_loads() -> None:
    old = {
        b"id": b"ch", b"source": b"udp://239.1.1.1:5000", b"profile": b"low",
        b"segment_seconds": b"2", b"window_segments": b"6", b"catchup_days": b"1",
        b"source_timeout_seconds": b"1.0", b"state": b"LIVE",
    }  # fmt: skip
    status = status_from_hash(old)
    assert status.channel.backup_sources == ()
    assert status.source_history == ()
    again = status_from_hash(
        {k.encode(): v.encode() for k, v in status_mapping(status, 0).items()} | old
    )
    assert again.channel == LiveChannel(
        id="ch", source="udp://239.1.1.1:5000", profile="low", segment_seconds=2,
        window_segments=6, catchup_days=1, source_timeout_seconds=1.0,
    )  # fmt: skip
