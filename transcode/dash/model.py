"""Pure MPEG-DASH MPDs (ISO/IEC 23009-1): frozen dataclasses rendered straight to XML text.

Like ``transcode.hls`` the renderer builds the text directly: the origin renders a live
channel's MPD on every player reload, and a two-hour window of six tracks is tens of
thousands of ``S`` entries (``bench/test_dash.py`` measures it against rendering the same
HLS playlists). Every string that reaches an attribute or element text is escaped; a
character XML 1.0 cannot carry at all is :class:`InvalidPlaylist` naming the field.

Only what the platform writes is modelled: SegmentTemplate addressing with a
SegmentTimeline (``$Number$`` media templates), one init segment per Period, descriptors
(Role, AudioChannelConfiguration, UTCTiming) and Labels. Times are exact: durations and
Period starts are :class:`~datetime.timedelta` (microseconds), segment times are integer
ticks of a timescale. ``transcode.dash.parse`` reads the same model back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from transcode.errors import InvalidPlaylist

NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
# The segments are ISO BMFF (CMAF) fragments addressed by SegmentTemplate: the live profile
# (ISO/IEC 23009-1 section 8.4), for static and dynamic MPDs alike.
PROFILE_LIVE = "urn:mpeg:dash:profile:isoff-live:2011"
PROFILE_CMAF = "urn:mpeg:dash:profile:cmaf:2019"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
# The channel count as its value (ISO/IEC 23009-1 section 5.8.5.4): the count is what the
# HLS master knows (CHANNELS), not a CICP layout, so this scheme says exactly that.
CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
UTC_DIRECT = "urn:mpeg:dash:utc:direct:2014"
UTC_HTTP_ISO = "urn:mpeg:dash:utc:http-iso:2014"

# Characters XML 1.0 cannot carry at all (not even as character references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;"}
    | {"\r": "&#13;"}
)
_PLAIN = re.compile(r'[&<>"\t\n\r]')


@dataclass(frozen=True, slots=True)
class S:
    """One SegmentTimeline entry: ``r + 1`` segments of ``d`` ticks from ``t`` (``t`` None:
    right after the previous entry's last segment)."""

    d: int
    r: int = 0
    t: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentTemplate:
    """Number-addressed segments of one Period: ``$Number$`` of the first is ``start_number``."""

    media: str  # e.g. "$RepresentationID$/seg_$Number%05d$.m4s"
    initialization: str  # e.g. "$RepresentationID$/init.mp4"
    timescale: int
    start_number: int
    presentation_time_offset: int  # ticks: the Period's start in the track's media time
    timeline: tuple[S, ...]


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A DescriptorType element (Role, AudioChannelConfiguration, UTCTiming, ...)."""

    scheme_id_uri: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Representation:
    """One Representation; ``segment_template`` None uses its AdaptationSet's."""

    id: str
    bandwidth: int  # bits/s
    codecs: str  # RFC 6381, this track's only
    width: int = 0  # video: 0 leaves it out
    height: int = 0
    frame_rate: str = ""  # FrameRateType: "25" or "30000/1001"
    audio_sampling_rate: int = 0  # audio: 0 leaves it out
    audio_channels: Descriptor | None = None  # AudioChannelConfiguration
    segment_template: SegmentTemplate | None = None


@dataclass(frozen=True, slots=True)
class AdaptationSet:
    """A set of switchable Representations of one content type."""

    id: int
    content_type: Literal["video", "audio"]
    mime_type: str  # video/mp4, audio/mp4
    representations: tuple[Representation, ...]
    lang: str = ""  # BCP-47; "" leaves it out
    label: str = ""  # what a player's menu shows; "" leaves it out
    roles: tuple[Descriptor, ...] = ()
    segment_template: SegmentTemplate | None = None  # shared by every Representation
    # Every segment starts with a SAP of type 1 (an IDR frame, CMAF's rule) at the same
    # media time in every Representation (the platform's rungs are aligned).
    segment_alignment: bool = True
    start_with_sap: int = 1


@dataclass(frozen=True, slots=True)
class Period:
    """A Period: its start on the MPD timeline (static: from 0; dynamic: from
    availabilityStartTime) and its AdaptationSets."""

    id: str
    start: timedelta
    adaptation_sets: tuple[AdaptationSet, ...]


@dataclass(frozen=True, slots=True)
class Mpd:
    """A Media Presentation Description; the dynamic-only fields are None in a static one."""

    type: Literal["static", "dynamic"]
    profiles: tuple[str, ...]
    min_buffer_time: timedelta
    periods: tuple[Period, ...]
    media_presentation_duration: timedelta | None = None
    max_segment_duration: timedelta | None = None
    availability_start_time: datetime | None = None
    publish_time: datetime | None = None
    minimum_update_period: timedelta | None = None
    time_shift_buffer_depth: timedelta | None = None
    suggested_presentation_delay: timedelta | None = None
    utc_timings: tuple[Descriptor, ...] = ()


def render_mpd(mpd: Mpd) -> str:
    """Render an MPD to XML text (UTF-8 declared), elements in the schema's order."""
    if not mpd.periods:
        raise InvalidPlaylist("periods", "an MPD needs at least one Period")
    attrs = [
        f'xmlns="{NAMESPACE}"',
        f'profiles="{_attr("profiles", ",".join(mpd.profiles))}"',
        f'type="{mpd.type}"',
    ]
    for name, when in (
        ("availabilityStartTime", mpd.availability_start_time),
        ("publishTime", mpd.publish_time),
    ):
        if when is not None:
            attrs.append(f'{name}="{date_time(when, name)}"')
    for name, length in (
        ("mediaPresentationDuration", mpd.media_presentation_duration),
        ("minimumUpdatePeriod", mpd.minimum_update_period),
        ("minBufferTime", mpd.min_buffer_time),
        ("timeShiftBufferDepth", mpd.time_shift_buffer_depth),
        ("suggestedPresentationDelay", mpd.suggested_presentation_delay),
        ("maxSegmentDuration", mpd.max_segment_duration),
    ):
        if length is not None:
            attrs.append(f'{name}="{duration(length, name)}"')
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f"<MPD {' '.join(attrs)}>"]
    for period in mpd.periods:
        _period(out, period)
    out.extend(_descriptor("UTCTiming", d) for d in mpd.utc_timings)
    out.append("</MPD>\n")
    return "\n".join(out)


