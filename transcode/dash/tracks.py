"""The CMAF tracks of an HLS master as the MPD lists them: checked, aligned and timed (pure).

Each video variant and audio rendition of the master is a :class:`Track`: its media
playlist (every segment CMAF, i.e. with an EXT-X-MAP, clear, not byte-ranged), its
Representation's attributes (the variant's video codec, size and frame rate; the
rendition's audio codec, from the CODECS of the variants naming its group), its
``$Number$`` template (``transcode.dash.template``) and its segments' start times in
ticks (see ``transcode.dash``). Anything the MPD could not state truthfully is
:class:`InvalidPlaylist` naming the field.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import accumulate, compress, pairwise, repeat
from operator import attrgetter, is_, lt, ne, or_

from transcode import hls
from transcode.dash.model import CHANNELS_SCHEME, Descriptor, Representation
from transcode.dash.template import Matched, NumberTemplate, number_template
from transcode.errors import InvalidPlaylist

# RFC 6381 sample entries of video tracks; every other codec in a variant's CODECS is audio.
_VIDEO_CODECS = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "dvh1", "dvhe"})
# Sample entries of one coding format: Representations a player may switch between
# seamlessly share one decoder, so each format gets an AdaptationSet of its own (ISO/IEC
# 23009-1 5.3.3.1: switching inside a set must not need a decoder change).
_CODEC_FAMILIES = {"avc1": "avc", "avc3": "avc", "hvc1": "hevc", "hev1": "hevc", "dvh1": "dvhe"}
# FFmpeg's MP4 muxer gives an audio track its sample rate as timescale; one of these is
# taken for audioSamplingRate (any other timescale says nothing about the rate).
_SAMPLE_RATES = frozenset(
    {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
)
# How far a segment's duration may be from a whole number of ticks. Not closer: a live
# window lists every track with the video's durations (2.002 s is not whole at 48 kHz),
# and rounding each start once from the running total keeps that from adding up. A
# timescale too coarse for a millisecond is not a media track's (mdhd) timescale.
_TICK_SLACK_SECONDS = 1e-3
_MAX_TIMESCALE = 2**32 - 1  # mdhd's 32-bit field
_MAX_SEGMENT_SECONDS = 86400.0
# Field readers for whole-list scans.
_MAP = attrgetter("map")
_MAP_URI = attrgetter("map.uri")
_BYTERANGE = attrgetter("byterange")
_KEY = attrgetter("key")
_DATE = attrgetter("program_date_time")
_DURATION = attrgetter("duration")
_DISCONTINUITY = attrgetter("discontinuity")


@dataclass(frozen=True, slots=True)
class TrackTiming:
    """What the MPD needs of a CMAF track that its HLS playlist does not say."""

    timescale: int  # the track's mdhd timescale (e.g. 90000 video, 48000 audio)
    first_start: int  # its first segment's tfdt (baseMediaDecodeTime), in timescale ticks
    # Measured peak bits/s of this track alone; 0: a video variant's BANDWIDTH (which
    # counts its audio too). An audio rendition needs it: the master does not say it.
    bandwidth: int = 0


@dataclass(frozen=True, slots=True)
class Track:
    """One variant or rendition, checked, with its segments' ticks."""

    key: str  # the URI the master gives it
    rep: Representation  # without a segment template
    kind: str  # "video" or "audio"
    rendition: hls.Rendition | None
    playlist: hls.MediaPlaylist
    timing: TrackTiming
    ticks: tuple[int, ...]  # t of every segment, and the end of the last
    template: NumberTemplate


