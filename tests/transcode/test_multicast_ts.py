"""The multicast output's pure parts on real FFmpeg segments: restamping across a source
switch, the constant-rate pacer, RTP framing, the follower, refused input, the rung and
mux-rate choice, the channel rule and the settings."""

from __future__ import annotations

import itertools
import statistics
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from headend.settings import SettingsError
from tests.support.mpegts import LiveWindowWriter, analyze, hls_segments
from transcode.domain import ChannelEncryption, LiveChannel, Multicast, MulticastProtocol
from transcode.errors import InvalidRequest
from transcode.hls import MasterPlaylist, Variant
from transcode.live.multicast.errors import OutputUnavailable, SegmentRefused
from transcode.live.multicast.follow import Follower, choose_output, derived_mux_rate
from transcode.live.multicast.pacer import Pacer
from transcode.live.multicast.process import command
from transcode.live.multicast.sender import (
    MulticastMetrics,
    Sender,
    rtp_header,
)
from transcode.live.multicast.ts import (
    NULL_PID,
    PCR_HZ,
    PMT_PID,
    TS_PACKET,
    OutPacket,
    Restamper,
    pcr_of,
    pid_of,
    split_packets,
)
from transcode.settings import LiveSettings, MulticastSettings

SLOT_SECONDS_2M = TS_PACKET * 8 / 2_000_000


@dataclass(frozen=True)
class Segments:
    """A 30 fps clip's and a 25 fps slate's segments, their timestamps 5000 s apart."""

    clip: list[Path]
    slate: list[Path]


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> Segments:
    root = tmp_path_factory.mktemp("mcseg")
    return Segments(
        clip=hls_segments(root, "clip", 6, source="testsrc2", rate=30),
        slate=hls_segments(root, "slate", 4, source="smptebars", rate=25, ts_offset=5000),
    )


def _run(segments: list[tuple[Path, bool]], rate_bps: int = 2_000_000) -> bytes:
    """Restamp and pace segments, a second of backlog at most, then drain the queue."""
    restamper, pacer = Restamper(), Pacer(rate_bps)
    out: list[bytes] = []
    for path, disc in segments:
        pacer.feed(
            restamper.restamp(
                path.read_bytes(), duration_seconds=2.0, discontinuity=disc, floor=pacer.now
            )
        )
        while pacer.backlog() > PCR_HZ:
            out += pacer.take(7)
    while pacer.queued():
        out += pacer.take(7)
    return b"".join(out)


def test_restamped_switch_is_one_continuous_stream(segments: Segments, tmp_path: Path) -> None:
    clip, slate = segments.clip, segments.slate
    data = _run([(clip[0], False), (clip[1], False), (slate[0], True), (slate[1], False),
                 (clip[2], True)])  # fmt: skip
    a = analyze(data)
    assert a.sync_errors == 0
    assert a.cc_errors == []
    assert a.pids == {0x0000, PMT_PID, 0x0100, 0x0101, NULL_PID}  # fixed output PIDs
    pcrs = [t for _, t in a.pcrs]
    assert all(b > a_ for a_, b in itertools.pairwise(pcrs))
    assert max(a.pcr_gaps_seconds()) <= 0.040
    # PCRs are the slots' times: the constant rate is exact.
    assert a.pcr_rate_bps() == pytest.approx(2_000_000, rel=1e-6)
    for pid in (0x0100, 0x0101):
        stamps = sorted(a.pts[pid])
        steps = [b - a_ for a_, b in itertools.pairwise(stamps)]
        assert min(steps) > 0  # nothing goes back
        # Nothing leaps across the switches: at most a PES's usual step and 0.15 s more
        # (FFmpeg puts several AAC frames in one audio PES).
        assert max(steps) < statistics.median(steps) + 0.15 * 90_000, pid
    (tmp_path / "out.ts").write_bytes(data)
    frames = _decoded_frames(tmp_path / "out.ts")
    assert frames == 60 + 60 + 50 + 50 + 60


