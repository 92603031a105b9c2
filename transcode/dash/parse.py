"""MPDs read back into :mod:`transcode.dash.model`'s dataclasses, with ``xml.etree`` (a
reader independent of the renderer's text building: the tests check one against the other).

Bounded: at most :data:`MAX_MPD_BYTES` of text, no DOCTYPE (so no entity expansion), and
only what the model holds; anything else the renderer would never write (an unknown
element where a Representation belongs, a SegmentTemplate without a timeline, a malformed
number or duration) is :class:`InvalidPlaylist` naming the element or attribute.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Literal

from transcode.dash.model import (
    NAMESPACE,
    AdaptationSet,
    Descriptor,
    Mpd,
    Period,
    Representation,
    S,
    SegmentTemplate,
)
from transcode.errors import InvalidPlaylist

MAX_MPD_BYTES = 32 * 1024 * 1024
_NS = f"{{{NAMESPACE}}}"
_DURATION = re.compile(
    r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,6})\d*)?S)?)?", re.ASCII
)


def parse_mpd(text: str) -> Mpd:
    """Read an MPD the renderer wrote (see the module docstring for what is refused)."""
    if len(text) > MAX_MPD_BYTES:
        raise InvalidPlaylist("mpd", f"larger than {MAX_MPD_BYTES} bytes")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise InvalidPlaylist("mpd", "a DOCTYPE is not taken")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise InvalidPlaylist("mpd", f"not well-formed XML: {err}") from err
    if root.tag != f"{_NS}MPD":
        raise InvalidPlaylist("mpd", f"the root is {root.tag}, not an MPD")
    kind = root.get("type", "static")
    if kind not in ("static", "dynamic"):
        raise InvalidPlaylist("MPD@type", f"unknown type {kind!r}")
    dynamic: Literal["static", "dynamic"] = "dynamic" if kind == "dynamic" else "static"
    return Mpd(
        type=dynamic,
        profiles=tuple(_required(root, "profiles").split(",")),
        min_buffer_time=_duration(root, "minBufferTime", required=True) or timedelta(0),
        periods=tuple(_period(p) for p in root.findall(f"{_NS}Period")),
        media_presentation_duration=_duration(root, "mediaPresentationDuration"),
        max_segment_duration=_duration(root, "maxSegmentDuration"),
        availability_start_time=_date(root, "availabilityStartTime"),
        publish_time=_date(root, "publishTime"),
        minimum_update_period=_duration(root, "minimumUpdatePeriod"),
        time_shift_buffer_depth=_duration(root, "timeShiftBufferDepth"),
        suggested_presentation_delay=_duration(root, "suggestedPresentationDelay"),
        utc_timings=tuple(_descriptor(e) for e in root.findall(f"{_NS}UTCTiming")),
    )


def _period(element: ET.Element) -> Period:
    return Period(
        id=_required(element, "id"),
        start=_duration(element, "start", required=True) or timedelta(0),
        adaptation_sets=tuple(_adaptation_set(a) for a in element.findall(f"{_NS}AdaptationSet")),
    )


def _adaptation_set(element: ET.Element) -> AdaptationSet:
    content = _required(element, "contentType")
    if content not in ("video", "audio"):
        raise InvalidPlaylist("AdaptationSet@contentType", f"unexpected {content!r}")
    label = element.find(f"{_NS}Label")
    return AdaptationSet(
        id=_int(element, "id"),
        content_type="video" if content == "video" else "audio",
        mime_type=_required(element, "mimeType"),
        representations=tuple(_representation(r) for r in element.findall(f"{_NS}Representation")),
        lang=element.get("lang", ""),
        label="" if label is None else (label.text or ""),
        roles=tuple(_descriptor(e) for e in element.findall(f"{_NS}Role")),
        segment_template=_template(element.find(f"{_NS}SegmentTemplate")),
        segment_alignment=element.get("segmentAlignment", "false") == "true",
        start_with_sap=_int(element, "startWithSAP", 0),
    )


def _representation(element: ET.Element) -> Representation:
    channels = element.find(f"{_NS}AudioChannelConfiguration")
    return Representation(
        id=_required(element, "id"),
        bandwidth=_int(element, "bandwidth"),
        codecs=element.get("codecs", ""),
        width=_int(element, "width", 0),
        height=_int(element, "height", 0),
        frame_rate=element.get("frameRate", ""),
        audio_sampling_rate=_int(element, "audioSamplingRate", 0),
        audio_channels=None if channels is None else _descriptor(channels),
        segment_template=_template(element.find(f"{_NS}SegmentTemplate")),
    )


def _template(element: ET.Element | None) -> SegmentTemplate | None:
    if element is None:
        return None
    timeline = element.find(f"{_NS}SegmentTimeline")
    if timeline is None:
        raise InvalidPlaylist("SegmentTemplate", "has no SegmentTimeline")
    entries = []
    for s in timeline:
        if s.tag != f"{_NS}S":
            raise InvalidPlaylist("SegmentTimeline", f"unexpected element {s.tag}")
        t = s.get("t")
        entries.append(S(d=_int(s, "d"), r=_int(s, "r", 0), t=None if t is None else _int(s, "t")))
    return SegmentTemplate(
        media=_required(element, "media"),
        initialization=_required(element, "initialization"),
        timescale=_int(element, "timescale", 1),
        start_number=_int(element, "startNumber", 1),
        presentation_time_offset=_int(element, "presentationTimeOffset", 0),
        timeline=tuple(entries),
    )


def _descriptor(element: ET.Element) -> Descriptor:
    return Descriptor(_required(element, "schemeIdUri"), element.get("value", ""))


def _required(element: ET.Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise InvalidPlaylist(f"{_local(element)}@{name}", "is missing")
    return value


def _int(element: ET.Element, name: str, default: int | None = None) -> int:
    text = element.get(name)
    if text is None:
        if default is None:
            raise InvalidPlaylist(f"{_local(element)}@{name}", "is missing")
        return default
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise InvalidPlaylist(f"{_local(element)}@{name}", f"not an integer: {text!r}")
    return int(text)


def _duration(element: ET.Element, name: str, *, required: bool = False) -> timedelta | None:
    text = element.get(name)
    if text is None:
        if required:
            raise InvalidPlaylist(f"{_local(element)}@{name}", "is missing")
        return None
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT"):
        raise InvalidPlaylist(f"{_local(element)}@{name}", f"not an xs:duration: {text!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
        microseconds=int((fraction or "0").ljust(6, "0")),
    )


def _date(element: ET.Element, name: str) -> datetime | None:
    text = element.get(name)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidPlaylist(f"{_local(element)}@{name}", f"not an xs:dateTime: {text!r}") from err
    if when.tzinfo is None:
        raise InvalidPlaylist(f"{_local(element)}@{name}", "has no time zone")
    return when


def _local(element: ET.Element) -> str:
    return element.tag.removeprefix(_NS)
