"""SCTE-35 splice signals from a UDP (or RTP) MPEG-TS source, into the live playlists.

A channel named in ``TC_SCTE35_CHANNELS`` reads a udp/rtp source through a splice relay
(``relay.py``), which hands every datagram to a :class:`SpliceTap`. The tap reads the
transport stream: PAT, then each programme's PMT, then the PIDs of stream type 0x86,
whose splice_info_sections it reassembles, checks (table id, length, CRC-32, a known
command) and decodes (``splice.py``). Everything it holds is bounded: a section's
length, the PIDs it follows, the signals waiting, the sections it remembers to drop
repeats; whatever fails a check is dropped and counted, never raised. Every section read
is counted once by its outcome (``sections``, and ``transcode_live_scte35_sections_total``):
``carried`` once it is a date range, ``ignored`` (splice_null, bandwidth_reservation, a
repeat), or the reason it was dropped: ``splice.py``'s, ``truncated`` (a packet of it
lost), ``length`` (longer than a section may be), ``overflow`` (pushed out of the signals
waiting), ``epoch_ended`` (still waiting, or being assembled, when the epoch ended) and
the relay's ``malformed`` (a datagram the tap failed on).

A signal's time is a 90 kHz PTS (its splice time plus pts_adjustment; a splice_immediate
or a time_signal without a time is the latest video PTS the tap has seen). FFmpeg shifts
its input's timestamps by the start it logs (``Epoch.input_start``), so a signal lands at
an output time of the epoch, the same clock the segment lists use. FFmpeg cuts segments
at fixed intervals, fixed when it starts (``-force_key_frames``), so no cut can be made at
an instant learnt at run time: a signal goes on the first segment starting at or after its
time, and that boundary is the range's START-DATE (:class:`SpliceBook`). Outs and returns
pair by splice_event_id (splice_insert) or segmentation_event_id (a time_signal's
segmentation descriptor): the return repeats the out's ID and START-DATE with its
DURATION, as RFC 8216bis section 4.4.5.1.4 asks. Signals scheduled into the channel
(``transcode.cueq``) are placed by the same book (:meth:`SpliceBook.place`), so they pair
with each other and with the source's alike.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from transcode import hls
from transcode.live.metrics import LiveMetrics
from transcode.live.splice import (
    MAX_SECTION_LENGTH,
    SegmentationDescriptor,
    SpliceError,
    SpliceInfo,
    SpliceInsert,
    TimeSignal,
    crc32,
    decode,
)
from transcode.measure import PTS_HZ, TS_PACKET

log = logging.getLogger(__name__)

STREAM_TYPE_SCTE35 = 0x86
_PTS_MASK = (1 << 33) - 1
_VIDEO_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24, 0x42})
_IGNORED_COMMANDS = frozenset({0x00, 0x07})  # splice_null (heartbeats), bandwidth_reservation
# Segmentation types that start a programme, chapter, break or opportunity; each one's
# end is the type after it (SCTE 35 table 22).
SEGMENT_STARTS = frozenset({0x10, 0x20, 0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x3C, 0x3E,
                            0x40, 0x42, 0x44, 0x46, 0x50})  # fmt: skip
_ENDS = frozenset(t + 1 for t in SEGMENT_STARTS)
_MAX_PROGRAMMES = 16
_MAX_CUE_PIDS = 4
_MAX_PENDING = 64
_MAX_SEEN = 256
_MAX_OPEN = 32
# A signal this close before a segment's start is that segment's (a frame is 16 ms or more).
_SLACK_SECONDS = 0.005
# The outcomes of a section that was not dropped.
_NOT_DROPPED = frozenset({"carried", "ignored"})

Kind = Literal["out", "in", "cmd"]


@dataclass(frozen=True, slots=True)
class Splice:
    """One splice signal: out, return (in) or any other command, and its section bytes."""

    kind: Kind
    key: str  # pairs an out with its return: "splice-6FFFFFF0", "seg-0000002A", "cmd-<crc>"
    section: bytes
    pts: int | None  # 90 kHz, 33 bits, adjusted; None: as soon as possible
    duration: float | None = None  # seconds announced (break or segmentation duration)


class Refused(Exception):
    """Raised by :func:`read_section` for a section that is dropped; ``reason`` is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ticks(seconds: float) -> int:
    return round(seconds * PTS_HZ)


