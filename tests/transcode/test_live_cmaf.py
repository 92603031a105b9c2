"""Live CMAF: a real channel with formats=[CMAF] publishes CMAF-HLS and a live MPD that list
exactly the TS playlists' segments, through a slate and back (a new Period each way), with
an I-frame playlist per video track whose byte ranges are its keyframe fragments, and a
real origin serves them to ffprobe. An encrypted CMAF channel is refused."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings
from protos import transcode_pb2 as pb
from tests.support.iframe_ranges import decoded_frames
from tests.support.live import RUNGS, Feed, SnapshotRig, live_channel, live_rig, snapshot_rig
from tests.support.tokens import Tokens
from transcode import cli, convert, hls, hls_parse
from transcode.archive import RungInfo
from transcode.client import TranscodeClient
from transcode.dash.model import Mpd
from transcode.dash.parse import parse_mpd
from transcode.domain import ChannelEncryption, ChannelState, LiveChannel
from transcode.errors import ChannelNotFound, InvalidRequest
from transcode.fmp4 import read_init, read_segment
from transcode.jobs import PackageFormat
from transcode.live.cmaf import (
    AUDIO_TRACK,
    CMAF_IFRAMES,
    CMAF_MASTER,
    CMAF_PLAYLIST,
    CmafSegment,
    LiveCmaf,
)
from transcode.live.status import config_mapping, status_from_hash
from transcode.live.window import Window
from transcode.origin import start_origin
from transcode.server import create_server
from transcode.settings import ControlSettings, OriginSettings, QueueSettings, SourceSettings

TRACKS = (*RUNGS, AUDIO_TRACK)


@dataclass(frozen=True)
class Snapshot:
    """What one publication left on disk."""

    seq: int
    state: ChannelState
    ts: dict[str, hls.MediaPlaylist]
    cmaf: dict[str, hls.MediaPlaylist]
    mpd: Mpd | None
    iframes: dict[str, hls.MediaPlaylist]  # each video track's cmaf-iframes.m3u8
    master: hls.MasterPlaylist | None  # master-cmaf.m3u8


def _snapshot(base: Path, seq: int, state: ChannelState) -> Snapshot:
    def read(name: str, names: tuple[str, ...]) -> dict[str, hls.MediaPlaylist]:
        return {
            r: hls_parse.parse_media((base / r / name).read_text())
            for r in names
            if (base / r / name).exists()
        }

    mpd_path = base / "manifest.mpd"
    mpd = parse_mpd(mpd_path.read_text()) if mpd_path.exists() else None
    master_path = base / CMAF_MASTER
    master = hls_parse.parse_master(master_path.read_text()) if master_path.exists() else None
    return Snapshot(
        seq, state, read("index.m3u8", RUNGS), read(CMAF_PLAYLIST, TRACKS), mpd,
        read(CMAF_IFRAMES, RUNGS), master,
    )  # fmt: skip


@pytest.fixture
async def rig(
    redis: aioredis.Redis, tmp_path: Path, source_settings: SourceSettings
) -> AsyncIterator[SnapshotRig[Snapshot]]:
    async with snapshot_rig(redis, tmp_path / "origin", source_settings, _snapshot) as up:
        yield up


def _cmaf_channel(channel_id: str, source: str) -> LiveChannel:
    return replace(live_channel(channel_id, source), formats=(PackageFormat.CMAF,))


def _check_snapshot(snap: Snapshot, base: Path) -> None:
    """Both HLS views and the MPD list the same segments at one publication."""
    assert set(snap.cmaf) == set(TRACKS)
    ts = snap.ts[RUNGS[0]]
    for track, playlist in snap.cmaf.items():
        assert playlist.media_sequence == ts.media_sequence, track
        assert playlist.discontinuity_sequence == ts.discontinuity_sequence
        assert [f"{int(s.uri.removesuffix('.m4s')):010d}.ts" for s in playlist.segments] == [
            s.uri for s in ts.segments
        ]
        assert [s.duration for s in playlist.segments] == [s.duration for s in ts.segments]
        assert [s.discontinuity for s in playlist.segments] == [
            s.discontinuity for s in ts.segments
        ]
        assert [s.program_date_time for s in playlist.segments] == [
            s.program_date_time for s in ts.segments
        ]
        assert all(s.map is not None for s in playlist.segments)
    assert snap.mpd is not None
    assert snap.mpd.type == "dynamic"
    # Per Period, every track's segments: $Number$ from startNumber, one per S entry.
    numbers: dict[str, list[int]] = {}
    for period in snap.mpd.periods:
        for adaptation in period.adaptation_sets:
            for rep in adaptation.representations:
                template = rep.segment_template or adaptation.segment_template
                assert template is not None
                count = sum(1 + s.r for s in template.timeline)
                numbers.setdefault(rep.id, []).extend(
                    range(template.start_number, template.start_number + count)
                )
    wanted = list(range(ts.media_sequence, ts.media_sequence + len(ts.segments)))
    assert numbers
    assert all(listed == wanted for listed in numbers.values()), numbers
    # Each Period begins at a discontinuity: as many Periods as discontinuity runs.
    assert len(snap.mpd.periods) == 1 + sum(s.discontinuity for s in ts.segments)


def _check_files(snap: Snapshot, base: Path) -> None:
    """The segments' tfdt follow the MPD's timing contract: first + cumulated durations."""
    for track, playlist in snap.cmaf.items():
        tracks = read_init((base / track / playlist.segments[0].map.uri).read_bytes())  # type: ignore[union-attr]
        starts = []
        for segment in playlist.segments:
            path = base / track / segment.uri
            starts.append(read_segment(path.read_bytes(), tracks).start)
        scale = tracks[0].timescale
        # Video exactly (to the tick); audio keeps its own frames' lip sync with the video,
        # so it is near the contract, not on it.
        slack = 1 if track != AUDIO_TRACK else scale // 10
        elapsed = 0.0
        for start, segment in zip(starts, playlist.segments, strict=True):
            assert abs(start - starts[0] - round(elapsed * scale)) <= slack, track
            elapsed += segment.duration


def _check_iframes(snap: Snapshot, numbers: dict[tuple[str, str, int], int]) -> None:
    """Each video track's I-frame playlist covers its cmaf.m3u8 at one publication, its
    entries keep their numbers (``numbers``: across publications) and the master lists it."""
    assert set(snap.iframes) == set(RUNGS)
    assert snap.master is not None
    listed = {v.uri: v for v in snap.master.iframe_variants}
    assert set(listed) == {f"{r}/{CMAF_IFRAMES}" for r in RUNGS}
    for rung in RUNGS:
        media, iframes = snap.cmaf[rung], snap.iframes[rung]
        assert iframes.iframes_only
        assert iframes.target_duration == media.target_duration
        assert iframes.discontinuity_sequence == media.discontinuity_sequence
        assert list(dict.fromkeys(s.uri for s in iframes.segments)) == [
            s.uri for s in media.segments
        ]
        for segment in media.segments:
            own = [s for s in iframes.segments if s.uri == segment.uri]
            assert own[0].program_date_time == segment.program_date_time
            assert own[0].discontinuity == segment.discontinuity
            assert sum(s.duration for s in own) == pytest.approx(segment.duration, abs=1e-5)
            assert all(s.map == segment.map for s in own)
        for number, entry in enumerate(iframes.segments, iframes.media_sequence):
            assert entry.byterange is not None
            key = (rung, entry.uri, entry.byterange[1])
            assert numbers.setdefault(key, number) == number, key
        # Its CODECS are the track's video codec alone, its picture the variant's.
        variant = next(v for v in snap.master.variants if v.uri == f"{rung}/{CMAF_PLAYLIST}")
        assert listed[f"{rung}/{CMAF_IFRAMES}"].codecs == variant.codecs.split(",")[0]
        assert listed[f"{rung}/{CMAF_IFRAMES}"].resolution == variant.resolution


def _check_ranges(snap: Snapshot, base: Path, tmp_path: Path) -> None:
    """Every byte range is a keyframe fragment's moof up to the end of its sync sample, and
    FFmpeg decodes each of the last segment's, after its init, to one keyframe."""
    for rung, iframes in snap.iframes.items():
        by_uri: dict[str, list[hls.Segment]] = {}
        for entry in iframes.segments:
            by_uri.setdefault(entry.uri, []).append(entry)
        for uri, entries in by_uri.items():
            init = (base / rung / entries[0].map.uri).read_bytes()  # type: ignore[union-attr]
            data = (base / rung / uri).read_bytes()
            fragments = {f.offset: f for f in read_segment(data, read_init(init)).fragments}
            for entry in entries:
                length, offset = entry.byterange  # type: ignore[misc]
                assert data[offset + 4 : offset + 8] == b"moof"
                assert fragments[offset].starts_with_sync
                assert fragments[offset].first_sample_end == offset + length
                if uri == iframes.segments[-1].uri:
                    piece = data[offset : offset + length]
                    assert decoded_frames(init, piece, tmp_path) == [(1, "I")], (rung, offset)


