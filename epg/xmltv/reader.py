"""The hardened, streaming XMLTV reader.

The reader walks the file with lxml ``iterparse`` and frees every element
once it is consumed: guide elements (``<channel>``, ``<programme>``) after
they are read, anything else as soon as it ends, with the siblings before it,
so memory stays flat however large the guide and whatever else the file
holds. One guide element may keep at most ``MAX_ELEMENT_CHILDREN`` nested
elements and ``MAX_ELEMENT_BYTES`` of input; past either it is freed as it
streams and reported as a problem. The reader never resolves entities, never
touches the network, never loads a DTD, keeps libxml2's ``huge_tree`` limits
on, refuses any document that declares entities (the XML-bomb and
external-entity attacks both need a declaration), and bounds the number of
bytes read after gzip decompression.

Times follow the DTD: ``YYYYMMDDhhmmss`` optionally followed by ``+hhmm``;
a time with no offset is UTC.

Languages come back from where the writer puts them: ``<language>`` (or the
``audio-languages`` list) as audio languages, ``<subtitles>`` that a viewer can turn on
(``teletext``, or no type) as subtitle languages. Other guides often name the language
(``<language>English</language>``): anything that is not a language code is left out
rather than costing the programme. The ``catchup-id`` programme id is not taken back:
an import derives its ids from channel and start.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any, Protocol

from lxml import etree

from epg.domain import Programme, Rating, Text
from epg.errors import ImportTooLarge, InvalidXmltv
from epg.xmltv.writer import AUDIO_LANGUAGES_SYSTEM, CATCHUP_ID_SYSTEM
from headend.languages import is_language_tag

MAX_ELEMENT_CHILDREN = 4096
MAX_ELEMENT_BYTES = 8 * 1024 * 1024
_TIME = re.compile(
    r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2}))?)?\s*(?:([+-])(\d{2}):?(\d{2}))?"
)
_GZIP_MAGIC = b"\x1f\x8b"
_GUIDE_TAGS = frozenset({"channel", "programme"})
_OFFSETS: dict[tuple[str, str, str], timezone] = {}
# The open top-level element: a guide element being kept, one grown past the
# bounds (freed as it streams, reported), or anything else (freed, ignored).
_KEEP, _OVERSIZED, _SKIP = 0, 1, 2
# Subtitles a viewer turns on; "onscreen" ones are burned in, "deaf-signed" is signing.
_SELECTABLE_SUBTITLES = frozenset({"teletext", ""})


class Source(Protocol):
    """What the reader reads: bytes on demand, and how many it has delivered so far."""

    def read(self, size: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...


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
    m = _TIME.fullmatch(text.strip())
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
    try:
        return when.replace(tzinfo=tz).astimezone(UTC)
    except OverflowError as err:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise XmltvTimeError(f"{text!r}: outside the years 1 to 9999 in UTC") from err


class _Bounded(io.RawIOBase):
    """A reader that refuses to deliver more than ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def read(self, size: int = -1) -> bytes:
        chunk = self._inner.read(size if size >= 0 else 1 << 16)
        self.count += len(chunk)
        if self.count > self._limit:
            raise ImportTooLarge(
                f"XMLTV content exceeds {self._limit} bytes",
                details={"limit_bytes": str(self._limit)},
            )
        return chunk


def open_source(raw: IO[bytes], *, max_bytes: int) -> Source:
    """Wrap a seekable binary file: gunzip when it starts with the gzip magic, bound size."""
    head = raw.read(2)
    raw.seek(0)
    inner: IO[bytes] = raw
    if head == _GZIP_MAGIC:
        inner = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return _Bounded(inner, max_bytes)


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
    audio: list[str] = []
    subtitles: list[str] = []
    xmltv_ns = onscreen = language = ""
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
            system = child.get("system", "onscreen")
            if system == "xmltv_ns":
                xmltv_ns = (child.text or "").strip()
            elif system == AUDIO_LANGUAGES_SYSTEM:
                audio = _language_codes((child.text or "").split())
            elif system != CATCHUP_ID_SYSTEM:
                onscreen = (child.text or "").strip()
        elif tag == "language":
            language = (child.text or "").strip()
        elif tag == "subtitles":
            lang = child.find("language")
            if lang is not None and child.get("type", "") in _SELECTABLE_SUBTITLES:
                subtitles.append((lang.text or "").strip())
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
            audio_languages=tuple(audio or _language_codes([language])),
            subtitle_languages=tuple(_language_codes(subtitles)),
        ),
        stop_missing=not raw_stop,
        line=line,
    )


def _language_codes(values: list[str]) -> list[str]:
    """The language codes among ``values``, each once, in order."""
    return list(dict.fromkeys(v for v in values if is_language_tag(v)))


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


def _guide_item(el: Any, oversized: bool) -> Item:
    if oversized:
        return Problem(
            el.sourceline or 0,
            el.get("channel", el.get("id", "")),
            f"<{el.tag}> holds more than {MAX_ELEMENT_CHILDREN} elements "
            f"or {MAX_ELEMENT_BYTES} bytes",
        )
    return _programme(el) if el.tag == "programme" else _channel(el)


def iter_xmltv(source: Source) -> Iterator[Item]:
    """Stream channels, programmes and per-element problems from an XMLTV document.

    Raises ``InvalidXmltv`` for a document that is not well-formed, declares
    entities, or is a truncated gzip stream; the line is in the details.
    """
    # Every element's end is seen, so what is not a guide element is freed as
    # soon as it is complete; the root (and its DTD) is checked when it starts.
    context = etree.iterparse(
        source,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    # Events come in document order, but a whole input chunk is parsed before
    # they are delivered: the depth is counted, never read off the tree.
    depth = 0
    mark = 0  # input position when the open top-level element started
    nested = 0  # elements ended so far inside it
    state = _SKIP
    try:
        for event, el in context:
            if event == "start":
                depth += 1
                if depth == 1:  # the root, and the DTD before it, before any content
                    _check_root(el)
                elif depth == 2:
                    state = _KEEP if el.tag in _GUIDE_TAGS else _SKIP
                    mark, nested = source.tell(), 0
                continue
            depth -= 1
            if depth == 1:  # a top-level element ended
                if state != _SKIP:
                    yield _guide_item(el, oversized=state == _OVERSIZED)
                parent = el.getparent()
            elif depth > 1:  # an element inside one
                if state == _KEEP:
                    nested += 1
                    if nested <= MAX_ELEMENT_CHILDREN and source.tell() - mark <= MAX_ELEMENT_BYTES:
                        continue  # kept: the guide element is read when it ends
                    state = _OVERSIZED
                parent = el.getparent()
            else:
                continue  # the root itself ends
            # Free what has been read or will never be: the element and the siblings before it.
            el.clear()
            while el.getprevious() is not None:
                del parent[0]
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
