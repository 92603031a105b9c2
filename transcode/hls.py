"""Pure HLS playlists: frozen dataclasses rendered straight to text.

Rendering builds the text directly (it is on the origin's hot path and
measured several times faster than ``m3u8``'s ``dumps``); reading a playlist back
is ``transcode.hls_parse``'s, through the ``m3u8`` library, so the tests check the
renderer against an independent reader. No file or network I/O happens here.

Encrypted segments (AES-128, whole segment) carry a :class:`SegmentKey`. The
renderer writes ``EXT-X-KEY`` only where the key in force changes: before the
first encrypted segment, at a new key URI, back to ``METHOD=NONE`` before a
clear one. A tag with ``IV=`` holds for every segment after it, so the IV is
named only for a segment whose IV is not its position's media sequence number
(RFC 8216 section 5.2), and a tag follows again once the implicit IV is right.

A segment may carry date ranges (:class:`DateRange`, ``EXT-X-DATERANGE``), rendered right
after its ``EXT-X-PROGRAM-DATE-TIME``: SCTE-35 splice signals (RFC 8216bis section
4.4.5.1.4, ``transcode.live.scte35``). Two with one ID must agree on START-DATE, and a
playlist with any must date its segments (RFC 8216bis section 4.4.5.1).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from headend.contentkeys.cipher import iv_hex
from transcode import tags
from transcode.errors import InvalidPlaylist

# Durations are rendered to the microsecond; a segment longer than N by less
# than this still fits a target duration of N (RFC 8216 compares the rounded
# duration, so this stays conformant while absorbing float noise like 6.0000001).
_TARGET_SLACK_SECONDS = 0.001

# A 30-day catch-up archive of 6 s segments is 432,000 entries per rung; the
# cache only needs the windows being served right now (live windows, recent
# catch-up requests), a few megabytes at most.
_PDT_CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """The AES-128 key of an encrypted segment and the number whose IV encrypted it."""

    uri: str  # where players fetch the 16 key bytes: {CONTENT_KEY_BASE_URL}/keys/...
    sequence: int  # the IV is this number, 128-bit big-endian


@dataclass(frozen=True, slots=True)
class DateRange:
    """An ``EXT-X-DATERANGE``; here an SCTE-35 splice_info_section carried whole (hex)."""

    id: str
    start_date: datetime  # tz-aware
    duration: float | None = None  # seconds: the range has ended (a return signal)
    planned_duration: float | None = None  # seconds: what a signal announced
    scte35_out: bytes = b""  # the section starting the range (an out)
    scte35_in: bytes = b""  # the section ending it (a return)
    scte35_cmd: bytes = b""  # any other section

    @property
    def end(self) -> datetime | None:
        """When the range ends as far as it says (None: open-ended)."""
        length = self.duration if self.duration is not None else self.planned_duration
        if length is None:
            return None if self.scte35_out else self.start_date
        return self.start_date + timedelta(seconds=length)


@dataclass(frozen=True, slots=True)
class SegmentMap:
    """An ``EXT-X-MAP``: the init segment (fMP4/CMAF ``ftyp`` + ``moov``) of the segments
    after it, until the next one."""

    uri: str
    byterange: tuple[int, int] | None = None  # (length, offset)


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment (or, in an I-frame playlist, one I-frame byte range)."""

    uri: str
    duration: float  # seconds, rendered to the microsecond
    program_date_time: datetime | None = None  # tz-aware
    discontinuity: bool = False  # EXT-X-DISCONTINUITY before this segment
    byterange: tuple[int, int] | None = None  # (length, offset)
    title: str = ""
    key: SegmentKey | None = None  # None: a clear segment
    dateranges: tuple[DateRange, ...] = ()  # EXT-X-DATERANGE tags before this segment
    map: SegmentMap | None = None  # a CMAF segment's init segment (None: MPEG-TS)


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A media playlist; target duration and version are derived when rendering."""

    segments: Sequence[Segment]
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    playlist_type: Literal["VOD", "EVENT"] | None = None
    endlist: bool = False
    iframes_only: bool = False
    independent_segments: bool = True
    # Live playlists pin this: RFC 8216 forbids the target duration to change
    # between reloads. None means ceil(longest segment).
    target_duration: int | None = None
    # EXT-X-START: where a player should begin (seconds from the first segment); a growing
    # start-over or timeshift playlist says 0, or players would start at its live edge.
    start_offset_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """One rendition in a master playlist (EXT-X-STREAM-INF)."""

    uri: str
    bandwidth: int  # peak, bits/s, measured
    average_bandwidth: int  # bits/s, measured
    codecs: str  # e.g. 'avc1.64001f,mp4a.40.2'
    resolution: tuple[int, int]
    frame_rate: float  # rendered to three decimals, as RFC 8216 advises
    pathway_id: str | None = None  # content steering pathway (CDN edge) of this copy
    # GROUP-IDs of the renditions every player of this variant chooses among (None: none).
    audio: str | None = None
    subtitles: str | None = None


@dataclass(frozen=True, slots=True)
class Rendition:
    """An alternative audio or subtitle rendition (EXT-X-MEDIA) of a master playlist."""

    type: Literal["AUDIO", "SUBTITLES"]
    group_id: str
    name: str  # what a player's menu shows
    uri: str
    language: str = ""  # BCP-47; "" when unknown
    default: bool = False
    autoselect: bool = True  # a player may pick it by the viewer's language
    channels: int = 0  # audio only: 0 leaves CHANNELS out


@dataclass(frozen=True, slots=True)
class IFrameVariant:
    """One I-frame playlist in a master playlist (EXT-X-I-FRAME-STREAM-INF)."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    resolution: tuple[int, int]
    pathway_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContentSteering:
    """The content steering server and the default pathway (EXT-X-CONTENT-STEERING)."""

    server_uri: str
    pathway_id: str  # default pathway


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    """A multivariant (master) playlist."""

    variants: Sequence[Variant]
    iframe_variants: Sequence[IFrameVariant] = ()
    steering: ContentSteering | None = None
    independent_segments: bool = True
    renditions: Sequence[Rendition] = ()


