"""SCTE-35 parts: sections checked and decoded, the transport-stream tap, the boundary rule,
date ranges in playlists (rendered, parsed, carried), cues in Redis, the relay, the setting."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import m3u8
import pytest
import redis.asyncio as aioredis
import threefive

from headend.settings import SettingsError
from tests.support.net import free_udp_port
from tests.support.scte35 import (
    Build,
    Scheduled,
    bad_crc,
    huge_length,
    inject,
    packets,
    section_at,
    splice_insert,
    time_signal,
    truncated,
    unknown_command,
    with_crc,
)
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.cues import (
    StoredCue,
    cue_member,
    cues_key,
    dateranges_for,
    parse_member,
    read_cues,
)
from transcode.domain import ArchiveEntry, LiveChannel
from transcode.errors import InvalidPlaylist
from transcode.farm import FencedWriter, Ownership
from transcode.live.epoch import Epoch
from transcode.live.metrics import LiveMetrics
from transcode.live.relay import SpliceRelay, wanted
from transcode.live.scte35 import Refused, SpliceBook, SpliceTap, output_seconds, read_section
from transcode.live.store import ChannelStore
from transcode.live.window import Window
from transcode.settings import LiveSettings
from transcode.sources import SourceInput

T0 = datetime(2026, 3, 5, 11, 15, tzinfo=UTC)
SECOND = 90_000


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _adjusted(section: bytes, seconds: float) -> bytes:
    cue = threefive.Cue(section)
    cue.info_section.pts_adjustment = seconds
    cue.encode()
    return bytes(cue.bytes())


def _crafted(fields: bytes) -> bytes:
    """A section of ``fields`` (what follows section_length), its length and CRC made right."""
    length = len(fields) + 4
    return with_crc(bytes([0xFC, 0x30 | length >> 8, length & 0xFF]) + fields)


def _null() -> bytes:
    cue = threefive.Cue()
    cue.command = threefive.SpliceNull()
    cue.encode()
    return bytes(cue.bytes())


# -- sections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(splice_insert(0x6FFFFFF0, 10 * SECOND, out=True, duration=30.0),
                     ("out", "splice-6FFFFFF0", 10 * SECOND, 30.0), id="insert-out"),
        pytest.param(splice_insert(0x6FFFFFF0, 40 * SECOND, out=False),
                     ("in", "splice-6FFFFFF0", 40 * SECOND, None), id="insert-in"),
        pytest.param(splice_insert(7, None, out=True),
                     ("out", "splice-00000007", 123, None), id="insert-immediate"),
        pytest.param(_adjusted(splice_insert(7, 10 * SECOND, out=True), 2.0),
                     ("out", "splice-00000007", 12 * SECOND, None), id="pts-adjustment"),
        pytest.param(_adjusted(splice_insert(7, (1 << 33) - SECOND, out=True), 2.0),
                     ("out", "splice-00000007", SECOND, None), id="adjustment-wraps"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x34, event_id=42, duration=60),
                     ("out", "seg-0000002A", 5 * SECOND, 60.0), id="placement-start"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x35, event_id=42),
                     ("in", "seg-0000002A", 5 * SECOND, None), id="placement-end"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x10, event_id=9),
                     ("out", "seg-00000009", 5 * SECOND, None), id="programme-start"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x01, event_id=9),
                     ("cmd", "cmd-", 5 * SECOND, None), id="identification"),
    ],
)  # fmt: skip
def test_sections_decode_to_outs_returns_and_commands(
    section: bytes, expected: tuple[str, str, int, float | None]
) -> None:
    splice = read_section(section, now_pts=123)
    kind, key, pts, duration = expected
    assert (splice.kind, splice.pts, splice.duration) == (kind, pts, duration)
    assert splice.key.startswith(key)
    assert splice.section == section


def test_a_time_signal_without_segmentation_is_a_command() -> None:
    cue = threefive.Cue()
    cue.command = threefive.TimeSignal()
    cue.command.time_specified_flag = True
    cue.command.pts_time = 3.0
    cue.encode()
    splice = read_section(bytes(cue.bytes()), now_pts=None)
    assert (splice.kind, splice.pts) == ("cmd", 3 * SECOND)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        pytest.param(bad_crc(splice_insert(1, SECOND, out=True)), "crc", id="bad-crc"),
        pytest.param(huge_length(splice_insert(1, SECOND, out=True)), "length", id="huge-length"),
        pytest.param(unknown_command(splice_insert(1, SECOND, out=True)), "unknown_command",
                     id="unknown-command"),
        pytest.param(splice_insert(1, SECOND, out=True)[:-6], "truncated", id="truncated"),
        pytest.param(b"\x02" + splice_insert(1, SECOND, out=True)[1:], "table", id="not-scte35"),
        pytest.param(_crafted(bytes(10) + b"\x00" + bytes(2)), "ignored", id="splice-null"),
        pytest.param(_crafted(b"\x00\x80" + bytes(8) + b"\x05" + bytes(2)), "encrypted",
                     id="encrypted"),
        pytest.param(_crafted(bytes(10) + b"\x05" + bytes(2)), "undecodable",
                     id="insert-cut-short"),
    ],
)  # fmt: skip
def test_broken_sections_are_refused_with_a_reason(section: bytes, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        read_section(section, now_pts=None)
    assert refused.value.reason == reason


# -- the tap over a real transport stream ---------------------------------------------------


@pytest.fixture(scope="module")
def av_ts(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Six seconds of H.264 and AAC in MPEG-TS, as FFmpeg muxes it."""
    path = tmp_path_factory.mktemp("scte35") / "av.ts"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25", "-f", "lavfi", "-i", "sine",
         "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
         "-f", "mpegts", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def _stream(data: bytes) -> list[bytes]:
    return [data[i : i + 188] for i in range(0, len(data), 188)]


