"""A real-time UDP MPEG-TS feed carrying SCTE-35: FFmpeg makes the audio and video, this
adds a PMT entry of stream type 0x86 (CRC rewritten) and sends splice_info_sections built
with threefive's encoder on that PID at chosen media times, over loopback UDP as FFmpeg
paces it (``-re``). Also the sections themselves, and broken ones."""

from __future__ import annotations

import array
import contextlib
import itertools
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import threefive
from threefive.crc import crc32
from threefive.descriptors import SegmentationDescriptor

from tests.support.net import free_udp_port

CUE_PID = 0x1F0
PTS_HZ = 90_000
_PACKET = 188
_PTS_MASK = (1 << 33) - 1


def _finish(cue: threefive.Cue) -> bytes:
    cue.encode()
    return bytes(cue.bytes())


def splice_insert(
    event_id: int, pts: int | None, *, out: bool, duration: float | None = None
) -> bytes:
    """A splice_insert (``pts`` None: splice_immediate) as section bytes."""
    command = threefive.SpliceInsert()
    command.splice_event_id = event_id
    command.splice_event_cancel_indicator = False
    command.out_of_network_indicator = out
    command.program_splice_flag = True
    command.duration_flag = duration is not None
    command.break_auto_return = True
    command.break_duration = duration
    command.splice_immediate_flag = pts is None
    command.time_specified_flag = pts is not None
    command.pts_time = None if pts is None else pts / PTS_HZ
    command.event_id_compliance_flag = True
    command.unique_program_id, command.avail_num, command.avails_expected = 1, 0, 0
    cue = threefive.Cue()
    cue.command = command
    return _finish(cue)


def time_signal(pts: int, *, segmentation_type: int, event_id: int,
                duration: float | None = None) -> bytes:  # fmt: skip
    """A time_signal with one segmentation descriptor as section bytes."""
    command = threefive.TimeSignal()
    command.time_specified_flag = True
    command.pts_time = pts / PTS_HZ
    descriptor = SegmentationDescriptor()
    descriptor.segmentation_event_id = f"{event_id:#010x}"
    descriptor.segmentation_event_cancel_indicator = False
    descriptor.segmentation_event_id_compliance_indicator = True
    descriptor.program_segmentation_flag = True
    descriptor.segmentation_duration_flag = duration is not None
    descriptor.segmentation_duration = duration
    descriptor.delivery_not_restricted_flag = True
    descriptor.segmentation_type_id = segmentation_type
    descriptor.segmentation_upid_type, descriptor.segmentation_upid_length = 0, 0
    descriptor.segmentation_upid = ""
    descriptor.segment_num, descriptor.segments_expected = 0, 0
    descriptor.sub_segment_num, descriptor.sub_segments_expected = 0, 0
    cue = threefive.Cue()
    cue.command = command
    cue.descriptors = [descriptor]
    return _finish(cue)


def with_crc(body: bytes) -> bytes:
    """``body`` (a section without its CRC_32) with a correct one."""
    return body + crc32(body).to_bytes(4, "big")


def bad_crc(section: bytes) -> bytes:
    """``section`` with its last CRC byte flipped."""
    return section[:-1] + bytes([section[-1] ^ 0xFF])


def huge_length(section: bytes) -> bytes:
    """``section`` claiming section_length 4095 (over SCTE 35's 4093)."""
    return bytes([section[0], section[1] | 0x0F, 0xFF]) + section[3:]


def unknown_command(section: bytes) -> bytes:
    """``section`` with splice_command_type 0x42 (no such command), CRC made right."""
    body = bytearray(section[:-4])
    body[13] = 0x42
    return with_crc(bytes(body))


def packets(section: bytes, counter: Callable[[], int], *, pid: int = CUE_PID) -> list[bytes]:
    """``section`` split into TS packets on ``pid`` (pointer field first, 0xFF stuffing)."""
    data = b"\x00" + section
    out = []
    first = True
    while data:
        chunk, data = data[:184], data[184:]
        header = bytes([0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF,
                        0x10 | counter()])  # fmt: skip
        out.append(header + chunk + b"\xff" * (184 - len(chunk)))
        first = False
    return out


def truncated(counter: Callable[[], int]) -> list[bytes]:
    """The first packet of a 300-byte section whose second never comes (lost)."""
    section = bytes([0xFC, 0x30 | 300 >> 8, 300 & 0xFF]) + bytes(300)
    return packets(section, counter)[:1]


Build = Callable[[int, Callable[[], int]], list[bytes]]


@dataclass
class Scheduled:
    """What to send once the feed's video is ``at_seconds`` in: packets built from the
    video PTS then (``build(pts, next_counter)``)."""

    at_seconds: float
    build: Build
    sent_pts: int | None = None  # the video PTS it went out at


def section_at(lead_seconds: float, make: Callable[[int], bytes]) -> Build:
    """A builder sending ``make(video PTS + lead)`` as one whole section."""

    def build(pts: int, counter: Callable[[], int]) -> list[bytes]:
        return packets(make((pts + round(lead_seconds * PTS_HZ)) & _PTS_MASK), counter)

    return build


