"""Property tests (Hypothesis) on the guide formats an attacker can reach.

- The XMLTV importer, fed random bytes or random XML-ish documents (hostile
  times, ids, control characters, unknown and nested elements, gzip), only
  ever returns a report or raises one of the EPG's own errors, and whatever
  it stored obeys the platform's text rule.
- The M3U lineup and XMLTV guide encoders, given any stored strings (controls,
  line separators, lone surrogates, non-characters), always produce output
  their parsers accept, with exactly one entry per channel.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.sim.stb import parse_m3u
from epg.domain import Channel, Programme, Rating, Text
from epg.errors import EpgError
from epg.importer import MAX_PROBLEMS, ImportReport
from epg.service import EpgService
from epg.store import EpgStore
from epg.xmltv import write_xmltv
from headend.auth import ADMIN
from tests.epg.support import (
    LINE_BREAKERS,
    NOT_XML,
    rule_breaches,
    stored_channels,
    stored_programmes,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters that have broken guides and lineups, mixed into otherwise arbitrary text.
_HOSTILE = st.sampled_from(
    [*LINE_BREAKERS, *NOT_XML, "\ud800", "\udfff", "\uffff", '"', ",", "#", "<", "&"]
)
_CHARS = st.one_of(st.characters(), _HOSTILE)
_TEXT = st.text(_CHARS, max_size=24)


# ---------------------------------------------------------------- the importer

_TIMES = st.one_of(
    st.sampled_from(
        [
            "20260302000000",
            "20260302003000 +0800",
            "202603020100",
            "100000101000000",
            "00000101000000",
            "99991231230000 -0100",
            "00010101003000 +0100",
            "99991231000000",
            "20260302000000 +2500",
            "20260302000000 +0860",
            "",
        ]
    ),
    st.text(st.sampled_from("0123456789 +-:"), max_size=22),
)
_IDS = st.one_of(st.sampled_from(["gd1.gdtv.cn", "gd2.gdtv.cn", "x.cn"]), _TEXT)


def _xml_legal(ch: str) -> bool:
    code = ord(ch)
    return ch in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code > 0xFFFF


def _xml_text(text: str) -> str:
    # What XML can carry goes in as written or as a character reference (line
    # separators, C1 controls, CR survive parsing that way); the rest is left out:
    # documents that are not XML come from the truncated and binary cases.
    return "".join(
        ch if ch.isprintable() and ch not in "<>&" else f"&#x{ord(ch):x};"
        for ch in text
        if _xml_legal(ch)
    )


@st.composite
def _element(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["channel", "programme", "programme", "junk"]))
    children = []
    for _ in range(draw(st.integers(0, 4))):
        tag = draw(
            st.sampled_from(
                ["title", "desc", "display-name", "category", "sub-title", "keyword", "x-y"]
            )
        )
        lang = draw(st.one_of(st.just(""), st.sampled_from(["zh", "en", "e n"])))
        lang_attr = f" lang={quoteattr(lang)}" if lang else ""
        children.append(f"<{tag}{lang_attr}>{_xml_text(draw(_TEXT))}</{tag}>")
    if draw(st.booleans()):
        children.append(f"<icon src={quoteattr(_xml_text(draw(_TEXT)))}/>")
    if draw(st.booleans()):
        children.append(f"<rating system='CN'><value>{_xml_text(draw(_TEXT))}</value></rating>")
    body = "".join(children)
    if kind == "channel":
        return f"<channel id={quoteattr(_xml_text(draw(_IDS)))}>{body}</channel>"
    if kind == "junk":
        return f"<unknown a='1'><deeper>{body}</deeper></unknown>"
    stop = draw(st.one_of(st.none(), _TIMES))
    stop_attr = "" if stop is None else f" stop={quoteattr(stop)}"
    return (
        f"<programme start={quoteattr(draw(_TIMES))}{stop_attr} "
        f"channel={quoteattr(_xml_text(draw(_IDS)))}>{body}</programme>"
    )


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        data = draw(st.binary(max_size=512))
    else:
        elements = draw(st.lists(_element(), max_size=12))
        data = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<tv>" + "\n".join(elements) + "</tv>"
        ).encode()
        if draw(st.integers(0, 5)) == 0:
            data = data[: draw(st.integers(0, len(data)))]  # truncated mid-element
    return gzip.compress(data) if draw(st.booleans()) else data


@pytest.mark.parametrize(
    "strict", [pytest.param(False, id="lenient"), pytest.param(True, id="strict")]
)
@FUZZ
@given(data=_documents())
async def test_the_importer_only_reports_or_raises_its_own_errors(
    redis: aioredis.Redis, strict: bool, data: bytes
) -> None:
    await redis.flushall()
    service = EpgService(store=EpgStore(redis), max_batch=100, max_import_bytes=200_000)
    try:
        report = await service.import_xmltv(ADMIN, io.BytesIO(data), strict=strict, owner="gdtv")
    except EpgError as err:
        event(type(err).__name__)
        return  # a domain error: refused with a category, nothing unexpected
    event("report with problems" if report.problems_total else "clean report")
    assert isinstance(report, ImportReport)
    assert len(report.problems) == min(report.problems_total, MAX_PROBLEMS)
    assert rule_breaches(await stored_channels(redis), await stored_programmes(redis)) == []


# ---------------------------------------------------------------- the encoders

_ZONES = st.one_of(
    st.sampled_from(["Asia/Shanghai", "Europe/London", "Pacific/Kiritimati", "America/Adak"]),
    _TEXT,
)
_WHEN = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis adds the zone
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_TEXTS = st.lists(st.builds(Text, _TEXT, _TEXT), max_size=3)

_channels = st.lists(
    st.builds(
        Channel,
        id=_TEXT,
        number=st.integers(0, 99_999),
        names=_TEXTS.map(tuple).filter(bool),
        owner=st.just("gdtv"),
        timezone=_ZONES,
        logo_url=st.one_of(_TEXT, _TEXT.map(lambda s: f"https://img.example/{s}")),
        catchup_days=st.integers(0, 30),
        group=_TEXT,
    ),
    max_size=6,
)


@st.composite
def _programmes(draw: st.DrawFn, channel_ids: list[str]) -> list[Programme]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        start = draw(_WHEN)
        out.append(
            Programme(
                id=f"p{i}",
                channel_id=draw(st.one_of(st.sampled_from(channel_ids or ["x"]), _TEXT)),
                start=start,
                stop=start + timedelta(seconds=draw(st.integers(0, 3600)))
                if start.year < 9999
                else start,
                titles=tuple(draw(_TEXTS)),
                sub_titles=tuple(draw(_TEXTS)),
                descriptions=tuple(draw(_TEXTS)),
                categories=tuple(draw(_TEXTS)),
                keywords=tuple(draw(_TEXTS)),
                episode_xmltv_ns=draw(_TEXT),
                episode_onscreen=draw(_TEXT),
                ratings=tuple(draw(st.lists(st.builds(Rating, _TEXT, _TEXT), max_size=2))),
                previously_shown=draw(st.booleans()),
                icons=tuple(draw(st.lists(_TEXT, max_size=2))),
            )
        )
    return out


@FUZZ
@given(
    channels=_channels,
    base=st.sampled_from(["http://fd.example", "http://[::1]:8000"]),
    query=_TEXT,
)
def test_the_lineup_has_exactly_two_lines_per_channel(
    channels: list[Channel], base: str, query: str
) -> None:
    entries = [
        LineupEntry(c.id, c.number, c.name(), c.logo_url, c.group, c.catchup_days) for c in channels
    ]
    text = render_m3u(entries, base_url=base, guide_url=f"{base}/guide.xml.gz", query=query)
    lines = text.splitlines()  # every line break any player might honour
    assert len(lines) == 1 + 2 * len(entries)
    assert lines[0].startswith('#EXTM3U x-tvg-url="')
    assert all(line.startswith("#EXTINF:-1 tvg-id=") for line in lines[1::2])
    assert all(line.startswith(f"{base}/live/") for line in lines[2::2])
    parsed = parse_m3u(text)
    ordered = sorted(entries, key=lambda e: (e.number, e.channel_id))
    assert [(c.number, c.catchup_days) for c in parsed] == [
        (e.number, e.catchup_days) for e in ordered
    ]
    for line in lines[1::2]:
        head, _, _title = line.partition(",")  # no comma inside an attribute
        assert head.count('"') % 2 == 0


@FUZZ
@given(data=st.data(), channels=_channels)
def test_the_guide_is_xml_with_one_element_per_channel_and_programme(
    data: Any, channels: list[Channel]
) -> None:
    programmes = data.draw(_programmes([c.id for c in channels]))
    for compress in (False, True):
        out = write_xmltv(channels, programmes, compress=compress)
        doc = etree.fromstring(gzip.decompress(out) if compress else out)
        assert len(doc.findall("channel")) == len(channels)
        assert len(doc.findall("programme")) == len(programmes)