def tracks(
    master: hls.MasterPlaylist,
    playlists: Mapping[str, hls.MediaPlaylist],
    timings: Mapping[str, TrackTiming],
    *,
    trim: bool,
) -> list[Track]:
    """The master's CMAF tracks, video first, checked and aligned (``trim``: cut to the
    segments every track has, as a live window's rungs may differ at its ends)."""
    pathway = master.steering.pathway_id if master.steering is not None else None
    variants = [v for v in master.variants if v.pathway_id in (None, pathway)]
    if not variants:
        raise InvalidPlaylist("variants", "the master has no variant to list")
    audio_codecs = _audio_codecs(variants)
    wanted: list[tuple[str, str, hls.Variant | hls.Rendition]] = []
    seen: set[str] = set()
    for variant in variants:
        if variant.uri not in seen:
            seen.add(variant.uri)
            wanted.append((variant.uri, "video", variant))
    for audio in master.renditions:
        if audio.type == "AUDIO" and audio.uri not in seen:
            seen.add(audio.uri)
            wanted.append((audio.uri, "audio", audio))
    for name, given in (("playlists", playlists), ("timings", timings)):
        missing = [key for key, _, _ in wanted if key not in given]
        if missing:
            raise InvalidPlaylist(name, f"none given for {', '.join(map(repr, missing))}")
    chosen = {key: playlists[key] for key, _, _ in wanted}
    if trim:
        chosen = _common_run(chosen)
    ids = _representation_ids([key for key, _, _ in wanted])
    # Work already done for another track of this MPD (the rungs share their numbers and
    # durations; one result serves each alike track, and identical ticks share one object).
    matched: Matched = {}
    timed: dict[tuple[object, ...], tuple[int, ...]] = {}
    tracks = []
    for key, kind, source in wanted:
        playlist, timing = chosen[key], timings[key]
        _check_segments(key, playlist, dated=trim)
        ticks = _ticks(key, playlist, timing, timed)
        rendition: hls.Rendition | None = None
        if isinstance(source, hls.Variant):
            rep = _video_representation(ids[key], source, timing)
        else:
            rep = _audio_representation(ids[key], source, timing, audio_codecs)
            rendition = source
        template = number_template(key, playlist, ids[key], matched)
        tracks.append(Track(key, rep, kind, rendition, playlist, timing, ticks, template))
    _check_aligned(tracks)
    return tracks


def _common_run(playlists: Mapping[str, hls.MediaPlaylist]) -> dict[str, hls.MediaPlaylist]:
    """Each playlist cut to the sequence numbers every one of them lists."""
    for key, playlist in playlists.items():
        if not playlist.segments:
            raise InvalidPlaylist("segments", f"{key!r} has no segments")
    low = max(p.media_sequence for p in playlists.values())
    high = min(p.media_sequence + len(p.segments) for p in playlists.values())
    if low >= high:
        raise InvalidPlaylist("segments", "the playlists have no segment in common")
    out = {}
    for key, p in playlists.items():
        if p.media_sequence == low and p.media_sequence + len(p.segments) == high:
            out[key] = p
            continue
        cut = low - p.media_sequence
        skipped = sum(1 for s in p.segments[1 : cut + 1] if s.discontinuity)
        segments = list(p.segments[cut : high - p.media_sequence])
        if segments[0].discontinuity:  # implied by the discontinuity sequence number now
            segments[0] = replace(segments[0], discontinuity=False)
        out[key] = hls.MediaPlaylist(
            segments=segments,
            media_sequence=low,
            discontinuity_sequence=p.discontinuity_sequence + skipped,
            endlist=p.endlist and high == p.media_sequence + len(p.segments),
        )
    return out


def _check_segments(key: str, playlist: hls.MediaPlaylist, *, dated: bool) -> None:
    # Whole-list scans in C (map, any): a live window has thousands of segments per track
    # and the MPD is rendered on every reload; the slow search runs only to name a culprit.
    segments = playlist.segments
    if not segments:
        raise InvalidPlaylist("segments", f"{key!r} has no segments")
    if playlist.iframes_only:
        raise InvalidPlaylist("iframes_only", f"{key!r} is an I-frame playlist")
    maps = list(map(_MAP, segments))
    checks: tuple[tuple[bool, str, str, Callable[[hls.Segment], bool]], ...] = (
        (
            any(map(is_, maps, repeat(None))),
            "segments.map",
            "is not CMAF (no EXT-X-MAP): MPEG-TS",
            lambda s: s.map is None,
        ),
        (
            any(map(_BYTERANGE, segments)) or any(map(_BYTERANGE, filter(None, maps))),
            "segments.byterange",
            "a SegmentTemplate cannot address a byte range",
            lambda s: (
                s.byterange is not None or (s.map is not None and s.map.byterange is not None)
            ),
        ),
        (
            any(map(_KEY, segments)),
            "segments.key",
            "is AES-128 encrypted whole: DASH has no such scheme",
            lambda s: s.key is not None,
        ),
        (
            dated and not all(map(_DATE, segments)),
            "segments.program_date_time",
            "is not dated",
            lambda s: s.program_date_time is None,
        ),
    )
    for failed, field, reason, bad in checks:
        if failed:
            position = next(i for i, s in enumerate(segments, playlist.media_sequence) if bad(s))
            raise InvalidPlaylist(field, f"{key!r} segment {position}: {reason}")