def read_section(section: bytes, *, now_pts: int | None) -> Splice:
    """Check and decode one splice_info_section (``now_pts``: the latest video PTS, the time
    of an immediate splice); ``Refused`` says why it is dropped."""
    try:
        info = decode(section)
    except SpliceError as err:
        raise Refused(err.reason) from err
    if info.splice_command_type in _IGNORED_COMMANDS:
        raise Refused("ignored")
    return _classify(info, section, now_pts)


def _classify(info: SpliceInfo, section: bytes, now_pts: int | None) -> Splice:
    cmd = info.command
    crc_key = f"cmd-{info.crc_32:08X}"
    pts: int | None = now_pts
    if isinstance(cmd, SpliceInsert):
        if cmd.splice_event_cancel_indicator or not cmd.program_splice_flag:
            return Splice("cmd", crc_key, section, now_pts)  # a cancel, or per component
        if not cmd.splice_immediate_flag:
            if cmd.pts_time is None:
                raise Refused("undecodable")  # due at a time it does not give
            pts = (cmd.pts_time + info.pts_adjustment) & _PTS_MASK
        kind: Kind = "out" if cmd.out_of_network_indicator else "in"
        duration = None if cmd.break_duration is None else cmd.break_duration / PTS_HZ
        return Splice(kind, f"splice-{cmd.splice_event_id:08X}", section, pts, duration)
    if isinstance(cmd, TimeSignal):
        if cmd.pts_time is not None:
            pts = (cmd.pts_time + info.pts_adjustment) & _PTS_MASK
        for d in info.descriptors:
            if not isinstance(d, SegmentationDescriptor) or d.segmentation_event_cancel_indicator:
                continue
            if d.segmentation_type_id not in SEGMENT_STARTS | _ENDS:
                break  # an identification, a blackout override ...: a command
            kind = "out" if d.segmentation_type_id in SEGMENT_STARTS else "in"
            ticks = d.segmentation_duration
            return Splice(kind, f"seg-{d.segmentation_event_id:08X}", section, pts,
                          None if ticks is None else ticks / PTS_HZ)  # fmt: skip
    return Splice("cmd", crc_key, section, pts)