def target_duration(segments: Sequence[Segment]) -> int:
    """The smallest target duration every segment fits: ceil of the longest (at least 1)."""
    longest = 0.0
    for segment in segments:
        if segment.duration > longest:
            longest = segment.duration
    return max(1, math.ceil(longest - _TARGET_SLACK_SECONDS))


def media_version(playlist: MediaPlaylist) -> int:
    """The lowest EXT-X-VERSION the playlist's features need (RFC 8216 section 7)."""
    # Decimal EXTINF durations need version 3; byte ranges and I-frames-only need 4;
    # EXT-X-MAP needs 5 in an I-frames-only playlist and 6 in any other.
    segments = playlist.segments
    if segments and segments[0].map is not None:
        return tags.VERSION_MAP_I_FRAMES if playlist.iframes_only else tags.VERSION_MAP
    if playlist.iframes_only:
        return tags.VERSION_I_FRAMES_ONLY
    for segment in segments:
        if segment.byterange is not None:
            return tags.VERSION_BYTERANGE
    return tags.VERSION_FLOAT_EXTINF


def master_version(playlist: MasterPlaylist) -> int:
    """The lowest EXT-X-VERSION a master playlist needs: none of its tags are gated."""
    del playlist  # every attribute we emit is valid from version 1
    return tags.VERSION_BASE


