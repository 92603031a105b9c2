"""Measure packaged output: bitrates from real segment sizes, CODECS from the SPS, I-frame ranges.

Everything comes from FFmpeg's own segment list plus one pass over each
segment's MPEG-TS packets (memory-mapped, scanned with a compiled pattern in
C), so no extra ffprobe process is started per rung. The scan reads the TS
headers FFmpeg's muxer writes: the video PES start packets on PID 0x100 and
their random-access flag, which FFmpeg sets on every keyframe.

A CMAF rendition is measured by :mod:`transcode.measure_cmaf` with the same
``RungMeasurement`` and ``summarize``.
"""

from __future__ import annotations

import math
import mmap
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcode.errors import EncodeFailed
from transcode.hls import Segment
from transcode.hls_parse import parse_media

TS_PACKET = 188
# FFmpeg's mpegts muxer numbers elementary streams from 0x100 in mapping order;
# every command in ffmpeg_cmd maps the video first, the audio second.
VIDEO_PID = 0x100
_PTS_WRAP = 1 << 33
PTS_HZ = 90_000


def _table(test: Callable[[int], bool]) -> bytes:
    return bytes(0xFF if test(value) else 0x00 for value in range(256))


# Per-byte tests on TS packet headers, as bytes.translate tables (0xFF = true).
# Byte 1: payload_unit_start_indicator set (a PES starts here) + VIDEO_PID's high bits.
_IS_PES_START_PID_HIGH = _table(lambda b: b == 0x40 | (VIDEO_PID >> 8))
_IS_PID_LOW = _table(lambda b: b == VIDEO_PID & 0xFF)  # byte 2
_HAS_ADAPTATION = _table(lambda b: bool(b & 0x20))  # byte 3: adaptation_field_control
_IS_NONZERO = _table(lambda b: b != 0)  # byte 4: adaptation_field_length
_HAS_RANDOM_ACCESS = _table(lambda b: bool(b & 0x40))  # byte 5: random_access_indicator
_SET = b"\xff"
_SPS = re.compile(rb"\x00\x00\x01[\x07\x27\x47\x67](...)", re.DOTALL)

AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


@dataclass(frozen=True, slots=True)
class Keyframe:
    """One keyframe inside a segment file: its byte range and presentation time."""

    offset: int
    length: int  # up to the next video frame (or the end of the file)
    pts: int  # 90 kHz ticks


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """One segment file's size and keyframes."""

    name: str
    size: int
    keyframes: tuple[Keyframe, ...]
    avc_codec: str | None  # from the SPS of its first keyframe, e.g. "avc1.64001f"
    starts_with_keyframe: bool  # its first video frame is a keyframe


@dataclass(frozen=True, slots=True)
class CmafTrack:
    """A CMAF rendition's single track as its init segment and first fragment say."""

    init: str  # the init segment's file name, beside the media segments
    codec: str  # RFC 6381, e.g. "avc1.64001f" or "mp4a.40.2"
    timescale: int
    first_start: int  # tfdt of the first media segment (timescale ticks)


@dataclass(frozen=True, slots=True)
class RungMeasurement:
    """What a rendition measured: segment and I-frame lists and their bitrates."""

    segments: tuple[Segment, ...]
    iframes: tuple[Segment, ...]
    duration_seconds: float
    peak_bps: int  # the highest segment bitrate (BANDWIDTH)
    average_bps: int  # total bits / total duration (AVERAGE-BANDWIDTH)
    iframe_peak_bps: int
    iframe_average_bps: int
    avc_codec: str  # e.g. "avc1.4d401f"
    every_segment_starts_with_keyframe: bool
    cmaf: CmafTrack | None = None  # None: MPEG-TS segments


def read_segment_list(playlist: Path) -> list[tuple[str, float]]:
    """FFmpeg's finished playlist as (segment file name, duration) pairs.

    Raises ``EncodeFailed`` when the playlist is missing, empty or unfinished, which is
    how FFmpeg's HLS muxer leaves it when a write fails (it exits 0 even on ENOSPC).
    """
    try:
        text = playlist.read_text()
    except FileNotFoundError as err:
        raise EncodeFailed(f"ffmpeg wrote no playlist in {playlist.parent.name}") from err
    parsed = parse_media(text) if text.strip() else None
    if parsed is None or not parsed.endlist or not parsed.segments:
        raise EncodeFailed(f"ffmpeg left an unfinished playlist in {playlist.parent.name}")
    return [(s.uri, s.duration) for s in parsed.segments]


