"""The XMLTV reader (hardened, streaming) and writer (pure, DTD-valid)."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from epg.domain import Rating, Text
from epg.errors import ImportTooLarge, InvalidXmltv
from epg.xmltv import (
    MAX_ELEMENT_BYTES,
    MAX_ELEMENT_CHILDREN,
    Problem,
    XmltvChannel,
    XmltvProgramme,
    XmltvTimeError,
    iter_xmltv,
    open_source,
    parse_time,
    write_xmltv,
)
from tests.epg.support import T0, channel, prog


def read(data: bytes, max_bytes: int = 1_000_000) -> list[object]:
    return list(iter_xmltv(open_source(io.BytesIO(data), max_bytes=max_bytes)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("20260302080000 +0800", T0, id="plus-eight"),
        pytest.param("20260302000000", T0, id="no-offset-is-utc"),
        pytest.param("20260301223000 -0130", T0, id="negative-half-hour"),
        pytest.param("202603020800 +0800", T0, id="minutes-only"),
        pytest.param("20260302000000 +0000", T0, id="explicit-utc"),
        pytest.param("20260302090000 +09:00", T0, id="colon-offset"),
    ],
)
def test_times_honour_offsets(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-03-02T00:00:00", id="iso"),
        pytest.param("20261302000000 +0000", id="month-13"),
        pytest.param("20260302000000 +2500", id="offset-too-big"),
        pytest.param("20260302000000 CST", id="zone-name"),
        pytest.param("", id="empty"),
        pytest.param("00000101000000", id="year-0"),
        pytest.param("100000101000000", id="year-10000"),
        pytest.param("99991231230000 -0100", id="past-9999-in-utc"),
        pytest.param("00010101003000 +0100", id="before-year-1-in-utc"),
        pytest.param("20260302000000 +0060", id="offset-minutes"),
    ],
)
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(XmltvTimeError):
        parse_time(text)


GUIDE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv>
  <channel id="gd1.gdtv.cn"><display-name lang="zh">\xe5\xb9\xbf\xe4\xb8\x9c</display-name>
    <icon src="https://img.example.cn/gd1.png"/></channel>
  <programme start="20260302080000 +0800" channel="gd1.gdtv.cn">
    <title lang="zh">A</title><category lang="en">News</category>
    <episode-num system="xmltv_ns">0.1.0/1</episode-num>
    <episode-num>S1E2</episode-num><previously-shown/><premiere/>
    <rating system="CN"><value>G</value></rating>
  </programme>
  <programme start="20260302003000" stop="20260302010000" channel="gd1.gdtv.cn">
    <title>B</title>
  </programme>
  <programme start="yesterday" channel="gd1.gdtv.cn"><title>C</title></programme>
  <programme start="20260302010000 +0000" channel="gd1.gdtv.cn"></programme>
</tv>
"""