def _decoded_frames(path: Path) -> int:
    import subprocess

    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-fps_mode", "passthrough",
         "-f", "framemd5", "-"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert b"rror while decoding" not in done.stderr
    return sum(1 for line in done.stdout.splitlines() if not line.startswith(b"#"))


def test_a_segment_without_discontinuity_keeps_the_offset(segments: Segments) -> None:
    restamper = Restamper()
    restamper.restamp(segments.clip[0].read_bytes(), duration_seconds=2, discontinuity=False,
                      floor=0)  # fmt: skip
    first = restamper.offset
    restamper.restamp(segments.clip[1].read_bytes(), duration_seconds=2, discontinuity=False,
                      floor=0)  # fmt: skip
    assert restamper.offset == first
    assert restamper.reanchors == 1


def test_an_untagged_timestamp_jump_is_anchored_again(segments: Segments) -> None:
    restamper = Restamper()
    restamper.restamp(segments.clip[0].read_bytes(), duration_seconds=2, discontinuity=False,
                      floor=0)  # fmt: skip
    restamper.restamp(segments.slate[0].read_bytes(), duration_seconds=2, discontinuity=False,
                      floor=0)  # fmt: skip
    assert restamper.reanchors == 2
    assert restamper.last_pts[0x0100] < 10 * 90_000  # not 5000 s on


def test_a_stall_leaps_forward_to_the_floor(segments: Segments) -> None:
    restamper = Restamper()
    restamper.restamp(segments.clip[0].read_bytes(), duration_seconds=2, discontinuity=False,
                      floor=0)  # fmt: skip
    floor = 30 * PCR_HZ  # the slots ran on 30 s with nothing to send
    packets = restamper.restamp(segments.clip[1].read_bytes(), duration_seconds=2,
                                discontinuity=False, floor=floor)  # fmt: skip
    assert packets[0].due >= floor
    assert all(b.due >= a.due for a, b in itertools.pairwise(packets))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        pytest.param(b"", "not whole", id="empty"),
        pytest.param(b"\x47" + b"\0" * 200, "not whole", id="not-188"),
        pytest.param(b"\x47" + b"\0" * 187 + b"\x00" * 188, "sync lost at packet 1", id="sync"),
        pytest.param(bytes([0x47, 0x1F, 0xFF, 0x10]) + b"\xff" * 184, "no PAT", id="no-pat"),
    ],
)
def test_bad_segments_are_refused(data: bytes, why: str) -> None:
    restamper = Restamper()
    with pytest.raises(SegmentRefused, match=why):
        restamper.restamp(data, duration_seconds=2, discontinuity=False, floor=0)
    assert restamper.offset is None
    assert restamper.last_due is None


def test_an_oversized_segment_is_refused(segments: Segments) -> None:
    restamper = Restamper(max_segment_bytes=1000)
    with pytest.raises(SegmentRefused, match="over the 1000 byte limit"):
        restamper.restamp(segments.clip[0].read_bytes(), duration_seconds=2,
                          discontinuity=False, floor=0)  # fmt: skip
    assert restamper.offset is None


def test_a_segment_without_pcr_is_refused(segments: Segments) -> None:
    packets = split_packets(segments.clip[0].read_bytes())
    stripped = []
    for p in packets:  # clear every PCR flag
        buf = bytearray(p)
        if pcr_of(buf) is not None:
            buf[5] &= ~0x10
        stripped.append(bytes(buf))
    with pytest.raises(SegmentRefused, match="no PCR"):
        Restamper().restamp(b"".join(stripped), duration_seconds=2, discontinuity=False, floor=0)


def _packet(pid: int, due: int) -> OutPacket:
    return OutPacket(due, bytearray([0x47, pid >> 8, pid & 0xFF, 0x10]) + bytearray(184))