def render_media(playlist: MediaPlaylist) -> str:
    """Render a media playlist to text (RFC 8216 section 4.3.3 / 4.3.2 order)."""
    segments = playlist.segments
    computed = target_duration(segments)
    target = playlist.target_duration
    if target is None:
        target = computed
    elif target < computed and _rounded_max(segments) > target:
        raise InvalidPlaylist(
            "target_duration",
            f"{target} s is shorter than a segment of {max(s.duration for s in segments):.3f} s",
        )
    if playlist.media_sequence < 0 or playlist.discontinuity_sequence < 0:
        raise InvalidPlaylist("media_sequence", "sequence numbers must not be negative")

    out: list[str] = [
        tags.EXTM3U,
        f"{tags.VERSION}{media_version(playlist)}",
        f"{tags.TARGETDURATION}{target}",
        f"{tags.MEDIA_SEQUENCE}{playlist.media_sequence}",
    ]
    if playlist.discontinuity_sequence:
        out.append(f"{tags.DISCONTINUITY_SEQUENCE}{playlist.discontinuity_sequence}")
    if playlist.playlist_type is not None:
        out.append(f"{tags.PLAYLIST_TYPE}{playlist.playlist_type}")
    if playlist.iframes_only:
        out.append(tags.I_FRAMES_ONLY)
    if playlist.independent_segments:
        out.append(tags.INDEPENDENT_SEGMENTS)
    if playlist.start_offset_seconds is not None:
        out.append(f"{tags.START}{tags.TIME_OFFSET}={playlist.start_offset_seconds:.3f}")

    append = out.append
    extinf_text: dict[float, str] = {}  # durations repeat (6.0, 6.0, ...): format each once
    # The key in force: (URI, explicit IV's sequence or None); None while segments are clear.
    in_force: tuple[str, int | None] | None = None
    ranges: dict[str, DateRange] = {}  # by ID: the first of each, to check the others against
    dated = False
    init: SegmentMap | None = None  # the EXT-X-MAP in force
    if segments and any((s.map is None) != (segments[0].map is None) for s in segments):
        raise InvalidPlaylist("segments.map", "a playlist mixes MPEG-TS and fMP4 segments")
    for position, segment in enumerate(segments, playlist.media_sequence):
        uri = segment.uri
        if "\n" in uri or "\r" in uri or not uri:
            raise InvalidPlaylist("segments.uri", f"not a single-line URI: {uri!r}")
        duration = segment.duration
        extinf = extinf_text.get(duration)
        if extinf is None:
            if not duration >= 0:  # also refuses NaN
                raise InvalidPlaylist("segments.duration", f"must not be negative: {duration}")
            extinf = extinf_text[duration] = f"{tags.EXTINF}{duration:.6f},"
        if segment.discontinuity:
            append(tags.DISCONTINUITY)
        when = segment.program_date_time
        if when is not None:
            dated = True
            append(_program_date_time(when))
        for daterange in segment.dateranges:
            append(_daterange_line(daterange, ranges.setdefault(daterange.id, daterange)))
        if segment.map is not None and segment.map != init:
            init = segment.map
            append(_map_line(init))
        key = segment.key
        if key is not None:
            wanted = (key.uri, None if key.sequence == position else key.sequence)
            if wanted != in_force:
                append(_key_line(wanted))
                in_force = wanted
        elif in_force is not None:
            append(_KEY_NONE)
            in_force = None
        byterange = segment.byterange
        if byterange is not None:
            append(f"{tags.BYTERANGE}{byterange[0]}@{byterange[1]}")
        append(f"{extinf}{segment.title}\n{uri}" if segment.title else f"{extinf}\n{uri}")
    if ranges and not dated:
        raise InvalidPlaylist("segments.dateranges", "date ranges need dated segments")
    if playlist.endlist:
        append(tags.ENDLIST)
    append("")
    return "\n".join(out)