@dataclass
class CueFeed:
    """testsrc2 and two tones as MPEG-TS over UDP to 127.0.0.1:port, SCTE-35 added."""

    schedule: Sequence[Scheduled]
    # The first audio (lavfi): ``TONE_CHANGE`` marks a media instant in the sound itself.
    audio: str = "sine=frequency=440:sample_rate=48000"
    port: int = field(default_factory=free_udp_port)
    _proc: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def source(self) -> str:
        """The channel source reading this feed."""
        return f"udp://127.0.0.1:{self.port}"

    def start(self) -> CueFeed:
        """Start FFmpeg and the thread adding the cues and sending."""
        self._proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
             "-f", "lavfi", "-i", self.audio,
             "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
             "-map", "0:v", "-map", "1:a", "-map", "2:a",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
             "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdout is not None
        self._thread = threading.Thread(
            target=self._run, args=(self._proc.stdout,), name="scte35-feed", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop FFmpeg and the sender."""
        self._stop.set()
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, stdout: IO[bytes]) -> None:
        stream = iter(lambda: stdout.read(_PACKET), b"")
        batch: list[bytes] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for packet in inject(stream, self.schedule):
                if self._stop.is_set() or len(packet) < _PACKET:
                    return
                batch.append(packet)
                if len(batch) >= 7:
                    with contextlib.suppress(OSError):
                        out.sendto(b"".join(batch), ("127.0.0.1", self.port))
                    batch = []


def inject(stream: Iterable[bytes], schedule: Sequence[Scheduled]) -> Iterator[bytes]:
    """The TS packets of ``stream`` with the cue stream in its PMT and the ``schedule``'s
    packets before the first video packet at or past each one's time."""
    pending = sorted(schedule, key=lambda s: s.at_seconds)
    cc = 0

    def counter() -> int:
        nonlocal cc
        cc = (cc + 1) & 0x0F
        return cc

    pmt_pid, video_pid, first_pts = -1, -1, None
    for packet in stream:
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        start = bool(packet[1] & 0x40)
        if pid == 0 and start:
            pmt_pid = _first_pmt_pid(packet)
        elif pid == pmt_pid and start:
            packet, video_pid = _with_cue_stream(packet)
        elif pid == video_pid and start:
            pts = _pts(packet)
            if pts is not None:
                first_pts = pts if first_pts is None else first_pts
                since = ((pts - first_pts) & _PTS_MASK) / PTS_HZ
                while pending and pending[0].at_seconds <= since:
                    due = pending.pop(0)
                    due.sent_pts = pts
                    yield from due.build(pts, counter)
        yield packet


def tone_change(seconds: float) -> str:
    """A lavfi tone of 440 Hz turning 880 Hz at ``seconds`` of media time."""
    return f"aevalsrc=exprs=sin(2*PI*t*if(lt(t\\,{seconds:g})\\,440\\,880)):s=48000"


def high_tone_windows(segment: Path) -> list[bool]:
    """Per 20 ms of ``segment``'s sound (its loud windows), whether it is the 880 Hz tone
    (about 35 zero crossings) rather than the 440 Hz one (about 18)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(segment), "-f", "s16le", "-ac", "1", "-ar", "48000",
         "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    samples = array.array("h", pcm)
    out = []
    for start in range(0, len(samples) - 960, 960):
        window = samples[start : start + 960]
        if max(abs(x) for x in window) < 8000:
            continue  # the encoder's priming: no tone yet
        crossings = sum(1 for a, b in itertools.pairwise(window) if (a < 0) != (b < 0))
        out.append(crossings > 26)
    return out


def _payload(packet: bytes) -> bytes:
    offset = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    return packet[offset:]


def _first_pmt_pid(packet: bytes) -> int:
    payload = _payload(packet)
    section = payload[1 + payload[0] :]
    return (section[10] & 0x1F) << 8 | section[11]  # the first programme's PMT PID


def _with_cue_stream(packet: bytes) -> tuple[bytes, int]:
    """The PMT packet with a stream of type 0x86 on ``CUE_PID`` added, and the video PID."""
    header_length = _PACKET - len(_payload(packet))
    payload = _payload(packet)
    pointer = payload[0]
    section = payload[1 + pointer :]
    length = (section[1] & 0x0F) << 8 | section[2]
    body = bytearray(section[: 3 + length - 4])  # without its CRC
    info = (body[10] & 0x0F) << 8 | body[11]
    video_pid = -1
    entry = 12 + info
    while entry + 5 <= len(body):
        if body[entry] == 0x1B and video_pid < 0:
            video_pid = (body[entry + 1] & 0x1F) << 8 | body[entry + 2]
        entry += 5 + ((body[entry + 3] & 0x0F) << 8 | body[entry + 4])
    body += bytes([0x86, 0xE0 | CUE_PID >> 8, CUE_PID & 0xFF, 0xF0, 0x00])
    new_length = len(body) - 3 + 4
    body[1] = (body[1] & 0xF0) | new_length >> 8
    body[2] = new_length & 0xFF
    rebuilt = packet[:header_length] + bytes([pointer]) + payload[1 : 1 + pointer]
    rebuilt += with_crc(bytes(body))
    return rebuilt + b"\xff" * (_PACKET - len(rebuilt)), video_pid


def _pts(packet: bytes) -> int | None:
    payload = _payload(packet)
    if payload[:3] != b"\x00\x00\x01" or not payload[7] & 0x80:
        return None
    p = payload[9:14]
    return (p[0] >> 1 & 0x07) << 30 | p[1] << 22 | (p[2] >> 1 & 0x7F) << 15 | p[3] << 7 | p[4] >> 1