def _ffprobe_streams(url: str) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return sorted({line.strip(",") for line in out.split()})


@pytest.mark.slow
async def test_a_cmaf_channel_lists_the_ts_segments_in_hls_and_dash_through_a_slate(
    rig: SnapshotRig[Snapshot], tmp_path: Path
) -> None:
    feed = Feed().start()
    seen: list[Snapshot] = []
    try:
        await rig.manager.start(_cmaf_channel("cm1", feed.source))
        await asyncio.wait_for(rig.until(ChannelState.LIVE, 3, seen), 60)
        feed.stop()
        await asyncio.wait_for(rig.until(ChannelState.SLATE, 2, seen), 60)
        feed.start()
        await asyncio.wait_for(rig.until(ChannelState.LIVE, 2, seen), 60)
        base = rig.root / "live" / "cm1"
        for snap in seen[-4:]:
            _check_snapshot(snap, base)
        numbers: dict[tuple[str, str, int], int] = {}
        for snap in seen:
            if set(snap.cmaf) == set(TRACKS):
                _check_iframes(snap, numbers)
        last = seen[-1]
        _check_files(last, base)
        _check_ranges(last, base, tmp_path)
        # I-frame numbers only grow, through the slate and back.
        sequences = [s.iframes[RUNGS[0]].media_sequence for s in seen if s.iframes]
        assert sequences == sorted(sequences)
        assert any(s.discontinuity for s in last.iframes[RUNGS[0]].segments) or (
            last.iframes[RUNGS[0]].discontinuity_sequence > 0
        )
        assert last.mpd is not None
        assert len(last.mpd.periods) >= 2  # the slate and back: new Periods
        # A real origin serves both views; ffprobe reads each.
        runner, port = await start_origin(
            OriginSettings(redis_url="unused://", origin_root=rig.root, port=0), redis=rig.redis
        )
        url = f"http://127.0.0.1:{port}/live/cm1"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/manifest.mpd") as response:
                    assert response.status == 200
                    assert response.content_type == "application/dash+xml"
                async with http.get(f"{url}/{RUNGS[0]}/{CMAF_IFRAMES}") as response:
                    assert response.status == 200
                    served = hls_parse.parse_media(await response.text())
                    assert served.iframes_only
                    assert served.segments
                segment = last.cmaf[RUNGS[0]].segments[-1]
                async with http.get(f"{url}/{RUNGS[0]}/{segment.uri}") as response:
                    assert (response.status, response.content_type) == (200, "video/mp4")
                async with http.get(f"{url}/{RUNGS[0]}/0.m4s") as response:
                    assert response.status == 404  # long behind the window
                async with http.get(f"{url}/{RUNGS[0]}/01.m4s") as response:
                    assert response.status == 404  # not a segment name
            for path in ("master-cmaf.m3u8", "manifest.mpd"):
                codecs = await asyncio.to_thread(_ffprobe_streams, f"{url}/{path}")
                assert codecs == ["aac", "h264"], path
        finally:
            await runner.cleanup()
    finally:
        feed.stop()
    await rig.manager.stop("cm1")


