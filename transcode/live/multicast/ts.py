"""MPEG-TS packets read and rewritten, and the restamper that makes one continuous SPTS of
a live window's segments.

Each segment is read whole (bounded), its programme found (PAT, PMT), and its video and
audio streams moved to fixed output PIDs under one output PAT/PMT (the PMT's version
goes up only when the streams' types change). Every packet gets a *due* time on the
output's 27 MHz clock: its PCR-interpolated time in the segment, shifted by an offset
that keeps the output timeline continuous: it is chosen again at a discontinuity (a
source switch, the slate, a jump) so that the first video PTS follows the last one sent
by one frame, and never earlier than the last packet's due time or than the pacer's
clock now. PES PTS/DTS are shifted by the same offset; PCRs and continuity counters are
the pacer's, written at send time (``pacer``). No I/O here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from transcode.live.multicast.errors import SegmentRefused
from transcode.live.splice import crc32

TS_PACKET = 188
SYNC = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
PMT_PID = 0x1000  # the output's PMT
PCR_PID = 0x0100  # the output's video PID; PCR-only packets carry it without video too
VIDEO_PID = 0x0100
FIRST_AUDIO_PID = 0x0101
PROGRAMME_NUMBER = 1
TRANSPORT_STREAM_ID = 1
PCR_HZ = 27_000_000
PTS_HZ = 90_000
TICKS_PER_PTS = PCR_HZ // PTS_HZ  # 300
PTS_WRAP = 1 << 33
PCR_BASE_WRAP = PTS_WRAP  # the PCR base is 33 bits of 90 kHz; its extension 0..299
MAX_AUDIO_STREAMS = 8
DEFAULT_MAX_SEGMENT_BYTES = 64 << 20

# ISO/IEC 13818-1 table 2-34 (and ATSC/DVB registrations FFmpeg writes).
VIDEO_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24, 0x42, 0xEA})
AUDIO_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x81, 0x87})
# PES stream ids without the optional header (so without PTS/DTS).
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})

NULL_PACKET = bytes([SYNC, 0x1F, 0xFF, 0x10]) + b"\xff" * (TS_PACKET - 4)


@dataclass(frozen=True, slots=True)
class Stream:
    """One elementary stream of a PMT: its PID, stream type and ES info descriptors."""

    pid: int
    stream_type: int
    es_info: bytes = b""


@dataclass(frozen=True, slots=True)
class Programme:
    """The programme a segment carries (the first one its PAT lists)."""

    pmt_pid: int
    pcr_pid: int
    streams: tuple[Stream, ...]


@dataclass(slots=True)
class OutPacket:
    """One output packet and when it is due on the output's 27 MHz clock."""

    due: int
    data: bytearray


def pid_of(packet: bytes | bytearray) -> int:
    """A packet's PID."""
    return (packet[1] & 0x1F) << 8 | packet[2]


def split_packets(data: bytes, *, max_bytes: int = DEFAULT_MAX_SEGMENT_BYTES) -> list[bytes]:
    """A segment's packets; SegmentRefused when too large, not whole packets, or out of sync
    (no resync is tried: a live segment file is written whole or not at all)."""
    if len(data) > max_bytes:
        raise SegmentRefused(f"segment of {len(data)} bytes is over the {max_bytes} byte limit")
    if not data or len(data) % TS_PACKET:
        raise SegmentRefused(f"segment of {len(data)} bytes is not whole 188-byte TS packets")
    packets = [data[o : o + TS_PACKET] for o in range(0, len(data), TS_PACKET)]
    for index, packet in enumerate(packets):
        if packet[0] != SYNC:
            raise SegmentRefused(f"TS sync lost at packet {index} (byte {index * TS_PACKET})")
    return packets


def payload_offset(packet: bytes | bytearray) -> int | None:
    """Where a packet's payload starts (None: no payload)."""
    control = packet[3] >> 4 & 0x03
    if not control & 0x01:
        return None
    offset = 4 + (1 + packet[4] if control & 0x02 else 0)
    return offset if offset < TS_PACKET else None


def _section(packet: bytes) -> bytes | None:
    """The whole PSI section starting in a packet (CRC intact), else None."""
    start = payload_offset(packet)
    if start is None or not packet[1] & 0x40:
        return None
    start += 1 + packet[start]
    if start + 3 > TS_PACKET:
        return None
    end = start + 3 + ((packet[start + 1] & 0x0F) << 8 | packet[start + 2])
    if end > TS_PACKET or end - start < 12 or crc32(packet[start:end]):
        return None
    return packet[start:end]


