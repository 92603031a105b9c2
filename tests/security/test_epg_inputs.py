"""Attacks on the EPG's inputs and on the encoders that carry its text to set-top boxes.

Against a real EPG gRPC server on port 0 and a real Redis:

1. Stored injection: no control or line-separator character is stored in any
   text a broadcaster writes, through any RPC or an XMLTV import; and text
   stored before that rule (planted straight into Redis here) can neither
   forge lineup entries nor break the XMLTV guide.
2. XMLTV import: unknown elements are freed as they stream (flat memory), the
   parser runs off the event loop, the problem list is capped with a total,
   and a time outside the representable years is one problem, never UNKNOWN.
3. The least-privilege ``playback`` role reads everything and changes nothing:
   ``tests/epg/test_access.py``, beside the other roles.

Every refusal is checked twice: the status (naming the field) and a snapshot
of the whole store showing that nothing changed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import grpc
import pytest
import redis.asyncio as aioredis
from lxml import etree

from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.sim.stb import parse_m3u
from cdn_ctl.upstream import EpgCache
from epg.importer import MAX_PROBLEMS
from epg.service import EpgService
from epg.store import EpgStore
from epg.xmltv import write_xmltv
from headend.auth import ADMIN, PLAYBACK, KeyStore
from headend.redisproc import RedisServer
from headend.rpc import error_details
from protos import epg_pb2
from tests.epg.hostile import (
    BAD_CHANNELS,
    UNKNOWN,
    Gate,
    check_guide,
    plant_bad_guide,
)
from tests.epg.support import (
    LINE_BREAKERS,
    NOT_XML,
    PARENT,
    Call,
    Grpc,
    chunks,
    pb_channel,
    pb_prog,
    refused,
    rule_breaches,
    seed,
    serve_epg,
    stored_channels,
    stored_programmes,
    ts,
    xmltv,
    xprog,
)

CH = "gd1.gdtv.cn"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
async def epg(redis: aioredis.Redis, keys: KeyStore, tokens: Any) -> AsyncIterator[Grpc]:
    """The EPG on port 0 with bounds large enough for the attack inputs."""
    async with serve_epg(
        redis, keys, tokens, max_upload_bytes=32_000_000, max_import_bytes=64_000_000
    ) as served:
        yield served


def _hex(ch: str) -> str:
    return f"U+{ord(ch):04X}"


# ---------------------------------------------------------------- 1. stored injection: refusals


@pytest.mark.parametrize("bad", [pytest.param(c, id=_hex(c)) for c in LINE_BREAKERS + NOT_XML])
async def test_a_channel_name_with_a_line_breaker_is_refused(
    epg: Grpc, redis: aioredis.Redis, bad: str
) -> None:
    md = await epg.md("broadcaster:gdtv")
    name = f"CCTV{bad}#EXTINF:-1,Free movies{bad}http://attacker.example/live.m3u8"

    async def create(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        channel = pb_channel(name=name)
        return await g.stub.CreateChannel(
            epg_pb2.CreateChannelRequest(channel_id=CH, channel=channel), metadata=md
        )

    err = await refused(epg, redis, create, md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "channel.names[0].text" in error_details(err).fields


def _channel(**kw: Any) -> Call:
    async def call(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        cid = kw.pop("channel_id", "gd2.gdtv.cn")
        msg = pb_channel("gd2.gdtv.cn", **kw)
        return await g.stub.CreateChannel(
            epg_pb2.CreateChannelRequest(channel_id=cid, channel=msg), metadata=md
        )

    return call


def _update(**kw: Any) -> Call:
    async def call(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        msg = pb_channel(owner="gdtv", **kw)
        return await g.stub.UpdateChannel(
            epg_pb2.UpdateChannelRequest(channel=msg, expected_version=1), metadata=md
        )

    return call


def _put(**kw: Any) -> Call:
    async def call(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        title = kw.pop("title", "新闻")
        msg = pb_prog(T0 + timedelta(days=2), title=title, **kw)
        return await g.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(parent=PARENT, programmes=[msg]), metadata=md
        )

    return call


def _text(text: str, lang: str = "en") -> list[epg_pb2.LocalizedText]:
    return [epg_pb2.LocalizedText(lang=lang, text=text)]


def _slots(**kw: Any) -> Call:
    async def call(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        rule = epg_pb2.SlotRule(
            weekdays=[1, 2, 3],
            hour=19,
            duration_seconds=1800,
            titles=kw.pop("titles", _text("Evening news")),
            first_day=epg_pb2.LocalDate(year=2026, month=3, day=9),
            last_day=epg_pb2.LocalDate(year=2026, month=3, day=15),
            **kw,
        )
        return await g.stub.ExpandSlots(
            epg_pb2.ExpandSlotsRequest(parent=PARENT, rule=rule), metadata=md
        )

    return call


LS = "\u2028"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param(
            _channel(logo_url="https://img.example/a\r\nb.png"),
            "channel.logo_url",
            id="create-logo",
        ),
        pytest.param(
            _channel(logo_url='https://x/"onerror="x'), "channel.logo_url", id="create-logo-quote"
        ),
        pytest.param(_channel(group=f"News{LS}x"), "channel.group", id="create-group"),
        pytest.param(_channel(group="News\x85"), "channel.group", id="create-group-nel"),
        pytest.param(_channel(channel_id="gd3.gdtv.cn\n"), "channel_id", id="create-id-newline"),
        pytest.param(
            _channel(names=_text("Name", lang="en\n")), "channel.names[0].lang", id="create-lang"
        ),
        pytest.param(_update(name=f"GD{LS}#EXTINF"), "channel.names[0].text", id="update-name"),
        pytest.param(_update(logo_url="https://a/\x0cb"), "channel.logo_url", id="update-logo"),
        pytest.param(_update(group="a\x1cb"), "channel.group", id="update-group"),
        pytest.param(_put(title=f"News{LS}"), "programmes[0].titles[0].text", id="title"),
        pytest.param(
            _put(sub_titles=_text("Ep\r1")), "programmes[0].sub_titles[0].text", id="sub-title"
        ),
        pytest.param(
            _put(descriptions=_text("line\r\nline")),
            "programmes[0].descriptions[0].text",
            id="description-cr",
        ),
        pytest.param(
            _put(descriptions=_text("a\x0bb")),
            "programmes[0].descriptions[0].text",
            id="description-vt",
        ),
        pytest.param(
            _put(categories=_text("News\x1d")), "programmes[0].categories[0].text", id="category"
        ),
        pytest.param(
            _put(keywords=_text("kw\x1e")), "programmes[0].keywords[0].text", id="keyword"
        ),
        pytest.param(
            _put(icons=["https://i.example/\u2029x.png"]), "programmes[0].icons[0]", id="icon"
        ),
        pytest.param(
            _put(blackout_slate="https://s.example/\rx"), "programmes[0].blackout_slate", id="slate"
        ),
        pytest.param(
            _put(episode_onscreen="S1\nE2"), "programmes[0].episode_onscreen", id="episode"
        ),
        pytest.param(
            _put(episode_xmltv_ns="0.1\x85"), "programmes[0].episode_xmltv_ns", id="episode-ns"
        ),
        pytest.param(
            _put(ratings=[epg_pb2.Rating(system="CN", value="G\r\n")]),
            "programmes[0].ratings[0].value",
            id="rating-value",
        ),
        pytest.param(
            _put(ratings=[epg_pb2.Rating(system="C\x1cN", value="G")]),
            "programmes[0].ratings[0].system",
            id="rating-system",
        ),
        pytest.param(
            _put(name=f"{PARENT}/programmes/p1\n"), "programmes[0].name", id="programme-id"
        ),
        pytest.param(
            _put(blackout_regions=["110000\n"]), "programmes[0].blackout_regions[0]", id="region"
        ),
        pytest.param(_slots(titles=_text(f"News{LS}")), "rule.titles[0].text", id="slot-title"),
        pytest.param(
            _slots(categories=_text("News\r")), "rule.categories[0].text", id="slot-category"
        ),
        pytest.param(
            _slots(descriptions=_text("a\x0cb")), "rule.descriptions[0].text", id="slot-description"
        ),
    ],
)
async def test_every_text_a_broadcaster_writes_is_checked(
    epg: Grpc, redis: aioredis.Redis, call: Call, field: str
) -> None:
    md = await seed(epg, 2)
    err = await refused(epg, redis, call, md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields, error_details(err).fields


async def test_descriptions_keep_plain_newlines(epg: Grpc) -> None:
    md = await seed(epg, 1)
    start = T0 + timedelta(days=1)
    await epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=PARENT,
            programmes=[pb_prog(start, descriptions=_text("Part one.\nPart two."))],
        ),
        metadata=md,
    )
    got = await epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(
            parent=PARENT, start=ts(start), stop=ts(start + timedelta(hours=1))
        ),
        metadata=md,
    )
    assert got.programmes[0].descriptions[0].text == "Part one.\nPart two."


IMPORT_WITH_SEPARATORS = xmltv(
    f'<channel id="{CH}"><display-name lang="zh">广东&#x85;卫视</display-name></channel>',
    '<channel id="gd9.gdtv.cn"><display-name>Nine</display-name></channel>',
    xprog("20260302000000", "20260302003000", "A&#x2028;B", ch="gd9.gdtv.cn"),
    xprog("20260302003000", "20260302010000", "Fine", ch="gd9.gdtv.cn"),
    xprog(
        "20260302010000",
        "20260302013000",
        "C",
        ch="gd9.gdtv.cn",
        extra="<category>News&#13;Flash</category>",
    ),
)


async def test_xmltv_import_refuses_line_breakers_per_element(
    epg: Grpc, redis: aioredis.Redis
) -> None:
    md = await epg.md("broadcaster:gdtv")
    strict = epg_pb2.ImportOptions(strict=True)

    async def strict_import(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        return await g.stub.ImportXmltv(chunks(IMPORT_WITH_SEPARATORS, strict), metadata=md)

    err = await refused(epg, redis, strict_import, md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "channel.names[0].text" in error_details(err).metadata["first"]
    report = await epg.stub.ImportXmltv(chunks(IMPORT_WITH_SEPARATORS), metadata=md)
    assert report.problems_total == 3
    reasons = {p.line: p.reason for p in report.problems}
    assert reasons[3].startswith("channel.names[0].text: contains a control")
    assert reasons[5].startswith("programme.titles[0].text: contains a control")
    assert reasons[7].startswith("programme.categories[0].text: contains a control")
    assert (report.channels_created, report.programmes_written) == (1, 1)
    stored = await stored_programmes(redis)
    assert [p.title() for p in stored] == ["Fine"]
    assert rule_breaches(await stored_channels(redis), stored) == []


# ---------------------------------------------------------------- 1. stored injection: encoders


async def test_stored_bad_text_breaks_neither_export_nor_nownext(
    epg: Grpc, redis: aioredis.Redis, dtd_path: Path
) -> None:
    planted = await plant_bad_guide(redis)
    md = await epg.md(PLAYBACK)
    window: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(days=2))}
    for compress in (False, True):
        parts = [
            c.data
            async for c in epg.stub.ExportXmltv(
                epg_pb2.ExportXmltvRequest(gzip=compress, **window), metadata=md
            )
        ]
        data = gzip.decompress(b"".join(parts)) if compress else b"".join(parts)
        check_guide(data, len(BAD_CHANNELS), len(planted))
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(etree.fromstring(data)), dtd.error_log
    now = await epg.stub.NowNext(
        epg_pb2.NowNextRequest(at=ts(T0 + timedelta(minutes=5))), metadata=md
    )
    assert [e.now.name.rpartition("/")[2] for e in now.entries] == ["gd1-bad0", "gd2-bad0"]


async def test_stored_bad_text_cannot_forge_lineup_entries_or_break_the_guide(
    epg: Grpc, redis: aioredis.Redis
) -> None:
    planted = await plant_bad_guide(redis)
    # What the front door does for /lineup.m3u and /guide.xml.gz, with its playback key.
    cache = EpgCache(epg.target, await epg.token(PLAYBACK))
    try:
        channels = list((await cache.channels()).values())
        programmes = [p for c in channels for p in await cache.programmes(c.id, T0)]
    finally:
        await cache.close()
    assert len(programmes) == len(planted)
    entries = [
        LineupEntry(c.id, c.number, c.name(), c.logo_url, c.group, c.catchup_days) for c in channels
    ]
    text = render_m3u(
        entries, base_url="http://fd.example", guide_url="http://fd.example/guide.xml.gz"
    )
    lines = text.splitlines()  # splits at every breaker a player might honour
    assert len(lines) == 1 + 2 * len(channels)
    assert lines[0].startswith("#EXTM3U ")
    assert all(line.startswith("#EXTINF:-1 ") for line in lines[1::2])
    assert all(line.startswith("http://fd.example/live/") for line in lines[2::2])
    assert "attacker" not in "".join(lines[2::2])
    parsed = parse_m3u(text)
    assert [(c.number, c.url) for c in parsed] == [
        (1, "http://fd.example/live/gd1.gdtv.cn/master.m3u8"),
        (2, "http://fd.example/live/gd2.gdtv.cn%0A/master.m3u8"),
    ]
    assert parsed[0].catchup_days == 7
    assert 'tvg-logo=""' in lines[3]  # javascript: is no logo
    guide = gzip.decompress(write_xmltv(channels, programmes, compress=True))
    check_guide(guide, len(channels), len(planted))


# ---------------------------------------------------------------- 2. XMLTV import


def test_a_gzip_of_unknown_elements_imports_in_flat_memory(
    tmp_path: Path, redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    body = b"".join(
        [
            xmltv(
                f'<channel id="{CH}"><display-name>GD</display-name></channel>',
                xprog("20260302000000", "20260302003000", "First"),
            ).removesuffix(b"\n</tv>\n"),
            UNKNOWN * (60_000_000 // len(UNKNOWN)),
            b"<programme start='20260302003000' stop='20260302010000' channel='gd1.gdtv.cn'>",
            b"<title>Last</title>" + UNKNOWN * 100_000 + b"</programme></tv>",
        ]
    )
    path = tmp_path / "guide.xml.gz"
    path.write_bytes(gzip.compress(body, compresslevel=1))
    del body
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests.epg.hostile import child_import;"
            "child_import(sys.argv[1], sys.argv[2])",
            str(path),
            redis_server.url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 60 MB of unknown siblings took the service to 1.9 GB when they were kept.
    assert out["grown_kb"] < 50 * 1024, out
    # The last programme holds 100,000 unknown children: kept up to the bound, then freed
    # as they stream and the programme reported.
    assert (out["channels"], out["written"], out["problems"]) == (1, 1, 1), out


async def test_the_event_loop_answers_rpcs_while_a_guide_is_parsed(
    epg: Grpc, redis: aioredis.Redis
) -> None:
    md = await seed(epg, 2)
    gate = Gate(
        xmltv(
            *(xprog(f"202603030{h}0000", f"202603030{h + 1}0000", f"T{h}") for h in range(4)),
            UNKNOWN.decode() * 20_000,
            *(xprog(f"202603040{h}0000", f"202603040{h + 1}0000", f"U{h}") for h in range(4)),
        )
    )
    service = EpgService(store=EpgStore(redis), max_import_bytes=10_000_000)
    importing = asyncio.create_task(service.import_xmltv(ADMIN, cast(IO[bytes], gate)))
    assert await asyncio.to_thread(gate.paused.wait, 10)
    # The parse thread is blocked mid-file: a loop-bound parser would block this call too.
    reply = await epg.stub.NowNext(
        epg_pb2.NowNextRequest(channel_ids=[CH], at=ts(T0 + timedelta(minutes=5))), metadata=md
    )
    assert not importing.done()
    gate.resume.set()
    report = await importing
    assert not gate.timed_out
    assert reply.entries[0].now.titles[0].text == "P0"
    assert (report.programmes_written, report.problems_total) == (8, 0)


async def test_a_flood_of_problems_is_reported_as_the_first_ones_and_a_total(
    epg: Grpc, redis: aioredis.Redis
) -> None:
    await seed(epg, 1)
    md = await epg.md("broadcaster:gdtv")
    data = gzip.compress(xmltv("<programme/>" * 300_000))
    report = await epg.stub.ImportXmltv(chunks(data), metadata=md)
    assert report.problems_total == 300_000
    assert len(report.problems) == MAX_PROBLEMS
    assert report.problems[0].reason == "programme has no channel attribute"
    assert report.ByteSize() < 16_000


BAD_TIMES = [
    ("100000101000000", "year 10000"),
    ("00000101000000", "year 0"),
    ("99991231230000 -0100", "past 9999 in UTC"),
    ("00010101003000 +0100", "before year 1 in UTC"),
    ("99991231000000", "representable but out of range"),
    ("20260302040000 +2500", "offset out of range"),
    ("20260302040000 +0860", "offset minutes"),
]


async def test_times_outside_the_years_are_one_problem_each(
    epg: Grpc, redis: aioredis.Redis
) -> None:
    md = await seed(epg, 1)
    elements = [xprog("20260302010000", "20260302013000", "Good")]
    for n, (start, _) in enumerate(BAD_TIMES):
        elements.append(xprog(start, "20260302050000", f"Bad {n}"))
        elements.append(xprog("20260302050000", start, f"Bad stop {n}"))
    elements.append(xprog("20260302020000", "20260302023000", "Also good"))
    data = xmltv(*elements)

    async def strict_import(g: Grpc, md: tuple[tuple[str, str], ...]) -> Any:
        options = epg_pb2.ImportOptions(strict=True)
        return await g.stub.ImportXmltv(chunks(data, options), metadata=md)

    err = await refused(epg, redis, strict_import, md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(err).metadata["problems"] == str(2 * len(BAD_TIMES))
    assert "line 4: bad time: '100000101000000'" in error_details(err).metadata["first"]
    report = await epg.stub.ImportXmltv(chunks(data), metadata=md)
    assert report.problems_total == 2 * len(BAD_TIMES)
    assert sorted(p.line for p in report.problems) == list(range(4, 4 + 2 * len(BAD_TIMES)))
    assert report.programmes_written == 2
