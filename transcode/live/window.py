"""A live channel's window: the segments every rung and rendition share, slid as segments are
published, and its media playlists.

The window keeps, per rung or rendition, the sizes of the run of segments it has up to the
latest one: one that misses a segment starts again, and its playlist lists only that run,
from the sequence and discontinuity numbers its first segment has in every rung.
Subtitle renditions list the same segments as ``.vtt`` files, never encrypted.

A video rung of a clear channel also keeps each segment's I-frames (``iframes.py``) and gets
an I-frame playlist over them: the same segments, discontinuities, discontinuity sequence
and program date-times as its media playlist, numbered by I-frame. Its run is cut short
like the sizes', and also where a segment could not be scanned or has no keyframe.

A channel packaged as CMAF too (``cmaf.py``) keeps, per CMAF track, the size and init
segment of each of its latest CMAF segments (a run like ``sizes``: a segment the remux
missed starts it again), and each track's ``cmaf.m3u8`` lists them: the same segments,
durations, dates, discontinuities and numbers as the TS playlists, as ``.m4s`` files with
``EXT-X-MAP``.

A segment's date ranges (SCTE-35 signals) are listed before it in every playlist; when it
slides out, those still running (an out whose return is to come) move to the new first
segment, as RFC 8216bis keeps a date range while a segment it covers is listed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from transcode import hls
from transcode.cues import closes, still_runs
from transcode.live.iframes import IFrame, run_base
from transcode.measure import bits_per_second

SEGMENT_SUFFIX = ".ts"
CMAF_SUFFIX = ".m4s"
CAPTION_SUFFIX = ".vtt"
# Date ranges carried past their own segment at most (the oldest go first).
_MAX_CARRIED = 16


@dataclass
class Window:
    """The live window of one channel (shared by every rung, which stay aligned)."""

    seqs: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)
    discontinuities: list[bool] = field(default_factory=list)
    keys: list[hls.SegmentKey | None] = field(default_factory=list)  # None: clear
    # By sequence number, the date ranges listed before a segment (most have none).
    dateranges: dict[int, tuple[hls.DateRange, ...]] = field(default_factory=dict)
    # Per rung, the sizes of the latest segments it has (all of the window, unless it was
    # missing from a segment: then those since).
    sizes: dict[str, list[int]] = field(default_factory=dict)
    discontinuity_sequence: int = 0
    # Per video rung, the I-frames of each of its latest segments (a run like ``sizes``),
    # and the number of the first I-frame of the run's first segment (``iframes.py``).
    iframes: dict[str, list[tuple[IFrame, ...]]] = field(default_factory=dict)
    iframe_sequence: dict[str, int] = field(default_factory=dict)
    # Per CMAF track, (size, init segment file name) of each of its latest CMAF segments.
    cmaf: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def slide(
        self,
        seq: int,
        duration: float,
        start: datetime,
        disc: bool,
        sizes: dict[str, int],
        key: hls.SegmentKey | None,
        *,
        length: int,
        dateranges: tuple[hls.DateRange, ...] = (),
        iframes: Mapping[str, tuple[IFrame, ...]] | None = None,
        cmaf: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        """Add a published segment (``sizes`` and, of the video rungs that were scanned,
        ``iframes`` by rung; ``cmaf``: each CMAF track's segment size and init) and keep the
        last ``length``."""
        self.seqs.append(seq)
        self.durations.append(duration)
        self.starts.append(start)
        self.discontinuities.append(disc)
        self.keys.append(key)
        if dateranges:
            self.dateranges[seq] = dateranges
        for rung in set(self.sizes) - set(sizes):
            del self.sizes[rung]  # missing from this segment: its run starts again
        for rung, size in sizes.items():
            self.sizes.setdefault(rung, []).append(size)
        # A segment with no keyframe ends a run: every segment of a run lists an I-frame.
        scanned = {r: f for r, f in (iframes or {}).items() if f and r in sizes}
        for rung in set(self.iframes) - set(scanned):
            del self.iframes[rung], self.iframe_sequence[rung]  # its I-frame run starts again
        for rung, frames in scanned.items():
            if rung not in self.iframes:
                self.iframe_sequence[rung] = run_base(seq)
            self.iframes.setdefault(rung, []).append(frames)
        made = cmaf or {}
        for track in set(self.cmaf) - set(made):
            del self.cmaf[track]  # its CMAF run starts again
        for track, entry in made.items():
            self.cmaf.setdefault(track, []).append(entry)
        while len(self.seqs) > length:
            if self.discontinuities[0]:
                self.discontinuity_sequence += 1
            gone = self.dateranges.pop(self.seqs[0], ())
            del self.seqs[0], self.durations[0], self.starts[0]
            del self.discontinuities[0], self.keys[0]
            if gone and (carried := self._carried(gone, 0)):
                self.dateranges[self.seqs[0]] = carried
        for values in self.sizes.values():
            del values[: len(values) - len(self.seqs)]
        for entries in self.cmaf.values():
            del entries[: len(entries) - len(self.seqs)]
        for rung, runs in self.iframes.items():
            slid = runs[: len(runs) - len(self.seqs)]
            self.iframe_sequence[rung] += sum(len(frames) for frames in slid)
            del runs[: len(slid)]
        if self.discontinuities and self.discontinuities[0]:
            # A window never starts with a discontinuity tag: it is implied by the sequence.
            self.discontinuities[0] = False
            self.discontinuity_sequence += 1

    def _carried(self, earlier: Sequence[hls.DateRange], index: int) -> tuple[hls.DateRange, ...]:
        """Segment ``index``'s date ranges, after those of ``earlier`` (ranges of segments
        no longer before it) that still run at its start."""
        ends = closes(r for ranges in self.dateranges.values() for r in ranges)
        ends.update(closes(earlier))
        kept = [r for r in earlier if still_runs(r, self.starts[index], ends)]
        return (*kept[-_MAX_CARRIED:], *self.dateranges.get(self.seqs[index], ()))

    def measured(self) -> dict[str, tuple[list[int], list[float]]]:
        """Each rung's segment sizes and durations (what its bandwidth is measured from)."""
        return {
            rung: (sizes, self.durations[len(self.durations) - len(sizes) :])
            for rung, sizes in self.sizes.items()
        }

    def iframe_measured(self) -> dict[str, tuple[list[int], list[float]]]:
        """Each video rung's I-frame sizes and durations (its I-frame bandwidth), for the
        rungs that have an I-frame run."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for rung, runs in self.iframes.items():
            frames = [f for segment in runs for f in segment]
            out[rung] = ([f.length for f in frames], [f.duration for f in frames])
        return out

    def target_duration(self, segment_seconds: float) -> int:
        """The playlists' EXT-X-TARGETDURATION: the segment duration, or a longer segment's."""
        # Pinned: RFC 8216 forbids the target duration to change between reloads.
        longest = max((math.floor(d + 0.5) for d in self.durations), default=0)
        return max(math.ceil(segment_seconds), longest)

    def rates(self, names: Sequence[str]) -> list[tuple[str, int]]:
        """The average bits/s of each of ``names`` that has segments in the window."""
        measured = self.measured()
        return [(n, bits_per_second(*measured[n])[1]) for n in names if n in measured]

    def playlists(
        self,
        names: Sequence[str],
        captions: Collection[str],
        *,
        segment_seconds: float,
        endlist: bool,
    ) -> dict[str, str]:
        """The media playlist of each of ``names`` that has segments (``captions``: the
        subtitle renditions among them)."""
        if not self.seqs:
            return {}
        segments = self._segments()
        # By the rendition's first segment and kind: usually one text for all rungs.
        texts: dict[tuple[int, bool], str] = {}
        out = {}
        for name in names:
            first = len(self.seqs) - len(self.sizes.get(name, ()))
            if first == len(self.seqs):
                continue  # no segment yet
            caption = name in captions
            if (first, caption) not in texts:
                owned = segments[first:]
                if caption:
                    owned = [replace(s, uri=caption_name(s.uri), key=None) for s in owned]
                texts[first, caption] = self._render(first, owned, segment_seconds, endlist)
            out[name] = texts[first, caption]
        return out

    def cmaf_playlists(self, *, segment_seconds: float, endlist: bool) -> dict[str, str]:
        """Each CMAF track's ``cmaf.m3u8`` (:meth:`cmaf_media` rendered)."""
        media = self.cmaf_media(segment_seconds=segment_seconds, endlist=endlist)
        return {track: hls.render_media(playlist) for track, playlist in media.items()}

    def cmaf_media(self, *, segment_seconds: float, endlist: bool) -> dict[str, hls.MediaPlaylist]:
        """Each CMAF track's media playlist: its run of ``.m4s`` segments, each after the
        ``EXT-X-MAP`` of its init segment, numbered and dated as the TS playlists."""
        segments = self._segments()
        out = {}
        for track, entries in self.cmaf.items():
            if not entries:
                continue
            first = len(self.seqs) - len(entries)
            owned = [
                replace(
                    s,
                    uri=cmaf_name(seq),
                    map=hls.SegmentMap(init),
                )
                for s, seq, (_, init) in zip(
                    segments[first:], self.seqs[first:], entries, strict=True
                )
            ]
            out[track] = self._media(first, owned, segment_seconds, endlist)
        return out

    def cmaf_measured(self) -> dict[str, tuple[list[int], list[float]]]:
        """Each CMAF track's segment sizes and durations (its bandwidth)."""
        return {
            track: (
                [size for size, _ in entries],
                self.durations[len(self.durations) - len(entries) :],
            )
            for track, entries in self.cmaf.items()
            if entries
        }

    def _segments(self) -> list[hls.Segment]:
        return [
            hls.Segment(
                uri=f"{seq:010d}{SEGMENT_SUFFIX}",
                duration=duration,
                program_date_time=start,
                discontinuity=disc,
                key=key,
                dateranges=self.dateranges.get(seq, ()),
            )
            for seq, duration, start, disc, key in zip(
                self.seqs,
                self.durations,
                self.starts,
                self.discontinuities,
                self.keys,
                strict=True,
            )
        ]

    def _render(
        self, first: int, owned: list[hls.Segment], segment_seconds: float, endlist: bool
    ) -> str:
        """The media playlist of a run from window index ``first``, rendered."""
        return hls.render_media(self._media(first, owned, segment_seconds, endlist))

    def _media(
        self, first: int, owned: list[hls.Segment], segment_seconds: float, endlist: bool
    ) -> hls.MediaPlaylist:
        """The media playlist of a run from window index ``first``."""
        # Its first segment's discontinuity is implied by the sequence number, as in the
        # window's own first segment.
        owned = [*owned]
        earlier = [r for q in self.seqs[:first] for r in self.dateranges.get(q, ())]
        owned[0] = replace(owned[0], discontinuity=False, dateranges=self._carried(earlier, first))
        return hls.MediaPlaylist(
            segments=owned,
            media_sequence=self.seqs[first],
            discontinuity_sequence=self.discontinuity_sequence
            + sum(self.discontinuities[1 : first + 1]),
            endlist=endlist,
            target_duration=self.target_duration(segment_seconds),
        )

    def iframe_playlists(
        self, names: Sequence[str], *, segment_seconds: float, endlist: bool
    ) -> dict[str, str]:
        """The I-frame playlist of each of ``names`` that has an I-frame run: the target
        duration, discontinuities and segment dates of its media playlist, numbered by
        I-frame."""
        target = self.target_duration(segment_seconds)
        out = {}
        for name in names:
            runs = self.iframes.get(name)
            if not runs:
                continue
            first = len(self.seqs) - len(runs)
            # Every segment of a run lists an I-frame, so a discontinuity goes on its first
            # one (the run's first segment's is implied by the sequence, as in the media
            # playlist) and the discontinuity numbers are the media playlist's.
            entries = [
                hls.Segment(
                    uri=f"{self.seqs[index]:010d}{SEGMENT_SUFFIX}",
                    duration=frame.duration,
                    program_date_time=self.starts[index] + timedelta(seconds=frame.at),
                    discontinuity=n == 0 and index > first and self.discontinuities[index],
                    byterange=(frame.length, frame.offset),
                )
                for index, frames in enumerate(runs, first)
                for n, frame in enumerate(frames)
            ]
            out[name] = hls.render_media(
                hls.MediaPlaylist(
                    segments=entries,
                    media_sequence=self.iframe_sequence[name],
                    discontinuity_sequence=self.discontinuity_sequence
                    + sum(self.discontinuities[1 : first + 1]),
                    endlist=endlist,
                    iframes_only=True,
                    target_duration=target,
                )
            )
        return out


def cmaf_name(sequence: int) -> str:
    """The CMAF segment file of sequence number ``sequence``: unpadded, so the MPD's
    template is a plain ``$Number$`` (FFmpeg's DASH reader takes a pad width of one digit
    only, and a live number has ten)."""
    return f"{sequence}{CMAF_SUFFIX}"


def caption_name(segment: str) -> str:
    """The subtitle file of the segment file ``segment``."""
    return segment.removesuffix(SEGMENT_SUFFIX) + CAPTION_SUFFIX
