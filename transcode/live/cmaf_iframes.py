"""Live CMAF I-frame playlists: each video track's keyframe fragments as I-frame entries.

A live CMAF video track has one fragment per keyframe (``cmaf.py``), so each keyframe is a
byte range of its ``.m4s``: from its ``moof`` to the end of its first sample, as VOD's
CMAF I-frames are (``transcode.measure_cmaf`` scans the fragments; this reuses it). The
ranges are read, with :mod:`transcode.fmp4`'s bounded reader, from the bytes the writer
has just produced (no second read of the file), and the segment's I-frames follow the TS
live rules of :mod:`transcode.live.iframes`: at most ``MAX_PER_SEGMENT`` (thinned evenly),
each lasting until the next, the last until its segment's end, timed from the segment's
own ``tfdt``.

Each track's ``cmaf-iframes.m3u8`` lists the I-frames of its run of segments in the live
window, built from its ``cmaf.m3u8`` (:meth:`IFrameRuns.playlist`): the same ``EXT-X-MAP``,
discontinuities, discontinuity sequence, target duration and dates (plus each I-frame's
offset), ``EXT-X-I-FRAMES-ONLY``. Numbering is the TS live I-frames' (``run_base``): a run
that starts at segment ``s`` numbers its first I-frame ``s * MAX_PER_SEGMENT`` and counts up
as segments slide out, so a number only grows across restarts and handovers.

A run is cut short like the TS one: by a segment the track missed (its CMAF run starts
again), or one without a keyframe fragment. After a handover the window's CMAF segments
of the other publisher have no I-frames here: the playlist lists this publisher's, the
tail of the ``cmaf.m3u8`` run (the manager's handover window has no CMAF segments, so
the two runs start together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from transcode import fmp4, hls
from transcode.live.iframes import IFrame, run_base
from transcode.measure import SegmentScan
from transcode.measure_cmaf import scan_fragments


def scan_media(name: str, media: bytes, track: fmp4.Track) -> SegmentScan:
    """The keyframe fragments of a media segment the writer produced for ``track`` (bytes
    in memory, read with the bounded reader); MalformedMp4 if it is not one."""
    return scan_fragments(name, fmp4.read_segment(media, (track,)), track.codec)


class IFrameRuns:
    """Each CMAF video track's run of segment I-frames in the live window, and its number."""

    def __init__(self) -> None:
        # By track: (sequence number, I-frames) of each segment of its run, oldest first.
        self._runs: dict[str, list[tuple[int, tuple[IFrame, ...]]]] = {}
        # By track: the number of the first I-frame its run lists.
        self._sequence: dict[str, int] = {}

    def slide(
        self, seq: int, frames: Mapping[str, tuple[IFrame, ...]], runs: Mapping[str, int]
    ) -> None:
        """Add segment ``seq``'s I-frames by track (a track left out, or with none, ends its
        run, and so does a gap in the numbers); ``runs``: each CMAF track's run length in
        the window, which a run never outgrows."""
        kept = {t: f for t, f in frames.items() if f and runs.get(t, 0) > 0}
        for track in set(self._runs) - set(kept):
            del self._runs[track], self._sequence[track]  # its run starts again
        for track, own in kept.items():
            run = self._runs.setdefault(track, [])
            if run and run[-1][0] != seq - 1:
                run.clear()  # numbers jumped (a window taken over): not one run
            if not run:
                self._sequence[track] = run_base(seq)
            run.append((seq, own))
            slid = run[: max(0, len(run) - runs[track])]
            self._sequence[track] += sum(len(f) for _, f in slid)
            del run[: len(slid)]

    def measured(self) -> dict[str, tuple[list[int], list[float]]]:
        """Each track's I-frame sizes and durations (its I-frame bandwidth)."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for track, run in self._runs.items():
            frames = [f for _, own in run for f in own]
            out[track] = ([f.length for f in frames], [f.duration for f in frames])
        return out

    def playlist(self, track: str, media: hls.MediaPlaylist) -> hls.MediaPlaylist | None:
        """The I-frame playlist of ``track`` over its ``cmaf.m3u8`` ``media`` (None: no run,
        or one that is not the tail of that playlist)."""
        run = self._runs.get(track)
        if not run:
            return None
        first = len(media.segments) - len(run)
        if first < 0 or run[0][0] != media.media_sequence + first:
            return None
        segments = media.segments
        entries = [
            replace(
                segment,
                duration=frame.duration,
                program_date_time=None
                if segment.program_date_time is None
                else segment.program_date_time + timedelta(seconds=frame.at),
                # A segment's discontinuity goes on its first I-frame; the run's first is
                # implied by the discontinuity sequence, as in the media playlist.
                discontinuity=n == 0 and index > first and segment.discontinuity,
                byterange=(frame.length, frame.offset),
                dateranges=(),
            )
            for index, (segment, (_, own)) in enumerate(
                zip(segments[first:], run, strict=True), first
            )
            for n, frame in enumerate(own)
        ]
        return hls.MediaPlaylist(
            segments=entries,
            media_sequence=self._sequence[track],
            discontinuity_sequence=media.discontinuity_sequence
            + sum(s.discontinuity for s in segments[1 : first + 1]),
            endlist=media.endlist,
            iframes_only=True,
            target_duration=media.target_duration,
        )
