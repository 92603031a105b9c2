"""Measure CMAF renditions written by FFmpeg's HLS muxer: the init segment's facts, each
segment's fragments, bitrates and I-frames, into the same ``RungMeasurement`` as MPEG-TS.

Read with :mod:`transcode.fmp4`: the init segment gives the CODECS and timescale, each
``moof`` its samples (durations, sizes, sync flags), so segment durations are the
fragments' own and each keyframe is a byte range from its ``moof``. Two fix-ups of FFmpeg's
output come first (:func:`split_init`, :func:`align_tail`), each a move of whole fragments.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from transcode import fmp4
from transcode.errors import EncodeFailed
from transcode.ffmpeg_cmd import CMAF_INIT, FFMPEG_PLAYLIST
from transcode.hls import MediaPlaylist, Segment, SegmentMap, render_media
from transcode.measure import (
    CmafTrack,
    Keyframe,
    RungMeasurement,
    SegmentScan,
    bits_per_second,
    read_segment_list,
    summarize,
)

# How far an audio rendition's cut may sit from the video's. Players place fMP4 samples by
# their tfdt, so a cut some frames off is harmless; a cut a GOP away means a segment number
# names different media in the two tracks (a stream copy of a source whose keyframes miss
# the segment grid; a looped mezzanine drifts about 0.15 s in 10 minutes).
_CUT_SLACK_SECONDS = 0.5
# Video rungs (H.264 and HEVC alike) get their keyframes forced at the same instants, so
# their cuts differ by rounding at most; a frame off means an encoder ignored the GOP rules
# and a player switching rungs (or codecs) there would skip or repeat pictures.
_VIDEO_CUT_SLACK_SECONDS = 0.01


def split_init(rendition_dir: Path, init_name: str, first_segment: str) -> None:
    """Move media fragments FFmpeg left in the init segment into the first media segment.

    FFmpeg's HLS muxer (5.x) sizes the init segment as everything its mp4 muxer wrote before
    the first segment ended; with a fragment per keyframe that includes the first segment's
    fragments, leaving that segment an empty ``styp``. Fragments carry their own decode
    time and data offsets relative to their ``moof`` (``default-base-is-moof``), so moving
    the bytes whole, after the segment's ``styp``, makes both files what CMAF says.
    """
    init_path, first_path = rendition_dir / init_name, rendition_dir / first_segment
    init = init_path.read_bytes()
    end = fmp4.init_end(init)
    if end == len(init):
        return
    first = first_path.read_bytes()
    head = sum(b.end - b.offset for b in _leading(first, b"styp"))
    first_path.write_bytes(first[:head] + init[end:] + first[head:])
    with init_path.open("r+b") as handle:
        handle.truncate(end)


def measure_cmaf(rendition_dir: Path, playlist_name: str, init_name: str) -> RungMeasurement:
    """Measure one CMAF rendition (a video rung or an audio track) under ``rendition_dir``:
    durations from its fragments, bitrates of its media segments, I-frames as ``moof``
    byte ranges. The init segment does not count in the bitrates: a player fetches it once
    per rendition switch, not per segment (RFC 8216bis 4.4.6.2 measures media segments)."""
    listed = read_segment_list(rendition_dir / playlist_name)
    split_init(rendition_dir, init_name, listed[0][0])
    try:
        (track,) = fmp4.read_init((rendition_dir / init_name).read_bytes())
    except ValueError as err:  # more than one track
        raise EncodeFailed(f"{rendition_dir.name}: a CMAF init segment holds one track") from err
    mapped = SegmentMap(init_name)
    scanned = [(uri, _read_media(rendition_dir / uri, track)) for uri, _ in listed]
    segments = [(uri, seg, seg.duration / track.timescale) for uri, seg in scanned]
    if not segments[0][1].fragments:
        raise EncodeFailed(f"{rendition_dir.name}: its first segment has no fragment")
    cmaf = CmafTrack(init_name, track.codec, track.timescale, segments[0][1].start)
    if track.handler != "vide":
        sizes = [seg.size for _, seg, _ in segments]
        peak, average = bits_per_second(sizes, [d for _, _, d in segments])
        return RungMeasurement(
            segments=tuple(Segment(uri, round(d, 6), map=mapped) for uri, _, d in segments),
            iframes=(),
            duration_seconds=sum(d for _, _, d in segments),
            peak_bps=peak,
            average_bps=average,
            iframe_peak_bps=0,
            iframe_average_bps=0,
            avc_codec="",
            every_segment_starts_with_keyframe=all(
                f.starts_with_sync for _, seg, _ in segments for f in seg.fragments[:1]
            ),
            cmaf=cmaf,
        )
    if not track.codec:
        raise EncodeFailed(f"{rendition_dir.name}: no codec configuration in its init segment")
    scans = [(uri, round(d, 6), scan_fragments(uri, seg, track.codec)) for uri, seg, d in segments]
    measured = summarize(scans, hz=track.timescale, wrap=1 << 64)
    return replace(
        measured,
        segments=tuple(replace(s, map=mapped) for s in measured.segments),
        iframes=tuple(replace(s, map=mapped) for s in measured.iframes),
        cmaf=cmaf,
    )


def _read_media(path: Path, track: fmp4.Track) -> fmp4.MediaSegment:
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return fmp4.read_segment(m, (track,))
    except FileNotFoundError as err:
        raise EncodeFailed(f"segment {path.name} is missing") from err
    except ValueError as err:  # an empty file cannot be mapped
        raise EncodeFailed(f"segment {path.name} is empty") from err


def scan_fragments(name: str, segment: fmp4.MediaSegment, codec: str) -> SegmentScan:
    """A CMAF segment as the TS scan's facts: each keyframe-led fragment is one I-frame."""
    keyframes = tuple(
        Keyframe(f.offset, f.first_sample_end - f.offset, f.start)
        for f in segment.fragments
        if f.starts_with_sync
    )
    starts = bool(segment.fragments) and segment.fragments[0].starts_with_sync
    return SegmentScan(name, segment.size, keyframes, codec, starts)


