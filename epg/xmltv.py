"""XMLTV in and out: a hardened streaming reader and a pure writer.

The reader walks the file with lxml ``iterparse`` and frees each element
once read, so memory stays flat however large the guide. It never resolves
entities, never touches the network, never loads a DTD, keeps libxml2's
``huge_tree`` limits on, refuses any document that declares entities (the
XML-bomb and external-entity attacks both need a declaration), and bounds the
number of bytes read after gzip decompression.

Times follow the DTD: ``YYYYMMDDhhmmss`` optionally followed by ``+hhmm``;
a time with no offset is UTC.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any

from lxml import etree

from epg.domain import Channel, Programme, Rating, Text, zone
from epg.errors import ImportTooLarge, InvalidXmltv

GENERATOR = "headend-epg"
TIME_FORMAT = "%Y%m%d%H%M%S %z"
DOCTYPE = '<!DOCTYPE tv SYSTEM "xmltv.dtd">'
_TIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2}))?)?\s*(?:([+-])(\d{2}):?(\d{2}))?$"
)
_GZIP_MAGIC = b"\x1f\x8b"
_OFFSETS: dict[tuple[str, str, str], timezone] = {}


class XmltvTimeError(ValueError):
    """Raised when an XMLTV time attribute cannot be read."""


@dataclass(frozen=True, slots=True)
class XmltvChannel:
    """A ``<channel>`` element: id, display names, icon and URLs."""

    id: str
    names: tuple[Text, ...]
    icon: str
    line: int


@dataclass(frozen=True, slots=True)
class XmltvProgramme:
    """A ``<programme>`` element; ``programme.stop`` equals its start when ``stop_missing``."""

    programme: Programme
    stop_missing: bool
    line: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A programme (or channel) that could not be read, with its line and why."""

    line: int
    channel: str
    reason: str


Item = XmltvChannel | XmltvProgramme | Problem


@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime:
    """Read an XMLTV time (offset optional, UTC when absent) as a UTC datetime."""
    m = _TIME.match(text.strip())
    if m is None:
        raise XmltvTimeError(f"{text!r} is not YYYYMMDDhhmmss [+hhmm]")
    y, mo, d, h, mi, s, sign, oh, om = m.groups()
    try:
        when = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    except ValueError as err:
        raise XmltvTimeError(f"{text!r}: {err}") from err
    if sign is None:
        return when
    key = (sign, oh, om)
    tz = _OFFSETS.get(key)
    if tz is None:
        minutes = int(oh) * 60 + int(om)
        if int(om) >= 60 or minutes > 14 * 60:
            raise XmltvTimeError(f"{text!r}: offset out of range")
        tz = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
        _OFFSETS[key] = tz
    return when.replace(tzinfo=tz).astimezone(UTC)