def _period(out: list[str], period: Period) -> None:
    start = duration(period.start, "periods.start")
    out.append(f'<Period id="{_attr("periods.id", period.id)}" start="{start}">')
    for aset in period.adaptation_sets:
        attrs = f'id="{aset.id}" contentType="{aset.content_type}"'
        attrs += f' mimeType="{_attr("adaptation_sets.mime_type", aset.mime_type)}"'
        if aset.lang:
            attrs += f' lang="{_attr("adaptation_sets.lang", aset.lang)}"'
        if aset.segment_alignment:
            attrs += ' segmentAlignment="true"'
        attrs += f' startWithSAP="{aset.start_with_sap}"'
        out.append(f"<AdaptationSet {attrs}>")
        if aset.label:
            out.append(f"<Label>{_attr('adaptation_sets.label', aset.label)}</Label>")
        out.extend(_descriptor("Role", role) for role in aset.roles)
        if aset.segment_template is not None:
            _template(out, aset.segment_template)
        for rep in aset.representations:
            _representation(out, rep)
        out.append("</AdaptationSet>")
    out.append("</Period>")


def _representation(out: list[str], rep: Representation) -> None:
    if rep.bandwidth <= 0:
        raise InvalidPlaylist("representations.bandwidth", f"must be positive: {rep.bandwidth}")
    ident = rep.id
    if not ident or any(c.isspace() for c in ident):
        raise InvalidPlaylist("representations.id", f"must be a token without spaces: {ident!r}")
    attrs = f'id="{_attr("representations.id", ident)}" bandwidth="{rep.bandwidth}"'
    attrs += f' codecs="{_attr("representations.codecs", rep.codecs)}"'
    if rep.width:
        attrs += f' width="{rep.width}" height="{rep.height}"'
    if rep.frame_rate:
        attrs += f' frameRate="{_attr("representations.frame_rate", rep.frame_rate)}"'
    if rep.audio_sampling_rate:
        attrs += f' audioSamplingRate="{rep.audio_sampling_rate}"'
    if rep.audio_channels is None and rep.segment_template is None:
        out.append(f"<Representation {attrs}/>")
        return
    out.append(f"<Representation {attrs}>")
    if rep.audio_channels is not None:
        out.append(_descriptor("AudioChannelConfiguration", rep.audio_channels))
    if rep.segment_template is not None:
        _template(out, rep.segment_template)
    out.append("</Representation>")