def scan_segment(path: Path) -> SegmentScan:
    """Find every keyframe (offset, length, PTS) and the SPS in one MPEG-TS segment."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as err:
        raise EncodeFailed(f"segment {path.name} is missing") from err
    if size == 0 or size % TS_PACKET:
        # A short write (a full disk) leaves a partial TS packet at the end.
        raise EncodeFailed(f"segment {path.name} is incomplete ({size} bytes)")
    count = size // TS_PACKET
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        # One strided copy per header byte (C loops over size/188 bytes), turned into
        # 0xFF/0x00 masks and ANDed as big integers: Python then only visits the
        # keyframes, a few per segment, instead of every packet or every frame.
        starts_mask = _mask(data, 1, _IS_PES_START_PID_HIGH) & _mask(data, 2, _IS_PID_LOW)
        keys_mask = (
            starts_mask
            & _mask(data, 3, _HAS_ADAPTATION)
            & _mask(data, 4, _IS_NONZERO)  # adaptation field length
            & _mask(data, 5, _HAS_RANDOM_ACCESS)
        )
        starts = starts_mask.to_bytes(count, "big")
        keys = keys_mask.to_bytes(count, "big")
        keyframes: list[Keyframe] = []
        avc_codec: str | None = None
        index = keys.find(_SET)
        while index != -1:
            pos = index * TS_PACKET
            following = starts.find(_SET, index + 1)
            end = following * TS_PACKET if following != -1 else size
            payload = pos + 5 + data[pos + 4]
            keyframes.append(Keyframe(pos, end - pos, _pes_pts(data, payload)))
            if avc_codec is None:
                sps = _SPS.search(data, payload, pos + TS_PACKET * 4)
                if sps is not None:
                    avc_codec = "avc1." + sps.group(1).hex()
            index = keys.find(_SET, index + 1)
        first_start = starts.find(_SET)
    starts_with_keyframe = first_start != -1 and first_start == keys.find(_SET)
    return SegmentScan(path.name, size, tuple(keyframes), avc_codec, starts_with_keyframe)


def scan_finished(
    rung_dir: Path, scans: dict[str, SegmentScan], name_of: Callable[[int], str]
) -> None:
    """Scan, into ``scans``, the segments FFmpeg has finished (the next one exists) so far.

    ``name_of(n)`` is the n-th segment's file name. Overlapping the scan with FFmpeg's
    own writing keeps it off the critical path; a segment that cannot be scanned yet
    is left for ``measure_rung`` to retry and judge.
    """
    index = len(scans)
    while os.path.exists(rung_dir / name_of(index + 1)):
        name = name_of(index)
        try:
            scans[name] = scan_segment(rung_dir / name)
        except (EncodeFailed, OSError):
            return
        index += 1


def measure_rung(
    rung_dir: Path, playlist_name: str, scans: Mapping[str, SegmentScan] | None = None
) -> RungMeasurement:
    """Measure one rendition written by FFmpeg under ``rung_dir`` (reusing earlier scans)."""
    listed = read_segment_list(rung_dir / playlist_name)
    known = scans or {}
    return summarize(
        [
            (uri, duration, known.get(uri) or scan_segment(rung_dir / uri))
            for uri, duration in listed
        ]
    )


def measure_audio(rendition_dir: Path, playlist_name: str) -> RungMeasurement:
    """Measure an audio-only rendition: its segments and bitrates (no I-frames, no video)."""
    listed = read_segment_list(rendition_dir / playlist_name)
    sizes = [(rendition_dir / uri).stat().st_size for uri, _ in listed]
    durations = [duration for _, duration in listed]
    peak, average = bits_per_second(sizes, durations)
    return RungMeasurement(
        segments=tuple(Segment(uri, duration) for uri, duration in listed),
        iframes=(),
        duration_seconds=sum(durations),
        peak_bps=peak,
        average_bps=average,
        iframe_peak_bps=0,
        iframe_average_bps=0,
        avc_codec="",
        every_segment_starts_with_keyframe=True,  # every AAC frame stands alone
    )


def bits_per_second(sizes: Sequence[int], durations: Sequence[float]) -> tuple[int, int]:
    """Peak and average bits/s of segments (bytes, seconds): rounded up, >= 1, average <= peak.

    RFC 8216 (4.3.4.2) makes BANDWIDTH an upper bound of every segment's bitrate, so the
    peak rounds up, and the average the same way. Segments without a duration are skipped.
    Every BANDWIDTH / AVERAGE-BANDWIDTH (VOD, live, catch-up) comes from here.
    """
    timed = [(size, d) for size, d in zip(sizes, durations, strict=True) if d > 0]
    if not timed:
        return 1, 1
    peak = max(1, math.ceil(max(size * 8 / d for size, d in timed)))
    total_bits = sum(size for size, _ in timed) * 8
    average = math.ceil(total_bits / sum(d for _, d in timed))
    return peak, max(1, min(average, peak))


def summarize(
    listed: Sequence[tuple[str, float, SegmentScan]], *, hz: int = PTS_HZ, wrap: int = _PTS_WRAP
) -> RungMeasurement:
    """Bitrates and the I-frame playlist from (name, duration, scan) per segment (keyframe
    times in ``hz`` ticks, wrapping at ``wrap``)."""
    segments = tuple(Segment(uri, duration) for uri, duration, _ in listed)
    total_seconds = sum(duration for _, duration, _ in listed)
    avc_codec = next((scan.avc_codec for _, _, scan in listed if scan.avc_codec), None)
    if avc_codec is None:
        raise EncodeFailed("no H.264 sequence parameter set found in the output")

    # Keyframe times relative to the first one; the last runs to the end of the media.
    flat = [(uri, k) for uri, _, scan in listed for k in scan.keyframes]
    if not flat:
        raise EncodeFailed("no keyframes found in the output")
    first_pts = flat[0][1].pts
    times = [((k.pts - first_pts) % wrap) / hz for _, k in flat]
    times.append(total_seconds)
    iframes = tuple(
        Segment(
            uri,
            round(max(times[index + 1] - times[index], 0.001), 6),
            byterange=(key.length, key.offset),
        )
        for index, (uri, key) in enumerate(flat)
    )
    peak, average = bits_per_second(
        [scan.size for _, _, scan in listed], [duration for _, duration, _ in listed]
    )
    iframe_peak, iframe_average = bits_per_second(
        [key.length for _, key in flat], [f.duration for f in iframes]
    )
    return RungMeasurement(
        segments=segments,
        iframes=iframes,
        duration_seconds=total_seconds,
        peak_bps=peak,
        average_bps=average,
        iframe_peak_bps=iframe_peak,
        iframe_average_bps=iframe_average,
        avc_codec=avc_codec,
        every_segment_starts_with_keyframe=all(scan.starts_with_keyframe for _, _, scan in listed),
    )


def aac_codec(profile: str) -> str:
    """The CODECS entry for an AAC profile name from ffprobe ("LC" -> "mp4a.40.2")."""
    return f"mp4a.40.{AAC_OBJECT_TYPES.get(profile, 2)}"


def _mask(data: mmap.mmap, offset: int, table: bytes) -> int:
    """Header byte ``offset`` of every packet, as a big integer of 0xFF/0x00 bytes."""
    return int.from_bytes(data[offset::TS_PACKET].translate(table), "big")


def _pes_pts(data: mmap.mmap, start: int) -> int:
    # PES: 00 00 01 stream_id len(2) flags(2) header_len(1) then PTS (5 bytes) when flagged.
    if data[start : start + 3] != b"\x00\x00\x01" or not data[start + 7] & 0x80:
        return 0
    p = data[start + 9 : start + 14]
    return (
        ((p[0] >> 1) & 0x07) << 30
        | p[1] << 22
        | ((p[2] >> 1) & 0x7F) << 15
        | p[3] << 7
        | ((p[4] >> 1) & 0x7F)
    )