def read_programme(packets: Sequence[bytes]) -> Programme:
    """The first programme of a segment's PAT and its PMT; SegmentRefused without them (a
    live segment starts with both)."""
    pmt_pid: int | None = None
    for packet in packets:
        pid = pid_of(packet)
        if pmt_pid is None and pid == PAT_PID:
            section = _section(packet)
            if section is not None and section[0] == 0x00:
                for entry in range(8, len(section) - 4 - 3, 4):
                    if section[entry] << 8 | section[entry + 1]:  # 0: the network PID
                        pmt_pid = (section[entry + 2] & 0x1F) << 8 | section[entry + 3]
                        break
        elif pmt_pid is not None and pid == pmt_pid:
            section = _section(packet)
            if section is not None and section[0] == 0x02:
                return _programme(pmt_pid, section)
    raise SegmentRefused("no PAT and PMT in the segment's packets")


def _programme(pmt_pid: int, section: bytes) -> Programme:
    pcr_pid = (section[8] & 0x1F) << 8 | section[9]
    entry = 12 + ((section[10] & 0x0F) << 8 | section[11])
    streams = []
    while entry + 5 <= len(section) - 4:
        info_length = (section[entry + 3] & 0x0F) << 8 | section[entry + 4]
        streams.append(
            Stream(
                pid=(section[entry + 1] & 0x1F) << 8 | section[entry + 2],
                stream_type=section[entry],
                es_info=bytes(section[entry + 5 : entry + 5 + info_length]),
            )
        )
        entry += 5 + info_length
    return Programme(pmt_pid=pmt_pid, pcr_pid=pcr_pid, streams=tuple(streams))


def psi_packet(pid: int, table_id: int, extension: int, version: int, body: bytes) -> bytes:
    """One packet holding a whole PSI section (CC 0: the pacer numbers it)."""
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | length >> 8, length & 0xFF, extension >> 8,
                  extension & 0xFF, 0xC1 | (version & 0x1F) << 1, 0, 0])  # fmt: skip
    section = head + body
    section += crc32(section).to_bytes(4, "big")
    packet = bytes([SYNC, 0x40 | pid >> 8, pid & 0xFF, 0x10, 0]) + section
    if len(packet) > TS_PACKET:
        raise SegmentRefused(f"a PSI section of {len(section)} bytes does not fit one packet")
    return packet + b"\xff" * (TS_PACKET - len(packet))


def pat_packet() -> bytes:
    """The output's PAT: programme 1 on ``PMT_PID``."""
    body = bytes([0, PROGRAMME_NUMBER, 0xE0 | PMT_PID >> 8, PMT_PID & 0xFF])
    return psi_packet(PAT_PID, 0x00, TRANSPORT_STREAM_ID, 0, body)


def pmt_packet(streams: Sequence[Stream], version: int) -> bytes:
    """The output's PMT: ``streams`` (already on output PIDs), PCR on ``PCR_PID``."""
    body = bytearray([0xE0 | PCR_PID >> 8, PCR_PID & 0xFF, 0xF0, 0])
    for s in streams:
        body += bytes([s.stream_type, 0xE0 | s.pid >> 8, s.pid & 0xFF,
                       0xF0 | len(s.es_info) >> 8, len(s.es_info) & 0xFF]) + s.es_info  # fmt: skip
    return psi_packet(PMT_PID, 0x02, PROGRAMME_NUMBER, version, bytes(body))


def pcr_of(packet: bytes | bytearray) -> int | None:
    """A packet's PCR in 27 MHz ticks (None: it carries none)."""
    if not packet[3] & 0x20 or packet[4] < 7 or not packet[5] & 0x10:
        return None
    p = packet[6:12]
    base = p[0] << 25 | p[1] << 17 | p[2] << 9 | p[3] << 1 | p[4] >> 7
    return base * TICKS_PER_PTS + ((p[4] & 0x01) << 8 | p[5])


def set_pcr(packet: bytearray, ticks: int) -> None:
    """Write ``ticks`` (27 MHz, any size: wrapped here) into a packet that carries a PCR."""
    base = ticks // TICKS_PER_PTS % PCR_BASE_WRAP
    ext = ticks % TICKS_PER_PTS
    packet[6:12] = bytes([base >> 25 & 0xFF, base >> 17 & 0xFF, base >> 9 & 0xFF,
                          base >> 1 & 0xFF, (base & 1) << 7 | 0x7E | ext >> 8,
                          ext & 0xFF])  # fmt: skip


def pcr_only_packet(ticks: int) -> bytearray:
    """An adaptation-field-only packet on ``PCR_PID`` carrying a PCR (no payload, so its
    continuity counter does not count)."""
    packet = bytearray([SYNC, PCR_PID >> 8, PCR_PID & 0xFF, 0x20, 183, 0x10])
    packet += b"\0" * 6 + b"\xff" * (TS_PACKET - 12)
    set_pcr(packet, ticks)
    return packet