class SpliceTap:
    """Reads a transport stream's PSI, video PTS and SCTE-35 sections; keeps the signals."""

    def __init__(
        self, *, channel: str = "", rtp: bool = False, metrics: LiveMetrics | None = None
    ) -> None:
        self.channel = channel  # for the logs and the metrics
        self.rtp = rtp
        self.pending: deque[Splice] = deque()
        self.sections: Counter[str] = Counter()  # every section read, by outcome
        self._metrics = metrics
        self.video_pts: int | None = None
        self._pmt_pids: set[int] = set()
        self._video_pid: int | None = None
        self._cue_pids: set[int] = set()
        self._partial: dict[int, bytearray] = {}
        self._cc: dict[int, int] = {}
        # Recent sections by length and last 8 bytes (a CRC-checked one's ends in its CRC).
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def feed(self, datagram: bytes) -> None:
        """Read one datagram of TS packets (RTP-wrapped for an rtp source)."""
        data = _rtp_payload(datagram) if self.rtp else datagram
        for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
            self._packet(data[offset : offset + TS_PACKET])

    def take(self, due: Callable[[int | None], bool]) -> list[Splice]:
        """Remove and return the signals ``due`` accepts (by PTS), in arrival order."""
        taken = [s for s in self.pending if due(s.pts)]
        if taken:
            self.pending = deque(s for s in self.pending if not due(s.pts))
        return taken

    def count(self, outcome: str) -> None:
        """Count one section read: ``carried``, ``ignored`` or why it was dropped (each
        reason logged the first time)."""
        if outcome not in _NOT_DROPPED and not self.sections[outcome]:
            log.warning("scte-35 section dropped",
                        extra={"channel": self.channel, "reason": outcome})  # fmt: skip
        self.sections[outcome] += 1
        if self._metrics is not None:
            self._metrics.scte35_sections.labels(self.channel, outcome).inc()

    def close(self) -> None:
        """Count the signals still waiting and the sections being assembled as dropped: the
        epoch they belong to has ended."""
        for _ in range(len(self.pending) + len(self._partial)):
            self.count("epoch_ended")
        self.pending.clear()
        self._partial.clear()

    def _packet(self, packet: bytes) -> None:
        if packet[0] != 0x47:
            return
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        start = bool(packet[1] & 0x40)
        control = packet[3] >> 4 & 0x03
        if not control & 0x01:
            return  # no payload
        offset = 4 + (1 + packet[4] if control & 0x02 else 0)
        if offset >= TS_PACKET:
            return
        payload = packet[offset:]
        if pid == 0 and start:
            self._pat(_psi(payload))
        elif pid in self._pmt_pids and start:
            self._pmt(_psi(payload))
        elif pid == self._video_pid and start:
            pts = _pes_pts(payload)
            if pts is not None:
                self.video_pts = pts
        elif pid in self._cue_pids:
            self._cue_packet(pid, packet[3] & 0x0F, start, payload)

    def _pat(self, section: bytes | None) -> None:
        if section is None or section[0] != 0x00:
            return
        pids = set()
        for entry in range(8, len(section) - 4 - 3, 4):
            if section[entry] << 8 | section[entry + 1]:  # programme 0: the network PID
                pids.add((section[entry + 2] & 0x1F) << 8 | section[entry + 3])
        self._pmt_pids = set(sorted(pids)[:_MAX_PROGRAMMES])

    def _pmt(self, section: bytes | None) -> None:
        if section is None or section[0] != 0x02:
            return
        entry = 12 + ((section[10] & 0x0F) << 8 | section[11])
        while entry + 5 <= len(section) - 4:
            kind = section[entry]
            pid = (section[entry + 1] & 0x1F) << 8 | section[entry + 2]
            if kind in _VIDEO_TYPES and self._video_pid is None:
                self._video_pid = pid
            elif kind == STREAM_TYPE_SCTE35 and len(self._cue_pids) < _MAX_CUE_PIDS:
                self._cue_pids.add(pid)
            entry += 5 + ((section[entry + 3] & 0x0F) << 8 | section[entry + 4])

    def _cue_packet(self, pid: int, cc: int, start: bool, payload: bytes) -> None:
        expected = (self._cc.get(pid, cc - 1) + 1) & 0x0F
        self._cc[pid] = cc
        partial = self._partial.pop(pid, None)
        if partial is not None and cc != expected:
            self.count("truncated")  # a packet of it was lost
            partial = None
        if not start:
            if partial is not None:
                self._grow(pid, partial + payload)
            return
        pointer = payload[0]
        if partial is not None:
            self._grow(pid, partial + payload[1 : 1 + pointer], ending=True)
        rest = payload[1 + pointer :]
        while rest and rest[0] != 0xFF:  # 0xFF: stuffing after the last section
            rest = self._grow(pid, bytearray(rest), more=True)

    def _grow(
        self, pid: int, data: bytearray, *, ending: bool = False, more: bool = False
    ) -> bytes:
        """Add to the section being assembled on ``pid``; returns what follows a finished one
        (``ending``: nothing more of it can come; ``more``: sections may follow it)."""
        if len(data) >= 3:
            length = (data[1] & 0x0F) << 8 | data[2]
            if length > MAX_SECTION_LENGTH:
                self.count("length")
                return b""
            if len(data) >= 3 + length:
                self._section(bytes(data[: 3 + length]))
                return bytes(data[3 + length :]) if more else b""
        if ending:
            self.count("truncated")
        else:
            self._partial[pid] = data
        return b""

    def _section(self, section: bytes) -> None:
        seen = len(section).to_bytes(2, "big") + section[-8:]
        if seen in self._seen:
            self.count("ignored")  # encoders send a signal several times
            return
        self._seen[seen] = None
        while len(self._seen) > _MAX_SEEN:
            self._seen.popitem(last=False)
        try:
            splice = read_section(section, now_pts=self.video_pts)
        except Refused as refused:
            self.count(refused.reason)
            return
        if len(self.pending) >= _MAX_PENDING:
            self.pending.popleft()
            self.count("overflow")
        self.pending.append(splice)  # counted once its segment takes it