def test_pacer_places_packets_no_earlier_than_due_and_fills_with_nulls() -> None:
    pacer = Pacer(2_000_000, pcr_interval_seconds=10, psi_interval_seconds=10)
    slot = pacer.slot_ticks
    pacer.take(1)  # the first slot carries the first PCR
    pacer.feed([_packet(0x101, int(5 * slot)), _packet(0x101, int(5 * slot)),
                _packet(0x101, int(9.5 * slot))])  # fmt: skip
    kinds = [pid_of(p) for p in pacer.take(10)]
    # slots 1..10: nulls until slot 5, both due packets, nulls, the third at slot 10
    assert kinds == [NULL_PID] * 4 + [0x101, 0x101] + [NULL_PID] * 3 + [0x101]
    assert pacer.counts.content == 3
    assert pacer.counts.null == 7


def test_pacer_inserts_pcr_and_psi_on_time_and_numbers_cc() -> None:
    pacer = Pacer(2_000_000)
    restamper = Restamper()
    # PAT and PMT come with content; after that the pacer repeats them.
    pacer.feed([OutPacket(0, bytearray(p)) for p in _psi_pair(restamper)])
    packets = pacer.take(int(1.0 / SLOT_SECONDS_2M))  # one second
    a = analyze(b"".join(packets))
    assert a.cc_errors == []
    gaps = a.pcr_gaps_seconds()
    assert max(gaps) <= 0.031
    assert len(a.pcrs) >= 33
    pats = [i for i in range(len(packets)) if pid_of(packets[i]) == 0]
    spacing = [(b - a_) * SLOT_SECONDS_2M for a_, b in itertools.pairwise(pats)]
    assert 9 <= len(pats) <= 11
    assert max(spacing) <= 0.101


def _psi_pair(restamper: Restamper) -> list[bytes]:
    from transcode.live.multicast.ts import Stream, pat_packet, pmt_packet

    return [pat_packet(), pmt_packet([Stream(0x100, 0x1B)], 0)]


def test_pacer_drop_and_backlog() -> None:
    pacer = Pacer(1_000_000)
    pacer.feed([_packet(0x101, 3 * PCR_HZ)])
    assert pacer.backlog() == 3 * PCR_HZ
    assert pacer.drop() == 1
    assert pacer.backlog() == 0
    assert pacer.counts.dropped == 1
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_rtp_header_fields() -> None:
    header = rtp_header(65536 + 7, (1 << 32) + 90_000, 0xDEADBEEF)
    first, pt, seq, ts, ssrc = struct.unpack("!BBHII", header)
    assert (first >> 6, first & 0x3F, pt, seq, ts, ssrc) == (2, 0, 33, 7, 90_000, 0xDEADBEEF)