def _read_ts(field: bytes | bytearray) -> int:
    return (
        (field[0] >> 1 & 0x07) << 30
        | field[1] << 22
        | (field[2] >> 1) << 15
        | (field[3] << 7 | field[4] >> 1)
    )


def _write_ts(packet: bytearray, at: int, value: int) -> None:
    value %= PTS_WRAP
    prefix = packet[at] & 0xF0
    packet[at : at + 5] = bytes([prefix | (value >> 29 & 0x0E) | 1, value >> 22 & 0xFF,
                                 (value >> 14 & 0xFE) | 1, value >> 7 & 0xFF,
                                 (value << 1 & 0xFE) | 1])  # fmt: skip


def pes_timestamps(packet: bytes | bytearray) -> tuple[int, int | None] | None:
    """The PTS (and DTS) a packet's PES header starts with, 90 kHz (None: none here)."""
    at = _pes_ts_at(packet)
    if at is None:
        return None
    pts = _read_ts(packet[at : at + 5])
    dts = _read_ts(packet[at + 5 : at + 10]) if packet[at - 2] & 0x40 else None
    return pts, dts


def _pes_ts_at(packet: bytes | bytearray) -> int | None:
    """Where a PUSI packet's PES PTS starts (its DTS follows when flagged)."""
    if not packet[1] & 0x40:
        return None
    start = payload_offset(packet)
    if start is None or start + 19 > TS_PACKET:
        return None
    if packet[start : start + 3] != b"\x00\x00\x01" or packet[start + 3] in _NO_PES_HEADER:
        return None
    if not packet[start + 7] & 0x80:
        return None
    return start + 9


def _unwrap(value: int, near: int, wrap: int) -> int:
    """``value`` (modulo ``wrap``) moved to the lap nearest ``near``."""
    return value + round((near - value) / wrap) * wrap