def _ticks(
    key: str,
    playlist: hls.MediaPlaylist,
    timing: TrackTiming,
    timed: dict[tuple[object, ...], tuple[int, ...]],
) -> tuple[int, ...]:
    """Every segment's start in ticks, then the last one's end (rounded once from the
    running total of the HLS durations, so rounding never accumulates)."""
    scale = timing.timescale
    if not isinstance(scale, int) or not 0 < scale <= _MAX_TIMESCALE:
        raise InvalidPlaylist("timings.timescale", f"{key!r}: not a 32-bit timescale: {scale}")
    start = timing.first_start
    if not isinstance(start, int) or start < 0:
        raise InvalidPlaylist("timings.first_start", f"{key!r}: must be ticks >= 0")
    durations = tuple(map(_DURATION, playlist.segments))
    known = timed.get((scale, start, durations))
    if known is not None:
        return known
    if not (
        math.isfinite(sum(durations))
        and 0 < min(durations) <= max(durations) < _MAX_SEGMENT_SECONDS
    ):
        bad = next(i for i, d in enumerate(durations) if not 0 < d < _MAX_SEGMENT_SECONDS)
        raise InvalidPlaylist(
            "segments.duration",
            f"{key!r} segment {playlist.media_sequence + bad}: {durations[bad]} s",
        )
    if scale * _TICK_SLACK_SECONDS < 0.5:  # coarser than a millisecond: can it time them?
        for position, duration in enumerate(durations, playlist.media_sequence):
            exact = duration * scale
            if abs(exact - round(exact)) > _TICK_SLACK_SECONDS * scale:
                raise InvalidPlaylist(
                    "timings.timescale",
                    f"{key!r} segment {position}: {duration} s is {exact:.3f} ticks of "
                    f"{scale}, too coarse a timescale to time it: is {scale} this track's?",
                )
    ticks = (start, *[start + round(total * scale) for total in accumulate(durations)])
    if not all(map(lt, ticks, ticks[1:])):
        bad = next(i for i, (a, b) in enumerate(pairwise(ticks)) if b <= a)
        raise InvalidPlaylist(
            "segments.duration",
            f"{key!r} segment {playlist.media_sequence + bad} is shorter than a tick",
        )
    timed[scale, start, durations] = ticks
    return ticks


def _check_aligned(tracks: Sequence[Track]) -> None:
    """Every track lists the same segment numbers with the same discontinuities and init
    changes (the platform's rungs and renditions are aligned: a Period is common to all)."""
    ref = tracks[0]
    shape = _shape(ref.playlist)
    for track in tracks[1:]:
        if _shape(track.playlist) != shape:
            raise InvalidPlaylist(
                "playlists",
                f"{track.key!r} is not aligned with {ref.key!r}: segment numbers, "
                "discontinuities or init segment changes differ",
            )


def _shape(playlist: hls.MediaPlaylist) -> tuple[object, ...]:
    """Sequence numbers, discontinuity numbers and where the init segment changes."""
    return (
        playlist.media_sequence,
        playlist.discontinuity_sequence,
        len(playlist.segments),
        *cuts(playlist),
    )


