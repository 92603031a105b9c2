"""A live channel's subtitles: the cues each epoch's FFmpeg writes, cut into one WebVTT
segment per published segment.

Each source epoch's FFmpeg decodes the source's text subtitle (or teletext) streams to
one WebVTT file per track in the epoch's directory (``source_command``), flushed packet
by packet. When segment *k* is published, every track gets the segment of the same media
time [start, end) of the epoch's timeline, with the cues read so far that overlap it; a
stretch without cues (and every slate segment: no file) is an empty segment, so subtitle
renditions keep the video's sequence numbers. The segment's ``X-TIMESTAMP-MAP`` ties its
start to the PTS of the video segment's first keyframe, read from the segment itself.

A cue is published with the first segment published after FFmpeg wrote it; FFmpeg writes a
cue when it decodes it, before the video of the same instant is encoded and segmented, so
cues are in time for their segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transcode.errors import EncodeFailed
from transcode.measure import scan_segment
from transcode.tracks import Track
from transcode.webvtt import Cue, CueTail, render_segment

CUES_NAME = "cues.vtt"
# Cues kept after they ended, for a segment published late: a few segments' worth.
_KEEP_SECONDS = 60.0


class LiveCaptions:
    """The subtitle tracks of one channel's epochs and the cues read from each."""

    def __init__(self, tracks: Sequence[Track]) -> None:
        self.tracks = tuple(tracks)
        self._tails: dict[tuple[int, str], CueTail] = {}
        self._cues: dict[tuple[int, str], list[Cue]] = {}

    def texts(
        self, epoch_number: int, directory: Path, start: float, end: float, video: Path
    ) -> dict[str, str]:
        """Each track's WebVTT for media time [start, end) of an epoch (its FFmpeg writes
        under ``directory``); ``video`` is the first rung's clear segment of that time."""
        keyframes = scan_segment(video).keyframes
        if not keyframes:
            raise EncodeFailed(f"{video.name} has no keyframe to time subtitles by")
        texts = {}
        for track in self.tracks:
            key = (epoch_number, track.name)
            tail = self._tails.get(key)
            if tail is None:
                tail = self._tails[key] = CueTail(directory / track.name / CUES_NAME)
            cues = self._cues.setdefault(key, [])
            cues.extend(tail.read_new(final=True))
            cues[:] = [c for c in cues if c.end > start - _KEEP_SECONDS]
            texts[track.name] = render_segment(
                cues, start, end, mpegts=keyframes[0].pts, local=start
            )
        return texts

    def forget(self, epoch_number: int) -> None:
        """Drop what was read of an epoch that publishes nothing more."""
        for key in [k for k in self._tails if k[0] == epoch_number]:
            del self._tails[key]
            self._cues.pop(key, None)
