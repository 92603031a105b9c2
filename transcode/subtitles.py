"""Subtitle renditions of a VOD asset: each text track cut into WebVTT segments beside the video.

A subtitle rendition has exactly the video's segments: segment *i* covers the media time of
the video's segment *i* (the rungs are cut at the same instants), an empty stretch is an
empty segment, so a player switching subtitles on keeps the same sequence numbers. Each
segment's ``X-TIMESTAMP-MAP`` ties media time to the video's MPEG-TS clock, read from the
first keyframe of the first rung (media time 0: the ladder keeps the source's timeline,
``ffmpeg_cmd``), so cues show on the frames they were written for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcode.errors import EncodeFailed
from transcode.hls import MediaPlaylist, Segment, render_media
from transcode.measure import PTS_HZ, RungMeasurement, scan_segment
from transcode.tracks import ATTACHED, Track
from transcode.webvtt import Cue, extract_webvtt, segment_texts

MEDIA_NAME = "index.m3u8"
# Where each track's whole WebVTT is converted to, in its staging directory; removed after.
_EXTRACTED = ".extracted.vtt"


def segment_name(index: int) -> str:
    """The file of subtitle segment ``index``."""
    return f"seg_{index:05d}.vtt"


@dataclass(frozen=True, slots=True)
class VodSubtitles:
    """The subtitle tracks of one packaging run and where their text comes from."""

    source: str
    tracks: tuple[Track, ...]
    input_options: Mapping[str, str] | None = None
    ffmpeg_bin: str = "ffmpeg"

    async def write(
        self,
        temp: Path,
        video: RungMeasurement,
        rung_dir: Path,
        *,
        first_keyframe_seconds: float | None = None,
    ) -> None:
        """Write every track's segments and media playlist under ``temp``, aligned with
        ``video`` (a rung's measurement, its files clear under ``rung_dir``).
        ``first_keyframe_seconds``: the media time of its first keyframe when already known
        (CMAF: from its fragments); None reads it from the first MPEG-TS segment."""
        if first_keyframe_seconds is None:
            first = await asyncio.to_thread(scan_segment, rung_dir / video.segments[0].uri)
            if not first.keyframes:
                raise EncodeFailed("the first video segment has no keyframe to time subtitles by")
            first_keyframe_seconds = first.keyframes[0].pts / PTS_HZ
        pts_offset = first_keyframe_seconds
        boundaries = _boundaries(video.segments)
        for track in self.tracks:
            folder = temp / track.name
            cues = await self._cues(track, folder / _EXTRACTED)
            await asyncio.to_thread(_write_track, folder, cues, boundaries, pts_offset, video)

    async def _cues(self, track: Track, out: Path) -> tuple[Cue, ...]:
        attached = track.index == ATTACHED
        try:
            return await extract_webvtt(
                track.uri if attached else self.source,
                out,
                stream=None if attached else track.index,
                input_options=self.input_options,
                ffmpeg_bin=self.ffmpeg_bin,
            )
        finally:
            await asyncio.to_thread(out.unlink, True)  # missing_ok


def _boundaries(segments: Sequence[Segment]) -> list[tuple[float, float]]:
    bounds = []
    start = 0.0
    for segment in segments:
        bounds.append((start, start + segment.duration))
        start += segment.duration
    return bounds


def _write_track(
    folder: Path,
    cues: Sequence[Cue],
    boundaries: Sequence[tuple[float, float]],
    pts_offset: float,
    video: RungMeasurement,
) -> None:
    texts = segment_texts(cues, boundaries, pts_offset=pts_offset)
    for index, text in enumerate(texts):
        (folder / segment_name(index)).write_text(text)
    segments = [
        Segment(segment_name(index), video_segment.duration)
        for index, video_segment in enumerate(video.segments)
    ]
    media = MediaPlaylist(segments, playlist_type="VOD", endlist=True)
    (folder / MEDIA_NAME).write_text(render_media(media))