def _datagrams(data: bytes) -> list[bytes]:
    return [data[i : i + 1316] for i in range(0, len(data), 1316)]


def _schedule() -> list[Scheduled]:
    return [
        Scheduled(0.5, lambda _pts, counter: truncated(counter)),
        Scheduled(0.6, section_at(1, lambda p: bad_crc(splice_insert(1, p, out=True)))),
        Scheduled(0.7, section_at(1, lambda p: huge_length(splice_insert(1, p, out=True)))),
        Scheduled(0.8, section_at(1, lambda p: unknown_command(splice_insert(1, p, out=True)))),
        Scheduled(1.0, section_at(2, lambda p: splice_insert(5, p, out=True, duration=2.0))),
        Scheduled(1.2, section_at(1.8, lambda p: splice_insert(5, p, out=True, duration=2.0))),
        Scheduled(3.0, section_at(1, lambda p: splice_insert(5, p, out=False))),
        Scheduled(3.2, section_at(0.8, lambda p: splice_insert(5, p, out=False))),
        Scheduled(4.0, lambda _pts, counter: section_at(0, lambda _p: _null())(0, counter)),
    ]


def test_the_tap_finds_signals_in_a_transport_stream_and_counts_what_it_drops(
    av_ts: bytes,
) -> None:
    schedule = _schedule()
    injected = b"".join(inject(_stream(av_ts), schedule))
    tap = SpliceTap()
    for datagram in _datagrams(injected):
        tap.feed(datagram)
    out, back = schedule[4], schedule[6]
    assert out.sent_pts is not None
    assert back.sent_pts is not None
    # Each signal was sent twice, the second time closer to the same splice time: the
    # same section, read once.
    assert [(s.kind, s.key, s.pts) for s in tap.pending] == [
        ("out", "splice-00000005", out.sent_pts + 2 * SECOND),
        ("in", "splice-00000005", back.sent_pts + SECOND),
    ]
    # The null and the two repeats ignored; the signals waiting are not counted yet.
    assert dict(tap.sections) == {"truncated": 1, "crc": 1, "length": 1, "unknown_command": 1,
                                  "ignored": 3}  # fmt: skip
    assert tap.video_pts is not None


