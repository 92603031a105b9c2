"""A published MPEG-TS segment remuxed into CMAF samples: H.264 and AAC, no re-encoding.

The TS is read with the packet code the multicast restamper uses (``multicast/ts.py``:
PAT/PMT, payload offsets, PES timestamps), so there is one TS parser. Each PES of the
programme's first H.264 stream (type 0x1B) is one access unit, as FFmpeg's muxer writes
them: its Annex B NAL units become one length-prefixed sample, without access unit
delimiters (CMAF forbids them in ``avc1``) and without SPS/PPS (they go into ``avcC``);
it is a sync sample when it holds an IDR slice. Each PES of the first AAC stream (type
0x0F, ADTS) holds whole ADTS frames: each becomes a raw frame of 1024 samples, the
AudioSpecificConfig taken from the first header.

Times stay the TS's 90 kHz decode times, unwrapped from the segment's first one (a
segment may straddle the 33-bit wrap); the caller places them on the CMAF timeline
(``cmaf.py``). Anything that is not a readable segment raises :class:`RemuxFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from transcode.errors import EncodeFailed
from transcode.fmp4.writer import AacConfig, AvcConfig
from transcode.live.multicast.errors import SegmentRefused
from transcode.live.multicast.ts import (
    PTS_HZ,
    PTS_WRAP,
    payload_offset,
    pes_timestamps,
    pid_of,
    read_programme,
    split_packets,
)

H264_STREAM = 0x1B
ADTS_STREAM = 0x0F
AAC_FRAME_SAMPLES = 1024
_NAL_AUD, _NAL_SPS, _NAL_PPS, _NAL_IDR = 9, 7, 8, 5
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
               8000, 7350)  # fmt: skip


class RemuxFailed(EncodeFailed):
    """Raised when a TS segment cannot be remuxed: not whole TS packets, no programme, no
    H.264 or AAC stream where one is asked for, or broken NAL/ADTS framing."""


@dataclass(frozen=True, slots=True)
class EsSample:
    """One access unit or audio frame: its bytes as CMAF stores them and its 90 kHz times."""

    data: bytes
    dts: int
    pts: int
    sync: bool


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """A segment's H.264 samples and parameter sets."""

    config: AvcConfig
    samples: tuple[EsSample, ...]


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """A segment's AAC frames and their configuration."""

    config: AacConfig
    samples: tuple[EsSample, ...]


@dataclass(frozen=True, slots=True)
class Demuxed:
    """What one TS segment carries (None: no such stream)."""

    video: VideoTrack | None
    audio: AudioTrack | None


@dataclass(frozen=True, slots=True)
class _Pes:
    pts: int
    dts: int
    payload: bytes


def demux(data: bytes, *, width: int = 0, height: int = 0) -> Demuxed:
    """The first H.264 and first AAC stream of a TS segment (``width``/``height``: the
    picture size its init segment states)."""
    try:
        packets = split_packets(data)
        programme = read_programme(packets)
    except SegmentRefused as err:
        raise RemuxFailed(f"not a readable MPEG-TS segment: {err.message}") from err
    types = {s.pid: s.stream_type for s in programme.streams}
    video_pid = next((p for p, t in types.items() if t == H264_STREAM), None)
    audio_pid = next((p for p, t in types.items() if t == ADTS_STREAM), None)
    streams = _pes_streams(packets, {p for p in (video_pid, audio_pid) if p is not None})
    video = _video(streams.get(video_pid, []), width, height) if video_pid is not None else None
    audio = _audio(streams.get(audio_pid, [])) if audio_pid is not None else None
    return Demuxed(video, audio)