def cuts(playlist: hls.MediaPlaylist) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The index of every segment after a discontinuity or an init segment change, and
    whether each is a discontinuity (segments all have a map: see ``_check_segments``)."""
    segments = playlist.segments
    uris = list(map(_MAP_URI, segments))
    flags = list(map(_DISCONTINUITY, segments))
    changed = map(or_, flags[1:], map(ne, uris[1:], uris))
    where = tuple(compress(range(1, len(segments)), changed))
    return where, tuple(flags[i] for i in where)


def _audio_codecs(variants: Sequence[hls.Variant]) -> dict[str, str]:
    """The audio codec of each audio group, from the CODECS of the variants naming it."""
    out: dict[str, str] = {}
    for variant in variants:
        if variant.audio is None:
            continue
        audio = [c for c in _codec_list(variant.codecs) if c.split(".")[0] not in _VIDEO_CODECS]
        if len(set(audio)) > 1:
            raise InvalidPlaylist(
                "variants.codecs",
                f"{variant.uri!r} names several audio codecs ({', '.join(audio)}): "
                "which is each rendition's?",
            )
        if audio:
            if out.setdefault(variant.audio, audio[0]) != audio[0]:
                raise InvalidPlaylist(
                    "variants.codecs", f"variants disagree on group {variant.audio!r}'s codec"
                )
    return out


def _codec_list(codecs: str) -> list[str]:
    return [c.strip() for c in codecs.split(",") if c.strip()]


def _video_representation(ident: str, variant: hls.Variant, timing: TrackTiming) -> Representation:
    video = [c for c in _codec_list(variant.codecs) if c.split(".")[0] in _VIDEO_CODECS]
    if len(video) != 1:
        raise InvalidPlaylist(
            "variants.codecs", f"{variant.uri!r}: expected one video codec in {variant.codecs!r}"
        )
    if variant.audio is None and len(_codec_list(variant.codecs)) > 1:
        raise InvalidPlaylist(
            "variants.codecs",
            f"{variant.uri!r} carries its audio muxed ({variant.codecs!r}): a CMAF track "
            "holds one medium, so audio must be a rendition",
        )
    if not variant.frame_rate > 0:
        raise InvalidPlaylist("variants.frame_rate", f"must be positive: {variant.frame_rate}")
    width, height = variant.resolution
    return Representation(
        id=ident,
        bandwidth=timing.bandwidth or variant.bandwidth,
        codecs=video[0],
        width=width,
        height=height,
        frame_rate=frame_rate(variant.frame_rate),
    )


def _audio_representation(
    ident: str, rendition: hls.Rendition, timing: TrackTiming, codecs: Mapping[str, str]
) -> Representation:
    codec = codecs.get(rendition.group_id)
    if codec is None:
        raise InvalidPlaylist(
            "variants.codecs", f"no variant names the audio codec of group {rendition.group_id!r}"
        )
    if timing.bandwidth <= 0:
        raise InvalidPlaylist(
            "timings.bandwidth",
            f"{rendition.uri!r}: an audio rendition's bandwidth is not in the master; "
            "pass the measured one",
        )
    channels = rendition.channels
    return Representation(
        id=ident,
        bandwidth=timing.bandwidth,
        codecs=codec,
        audio_sampling_rate=timing.timescale if timing.timescale in _SAMPLE_RATES else 0,
        audio_channels=Descriptor(CHANNELS_SCHEME, str(channels)) if channels > 0 else None,
    )


def codec_family(rep: Representation) -> str:
    """The coding format of a video Representation ("avc", "hevc", "av01"...): the video
    AdaptationSet it belongs to."""
    entry = rep.codecs.split(".")[0]
    return _CODEC_FAMILIES.get(entry, entry)


def frame_rate(fps: float) -> str:
    """A FrameRateType: an integer, or N/1001 for the NTSC rates (29.97 -> 30000/1001)."""
    nearest = round(fps)
    if abs(fps - nearest) < 1e-3:
        return str(nearest)
    ntsc = round(fps * 1001 / 1000)
    if abs(fps - ntsc * 1000 / 1001) < 1e-3:
        return f"{ntsc * 1000}/1001"
    ratio = Fraction(fps).limit_denominator(1001)
    return f"{ratio.numerator}/{ratio.denominator}"


def _representation_ids(keys: Sequence[str]) -> dict[str, str]:
    """Each playlist's Representation@id: its directory's name ("720p", "audio-zh") where
    those are distinct tokens, else its position ("r0", "r1", ...)."""
    names = [posixpath.basename(posixpath.dirname(key.split("?")[0])) for key in keys]
    usable = all(
        n and n.isprintable() and not any(c.isspace() or c == "$" for c in n) for n in names
    )
    if usable and len(set(names)) == len(names):
        return dict(zip(keys, names, strict=True))
    return {key: f"r{i}" for i, key in enumerate(keys)}