def render_master(playlist: MasterPlaylist) -> str:
    """Render a master playlist: variants first, then I-frame variants."""
    out: list[str] = [tags.EXTM3U, f"{tags.VERSION}{master_version(playlist)}"]
    if playlist.independent_segments:
        out.append(tags.INDEPENDENT_SEGMENTS)
    if playlist.steering is not None:
        steering = playlist.steering
        server_uri = _quoted("steering.server_uri", steering.server_uri)
        pathway = _quoted("steering.pathway_id", steering.pathway_id)
        out.append(
            f"{tags.CONTENT_STEERING}{tags.SERVER_URI}={server_uri},{tags.PATHWAY_ID}={pathway}"
        )
    groups = {(r.type, r.group_id) for r in playlist.renditions}
    out.extend(_media_line(r) for r in playlist.renditions)
    for v in playlist.variants:
        if not v.frame_rate > 0:
            raise InvalidPlaylist("variants.frame_rate", f"must be positive, got {v.frame_rate}")
        own = f"{tags.FRAME_RATE}={v.frame_rate:.3f}"
        for kind, group in ((tags.MEDIA_AUDIO, v.audio), (tags.MEDIA_SUBTITLES, v.subtitles)):
            if group is not None:
                if (kind, group) not in groups:
                    raise InvalidPlaylist("variants.group", f"no {kind} rendition in {group!r}")
                own += f",{kind}={_quoted('variants.group', group)}"
        out.append(tags.STREAM_INF + _stream_attrs("variants", v, own))
        out.append(_line_uri("variants.uri", v.uri))
    for f in playlist.iframe_variants:
        uri = f"{tags.URI}={_quoted('iframe_variants.uri', f.uri)}"
        out.append(tags.I_FRAME_STREAM_INF + _stream_attrs("iframe_variants", f, uri))
    out.append("")
    return "\n".join(out)


@functools.lru_cache(maxsize=_PDT_CACHE_SIZE)
def _program_date_time(when: datetime) -> str:
    """The EXT-X-PROGRAM-DATE-TIME line, in UTC with milliseconds (memoised)."""
    # Formatting a datetime costs more than everything else a segment renders;
    # live and catch-up playlists re-render the same segments on every reload,
    # so the text is memoised. Keys compare by instant, hence the UTC form:
    # equal keys always render the same text.
    if when.tzinfo is not UTC:
        if when.tzinfo is None or when.utcoffset() is None:
            raise InvalidPlaylist("segments.program_date_time", "must be timezone-aware")
        when = when.astimezone(UTC)
    # isoformat is the fastest formatter here; swap its "+00:00" for the shorter "Z".
    return f"{tags.PROGRAM_DATE_TIME}{when.isoformat(timespec='milliseconds')[:-6]}Z"


def _daterange_line(daterange: DateRange, first: DateRange) -> str:
    """The EXT-X-DATERANGE line of ``daterange`` (``first``: the playlist's first range with
    its ID, whose START-DATE it must repeat)."""
    r = daterange
    if not r.id:
        raise InvalidPlaylist("dateranges.id", "is required")
    if r.start_date != first.start_date:
        raise InvalidPlaylist("dateranges.start_date", f"differs between ranges {r.id!r}")
    start = _program_date_time(r.start_date)[len(tags.PROGRAM_DATE_TIME) :]
    attrs = [f"{tags.ID}={_quoted('dateranges.id', r.id)}", f'{tags.START_DATE}="{start}"']
    for name, seconds in ((tags.DURATION, r.duration), (tags.PLANNED_DURATION, r.planned_duration)):
        if seconds is not None:
            if not seconds >= 0:  # also refuses NaN
                raise InvalidPlaylist("dateranges.duration", f"must not be negative: {seconds}")
            attrs.append(f"{name}={seconds:.3f}")
    for name, payload in (
        (tags.SCTE35_CMD, r.scte35_cmd),
        (tags.SCTE35_OUT, r.scte35_out),
        (tags.SCTE35_IN, r.scte35_in),
    ):
        if payload:
            attrs.append(f"{name}=0x{payload.hex().upper()}")
    return tags.DATERANGE + ",".join(attrs)


_KEY_NONE = f"{tags.KEY}{tags.METHOD}={tags.METHOD_NONE}"


@functools.lru_cache(maxsize=1024)
def _map_line(init: SegmentMap) -> str:
    line = f"{tags.MAP}{tags.URI}={_quoted('segments.map.uri', init.uri)}"
    if init.byterange is not None:
        line += f',{tags.BYTERANGE_ATTR}="{init.byterange[0]}@{init.byterange[1]}"'
    return line


