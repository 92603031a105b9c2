"""A live video rung's I-frames: each published segment's keyframes as I-frame playlist entries.

The keyframes come from :func:`transcode.measure.scan_segment` (the TS scan VOD measures
with), run on the clear file a segment is published from. Each becomes an entry of the
rung's ``iframes.m3u8``: its byte range in the segment file and, as RFC 8216 section
4.3.3.6 asks, the time until the next I-frame, the last one's until the end of its
segment (where the next segment's first keyframe is). An entry's duration is fixed once
its segment is published: a live playlist never changes an entry it listed (section 6.2.1).

Times inside a segment come from the keyframes' PTS, counted from its first keyframe,
which FFmpeg's segmenter cuts on; in a segment whose first frame is not a keyframe (a
passthrough source cut elsewhere) every I-frame is dated early by the frames before its
first keyframe, which the scan does not time.

Numbering: every entry of an I-frame playlist is a media segment with a number of its own
(``EXT-X-MEDIA-SEQUENCE`` counts I-frames, not segment files), and a number must only grow
between reloads, even across a node restart or a handover that starts the run again
without the old run's counts. So a segment lists at most :data:`MAX_PER_SEGMENT` I-frames
and a run that starts at segment ``s`` numbers its first I-frame ``s * MAX_PER_SEGMENT``
(:func:`run_base`): a run's count at any later segment ``t`` is then at most
``t * MAX_PER_SEGMENT``, the number any later run would start from. Lowering the constant
would break that promise for channels already numbered with the old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcode.errors import EncodeFailed
from transcode.measure import PTS_HZ, Keyframe, SegmentScan, scan_segment

# The most I-frames one segment lists (more are thinned evenly): a 6 s segment of 1 s
# GOPs has 6; trick play gains nothing from every frame of an all-intra source.
MAX_PER_SEGMENT = 32
# PTS are 33-bit (ISO/IEC 13818-1): a segment may straddle the wrap.
_PTS_WRAP = 1 << 33
# Durations are rendered to the microsecond; an I-frame never lasts less than this.
_MIN_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class IFrame:
    """One keyframe of a published segment file, as an I-frame playlist lists it."""

    offset: int  # bytes into the segment file
    length: int  # bytes, up to the next video frame
    at: float  # seconds after the segment's start
    duration: float  # seconds until the next I-frame, or the segment's end


def segment_iframes(
    scan: SegmentScan, duration: float, *, hz: int = PTS_HZ, origin: int | None = None
) -> tuple[IFrame, ...]:
    """The I-frames of a scanned segment of ``duration`` seconds (at most MAX_PER_SEGMENT).

    Keyframe times are ``hz`` ticks; ``origin`` is the segment's start in them when it is
    known (a CMAF segment's ``tfdt``, ``cmaf_iframes.py``), else its first keyframe's."""
    keys = thinned(scan.keyframes, MAX_PER_SEGMENT)
    if not keys:
        return ()
    first = keys[0].pts if origin is None else origin
    times: list[float] = []
    for key in keys:
        # Clamped into the segment and kept in order: a keyframe without a PTS, or one
        # with a broken one, cannot make an entry negative or longer than its segment.
        at = ((key.pts - first) % _PTS_WRAP) / hz
        times.append(min(max(at, times[-1] if times else 0.0), duration))
    ends = [*times[1:], duration]
    return tuple(
        IFrame(key.offset, key.length, round(at, 6), round(max(end - at, _MIN_SECONDS), 6))
        for key, at, end in zip(keys, times, ends, strict=True)
    )


def thinned(keys: Sequence[Keyframe], most: int) -> tuple[Keyframe, ...]:
    """At most ``most`` of ``keys``, evenly spread, the first always among them."""
    if len(keys) <= most:
        return tuple(keys)
    step = len(keys) / most
    return tuple(keys[int(i * step)] for i in range(most))


def run_base(sequence: int) -> int:
    """The number of the first I-frame of a run that starts at segment ``sequence``."""
    return sequence * MAX_PER_SEGMENT


def scan_files(paths: Mapping[str, Path]) -> dict[str, SegmentScan]:
    """Each rung's segment file scanned (run on a worker thread: it reads every file whole);
    one that cannot be scanned (incomplete, gone) is left out, and its I-frame run ends."""
    out = {}
    for rung, path in paths.items():
        try:
            out[rung] = scan_segment(path)
        except (EncodeFailed, OSError):
            continue
    return out