def _sections(metrics: LiveMetrics, channel: str) -> dict[str, float]:
    """``transcode_live_scte35_sections_total`` of ``channel``, by outcome."""
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "transcode_live_scte35_sections"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["channel"] == channel
    }


def _whole(section: bytes) -> Build:
    """A builder sending ``section`` as it is."""
    return lambda _pts, counter: packets(section, counter)


def test_every_section_read_is_counted_once_by_outcome(av_ts: bytes) -> None:
    fixed = {
        "table": b"\x02" + splice_insert(1, SECOND, out=True)[1:],
        "encrypted": _crafted(b"\x00\x80" + bytes(8) + b"\x05" + bytes(2)),
        "undecodable": _crafted(bytes(10) + b"\x05" + bytes(2)),
    }
    schedule = [
        *_schedule(),
        *(Scheduled(2.0 + 0.1 * i, _whole(section)) for i, section in enumerate(fixed.values())),
        # Event 5's out again (other bytes) while its break runs: the book ignores it.
        Scheduled(1.5, section_at(1, lambda p: splice_insert(5, p, out=True))),
        # Due ten minutes on: still waiting when the epoch ends.
        Scheduled(4.5, section_at(600, lambda p: splice_insert(9, p, out=True))),
        # Half a section: being assembled when the epoch ends.
        Scheduled(5.5, lambda _pts, counter: truncated(counter)),
    ]  # fmt: skip
    metrics = LiveMetrics()
    tap = SpliceTap(channel="c1", metrics=metrics)
    for datagram in _datagrams(b"".join(inject(_stream(av_ts), schedule))):
        tap.feed(datagram)
    # Every signal but the far one is due at a segment one second past the last sent.
    assert schedule[-2].sent_pts is not None
    now = schedule[-2].sent_pts / SECOND + 1.0
    ranges = SpliceBook().ranges(tap, 0.0, now, T0, 0)
    assert [r.id for r in ranges] == ["splice-00000005-0", "splice-00000005-0"]
    tap.close()
    expected = {"carried": 2, "ignored": 4, "truncated": 1, "crc": 1, "length": 1,
                "unknown_command": 1, "table": 1, "encrypted": 1, "undecodable": 1,
                "epoch_ended": 2}  # fmt: skip
    assert _sections(metrics, "c1") == expected
    assert dict(tap.sections) == expected
    assert not tap.pending


def _out(event: int) -> Scheduled:
    return Scheduled(1.0 + event * 0.04, section_at(1, lambda p: splice_insert(event, p, out=True)))


def test_the_tap_reads_rtp_and_bounds_what_it_keeps(av_ts: bytes) -> None:
    schedule = [_out(i) for i in range(80)]
    injected = b"".join(inject(_stream(av_ts), schedule))
    metrics = LiveMetrics()
    tap = SpliceTap(channel="c1", rtp=True, metrics=metrics)
    for number, datagram in enumerate(_datagrams(injected)):
        header = bytes([0x80, 33]) + (number & 0xFFFF).to_bytes(2, "big") + bytes(8)
        tap.feed(header + datagram)
    assert len(tap.pending) == 64  # the oldest went
    assert _sections(metrics, "c1") == {"overflow": 16}
    assert tap.pending[-1].key == "splice-0000004F"
    tap.close()
    assert _sections(metrics, "c1") == {"overflow": 16, "epoch_ended": 64}


# -- the boundary rule ----------------------------------------------------------------------


def _tap_with(*splices: tuple[bytes, int | None]) -> SpliceTap:
    tap = SpliceTap()
    for section, now in splices:
        tap.pending.append(read_section(section, now_pts=now))
    return tap