def _key_line(in_force: tuple[str, int | None]) -> str:
    """The EXT-X-KEY line for (key URI, explicit IV's sequence or None) (memoised: a live
    playlist renders the same few keys on every reload)."""
    uri, sequence = in_force
    quoted = _quoted("segments.key.uri", uri)
    line = f"{tags.KEY}{tags.METHOD}={tags.METHOD_AES_128},{tags.URI}={quoted}"
    if sequence is not None:
        line += f",{tags.IV}={iv_hex(sequence)}"
    return line


def _media_line(rendition: Rendition) -> str:
    """The EXT-X-MEDIA line of an audio or subtitle rendition (RFC 8216 section 4.3.4.1)."""
    r = rendition
    if r.type not in (tags.MEDIA_AUDIO, tags.MEDIA_SUBTITLES):
        raise InvalidPlaylist("renditions.type", f"unsupported rendition type {r.type!r}")
    if r.default and not r.autoselect:
        raise InvalidPlaylist("renditions.autoselect", "a DEFAULT rendition must be AUTOSELECT")
    attrs = [
        f"{tags.TYPE}={r.type}",
        f"{tags.GROUP_ID}={_quoted('renditions.group_id', r.group_id)}",
    ]
    if r.language:
        attrs.append(f"{tags.LANGUAGE}={_quoted('renditions.language', r.language)}")
    attrs += [
        f"{tags.NAME}={_quoted('renditions.name', r.name)}",
        f"{tags.DEFAULT}={'YES' if r.default else 'NO'}",
        f"{tags.AUTOSELECT}={'YES' if r.autoselect else 'NO'}",
    ]
    if r.channels:
        attrs.append(f'{tags.CHANNELS}="{r.channels}"')
    attrs.append(f"{tags.URI}={_quoted('renditions.uri', _line_uri('renditions.uri', r.uri))}")
    return tags.MEDIA + ",".join(attrs)


def _rounded_max(segments: Sequence[Segment]) -> int:
    """The longest segment rounded half-up, as RFC 8216 compares it to the target."""
    return max((math.floor(s.duration + 0.5) for s in segments), default=0)


def _quoted(field: str, value: str) -> str:
    if '"' in value or "\n" in value or "\r" in value:
        raise InvalidPlaylist(field, f"cannot be a quoted-string: {value!r}")
    return f'"{value}"'


def _line_uri(field: str, uri: str) -> str:
    if not uri or "\n" in uri or "\r" in uri:
        raise InvalidPlaylist(field, f"not a single-line URI: {uri!r}")
    return uri


def _stream_attrs(field: str, stream: Variant | IFrameVariant, own: str) -> str:
    """The attributes a variant and an I-frame variant share, around ``own`` (the kind's)."""
    _check_rates(field, stream.bandwidth, stream.average_bandwidth, stream.resolution)
    attrs = (
        f"{tags.BANDWIDTH}={stream.bandwidth},{tags.AVERAGE_BANDWIDTH}={stream.average_bandwidth},"
        f"{tags.CODECS}={_quoted(f'{field}.codecs', stream.codecs)},"
        f"{tags.RESOLUTION}={stream.resolution[0]}x{stream.resolution[1]},{own}"
    )
    if stream.pathway_id is not None:
        attrs += f",{tags.PATHWAY_ID}={_quoted(f'{field}.pathway_id', stream.pathway_id)}"
    return attrs


def _check_rates(field: str, bandwidth: int, average: int, resolution: tuple[int, int]) -> None:
    if bandwidth <= 0 or average <= 0:
        raise InvalidPlaylist(f"{field}.bandwidth", "bandwidths must be positive")
    if average > bandwidth:
        raise InvalidPlaylist(
            f"{field}.average_bandwidth", f"{average} exceeds the peak bandwidth {bandwidth}"
        )
    if resolution[0] <= 0 or resolution[1] <= 0:
        raise InvalidPlaylist(f"{field}.resolution", f"must be positive, got {resolution}")
