"""The pure XMLTV writer: channels and programmes in, a DTD-valid document out.

What players need beyond the schedule goes where the DTD allows it, so the guide stays
valid (``tv_validate_file`` passes it):

- the programme id, which the catch-up route takes as ``?catchup-id=``, as
  ``<episode-num system="catchup-id">``. Players that fill ``{catchup-id}`` read a
  ``catchup-id`` attribute of ``<programme>``, which the DTD does not declare: writing it
  would make every guide invalid, and the lineup's ``{utc}``/``{utcend}`` template, which
  every player fills from the programme's times, needs no id;
- audio languages: the default (original) one as ``<language>``, which the DTD allows
  once; when there are more, the whole ordered list as
  ``<episode-num system="audio-languages">`` (space-separated), since no element of the
  DTD holds a second broadcast language (``orig-language`` means the language before
  dubbing, ``<audio><stereo>bilingual`` one stream with a language per side);
- subtitles a viewer can turn on: ``<subtitles type="teletext"><language>`` each
  (``onscreen`` would mean burned into the picture).

Every string is written through ``headend.text.sanitize``: text stored before
the platform's text rule may hold control characters, lone surrogates or
U+FFFE, which XML 1.0 cannot carry, and one of them must not turn a whole
guide (every box's ``/guide.xml.gz``, every ``ExportXmltv``) into an error.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from lxml import etree

from epg.domain import Channel, Programme, Text, zone
from epg.errors import UnknownTimezone
from headend.text import sanitize

GENERATOR = "headend-epg"
TIME_FORMAT = "%Y%m%d%H%M%S %z"
# <episode-num> systems of our own, as the DTD invites; players pick the ones they know by name.
CATCHUP_ID_SYSTEM = "catchup-id"
AUDIO_LANGUAGES_SYSTEM = "audio-languages"
DOCTYPE = '<!DOCTYPE tv SYSTEM "xmltv.dtd">'


def format_time(when: datetime, tz: Any) -> str:
    """An XMLTV time with an explicit offset, in ``tz`` (UTC when ``tz`` would overflow)."""
    try:
        return when.astimezone(tz).strftime(TIME_FORMAT)
    except OverflowError:  # only times stored before programmes were bounded
        return when.astimezone(UTC).strftime(TIME_FORMAT)


def _zone_or_utc(name: str) -> tzinfo:
    try:
        return zone(name)
    except UnknownTimezone:  # a zone since dropped from the tz database: times stay right
        return UTC


def _text_elements(
    parent: Any, tag: str, items: Sequence[Text], *, multiline: bool = False
) -> None:
    for t in items:
        el = etree.SubElement(parent, tag, {"lang": sanitize(t.lang)} if t.lang else {})
        el.text = sanitize(t.text, multiline=multiline)


def channel_element(c: Channel) -> Any:
    """A ``<channel>`` element for ``c``."""
    el = etree.Element("channel", id=sanitize(c.id))
    _text_elements(el, "display-name", c.names)
    if c.logo_url:
        etree.SubElement(el, "icon", src=sanitize(c.logo_url))
    return el


def programme_element(p: Programme, tz: Any) -> Any:
    """A ``<programme>`` element for ``p`` with times in ``tz``, in DTD order."""
    el = etree.Element(
        "programme",
        start=format_time(p.start, tz),
        stop=format_time(p.stop, tz),
        channel=sanitize(p.channel_id),
    )
    _text_elements(el, "title", p.titles)
    _text_elements(el, "sub-title", p.sub_titles)
    _text_elements(el, "desc", p.descriptions, multiline=True)
    _text_elements(el, "category", p.categories)
    _text_elements(el, "keyword", p.keywords)
    if p.audio_languages:
        etree.SubElement(el, "language").text = sanitize(p.audio_languages[0])
    for icon in p.icons:
        etree.SubElement(el, "icon", src=sanitize(icon))
    if p.episode_xmltv_ns:
        etree.SubElement(el, "episode-num", system="xmltv_ns").text = sanitize(p.episode_xmltv_ns)
    if p.episode_onscreen:
        etree.SubElement(el, "episode-num", system="onscreen").text = sanitize(p.episode_onscreen)
    if p.id:
        etree.SubElement(el, "episode-num", system=CATCHUP_ID_SYSTEM).text = sanitize(p.id)
    if len(p.audio_languages) > 1:
        etree.SubElement(el, "episode-num", system=AUDIO_LANGUAGES_SYSTEM).text = " ".join(
            [sanitize(a) for a in p.audio_languages]
        )
    if p.previously_shown:
        etree.SubElement(el, "previously-shown")
    if p.premiere:
        etree.SubElement(el, "premiere")
    for lang in p.subtitle_languages:
        subtitles = etree.SubElement(el, "subtitles", type="teletext")
        etree.SubElement(subtitles, "language").text = sanitize(lang)
    for r in p.ratings:
        rating = etree.SubElement(el, "rating", {"system": sanitize(r.system)} if r.system else {})
        etree.SubElement(rating, "value").text = sanitize(r.value)
    return el


def write_xmltv(
    channels: Sequence[Channel],
    programmes: Iterable[Programme],
    *,
    generator_name: str = GENERATOR,
    compress: bool = False,
    timezones: Mapping[str, str] | None = None,
) -> bytes:
    """Render a DTD-valid XMLTV document; times carry each channel's local offset.

    ``timezones`` overrides the zone per channel id (for programmes whose
    channel is not in ``channels``); anything unknown is written in UTC.
    """
    zones: dict[str, Any] = {c.id: _zone_or_utc(c.timezone) for c in channels}
    for cid, name in (timezones or {}).items():
        zones[cid] = _zone_or_utc(name)
    buf = io.BytesIO()
    with etree.xmlfile(buf, encoding="utf-8") as xf:
        xf.write_declaration()
        xf.write_doctype(DOCTYPE)
        with xf.element("tv", {"generator-info-name": sanitize(generator_name)}):
            for c in channels:
                xf.write(channel_element(c))
            for p in programmes:
                xf.write(programme_element(p, zones.get(p.channel_id, UTC)))
    data = buf.getvalue()
    return gzip.compress(data, mtime=0) if compress else data