def test_a_signal_lands_on_the_first_segment_starting_at_or_after_it() -> None:
    start = 100.0  # FFmpeg's input start: output second s is input PTS (100 + s) * 90 kHz
    tap = _tap_with(
        (splice_insert(1, round(103.0 * SECOND), out=True, duration=4.0), None),
        (splice_insert(2, round(104.0 * SECOND), out=True), None),
        (splice_insert(3, round(104.02 * SECOND), out=True), None),
    )
    book = SpliceBook()
    landed = {
        segment: book.ranges(tap, start, segment, _at(segment), seq)
        for seq, segment in enumerate((0.0, 2.0, 4.0, 6.0))
    }
    assert [r.id for r in landed[0.0] + landed[2.0]] == []
    assert [(r.id, r.start_date) for r in landed[4.0]] == [
        ("splice-00000001-2", _at(4.0)), ("splice-00000002-2", _at(4.0))]  # fmt: skip
    assert [r.id for r in landed[6.0]] == ["splice-00000003-3"]
    assert landed[4.0][0].planned_duration == 4.0


def test_a_return_closes_its_out_and_repeats_are_ignored() -> None:
    book = SpliceBook()
    out = splice_insert(5, 10 * SECOND, out=True, duration=8.0)
    tap = _tap_with((out, None), (splice_insert(5, 11 * SECOND, out=True), None))
    (opened,) = book.ranges(tap, 0.0, 12.0, _at(12), 6)
    assert opened == hls.DateRange("splice-00000005-6", _at(12), planned_duration=8.0,
                                   scte35_out=out)  # fmt: skip
    back = splice_insert(5, 19 * SECOND, out=False)
    tap = _tap_with((back, None))
    assert book.ranges(tap, 0.0, 18.0, _at(18), 9) == ()  # not yet
    (closed,) = book.ranges(tap, 0.0, 20.0, _at(20), 10)
    assert closed == hls.DateRange("splice-00000005-6", _at(12), duration=8.0, scte35_in=back)
    # A return with no out open stands alone.
    (alone,) = book.ranges(_tap_with((back, None)), 0.0, 22.0, _at(22), 11)
    assert (alone.id, alone.start_date, alone.duration) == ("splice-00000005-11", _at(22), None)
    # An out whose break ended by itself (auto-return, no return sent) does not hide the
    # next one with its event id.
    (auto,) = book.ranges(_tap_with((out, None)), 0.0, 30.0, _at(30), 15)
    assert (
        book.ranges(_tap_with((splice_insert(5, SECOND, out=True), None)), 0.0, 36.0, _at(36), 18)
        == ()
    )
    (next_break,) = book.ranges(
        _tap_with((splice_insert(5, SECOND, out=True), None)), 0.0, 38.0, _at(38), 19
    )
    assert (auto.id, next_break.id) == ("splice-00000005-15", "splice-00000005-19")


def test_without_the_input_start_or_a_time_a_signal_is_due_at_once() -> None:
    book = SpliceBook()
    later = splice_insert(1, 500 * SECOND, out=True)
    assert len(book.ranges(_tap_with((later, None)), None, 0.0, T0, 0)) == 1
    immediate = splice_insert(2, None, out=True)
    assert len(book.ranges(_tap_with((immediate, None)), 50.0, 0.0, T0, 1)) == 1


def test_output_time_across_the_pts_wrap() -> None:
    near_end = ((1 << 33) - 2 * SECOND) / SECOND
    assert output_seconds(3 * SECOND, near_end) == pytest.approx(5.0)
    assert output_seconds(5 * SECOND, 10.0) == pytest.approx(-5.0)


def test_the_epoch_reads_ffmpegs_input_start(tmp_path: Path, av_ts: bytes) -> None:
    source = tmp_path / "offset.ts"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", "-",
         "-c", "copy", "-output_ts_offset", "1000", "-f", "mpegts", str(source)],
        input=av_ts, check=True,
    )  # fmt: skip
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=start_time", "-of", "csv=p=0",
         str(source)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    async def run() -> float | None:
        epoch = Epoch("source", 1, tmp_path / "epoch", ["90p"])
        await epoch.start(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", str(source),
             "-c", "copy", "-f", "segment", "-segment_time", "2", "-segment_list",
             str(tmp_path / "epoch" / "90p" / "list.csv"), "-segment_list_type", "csv",
             str(tmp_path / "epoch" / "90p" / "seg_%06d.ts")]
        )  # fmt: skip
        await epoch.wait()
        epoch.close()
        return epoch.input_start

    assert asyncio.run(run()) == pytest.approx(float(probed), abs=1e-6)