class Restamper:
    """Turns each segment into output packets on one continuous timeline (see module)."""

    def __init__(self, *, max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES) -> None:
        self._max_bytes = max_segment_bytes
        self.offset: int | None = None  # 27 MHz, a multiple of 300: output = input + offset
        self.last_due: int | None = None
        # Per output PID: the latest PTS sent (output 90 kHz, unwrapped) and the smallest
        # step between its PTS (a frame, or an audio PES) as last measured.
        self.last_pts: dict[int, int] = {}
        self.step_pts: dict[int, int] = {}
        self._streams: tuple[Stream, ...] = ()
        self._version = 0
        self.reanchors = 0

    def restamp(
        self, data: bytes, *, duration_seconds: float, discontinuity: bool, floor: int
    ) -> list[OutPacket]:
        """A segment's output packets, PAT and PMT first; ``floor``: the earliest output time
        its first packet may be due (the pacer's clock now plus a margin)."""
        packets = split_packets(data, max_bytes=self._max_bytes)
        programme = read_programme(packets)
        pids = self._map(programme)
        dues = _due_times(packets, programme.pcr_pid, duration_seconds)
        found = _pts_by_pid(packets, pids, dues)
        earliest = {pid: min(values) for pid, values in found.items()}
        offset = self._anchor(dues[0], earliest, discontinuity, duration_seconds, floor)
        shift = offset // TICKS_PER_PTS
        start = dues[0] + offset
        out = [OutPacket(start, bytearray(pat_packet())),
               OutPacket(start, bytearray(pmt_packet(self._streams, self._version)))]  # fmt: skip
        for packet, due in zip(packets, dues, strict=True):
            target = pids.get(pid_of(packet))
            if target is None:
                continue  # PSI, SDT, data, a separate PCR PID: the output has its own
            buf = bytearray(packet)
            buf[1] = (buf[1] & 0xE0) | target >> 8
            buf[2] = target & 0xFF
            at = _pes_ts_at(buf)
            if at is not None:
                near = due // TICKS_PER_PTS
                _write_ts(buf, at, _unwrap(_read_ts(buf[at : at + 5]), near, PTS_WRAP) + shift)
                if buf[at - 2] & 0x40:
                    dts = _unwrap(_read_ts(buf[at + 5 : at + 10]), near, PTS_WRAP) + shift
                    _write_ts(buf, at + 5, dts)
            out.append(OutPacket(due + offset, buf))
        self.offset = offset
        self.last_due = dues[-1] + offset
        for pid, values in found.items():
            ordered = sorted(set(values))
            steps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
            if steps:
                self.step_pts[pid] = min(steps)
            self.last_pts[pid] = ordered[-1] + shift
        return out

    def _map(self, programme: Programme) -> dict[int, int]:
        """Input PID -> output PID (first video, then up to 8 audio streams, in PMT order);
        the output PMT's version goes up when what it lists changes."""
        pids: dict[int, int] = {}
        streams: list[Stream] = []
        video = [s for s in programme.streams if s.stream_type in VIDEO_TYPES][:1]
        audio = [s for s in programme.streams if s.stream_type in AUDIO_TYPES]
        for s in video:
            pids[s.pid] = VIDEO_PID
            streams.append(Stream(VIDEO_PID, s.stream_type, s.es_info))
        for index, s in enumerate(audio[:MAX_AUDIO_STREAMS]):
            pids[s.pid] = FIRST_AUDIO_PID + index
            streams.append(Stream(FIRST_AUDIO_PID + index, s.stream_type, s.es_info))
        if not streams:
            raise SegmentRefused("the segment's PMT lists no video or audio stream")
        if tuple(streams) != self._streams:
            if self._streams:
                self._version = (self._version + 1) % 32
            self._streams = tuple(streams)
        return pids

    def _anchor(
        self,
        first_due: int,
        earliest: dict[int, int],
        discontinuity: bool,
        duration_seconds: float,
        floor: int,
    ) -> int:
        offset = self.offset
        if offset is not None and self.last_due is not None:
            expected = first_due + offset
            # PCR-interpolated ends of two segments meet only roughly: a second each way.
            gap = max(2 * duration_seconds, 1.0) * PCR_HZ
            if discontinuity or not self.last_due - PCR_HZ <= expected <= self.last_due + gap:
                offset = None  # the input's timeline broke: anchor again
        if offset is None:
            self.reanchors += 1
            candidates = [floor - first_due]
            # Every stream goes on one frame (or audio PES) after the last one it sent: the
            # one that ran furthest sets the offset, so no PTS goes back. Packets this puts
            # before the last one's due time just go out at once (PCRs are slot times).
            for pid, first in earliest.items():
                if pid in self.last_pts:
                    follows = self.last_pts[pid] + self.step_pts.get(pid, PTS_HZ // 25)
                    candidates.append((follows - first) * TICKS_PER_PTS)
            if len(candidates) == 1 and self.last_due is not None:
                candidates.append(self.last_due + 1 - first_due)
            offset = max(candidates)
        offset = max(offset, floor - first_due)  # a stall: the timeline leaps by it
        return -(-offset // TICKS_PER_PTS) * TICKS_PER_PTS


def _due_times(packets: Sequence[bytes], pcr_pid: int, duration_seconds: float) -> list[int]:
    """Each packet's input time (27 MHz, unwrapped): interpolated between the PCRs on
    ``pcr_pid``, extrapolated at the rate between them (or the segment's duration) at
    either end, and never going back."""
    marks: list[tuple[int, int]] = []
    for index, packet in enumerate(packets):
        if pid_of(packet) == pcr_pid:
            pcr = pcr_of(packet)
            if pcr is not None:
                near = marks[-1][1] if marks else pcr
                marks.append((index, _unwrap(pcr, near, PCR_BASE_WRAP * TICKS_PER_PTS)))
    if not marks:
        raise SegmentRefused(f"no PCR on the programme's PCR PID {pcr_pid:#06x}")
    per_packet = duration_seconds * PCR_HZ / len(packets)
    (i0, t0), (i1, t1) = marks[0], marks[-1]
    if i1 > i0 and t1 > t0:
        per_packet = (t1 - t0) / (i1 - i0)
    dues: list[int] = []
    mark = 0
    last = t0 - int(i0 * per_packet)
    for index in range(len(packets)):
        while mark + 1 < len(marks) and marks[mark + 1][0] <= index:
            mark += 1
        i_a, t_a = marks[mark]
        if index < i_a or mark + 1 == len(marks):
            due = t_a + int((index - i_a) * per_packet)
        else:
            i_b, t_b = marks[mark + 1]
            due = t_a + (t_b - t_a) * (index - i_a) // (i_b - i_a)
        last = max(last, due)
        dues.append(last)
    return dues


def _pts_by_pid(
    packets: Sequence[bytes], pids: dict[int, int], dues: Sequence[int]
) -> dict[int, list[int]]:
    """Each mapped stream's PES PTS by output PID (input 90 kHz, unwrapped near their
    packets' times)."""
    found: dict[int, list[int]] = {}
    for packet, due in zip(packets, dues, strict=True):
        target = pids.get(pid_of(packet))
        if target is not None:
            stamps = pes_timestamps(packet)
            if stamps is not None:
                pts = _unwrap(stamps[0], due // TICKS_PER_PTS, PTS_WRAP)
                found.setdefault(target, []).append(pts)
    return found