class _Bounded(io.RawIOBase):
    """A reader that refuses to deliver more than ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._inner.read(size if size >= 0 else 1 << 16)
        self.count += len(chunk)
        if self.count > self._limit:
            raise ImportTooLarge(
                f"XMLTV content exceeds {self._limit} bytes",
                details={"limit_bytes": str(self._limit)},
            )
        return chunk


def open_source(raw: IO[bytes], *, max_bytes: int) -> IO[bytes]:
    """Wrap a seekable binary file: gunzip when it starts with the gzip magic, bound size."""
    head = raw.read(2)
    raw.seek(0)
    inner: IO[bytes] = raw
    if head == _GZIP_MAGIC:
        inner = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return _Bounded(inner, max_bytes)  # type: ignore[return-value]


def _programme(el: Any) -> XmltvProgramme | Problem:
    line = el.sourceline or 0
    channel = el.get("channel", "")
    if not channel:
        return Problem(line, "", "programme has no channel attribute")
    raw_start, raw_stop = el.get("start"), el.get("stop")
    if not raw_start:
        return Problem(line, channel, "programme has no start attribute")
    try:
        start = parse_time(raw_start)
        stop = parse_time(raw_stop) if raw_stop else start
    except XmltvTimeError as err:
        return Problem(line, channel, f"bad time: {err}")
    titles: list[Text] = []
    subs: list[Text] = []
    descs: list[Text] = []
    cats: list[Text] = []
    kws: list[Text] = []
    icons: list[str] = []
    ratings: list[Rating] = []
    xmltv_ns = onscreen = ""
    previously = premiere = False
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):
            return Problem(line, channel, "entity references are not allowed")
        if tag == "title":
            titles.append(Text(child.get("lang", ""), (child.text or "").strip()))
        elif tag == "desc":
            descs.append(Text(child.get("lang", ""), (child.text or "").strip()))
        elif tag == "category":
            cats.append(Text(child.get("lang", ""), (child.text or "").strip()))
        elif tag == "sub-title":
            subs.append(Text(child.get("lang", ""), (child.text or "").strip()))
        elif tag == "keyword":
            kws.append(Text(child.get("lang", ""), (child.text or "").strip()))
        elif tag == "icon":
            icons.append(child.get("src", ""))
        elif tag == "episode-num":
            if child.get("system", "onscreen") == "xmltv_ns":
                xmltv_ns = (child.text or "").strip()
            else:
                onscreen = (child.text or "").strip()
        elif tag == "previously-shown":
            previously = True
        elif tag == "premiere":
            premiere = True
        elif tag == "rating":
            value = child.find("value")
            ratings.append(
                Rating(child.get("system", ""), "" if value is None else (value.text or "").strip())
            )
    if not titles:
        return Problem(line, channel, "programme has no title")
    return XmltvProgramme(
        Programme(
            id="",
            channel_id=channel,
            start=start,
            stop=stop,
            titles=tuple(titles),
            sub_titles=tuple(subs),
            descriptions=tuple(descs),
            categories=tuple(cats),
            keywords=tuple(kws),
            episode_xmltv_ns=xmltv_ns,
            episode_onscreen=onscreen,
            ratings=tuple(ratings),
            previously_shown=previously,
            premiere=premiere,
            icons=tuple(icons),
        ),
        stop_missing=not raw_stop,
        line=line,
    )


def _channel(el: Any) -> XmltvChannel | Problem:
    line = el.sourceline or 0
    cid = el.get("id", "")
    if not cid:
        return Problem(line, "", "channel has no id attribute")
    if any(not isinstance(c.tag, str) for c in el):
        return Problem(line, cid, "entity references are not allowed")
    icon = el.find("icon")
    names = tuple(
        Text(e.get("lang", ""), (e.text or "").strip()) for e in el.iterfind("display-name")
    )
    return XmltvChannel(cid, names, "" if icon is None else icon.get("src", ""), line)


def iter_xmltv(source: IO[bytes]) -> Iterator[Item]:
    """Stream channels, programmes and per-element problems from an XMLTV document.

    Raises ``InvalidXmltv`` for a document that is not well-formed, declares
    entities, or is a truncated gzip stream; the line is in the details.
    """
    # Only the elements the importer reads cross into Python; the root (and
    # its DTD) is checked on the first event, before any content is read.
    context = etree.iterparse(
        source,
        events=("start", "end"),
        tag=("tv", "channel", "programme"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    root: Any = None
    try:
        for event, el in context:
            if root is None:
                root = el.getroottree().getroot()
                _check_root(root)
            if event == "start" or el is root:
                continue
            parent = el.getparent()
            if parent is not root:
                continue  # nested inside something else: not a guide element
            if el.tag == "programme":
                yield _programme(el)
            else:
                yield _channel(el)
            # Free what has been read: the element and its already-seen siblings.
            el.clear()
            while el.getprevious() is not None:
                del parent[0]
        if root is None:
            _check_root(context.root)
    except etree.XMLSyntaxError as err:
        line = err.lineno or 0
        raise InvalidXmltv(
            f"line {line}", f"not well-formed XML: {err.msg}", details={"line": str(line)}
        ) from err
    except EOFError as err:
        raise InvalidXmltv("file", f"truncated gzip stream: {err}") from err
    except (gzip.BadGzipFile, OSError) as err:
        raise InvalidXmltv("file", f"unreadable input: {err}") from err


def _check_root(root: Any) -> None:
    if root.tag != "tv":
        raise InvalidXmltv(
            f"line {root.sourceline}",
            f"root element is <{root.tag}>, not <tv>",
            details={"line": str(root.sourceline)},
        )
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise InvalidXmltv(
            "file",
            "entity declarations are not allowed (XML bomb / XXE guard)",
            details={"line": "1"},
        )


# ---------------------------------------------------------------- writer


def format_time(when: datetime, tz: Any) -> str:
    """An XMLTV time with an explicit offset, in ``tz``."""
    return when.astimezone(tz).strftime(TIME_FORMAT)


def _text_elements(parent: Any, tag: str, items: Sequence[Text]) -> None:
    for t in items:
        el = etree.SubElement(parent, tag, {"lang": t.lang} if t.lang else {})
        el.text = t.text


def channel_element(c: Channel) -> Any:
    """A ``<channel>`` element for ``c``."""
    el = etree.Element("channel", id=c.id)
    _text_elements(el, "display-name", c.names)
    if c.logo_url:
        etree.SubElement(el, "icon", src=c.logo_url)
    return el


def programme_element(p: Programme, tz: Any) -> Any:
    """A ``<programme>`` element for ``p`` with times in ``tz``, in DTD order."""
    el = etree.Element(
        "programme",
        start=format_time(p.start, tz),
        stop=format_time(p.stop, tz),
        channel=p.channel_id,
    )
    _text_elements(el, "title", p.titles)
    _text_elements(el, "sub-title", p.sub_titles)
    _text_elements(el, "desc", p.descriptions)
    _text_elements(el, "category", p.categories)
    _text_elements(el, "keyword", p.keywords)
    for icon in p.icons:
        etree.SubElement(el, "icon", src=icon)
    if p.episode_xmltv_ns:
        etree.SubElement(el, "episode-num", system="xmltv_ns").text = p.episode_xmltv_ns
    if p.episode_onscreen:
        etree.SubElement(el, "episode-num", system="onscreen").text = p.episode_onscreen
    if p.previously_shown:
        etree.SubElement(el, "previously-shown")
    if p.premiere:
        etree.SubElement(el, "premiere")
    for r in p.ratings:
        rating = etree.SubElement(el, "rating", {"system": r.system} if r.system else {})
        etree.SubElement(rating, "value").text = r.value
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
    zones: dict[str, Any] = {c.id: zone(c.timezone) for c in channels}
    for cid, name in (timezones or {}).items():
        zones[cid] = zone(name)
    buf = io.BytesIO()
    with etree.xmlfile(buf, encoding="utf-8") as xf:
        xf.write_declaration()
        xf.write_doctype(DOCTYPE)
        with xf.element("tv", {"generator-info-name": generator_name}):
            for c in channels:
                xf.write(channel_element(c))
            for p in programmes:
                xf.write(programme_element(p, zones.get(p.channel_id, UTC)))
    data = buf.getvalue()
    return gzip.compress(data, mtime=0) if compress else data