# -- date ranges in playlists ---------------------------------------------------------------


OUT = splice_insert(0x6FFFFFF0, 10 * SECOND, out=True, duration=59.993)
IN = splice_insert(0x6FFFFFF0, 70 * SECOND, out=False)


def _segments(count: int, ranges: dict[int, tuple[hls.DateRange, ...]]) -> list[hls.Segment]:
    return [
        hls.Segment(f"{i:010d}.ts", 2.0, _at(2 * i), dateranges=ranges.get(i, ()))
        for i in range(count)
    ]


def test_date_ranges_render_as_rfc8216bis_says_and_parse_back() -> None:
    out = hls.DateRange("splice-6FFFFFF0-1", _at(2), planned_duration=59.993, scte35_out=OUT)
    back = hls.DateRange("splice-6FFFFFF0-1", _at(2), duration=60.0, scte35_in=IN)
    other = hls.DateRange("cmd-1-3", _at(6), scte35_cmd=bytes.fromhex("fc30"))
    playlist = hls.MediaPlaylist(_segments(4, {1: (out,), 2: (back,), 3: (other,)}))
    text = hls.render_media(playlist)
    assert (
        '#EXT-X-DATERANGE:ID="splice-6FFFFFF0-1",START-DATE="2026-03-05T11:15:02.000Z",'
        f"PLANNED-DURATION=59.993,SCTE35-OUT=0x{OUT.hex().upper()}"
    ) in text
    assert (
        f'START-DATE="2026-03-05T11:15:02.000Z",DURATION=60.000,SCTE35-IN=0x{IN.hex().upper()}'
        in text
    )
    parsed = m3u8.loads(text)
    assert [d.scte35_out for d in parsed.segments[1].dateranges] == [f"0x{OUT.hex().upper()}"]
    assert hls_parse.parse_media(text).segments == tuple(playlist.segments)


@pytest.mark.parametrize(
    ("segments", "field"),
    [
        pytest.param(
            _segments(2, {0: (hls.DateRange("a", _at(0), scte35_out=OUT),),
                          1: (hls.DateRange("a", _at(1), scte35_in=IN),)}),
            "dateranges.start_date", id="one-id-two-starts"),
        pytest.param(
            [hls.Segment("a.ts", 2.0, dateranges=(hls.DateRange("a", T0, scte35_cmd=OUT),))],
            "segments.dateranges", id="undated-playlist"),
        pytest.param(
            _segments(1, {0: (hls.DateRange("a", T0, duration=-1.0, scte35_in=IN),)}),
            "dateranges.duration", id="negative-duration"),
        pytest.param(
            _segments(1, {0: (hls.DateRange('a"b', T0, scte35_in=IN),)}),
            "dateranges.id", id="unquotable-id"),
    ],
)  # fmt: skip
def test_invalid_date_ranges_are_refused(segments: list[hls.Segment], field: str) -> None:
    with pytest.raises(InvalidPlaylist) as refused:
        hls.render_media(hls.MediaPlaylist(segments))
    assert refused.value.field == field


def test_an_out_stays_in_the_live_window_while_its_break_runs() -> None:
    window = Window()
    out = hls.DateRange("splice-1-0", _at(0), planned_duration=30.0, scte35_out=OUT)
    cmd = hls.DateRange("cmd-1-0", _at(0), scte35_cmd=OUT)

    def slide(i: int, ranges: tuple[hls.DateRange, ...] = ()) -> None:
        window.slide(i, 2.0, _at(2 * i), False, {"90p": 100}, None, length=3,
                     dateranges=ranges)  # fmt: skip

    slide(0, (out, cmd))
    for i in range(1, 5):
        slide(i)

    def shown() -> list[tuple[str, str]]:
        text = window.playlists(["90p"], (), segment_seconds=2.0, endlist=False)["90p"]
        return [(s.uri, r.id) for s in hls_parse.parse_media(text).segments for r in s.dateranges]

    assert shown() == [("0000000002.ts", "splice-1-0")]  # the command went with its segment
    back = hls.DateRange("splice-1-0", _at(0), duration=10.0, scte35_in=IN)
    slide(5, (back,))
    assert shown() == [("0000000003.ts", "splice-1-0"), ("0000000005.ts", "splice-1-0")]
    for i in range(6, 9):
        slide(i)
    assert shown() == []  # the break is over and its return has slid out