def test_reader_yields_channels_programmes_and_problems_with_lines() -> None:
    items = read(GUIDE)
    ch = items[0]
    assert isinstance(ch, XmltvChannel)
    assert ch.names == (Text("zh", "广东"),)
    assert ch.icon == "https://img.example.cn/gd1.png"
    first, second = items[1], items[2]
    assert isinstance(first, XmltvProgramme)
    assert isinstance(second, XmltvProgramme)
    assert first.stop_missing
    assert first.programme.start == T0
    assert first.programme.episode_xmltv_ns == "0.1.0/1"
    assert first.programme.episode_onscreen == "S1E2"
    assert first.programme.ratings == (Rating("CN", "G"),)
    assert first.programme.previously_shown
    assert first.programme.premiere
    assert first.line == 6
    assert second.programme.stop == T0 + timedelta(hours=1)
    assert not second.stop_missing
    bad_time, no_title = items[3], items[4]
    assert isinstance(bad_time, Problem)
    assert bad_time.line == 15
    assert "bad time" in bad_time.reason
    assert isinstance(no_title, Problem)
    assert no_title.reason == "programme has no title"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE tv [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<tv><programme start="20260302000000" channel="x"><title>&g;</title></programme></tv>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE tv [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<tv><programme start="20260302000000" channel="x"><title>&e;</title></programme></tv>
"""
REMOTE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE tv SYSTEM "http://203.0.113.1/xmltv.dtd">
<tv><channel id="a.cn"><display-name>A</display-name></channel></tv>
"""


@pytest.mark.parametrize(
    "doc", [pytest.param(BOMB, id="billion-laughs"), pytest.param(XXE, id="external-entity")]
)
def test_entity_declarations_are_refused_before_any_element(doc: bytes) -> None:
    items = iter_xmltv(open_source(io.BytesIO(doc), max_bytes=1_000_000))
    with pytest.raises(InvalidXmltv, match="entity declarations"):
        next(items)


def test_external_dtd_is_never_fetched() -> None:
    # No network: the reader does not load the DTD, so this parses offline.
    items = read(REMOTE_DTD)
    assert isinstance(items[0], XmltvChannel)


def test_truncated_gzip_is_a_clear_error() -> None:
    data = gzip.compress(GUIDE * 1)[:-12]
    with pytest.raises(InvalidXmltv) as err:
        read(data)
    assert err.value.field == "file"
    assert "truncated gzip" in err.value.reason


def test_gzip_is_accepted() -> None:
    assert read(gzip.compress(GUIDE)) == read(GUIDE)


def test_decompressed_size_is_bounded() -> None:
    # A small gzip that inflates past the bound (a gzip bomb) stops at the bound.
    body = b"<tv>" + b"<!-- padding -->" * 200_000 + b"</tv>"
    packed = gzip.compress(body)
    assert len(packed) < 50_000
    with pytest.raises(ImportTooLarge):
        read(packed, max_bytes=1_000_000)


def test_malformed_xml_names_the_line() -> None:
    with pytest.raises(InvalidXmltv) as err:
        read(b"<tv>\n<channel id='a'>\n</tv>")
    assert err.value.details["line"] == "3"
    assert err.value.field == "line 3"


def test_wrong_root_is_refused() -> None:
    with pytest.raises(InvalidXmltv, match="not <tv>"):
        read(b"<html/>")


def test_writer_output_validates_against_dtd_with_explicit_offsets(dtd_path: Path) -> None:
    london = channel("bbc1.bbc.co.uk", timezone="Europe/London", number=101)
    shanghai = channel()
    full = prog(
        T0,
        pid="p1",
        sub_titles=(Text("en", "Ep"),),
        descriptions=(Text("zh", "描述"),),
        categories=(Text("zh", "新闻"),),
        keywords=(Text("en", "kw"),),
        episode_xmltv_ns="0.1.0/1",
        episode_onscreen="S1E2",
        ratings=(Rating("CN", "G"), Rating("", "12+")),
        previously_shown=True,
        premiere=True,
        icons=("https://i.example/p.png",),
    )
    summer = prog(datetime(2026, 7, 1, 18, tzinfo=UTC), ch=london.id, pid="p2", title="<&>")
    data = write_xmltv([shanghai, london], [full, summer])
    doc = etree.fromstring(data)
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(doc), dtd.error_log
    starts = [p.get("start") for p in doc.iter("programme")]
    assert starts == ["20260302080000 +0800", "20260701190000 +0100"]
    title = doc.find("programme[2]/title")
    assert title is not None
    assert title.text == "<&>"
    assert gzip.decompress(write_xmltv([shanghai], [full], compress=True)) == write_xmltv(
        [shanghai], [full]
    )


def test_write_then_read_round_trips_every_xmltv_field() -> None:
    full = prog(
        T0,
        pid="p1",
        sub_titles=(Text("en", "Ep"),),
        descriptions=(Text("zh", "描述"),),
        categories=(Text("zh", "新闻"), Text("en", "News")),
        keywords=(Text("en", "kw"),),
        episode_xmltv_ns="0.1.0/1",
        episode_onscreen="S1E2",
        ratings=(Rating("CN", "G"),),
        previously_shown=True,
        premiere=True,
        icons=("https://i.example/p.png",),
    )
    items = read(write_xmltv([channel()], [full]))
    assert isinstance(items[0], XmltvChannel)
    assert items[0].names == channel().names
    got = items[1]
    assert isinstance(got, XmltvProgramme)
    assert got.programme == replace(full, id="")


def test_times_with_no_offset_in_a_large_streamed_file_use_flat_memory() -> None:
    # 20k programmes stream through without the tree growing: each element is freed.
    body = io.BytesIO()
    body.write(b"<tv>")
    for i in range(20_000):
        start = (T0 + timedelta(minutes=i)).strftime("%Y%m%d%H%M%S")
        body.write(
            f'<programme start="{start}" channel="a.cn"><title>t{i}</title></programme>'.encode()
        )
    body.write(b"</tv>")
    count = 0
    for item in read(body.getvalue(), max_bytes=10_000_000):
        assert isinstance(item, XmltvProgramme)
        assert item.programme.start.tzinfo is UTC
        count += 1
    assert count == 20_000


def test_unknown_elements_are_skipped_at_any_depth() -> None:
    doc = (
        b"<tv><x-top a='1'><programme start='20260302000000' channel='a.cn'><title>no</title>"
        b"</programme></x-top>"
        b"<channel id='a.cn'><display-name>A</display-name><x-child><y/></x-child></channel>"
        b"<x-sibling/><programme start='20260302000000' stop='20260302010000' channel='a.cn'>"
        b"<title>T</title><credits><actor>X</actor></credits></programme></tv>"
    )
    items = read(doc)
    assert [type(i).__name__ for i in items] == ["XmltvChannel", "XmltvProgramme"]
    prog_item = items[1]
    assert isinstance(prog_item, XmltvProgramme)
    assert prog_item.programme.titles == (Text("", "T"),)


def test_a_guide_element_past_the_bounds_is_one_problem() -> None:
    children = b"<x-pad/>" * (MAX_ELEMENT_CHILDREN + 1)
    doc = (
        b"<tv>\n<programme start='20260302000000' stop='20260302010000' channel='a.cn'>"
        b"<title>T</title>" + children + b"</programme>\n"
        b"<programme start='20260302010000' stop='20260302020000' channel='a.cn'>"
        b"<title>U</title></programme></tv>"
    )
    first, second = read(doc)
    assert first == Problem(
        2,
        "a.cn",
        f"<programme> holds more than {MAX_ELEMENT_CHILDREN} elements or {MAX_ELEMENT_BYTES} bytes",
    )
    assert isinstance(second, XmltvProgramme)
    # A few children, but more input than any guide element needs.
    padded = (
        b"<tv><channel id='a.cn'><display-name>A</display-name>"
        + b"<x-pad>" + b"p" * (MAX_ELEMENT_BYTES // 2 + 65_536) + b"</x-pad>"
        + b"<x-pad>" + b"p" * (MAX_ELEMENT_BYTES // 2 + 65_536) + b"</x-pad>"
        + b"<display-name>B</display-name></channel></tv>"
    )  # fmt: skip
    (only,) = read(padded, max_bytes=2 * MAX_ELEMENT_BYTES)
    assert isinstance(only, Problem)
    assert only.reason.startswith("<channel> holds more than")


def test_the_writer_survives_text_xml_cannot_carry() -> None:
    bad = "a\x00b\x1bc\ud800d\ufffee\r\n\x85f\u2028"
    ch = replace(
        channel(), names=(Text("zh\n", bad),), logo_url=f"https://i/{bad}", timezone="Nope/X"
    )
    p = replace(
        prog(T0, pid="p1", title=bad),
        descriptions=(Text("en", f"one\ntwo{bad}"),),
        ratings=(Rating(bad, bad),),
        episode_onscreen=bad,
    )
    doc = etree.fromstring(write_xmltv([ch], [p]))
    assert doc.findtext("channel/display-name") == "a b c d e   f "
    assert doc.find("programme").get("start") == "20260302000000 +0000"  # type: ignore[union-attr]
    assert doc.findtext("programme/desc", "").startswith("one\ntwoa b")