def _leading(data: bytes, kind: bytes) -> list[fmp4.Box]:
    found = []
    for box in fmp4.boxes(data):
        if box.type != kind:
            break
        found.append(box)
    return found


def align_tail(video_dir: Path, audio_dir: Path, playlist_name: str, slack: float = 1.0) -> None:
    """Fold an audio rendition's trailing segments past the video's last one into its last
    aligned segment, when they hold under ``slack`` seconds.

    FFmpeg cuts an audio-only CMAF rendition on time alone, so audio that outlasts the video
    by a frame or two ends in an extra segment of a few milliseconds; DASH lists every
    track on one segment grid, and HLS players are better off without a 21 ms segment.
    Fragments are self-contained (``default-base-is-moof``), so the bytes move whole.
    """
    video = read_segment_list(video_dir / playlist_name)
    audio = read_segment_list(audio_dir / playlist_name)
    extra = audio[len(video) :]
    if not extra or len(video) == 0 or sum(d for _, d in extra) >= slack:
        return  # nothing to fold, or too much: left for the caller's alignment check
    kept = audio[: len(video)]
    with (audio_dir / kept[-1][0]).open("ab") as out:
        for name, _ in extra:
            data = (audio_dir / name).read_bytes()
            out.write(data[sum(b.end - b.offset for b in _leading(data, b"styp")) :])
    for name, _ in extra:
        (audio_dir / name).unlink()
    merged = [*kept[:-1], (kept[-1][0], kept[-1][1] + sum(d for _, d in extra))]
    listed = MediaPlaylist(
        tuple(Segment(uri, duration) for uri, duration in merged), playlist_type="VOD", endlist=True
    )
    (audio_dir / playlist_name).write_text(render_media(listed))


async def measure_renditions(temp: Path, names: Sequence[str], rungs: int) -> list[RungMeasurement]:
    """Measure CMAF renditions (the first ``rungs`` of ``names`` video) and refuse a video
    rung (H.264 or HEVC) whose cuts are not the first rung's to the frame, or audio whose
    segments do not match the video's one for one: DASH lists every track on one grid."""
    video = temp / names[0]
    for name in names[rungs:]:
        await asyncio.to_thread(align_tail, video, temp / name, FFMPEG_PLAYLIST)
    measured = await asyncio.gather(
        *(
            asyncio.to_thread(measure_cmaf, temp / name, FFMPEG_PLAYLIST, CMAF_INIT)
            for name in names
        )
    )
    cuts = _cuts(measured[0])
    for index, (name, m) in enumerate(zip(names, measured, strict=True)):
        mine = _cuts(m)
        if index < rungs and (
            len(mine) != len(cuts)
            or any(abs(a - b) > _VIDEO_CUT_SLACK_SECONDS for a, b in zip(mine, cuts, strict=True))
        ):
            raise EncodeFailed(
                f"rung {name}'s segments do not line up with {names[0]}'s to the frame: "
                "its keyframes are not on the ladder's GOP grid"
            )
        if len(mine) != len(cuts) or any(
            abs(a - b) > _CUT_SLACK_SECONDS for a, b in zip(mine, cuts, strict=True)
        ):
            # A stream copy cuts video at the source's keyframes and audio on time alone.
            raise EncodeFailed(
                f"{name}'s segments do not line up with {names[0]}'s: the source's keyframes "
                "do not fall on the segment grid (package it with a ladder)"
            )
    return list(measured)


def _cuts(measured: RungMeasurement) -> list[float]:
    """Where each segment after the first starts, in seconds from the first."""
    starts, at = [], 0.0
    for segment in measured.segments[:-1]:
        at += segment.duration
        starts.append(at)
    return starts