def _pes_streams(packets: list[bytes], pids: set[int]) -> dict[int, list[_Pes]]:
    """Every whole PES of ``pids``: its times and payload (after the PES header)."""
    open_: dict[int, tuple[int, int, bytearray]] = {}
    out: dict[int, list[_Pes]] = {pid: [] for pid in pids}
    base: int | None = None

    def close(pid: int) -> None:
        pts, dts, body = open_.pop(pid)
        out[pid].append(_Pes(pts, dts, bytes(body)))

    for packet in packets:
        pid = pid_of(packet)
        if pid not in pids:
            continue
        start = payload_offset(packet)
        if start is None:
            continue
        if packet[1] & 0x40:
            if pid in open_:
                close(pid)
            stamps = pes_timestamps(packet)
            if stamps is None:
                raise RemuxFailed(f"a PES of PID {pid:#x} has no PTS")
            pts, dts = stamps[0], stamps[1] if stamps[1] is not None else stamps[0]
            if base is None:
                base = dts
            # Unwrapped to the lap nearest the segment's first decode time.
            pts, dts = _unwrap(pts, base), _unwrap(dts, base)
            header = start + 9 + packet[start + 8]
            open_[pid] = (pts, dts, bytearray(packet[header:]))
        elif pid in open_:  # a continuation (a PES cut before this segment is skipped)
            open_[pid][2].extend(packet[start:])
    for pid in list(open_):
        close(pid)
    return out


def _unwrap(value: int, near: int) -> int:
    return value + round((near - value) / PTS_WRAP) * PTS_WRAP


def nal_units(annex_b: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    units: list[bytes] = []
    pos = annex_b.find(b"\x00\x00\x01")
    if pos == -1:
        raise RemuxFailed("an H.264 access unit has no start code")
    while pos != -1:
        begin = pos + 3
        following = annex_b.find(b"\x00\x00\x01", begin)
        end = len(annex_b) if following == -1 else following
        unit = annex_b[begin:end]
        if following != -1 and unit.endswith(b"\x00"):
            unit = unit.rstrip(b"\x00")  # the next start code's leading zero byte
        if unit:
            units.append(unit)
        pos = following
    return units


def _video(pes: list[_Pes], width: int, height: int) -> VideoTrack:
    sps: dict[bytes, None] = {}
    pps: dict[bytes, None] = {}
    samples = []
    for unit in pes:
        kept = []
        sync = False
        for nal in nal_units(unit.payload):
            kind = nal[0] & 0x1F
            if kind == _NAL_SPS:
                sps.setdefault(nal)
            elif kind == _NAL_PPS:
                pps.setdefault(nal)
            elif kind != _NAL_AUD:
                sync = sync or kind == _NAL_IDR
                kept.append(len(nal).to_bytes(4, "big") + nal)
        if kept:
            samples.append(EsSample(b"".join(kept), unit.dts, unit.pts, sync))
    if not sps or not pps:
        raise RemuxFailed("the H.264 stream carries no SPS/PPS in this segment")
    config = AvcConfig(tuple(sps), tuple(pps), width, height)
    return VideoTrack(config, tuple(samples))


def _audio(pes: list[_Pes]) -> AudioTrack:
    config: AacConfig | None = None
    samples = []
    for unit in pes:
        pos, data, n = 0, unit.payload, 0
        while pos + 7 <= len(data):
            if data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:
                raise RemuxFailed(f"ADTS sync lost at byte {pos} of an audio PES")
            header = 7 if data[pos + 1] & 0x01 else 9  # protection_absent: no CRC
            length = (data[pos + 3] & 0x03) << 11 | data[pos + 4] << 3 | data[pos + 5] >> 5
            if length < header or pos + length > len(data):
                raise RemuxFailed(f"an ADTS frame of {length} bytes overruns its PES")
            if config is None:
                config = _aac_config(data[pos : pos + 4])
            # Frames after a PES's first are dated by their place (1024 samples each).
            at = unit.pts + round(n * AAC_FRAME_SAMPLES * PTS_HZ / config.sample_rate)
            samples.append(EsSample(data[pos + header : pos + length], at, at, True))
            pos += length
            n += 1
    if config is None:
        raise RemuxFailed("the AAC stream has no ADTS frame in this segment")
    return AudioTrack(config, tuple(samples))


def _aac_config(header: bytes) -> AacConfig:
    object_type = (header[2] >> 6) + 1
    rate_index = header[2] >> 2 & 0x0F
    channels = (header[2] & 0x01) << 2 | header[3] >> 6
    if rate_index >= len(_ADTS_RATES):
        raise RemuxFailed(f"ADTS sampling frequency index {rate_index} is reserved")
    asc = (object_type << 11 | rate_index << 7 | channels << 3).to_bytes(2, "big")
    return AacConfig(asc, _ADTS_RATES[rate_index], channels or 2)