def _template(out: list[str], tpl: SegmentTemplate) -> None:
    if tpl.timescale <= 0 or tpl.start_number < 0 or tpl.presentation_time_offset < 0:
        raise InvalidPlaylist(
            "segment_template", "timescale must be positive, numbers and offsets not negative"
        )
    out.append(
        f'<SegmentTemplate timescale="{tpl.timescale}"'
        f' presentationTimeOffset="{tpl.presentation_time_offset}"'
        f' startNumber="{tpl.start_number}"'
        f' initialization="{_attr("segment_template.initialization", tpl.initialization)}"'
        f' media="{_attr("segment_template.media", tpl.media)}">'
    )
    out.append("<SegmentTimeline>")
    append = out.append
    for s in tpl.timeline:
        if s.d <= 0 or s.r < 0:
            raise InvalidPlaylist("segment_template.timeline", f"bad S entry {s}")
        if s.t is None:
            append(f'<S d="{s.d}" r="{s.r}"/>' if s.r else f'<S d="{s.d}"/>')
        else:
            if s.t < 0:
                raise InvalidPlaylist("segment_template.timeline", f"negative S@t {s.t}")
            append(f'<S t="{s.t}" d="{s.d}" r="{s.r}"/>' if s.r else f'<S t="{s.t}" d="{s.d}"/>')
    out.append("</SegmentTimeline>")
    out.append("</SegmentTemplate>")


def _descriptor(element: str, descriptor: Descriptor) -> str:
    scheme = _attr(f"{element}.scheme_id_uri", descriptor.scheme_id_uri)
    if not descriptor.value:
        return f'<{element} schemeIdUri="{scheme}"/>'
    return f'<{element} schemeIdUri="{scheme}" value="{_attr(element, descriptor.value)}"/>'


def _attr(field: str, value: str) -> str:
    """``value`` escaped for an attribute (or element text) in double quotes."""
    if _NOT_XML.search(value):
        raise InvalidPlaylist(field, f"holds a character XML cannot carry: {value!r}")
    if _PLAIN.search(value) is None:
        return value
    return value.translate(_ESCAPES)


def duration(length: timedelta, field: str) -> str:
    """An xs:duration in seconds to the microsecond: ``PT7200S``, ``PT1.5S``."""
    if length < timedelta(0):
        raise InvalidPlaylist(field, f"must not be negative: {length}")
    micros = (length.days * 86400 + length.seconds) * 1_000_000 + length.microseconds
    seconds, fraction = divmod(micros, 1_000_000)
    if not fraction:
        return f"PT{seconds}S"
    return f"PT{seconds}.{fraction:06d}".rstrip("0") + "S"


def date_time(when: datetime, field: str) -> str:
    """An xs:dateTime in UTC (``Z``), to the microsecond where it has any."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidPlaylist(field, "must be timezone-aware")
    when = when.astimezone(UTC)
    spec = "microseconds" if when.microsecond else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def timeline_ticks(timeline: Sequence[S], start: int) -> list[tuple[int, int]]:
    """Every segment of ``timeline`` as (t, d) ticks; ``start``: the t of an entry without
    one that comes first (ISO/IEC 23009-1 section 5.3.9.6: the presentationTimeOffset)."""
    out: list[tuple[int, int]] = []
    t = start
    for s in timeline:
        if s.t is not None:
            t = s.t
        for _ in range(s.r + 1):
            out.append((t, s.d))
            t += s.d
    return out