# -- cues kept for catch-up -----------------------------------------------------------------


def _entries(count: int) -> list[ArchiveEntry]:
    return [ArchiveEntry(i, _at(2 * i), 2.0, 1000, f"live/c/90p/{i:010d}.ts") for i in range(count)]


def _cue(seconds: float, r: hls.DateRange) -> StoredCue:
    return StoredCue(_at(seconds), r)


def test_a_catchup_window_shows_the_cues_inside_it_and_breaks_still_running() -> None:
    running = hls.DateRange("splice-1-1", _at(2), planned_duration=60.0, scte35_out=OUT)
    over = hls.DateRange("splice-2-0", _at(0), planned_duration=1.0, scte35_out=OUT)
    inside = hls.DateRange("seg-2A-7", _at(14), scte35_out=OUT)
    after = hls.DateRange("cmd-1-20", _at(40), scte35_cmd=OUT)
    cues = [_cue(2, running), _cue(0, over), _cue(14, inside), _cue(40, after)]
    window = _entries(10)[5:]  # 10 s to 20 s
    assert dateranges_for(window, cues) == [(running,), (), (inside,), (), ()]
    segments = [
        hls.Segment(f"{e.sequence}.ts", e.duration, e.start, dateranges=r)
        for e, r in zip(window, dateranges_for(window, cues), strict=True)
    ]
    text = hls.render_media(hls.MediaPlaylist(segments))
    assert text.count("#EXT-X-DATERANGE:") == 2
    m3u8.loads(text)


def test_a_cue_member_round_trips() -> None:
    cue = _cue(4, hls.DateRange("splice-1-2", _at(1.5), duration=2.5, scte35_in=IN))
    assert parse_member(cue_member(cue)) == cue
    with pytest.raises(ValueError, match="values to unpack"):
        parse_member("not|a|cue")


def _channel(channel_id: str) -> LiveChannel:
    return LiveChannel(id=channel_id, source="udp://239.1.1.1:5000", profile="low",
                       catchup_days=1)  # fmt: skip


async def test_cues_go_to_redis_through_the_fenced_store_and_past_retention_go(
    redis: aioredis.Redis,
) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    lease = await ownership.claim("cues.ch", "n1")
    assert lease is not None
    store = ChannelStore(_channel("cues.ch"), redis=redis, archive=ArchiveIndex(redis),
                         writer=FencedWriter(ownership, lease))  # fmt: skip
    now = datetime.now(UTC)
    old = StoredCue(now - timedelta(days=3), hls.DateRange("cmd-1-0", now - timedelta(days=3),
                                                           scte35_cmd=OUT))  # fmt: skip
    await redis.zadd(cues_key("cues.ch"), {cue_member(old): old.at.timestamp()})
    fresh = StoredCue(now, hls.DateRange("splice-1-9", now, planned_duration=4.0, scte35_out=OUT))
    store.add_cues([fresh])
    assert not store.idle()
    await store.flush()
    assert await read_cues(redis, "cues.ch", now - timedelta(days=4), now) == [fresh]
    assert 0 < await redis.ttl(cues_key("cues.ch")) <= 86400 + 3600

    # Another node takes the channel: the stale lease writes no cue.
    await redis.delete("tc:owner:{cues.ch}")
    assert await ownership.claim("cues.ch", "n2") is not None
    later = StoredCue(now, hls.DateRange("cmd-2-10", now, scte35_cmd=OUT))
    store.add_cues([later])
    await store.flush()
    assert store.fenced
    assert await read_cues(redis, "cues.ch", now - timedelta(hours=1), now) == [fresh]