def _psi(payload: bytes) -> bytes | None:
    """The PSI section starting in a packet's payload, when whole and its CRC intact."""
    start = 1 + payload[0]
    if start + 3 > len(payload):
        return None
    end = start + 3 + ((payload[start + 1] & 0x0F) << 8 | payload[start + 2])
    section = payload[start:end]
    if end > len(payload) or len(section) < 12 or crc32(section):
        return None
    return section


def _pes_pts(payload: bytes) -> int | None:
    # PES: 00 00 01 stream_id len(2) flags(2) header_len(1) then PTS (5 bytes) when flagged.
    if len(payload) < 14 or payload[:3] != b"\x00\x00\x01" or not payload[7] & 0x80:
        return None
    p = payload[9:14]
    return (p[0] >> 1 & 0x07) << 30 | p[1] << 22 | (p[2] >> 1 & 0x7F) << 15 | p[3] << 7 | p[4] >> 1


def _rtp_payload(datagram: bytes) -> bytes:
    """An RTP packet's payload (RFC 3550: 12 bytes, the CSRCs, an extension, padding)."""
    if len(datagram) < 12 or datagram[0] >> 6 != 2:
        return b""
    start = 12 + 4 * (datagram[0] & 0x0F)
    if datagram[0] & 0x10 and len(datagram) >= start + 4:
        start += 4 + 4 * int.from_bytes(datagram[start + 2 : start + 4], "big")
    end = len(datagram) - (datagram[-1] if datagram[0] & 0x20 else 0)
    return datagram[start:end]


def output_seconds(pts: int, input_start: float) -> float:
    """The epoch's output time of a 90 kHz input PTS (FFmpeg shifts input by its start)."""
    delta = (pts - _ticks(input_start)) & _PTS_MASK
    if delta >= 1 << 32:
        delta -= 1 << 33  # before the start, across no wrap
    return delta / PTS_HZ


class SpliceBook:
    """A channel's signals as date ranges on the segments they land on; the outs still open."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, hls.DateRange] = OrderedDict()

    def ranges(
        self, tap: SpliceTap, input_start: float | None, segment_start: float, boundary: datetime,
        seq: int,
    ) -> tuple[hls.DateRange, ...]:  # fmt: skip
        """The date ranges of the segment numbered ``seq`` starting at ``segment_start``
        (output seconds of its epoch; ``boundary``: its EXT-X-PROGRAM-DATE-TIME): the
        signals of ``tap`` at or before then (``input_start``: the epoch's, None if FFmpeg
        did not log it: every signal is due)."""

        def due(pts: int | None) -> bool:
            if pts is None or input_start is None:
                return True
            return output_seconds(pts, input_start) <= segment_start + _SLACK_SECONDS

        out = []
        for splice in tap.take(due):
            made = self._range(splice, boundary, seq)
            tap.count("ignored" if made is None else "carried")
            if made is not None:
                out.append(made)
        return tuple(out)

    def place(
        self, splices: Iterable[Splice], boundary: datetime, seq: int
    ) -> tuple[hls.DateRange, ...]:
        """The date ranges of scheduled signals (``transcode.cueq``) on the segment numbered
        ``seq`` starting at ``boundary``, paired with each other and with the source's."""
        return tuple(r for s in splices if (r := self._range(s, boundary, seq)) is not None)

    def _range(self, splice: Splice, boundary: datetime, seq: int) -> hls.DateRange | None:
        ident = f"{splice.key}-{seq}"
        if splice.kind == "out":
            opened = self._open.get(splice.key)
            if opened is not None and (opened.end is None or boundary < opened.end):
                return None  # the same out again (other bytes) while its break runs
            made = hls.DateRange(ident, boundary, planned_duration=splice.duration,
                                 scte35_out=splice.section)  # fmt: skip
            self._open[splice.key] = made
            while len(self._open) > _MAX_OPEN:
                self._open.popitem(last=False)
            return made
        if splice.kind == "in":
            out = self._open.pop(splice.key, None)
            if out is None:
                return hls.DateRange(ident, boundary, scte35_in=splice.section)
            seconds = max(0.0, (boundary - out.start_date) / timedelta(seconds=1))
            return hls.DateRange(out.id, out.start_date, duration=seconds,
                                 scte35_in=splice.section)  # fmt: skip
        return hls.DateRange(ident, boundary, scte35_cmd=splice.section)