def test_cmaf_with_encryption_is_refused() -> None:
    channel = replace(
        _cmaf_channel("cm2", "udp://239.0.0.1:5000"),
        encryption=ChannelEncryption(enabled=True),
    )
    with pytest.raises(InvalidRequest, match="CMAF") as caught:
        channel.validate()
    assert caught.value.field == "channel.formats"
    twice = replace(channel, encryption=ChannelEncryption(), formats=(PackageFormat.CMAF,) * 2)
    with pytest.raises(InvalidRequest, match="twice"):
        twice.validate()


def test_formats_survive_the_wire_and_the_hash() -> None:
    # The wire has no source timeout (the node's setting): the default one.
    channel = replace(_cmaf_channel("cm3", "udp://239.0.0.1:5000"), source_timeout_seconds=3.0)
    assert convert.channel_from_pb(convert.channel_to_pb(channel)) == channel
    # TS is every channel's: listing it adds nothing.
    msg = convert.channel_to_pb(channel)
    msg.formats.append(pb.PACKAGE_FORMAT_TS)
    assert convert.channel_from_pb(msg).formats == (PackageFormat.CMAF,)
    msg.formats.append(99)  # type: ignore[arg-type]  # a number no release knows
    with pytest.raises(InvalidRequest, match=r"channel\.formats"):
        convert.channel_from_pb(msg)
    raw = {k.encode(): v.encode() for k, v in config_mapping(channel).items()}
    assert status_from_hash(raw).channel.formats == (PackageFormat.CMAF,)
    del raw[b"formats"]  # saved before formats existed
    assert status_from_hash(raw).channel.formats == ()


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_the_cli_and_the_rpc_take_cmaf_and_refuse_it_encrypted(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> None:
    async with live_rig(tmp_path, media_roots=source_settings.media_roots) as live:
        settings = ControlSettings(
            rpc=RpcSettings(port=0, grace_seconds=0),
            redis_url="unused://",
            origin_root=live.root,
            queue=QueueSettings(),
            sources=source_settings,
        )
        server, port = await create_server(settings, redis=redis, keys=keys, channels=live.manager)
        env = {"TRANSCODE_TARGET": f"127.0.0.1:{port}", "HEADEND_API_KEY": await tokens("admin")}
        try:
            args = _parse("channel", "start", "cm.cli", "udp://239.1.1.1:5000", "--format", "cmaf",
                          "--encrypt", "-o", "json")  # fmt: skip
            with pytest.raises(InvalidRequest) as refused:
                await cli.start_channel(args, env, io.StringIO())
            assert refused.value.field == "channel.formats"
            async with TranscodeClient(env["TRANSCODE_TARGET"], env["HEADEND_API_KEY"]) as tc:
                with pytest.raises(ChannelNotFound):  # nothing was started
                    await tc.get_channel("cm.cli")
            out = io.StringIO()
            args = _parse("channel", "start", "cm.cli", "udp://239.1.1.1:5000", "--format", "cmaf",
                          "-o", "json")  # fmt: skip
            assert await cli.start_channel(args, env, out) == 0
            (row,) = json.loads(out.getvalue())
            assert row["channel"]["formats"] == ["CMAF"]
            async with TranscodeClient(env["TRANSCODE_TARGET"], env["HEADEND_API_KEY"]) as tc:
                status = await tc.get_channel("cm.cli")
                assert status.channel.formats == (PackageFormat.CMAF,)
                await tc.stop_channel("cm.cli")
        finally:
            await server.stop(0)


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _slide(window: Window, cmaf_state: LiveCmaf, seq: int, made: dict[str, str]) -> None:
    """Publish segment ``seq`` (2 s; a discontinuity at 3) with CMAF ``made`` (track ->
    init)."""
    start = T0 + timedelta(seconds=2 * seq)
    at = cmaf_state.position(start)
    window.slide(seq, 2.0, start, seq == 3, {"90p": 1000}, None, length=6,
                 cmaf={t: (500, init) for t, init in made.items()})  # fmt: skip
    facts = {
        t: CmafSegment(500, init, "avc1.42c00d" if t == "90p" else "mp4a.40.2",
                       90_000 if t == "90p" else 48_000, 0)
        for t, init in made.items()
    }  # fmt: skip
    cmaf_state.published(window, at, 2.0, start, facts)


def test_a_track_that_misses_a_segment_starts_its_run_again_and_the_mpd_waits() -> None:
    window, state = Window(), LiveCmaf()
    rungs = [RungInfo("90p", "avc1.42c00d,mp4a.40.2", 160, 90, 25.0)]
    both = {"90p": "init-00000001.mp4", AUDIO_TRACK: "init-000000a1.mp4"}
    for seq in range(3):
        _slide(window, state, seq, both)
    texts = state.texts(window, rungs, segment_seconds=2, endlist=False, now=T0)
    assert set(texts) == {"90p/cmaf.m3u8", "audio/cmaf.m3u8", "master-cmaf.m3u8", "manifest.mpd"}
    master = hls_parse.parse_master(texts["master-cmaf.m3u8"])
    assert [v.uri for v in master.variants] == ["90p/cmaf.m3u8"]
    assert master.variants[0].codecs == "avc1.42c00d,mp4a.40.2"
    assert [r.uri for r in master.renditions] == ["audio/cmaf.m3u8"]
    assert master.iframe_variants == ()
    # Segment 3 (a new epoch, a new init) has no audio: the audio run starts again at 4.
    _slide(window, state, 3, {"90p": "init-00000002.mp4"})
    _slide(window, state, 4, {**both, "90p": "init-00000002.mp4"})
    texts = state.texts(window, rungs, segment_seconds=2, endlist=False, now=T0)
    video = hls_parse.parse_media(texts["90p/cmaf.m3u8"])
    audio = hls_parse.parse_media(texts["audio/cmaf.m3u8"])
    assert [s.uri for s in video.segments] == ["0.m4s", "1.m4s", "2.m4s", "3.m4s", "4.m4s"]
    assert [s.map.uri for s in video.segments if s.map] == [both["90p"]] * 3 + [
        "init-00000002.mp4"
    ] * 2
    assert video.segments[3].discontinuity
    assert (audio.media_sequence, [s.uri for s in audio.segments]) == (4, ["4.m4s"])
    # The MPD lists only what every track has (``transcode.dash`` trims a live window to
    # it): segment 4, in the new Period.
    mpd = parse_mpd(texts["manifest.mpd"])
    assert [p.id for p in mpd.periods] == ["p1"]
    listed = {
        (period.id, adaptation.content_type): [
            template.start_number + n
            for template in [
                adaptation.segment_template or adaptation.representations[0].segment_template
            ]
            if template is not None
            for n in range(sum(1 + e.r for e in template.timeline))
        ]
        for period in mpd.periods
        for adaptation in period.adaptation_sets
    }
    assert listed == {("p1", "video"): [4], ("p1", "audio"): [4]}
    # Ended: the playlists say so, and the MPD is left as it was.
    ended = state.texts(window, rungs, segment_seconds=2, endlist=True, now=T0)
    assert hls_parse.parse_media(ended["90p/cmaf.m3u8"]).endlist
    assert "manifest.mpd" not in ended


def test_a_window_taken_over_is_written_once_this_publisher_has_timed_it() -> None:
    window, earlier = Window(), LiveCmaf()
    rungs = [RungInfo("90p", "avc1.42c00d", 160, 90, 25.0)]
    for seq in range(2):
        _slide(window, earlier, seq, {"90p": "init-00000001.mp4"})
    taken = LiveCmaf()  # a handover: the window, not the other publisher's CMAF state
    assert taken.texts(window, rungs, segment_seconds=2, endlist=False, now=T0) == {}
    _slide(window, taken, 2, {"90p": "init-00000001.mp4"})
    texts = taken.texts(window, rungs, segment_seconds=2, endlist=False, now=T0)
    # Its playlists list the whole window; its MPD waits for segments it timed itself.
    assert len(hls_parse.parse_media(texts["90p/cmaf.m3u8"]).segments) == 3
    assert "manifest.mpd" not in texts
