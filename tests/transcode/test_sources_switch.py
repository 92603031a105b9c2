"""Backup sources: a cut primary hands over to its backup and comes back after the hold-down;
black, silent and frozen sources and continuity errors are left; with every source down the
slate runs; ``headend channel status`` shows it (real FFmpeg)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from headend.auth import KeyStore
from headend.rpc import RpcSettings
from tests.support.live import (
    BLACK,
    FAST,
    FROZEN,
    SILENT,
    Feed,
    LiveRig,
    Relay,
    live_channel,
    live_rig,
)
from tests.support.tokens import Tokens
from transcode import cli
from transcode.domain import ChannelState, ChannelStatus, LiveChannel
from transcode.live.detect import Detector, Thresholds, split_level
from transcode.live.status import status_from_hash, status_mapping
from transcode.live.store import channel_key
from transcode.live.switching import check_source
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings
from transcode.sources import SourceGuard

# Lines as FFmpeg 5.1 (Debian 12) writes them with ``-loglevel level+info``, captured from
# real runs: freezedetect on a still picture, silencedetect on anullsrc, blackframe on a
# black picture, and the TS demuxer reading a UDP feed with every 50th TS packet dropped.
FREEZE_LINE = "[freezedetect @ 0x55ea87a38b40] [info] lavfi.freezedetect.freeze_start: 0.0213333"
SILENCE_LINE = "[silencedetect @ 0x55ea87a39bc0] [info] silence_start: 0"
CORRUPT_LINE = (
    "[mpegts @ 0x56286f26c980] [warning] Packet corrupt (stream = 0, dts = 657120), dropping it."
)
NOISE = (
    "[info] Input #0, lavfi, from 'color=c=gray:s=160x90:r=25':",
    "[info]   Stream #0:0 -> #0:0 (rawvideo (native) -> wrapped_avframe (native))",
    "[h264 @ 0x56286f295140] [error] non-existing PPS 0 referenced",
    "[h264 @ 0x56286f295140] [error] decode_slice_header error",
    "[mpegts @ 0x56286f26c980] [warning] PES packet size mismatch",
    "[info] frame=  250 fps=0.0 q=-1.0 Lq=-0.0 size=N/A time=00:00:10.02 bitrate=N/A speed= 353x",
)


def _black(frame: int, t: float) -> str:
    return (
        f"[Parsed_blackframe_0 @ 0x5634d753d640] [info] frame:{frame} pblack:100 pts:{frame} "
        f"t:{t:.6f} type:I last_keyframe:{frame}"
    )


def _fed(detector: Detector, lines: list[str]) -> Detector:
    for line in lines:
        detector.feed(split_level(line)[1])
    return detector


pytestmark = [pytest.mark.xdist_group("live"), pytest.mark.slow]

SETTINGS = replace(
    FAST,
    freeze_seconds=2.0,
    black_seconds=1.0,
    silence_seconds=1.0,
    cc_errors=10,
    cc_window_seconds=5.0,
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
            raw: dict[bytes, bytes] = await rig.redis.hgetall(channel_key("bk1"))  # type: ignore[assignment]
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


async def test_a_frozen_source_is_left_and_not_taken_back(tmp_path: Path) -> None:
    frozen, backup = Feed(video=FROZEN).start(), Feed().start()
    channel = replace(live_channel("bk3", frozen.source), backup_sources=(backup.source,))
    try:
        async with live_rig(tmp_path, settings=SETTINGS) as rig:
            await rig.manager.start(channel)
            status = await _until(rig, "bk3", lambda s: s.source_index == 1)
            assert _reasons(status) == [(-1, 0, "start"), (0, 1, "frozen")]
            assert "picture frozen 2 s" in status.source_history[-1].detail
            assert status.state is ChannelState.LIVE
            await rig.manager.stop("bk3")
        # The hold-down (2 s) is shorter than the freeze threshold (2 s plus a frame): the
        # check of the primary reads long enough to see it frozen again (not taken back).
        source = await SourceGuard(SourceSettings()).live(frozen.source, field_name="s")
        only_freeze = Thresholds(freeze_seconds=2.0, black_seconds=0, silence_seconds=0)
        trouble = await check_source(channel, source, only_freeze, seconds=1.0)
        assert trouble is not None
        assert trouble.kind == "frozen"
    finally:
        frozen.stop()
        backup.stop()


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_continuity_errors_switch_and_channel_status_shows_it(tmp_path: Path) -> None:
    relay = Relay().start()
    primary, backup = Feed(relay.feed_port).start(), Feed().start()
    try:
        async with live_rig(tmp_path, settings=SETTINGS) as rig:
            keys = KeyStore(rig.redis)
            settings = ControlSettings(
                rpc=RpcSettings(port=0, grace_seconds=0),
                redis_url="unused://",
                origin_root=rig.root,
                queue=QueueSettings(),
            )
            server, port = await create_server(
                settings, redis=rig.redis, keys=keys, channels=rig.manager
            )
            env = {"TRANSCODE_TARGET": f"127.0.0.1:{port}",
                   "HEADEND_API_KEY": await Tokens(keys)()}  # fmt: skip
            try:
                started = io.StringIO()
                args = _parse("channel", "start", "bk4", relay.source, "--profile", "low",
                              "--segment-seconds", "2", "--backup", backup.source)  # fmt: skip
                assert await cli.start_channel(args, env, started) == 0
                await _until(rig, "bk4", lambda s: s.state is ChannelState.LIVE)
                relay.drop_every = 20  # a lossy link: every 20th TS packet is lost
                status = await _until(rig, "bk4", lambda s: s.source_index == 1)
                assert relay.dropped >= SETTINGS.cc_errors
                assert _reasons(status) == [(-1, 0, "start"), (0, 1, "cc_errors")]
                assert "continuity errors within 5 s" in status.source_history[-1].detail
                out = io.StringIO()
                assert await cli.channel_status(_parse("channel", "status", "bk4"), env, out) == 0
                lines = out.getvalue().splitlines()
                assert lines[1].split()[:2] == ["bk4", "live"]
                assert lines[1].split()[-2:] == ["1", backup.source]  # the source on air
                assert lines[2] == ""
                assert lines[3].split() == ["AT", "FROM_INDEX", "TO_INDEX", "REASON", "DETAIL"]
                history = [line.split() for line in lines[4:]]
                assert [h[1:4] for h in history] == [["-1", "0", "start"], ["0", "1", "cc_errors"]]
                assert "continuity errors" in lines[5]
                out = io.StringIO()
                as_json = _parse("channel", "status", "bk4", "-o", "json")
                assert await cli.channel_status(as_json, env, out) == 0
                [got] = json.loads(out.getvalue())
                assert got["source_url"] == backup.source
                assert [s["reason"] for s in got["source_history"]] == ["start", "cc_errors"]
                await rig.manager.stop("bk4")
            finally:
                await server.stop(0)
    finally:
        primary.stop()
        backup.stop()
        relay.stop()


def test_split_level_keeps_the_context_and_drops_the_level() -> None:
    assert split_level(CORRUPT_LINE) == (
        "warning",
        "[mpegts @ 0x56286f26c980] Packet corrupt (stream = 0, dts = 657120), dropping it.",
    )
    assert split_level("[info] frame=  250") == ("info", "frame=  250")
    assert split_level("no marker") == ("", "no marker")


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        pytest.param([FREEZE_LINE], "frozen", id="freezedetect"),
        pytest.param([SILENCE_LINE], "silent", id="silencedetect"),
        pytest.param([_black(i, i * 0.04) for i in range(26)], "black", id="black-1s"),
        pytest.param([_black(i, i * 0.04) for i in range(25)], None, id="black-under-1s"),
        pytest.param(
            [_black(i, i * 0.04 + (1.0 if i >= 13 else 0.0)) for i in range(37)],
            None,
            id="black-broken-by-a-gap",
        ),
        pytest.param([CORRUPT_LINE] * 10, "cc_errors", id="cc-10"),
        pytest.param([CORRUPT_LINE] * 9, None, id="cc-9"),
        pytest.param(list(NOISE) * 5, None, id="other-lines"),
    ],
)
def test_detector_reads_real_ffmpeg_lines(lines: list[str], kind: str | None) -> None:
    th = Thresholds(black_seconds=1.0, cc_errors=10, cc_window_seconds=5.0)
    trouble = _fed(Detector(th, clock=lambda: 0.0), lines).trouble
    assert (trouble.kind if trouble else None) == kind


def test_continuity_errors_count_within_the_window_only() -> None:
    now = [0.0]
    detector = Detector(Thresholds(cc_errors=3, cc_window_seconds=5.0), clock=lambda: now[0])
    for t in (0.0, 3.0, 6.0, 9.0):  # never 3 within 5 s
        now[0] = t
        detector.feed(split_level(CORRUPT_LINE)[1])
    assert detector.trouble is None
    now[0] = 10.0
    detector.feed(split_level(CORRUPT_LINE)[1])
    assert detector.trouble is not None
    assert detector.trouble.detail == "3 continuity errors within 5 s"


def test_a_check_turned_off_never_trips() -> None:
    off = Thresholds(freeze_seconds=0, black_seconds=0, silence_seconds=0, cc_errors=0)
    lines = [FREEZE_LINE, SILENCE_LINE, *[_black(i, i * 0.04) for i in range(400)]]
    assert _fed(Detector(off), [*lines, *[CORRUPT_LINE] * 100]).trouble is None
    assert off.verdict_seconds == 0


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