class FakeClock:
    """A fake clock: sleeping moves time on (``sleep(0)`` by a microsecond)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(seconds, 1e-6)


class ListSink:
    """Keeps datagrams; sets ``done`` after ``count``."""

    def __init__(self, clock: FakeClock, count: int, done: threading.Event) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self._clock, self._count, self._done = clock, count, done

    def send(self, data: bytes, /) -> int:
        self.sent.append((self._clock.now(), data))
        if len(self.sent) >= self._count:
            self._done.set()
        return len(data)


@pytest.mark.parametrize("protocol", [MulticastProtocol.RTP, MulticastProtocol.UDP])
def test_sender_sends_seven_packets_on_the_deadlines(protocol: MulticastProtocol) -> None:
    clock, done = FakeClock(), threading.Event()
    sink = ListSink(clock, 50, done)
    pacer = Pacer(2_000_000)
    metrics = MulticastMetrics()
    sender = Sender(sink, pacer, threading.Lock(), protocol=protocol, channel="news",
                    metrics=metrics, clock=clock, ssrc=42)  # fmt: skip
    sender.run(done)
    period = 7 * SLOT_SECONDS_2M
    for index, (at, data) in enumerate(sink.sent):
        assert at - (100.0 + index * period) == pytest.approx(0, abs=2e-6)
        header = 12 if protocol is MulticastProtocol.RTP else 0
        assert len(data) == header + 7 * TS_PACKET
    assert sender.late == 0
    sender.publish_counts()
    sender.publish_counts()  # idempotent: counts are copied, not added twice
    registry = metrics.registry
    sample = registry.get_sample_value
    labels = {"channel": "news"}
    assert sample("transcode_multicast_datagrams_total", labels) == 50
    kinds = ("content", "null", "psi", "pcr")
    sent = {k: sample("transcode_multicast_packets_total", {**labels, "kind": k}) for k in kinds}
    assert sum(v or 0 for v in sent.values()) == 50 * 7
    assert sent["pcr"]
    assert sent["null"]
    assert sample("transcode_multicast_null_share", labels) == pytest.approx(
        (sent["null"] or 0) / 350
    )
    if protocol is MulticastProtocol.RTP:
        seqs = [struct.unpack("!H", d[2:4])[0] for _, d in sink.sent]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        stamps = [struct.unpack("!I", d[4:8])[0] for _, d in sink.sent]
        assert stamps[1] - stamps[0] == round(7 * pacer.slot_ticks) // 300
        assert {struct.unpack("!I", d[8:12])[0] for _, d in sink.sent} == {42}


def _master(*rates: tuple[str, int]) -> MasterPlaylist:
    variants = tuple(
        Variant(
            uri=f"{name}/index.m3u8",
            bandwidth=bps,
            average_bandwidth=bps,
            codecs="",
            resolution=(0, 0),
            frame_rate=30.0,
        )
        for name, bps in rates
    )
    return MasterPlaylist(variants=variants)


@pytest.mark.parametrize(
    ("rung", "mux_kbps", "want_rung", "want_bps"),
    [
        pytest.param("", 0, "1080p", 7_200_000, id="top-derived"),
        pytest.param("", 4000, "720p", 4_000_000, id="fits-mux"),
        pytest.param("", 500, "360p", 500_000, id="none-fits-lowest"),
        pytest.param("360p", 0, "360p", 1_000_000, id="named-derived"),
    ],
)
def test_choose_output(rung: str, mux_kbps: int, want_rung: str, want_bps: int) -> None:
    master = _master(("360p", 800_000), ("720p", 3_000_000), ("1080p", 6_000_000))
    chosen = choose_output(master, Multicast("239.1.1.1", 5000, rung=rung,
                                             mux_rate_kbps=mux_kbps))  # fmt: skip
    assert (chosen.rung, chosen.mux_rate_bps) == (want_rung, want_bps)


def test_choose_output_refuses_an_unknown_rung() -> None:
    with pytest.raises(OutputUnavailable, match="rung 'uhd' is not published"):
        choose_output(_master(("720p", 1)), Multicast("239.1.1.1", 5000, rung="uhd"))
    assert derived_mux_rate(1_000_001) == 1_300_000


def test_encrypted_channel_cannot_be_multicast() -> None:
    channel = LiveChannel(
        id="news", source="udp://239.0.0.1:1234", encryption=ChannelEncryption(enabled=True),
        multicast=Multicast("239.1.1.1", 5000),
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="no CAS") as err:
        channel.validate()
    assert err.value.field == "channel.multicast"


def test_settings_read_and_refuse() -> None:
    env = {"TC_MULTICAST_START_SEGMENTS": "3", "TC_MULTICAST_ENABLED": "0"}
    settings = LiveSettings.from_env(env).multicast
    assert settings.start_segments == 3
    assert not settings.enabled
    with pytest.raises(SettingsError, match="TC_MULTICAST_MAX_BEHIND_SEGMENTS"):
        MulticastSettings.from_env({"TC_MULTICAST_MAX_BEHIND_SEGMENTS": "1"})


def test_command_carries_every_field(tmp_path: Path) -> None:
    args = command(tmp_path, "news", Multicast("239.1.1.1", 5000, MulticastProtocol.UDP, 4,
                                               "10.0.0.1", "720p", 3000))  # fmt: skip
    text = " ".join(args)
    for part in ("--group 239.1.1.1", "--port 5000", "--protocol udp", "--ttl 4",
                 "--interface 10.0.0.1", "--rung 720p", "--mux-rate-kbps 3000"):  # fmt: skip
        assert part in text


def _follower(tmp_path: Path, **overrides: object) -> tuple[Follower, Pacer, LiveWindowWriter]:
    writer = LiveWindowWriter(tmp_path / "news")
    pacer = Pacer(3_000_000)
    settings = MulticastSettings(**overrides)  # type: ignore[arg-type]
    follower = Follower(writer.rung_dir, pacer=pacer, lock=threading.Lock(), settings=settings,
                        metrics=MulticastMetrics(), channel="news")  # fmt: skip
    return follower, pacer, writer


def test_follower_starts_at_the_live_edge_and_sends_each_once(
    segments: Segments, tmp_path: Path
) -> None:
    follower, _pacer, writer = _follower(tmp_path)
    assert follower.poll() == 0  # nothing published yet
    for path in segments.clip[:3]:
        writer.publish(path)
    assert follower.poll() == 2  # the newest two
    assert follower.poll() == 0
    writer.publish(segments.slate[0], discontinuity=True)
    assert follower.poll() == 1
    assert follower.sent == 3
    assert follower.next_sequence == 4
    assert follower.restamper.reanchors == 2  # the start and the switch


def test_follower_skips_a_refused_segment_and_goes_on(segments: Segments, tmp_path: Path) -> None:
    follower, pacer, writer = _follower(tmp_path, start_segments=1)
    writer.publish(segments.clip[0])
    assert follower.poll() == 1
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"\x47" * 1000)
    writer.publish(bad)
    queued = pacer.queued()
    assert follower.poll() == 1
    assert follower.refused == 1
    assert pacer.queued() == queued  # nothing of it was queued
    writer.publish(segments.clip[1])
    assert follower.poll() == 1
    assert follower.sent == 2
    assert follower.restamper.reanchors == 2  # anchored again after the gap


def test_follower_jumps_to_the_newest_when_behind(segments: Segments, tmp_path: Path) -> None:
    follower, _pacer, writer = _follower(tmp_path, start_segments=1, max_behind_segments=2)
    writer.publish(segments.clip[0])
    follower.poll()
    for path in [*segments.clip[1:], *segments.slate]:  # four at once: more than 2 behind
        writer.publish(path)
    assert follower.poll() == 1
    assert follower.jumps == 1
    assert follower.next_sequence == 5


class SlowSink(ListSink):
    """A sink that stalls the clock: 8 ms on datagram 3, 300 ms on datagram 6."""

    def send(self, data: bytes, /) -> int:
        stall = {3: 0.008, 6: 0.3}.get(len(self.sent), 0.0)
        self._clock.t += stall
        return super().send(data)


def test_sender_counts_late_sends_and_moves_on_after_a_stall() -> None:
    clock, done = FakeClock(), threading.Event()
    sink = SlowSink(clock, 12, done)
    metrics = MulticastMetrics()
    sender = Sender(sink, Pacer(2_000_000), threading.Lock(), protocol=MulticastProtocol.UDP,
                    channel="news", metrics=metrics, clock=clock)  # fmt: skip
    sender.run(done)
    assert sender.late >= 1
    assert metrics.registry.get_sample_value("transcode_multicast_rebased_total",
                                             {"channel": "news"}) == 1  # fmt: skip
    # No burst after the stall: the datagrams after it keep the period apart.
    times = [at for at, _ in sink.sent[7:]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(sender.period, abs=2e-6)