# -- the relay and the setting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        pytest.param("udp", "127.0.0.1", id="udp"),
        pytest.param("rtp", "127.0.0.1", id="rtp"),
        pytest.param("udp", "239.255.42.9", id="multicast"),
    ],
)
async def test_the_relay_forwards_every_datagram_unchanged_and_taps_it(
    av_ts: bytes, scheme: str, host: str
) -> None:
    port = free_udp_port()
    query = "timeout=1000000&localaddr=127.0.0.1&fifo_size=1000000"
    whitelist = {"protocol_whitelist": "udp"}
    source = SourceInput(scheme, f"{scheme}://{host}:{port}?{query}", whitelist)
    relay = await SpliceRelay(source, channel="c").start()
    schedule = [Scheduled(1.0, section_at(1, lambda p: splice_insert(5, p, out=True)))]
    datagrams = _datagrams(b"".join(inject(_stream(av_ts), schedule)))
    if scheme == "rtp":  # RFC 3550 header: version 2, MP2T, sequence number
        datagrams = [bytes([0x80, 33]) + n.to_bytes(2, "big") + bytes(8) + d
                     for n, d in enumerate(datagrams)]  # fmt: skip
    reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reader.bind(("127.0.0.1", relay.port))
    reader.setblocking(False)
    try:
        assert relay.input.url == (
            f"{scheme}://127.0.0.1:{relay.port}?timeout=1000000&fifo_size=1000000"
        )
        assert relay.input.options == source.options
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # A group is sent to on loopback, to this host only.
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                              socket.inet_aton("127.0.0.1"))  # fmt: skip
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            received = []
            for datagram in datagrams:
                sender.sendto(datagram, (host, port))
                received.append(await asyncio.wait_for(loop.sock_recv(reader, 2048), 5))
        assert received == datagrams
        assert relay.forwarded == len(datagrams)
        assert [s.key for s in relay.tap.pending] == ["splice-00000005"]
    finally:
        relay.close()
        reader.close()


def _failing_feed(datagram: bytes) -> None:
    """Stands in for a tap bug: no bytes make the real tap raise (everything it reads is
    checked), yet the relay must survive one."""
    raise IndexError(len(datagram))


async def test_a_datagram_the_tap_fails_on_is_forwarded_and_counted_malformed(
    av_ts: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_udp_port()
    source = SourceInput("udp", f"udp://127.0.0.1:{port}", {})
    metrics = LiveMetrics()
    relay = await SpliceRelay(source, channel="c1", metrics=metrics).start()
    monkeypatch.setattr(relay.tap, "feed", _failing_feed)
    reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reader.bind(("127.0.0.1", relay.port))
    reader.setblocking(False)
    datagram = _datagrams(av_ts)[0]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(datagram, ("127.0.0.1", port))
            forwarded = await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(reader, 2048), 5
            )
        assert forwarded == datagram
        assert _sections(metrics, "c1") == {"malformed": 1}
    finally:
        relay.close()
        reader.close()


def test_the_setting_names_channels_or_every_one() -> None:
    assert LiveSettings.from_env({}).scte35_channels == frozenset()
    named = LiveSettings.from_env({"TC_SCTE35_CHANNELS": "cctv1, cctv2"}).scte35_channels
    assert named == frozenset({"cctv1", "cctv2"})
    assert wanted(named, "cctv1", "udp")
    assert wanted(named, "cctv2", "rtp")
    assert not wanted(named, "cctv3", "udp")
    assert not wanted(named, "cctv1", "srt")  # only a udp/rtp source is relayed
    assert wanted(frozenset({"*"}), "any", "udp")
    with pytest.raises(SettingsError) as refused:
        LiveSettings.from_env({"TC_SCTE35_CHANNELS": "ok,Not OK"})
    assert refused.value.name == "TC_SCTE35_CHANNELS"
    assert dataclasses.replace(LiveSettings(), scte35_channels=frozenset({"x"})).scte35_channels
