"""The scheduler's ``headend epg`` commands, run as the console script against a real EPG.

Each task runs the installed ``headend`` in its own process against the EPG
served on port 0 over the test Redis, then reads the state back through
``EpgClient``: what the command printed and what it changed must agree. The
commands that print are run in every ``--output`` format.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from epg.client import EpgClient
from epg.domain import Rights, Text
from epg.errors import ChannelNotFound, ProgrammeNotFound
from headend.clitools import EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE
from headend.output import width
from tests.epg.support import CH, T0, Grpc, seed

HEADEND = str(Path(sys.executable).with_name("headend"))
BROADCASTER = "broadcaster:gdtv"
FORMATS = [pytest.param(fmt, id=fmt) for fmt in ("table", "json", "csv")]
# Variables the caller's shell may hold that would change what a command does.
_CLEARED = ("HEADEND_API_KEY", "HEADEND_API_KEY_FILE", "HEADEND_DEBUG", "EPG_TARGET")


async def headend(g: Grpc, *args: str, **env: str) -> tuple[int, str, str]:
    """``headend epg ARGS`` as the broadcaster, at the served EPG unless ``env`` says."""
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    base.update(EPG_TARGET=g.target, HEADEND_API_KEY=await g.token(BROADCASTER))
    proc = await asyncio.create_subprocess_exec(
        HEADEND, "epg", *args, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(g: Grpc, *args: str) -> str:
    """Run a command that must succeed; its stdout."""
    code, out, err = await headend(g, *args)
    assert (code, err) == (0, ""), err
    return out


def rows_of(out: str, fmt: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Parse what a command printed as ``fmt``: a table's header and cells, JSON, or CSV with
    ``columns`` as its header; the rows as mappings (table and CSV cells as text)."""
    if fmt == "json":
        rows = json.loads(out)
        assert isinstance(rows, list)
        return rows
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(out))
        assert tuple(reader.fieldnames or ()) == columns
        return list(reader)
    header, *lines = out.splitlines()
    assert header.split() == [c.upper() for c in columns]
    # Each column starts at the terminal cell where its name does (cells are padded by display
    # width: a Chinese character takes two).
    starts = [header.index(c.upper()) for c in columns]
    ends = [*starts[1:], None]
    return [
        {c: _cells(line, a, b).strip() for c, a, b in zip(columns, starts, ends, strict=True)}
        for line in lines
    ]


def _cells(line: str, start: int, end: int | None) -> str:
    """The characters of ``line`` between terminal cells ``start`` and ``end``."""
    taken, at = [], 0
    for ch in line:
        if at >= start and (end is None or at < end):
            taken.append(ch)
        at += width(ch)
    return "".join(taken)


def text_of(value: Any) -> str:
    """A JSON value as a table or CSV cell shows it."""
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def epg(g: Grpc) -> EpgClient:
    """The broadcaster's own client, to read back what a command did."""
    return EpgClient(g.target, await g.token(BROADCASTER))


CHANNEL_COLUMNS = ("id", "number", "name", "group", "catchup_days", "timezone", "owner",
                   "active", "version")  # fmt: skip
PROGRAMME_COLUMNS = ("id", "channel_id", "start", "stop", "title", "category",
                     "catchup_allowed", "blackout_regions")  # fmt: skip
RESULT_COLUMNS = ("id", "change", "version")
NOWHERE = "127.0.0.1:1"  # a privileged port no test listens on: connections are refused


# ---------------------------------------------------------------- channels


@pytest.mark.parametrize("fmt", FORMATS)
async def test_create_a_channel_then_list_and_get_it(grpc_epg: Grpc, fmt: str) -> None:
    out = await ok(
        grpc_epg, "channels", "create", CH, "--name", "zh:广东卫视", "--name", "en:Guangdong TV",
        "--number", "21", "--group", "satellite", "--catchup-days", "7",
        "--logo", "https://img.example.cn/gd1.png", "-o", fmt,
    )  # fmt: skip
    async with await epg(grpc_epg) as client:
        stored = await client.get_channel(CH)
    assert stored.names == (Text("zh", "广东卫视"), Text("en", "Guangdong TV"))
    assert (stored.number, stored.group, stored.catchup_days, stored.owner) == (
        21, "satellite", 7, "gdtv",
    )  # fmt: skip
    assert stored.logo_url == "https://img.example.cn/gd1.png"
    for printed in (
        out,
        await ok(grpc_epg, "channels", "list", "-o", fmt),
        await ok(grpc_epg, "channels", "get", CH, "-o", fmt),
    ):
        [row] = rows_of(printed, fmt, CHANNEL_COLUMNS)
        assert (row["id"], row["name"], text_of(row["number"])) == (CH, "广东卫视", "21")
        assert text_of(row["version"]) == "1"
        if fmt == "json":  # every field, whole
            assert row["names"][1] == {"lang": "en", "text": "Guangdong TV"}
            assert row["logo_url"] == stored.logo_url


@pytest.mark.parametrize("fmt", FORMATS)
async def test_update_changes_only_the_fields_given(grpc_epg: Grpc, fmt: str) -> None:
    await ok(grpc_epg, "channels", "create", CH, "--name", "zh:广东卫视", "--number", "21",
             "--group", "satellite", "--catchup-days", "7")  # fmt: skip
    out = await ok(grpc_epg, "channels", "update", CH, "--number", "22", "--no-active", "-o", fmt)
    async with await epg(grpc_epg) as client:
        stored = await client.get_channel(CH)
    assert (stored.number, stored.active, stored.version) == (22, False, 2)
    assert (stored.names, stored.group, stored.catchup_days) == (
        (Text("zh", "广东卫视"),), "satellite", 7,
    )  # fmt: skip
    [row] = rows_of(out, fmt, CHANNEL_COLUMNS)
    assert (text_of(row["number"]), text_of(row["active"]), text_of(row["version"])) == (
        "22", "false", "2",
    )  # fmt: skip
    listed = rows_of(await ok(grpc_epg, "channels", "list", "--active-only", "-o", fmt), fmt,
                     CHANNEL_COLUMNS)  # fmt: skip
    assert listed == []


@pytest.mark.parametrize("fmt", FORMATS)
async def test_delete_a_channel_refused_while_scheduled_then_forced(
    grpc_epg: Grpc, fmt: str
) -> None:
    await seed(grpc_epg)
    code, out, err = await headend(grpc_epg, "channels", "delete", CH, "-o", fmt)
    assert (code, out) == (EXIT_REFUSED, "")
    assert err.startswith("headend epg: FAILED_PRECONDITION: channel gd1.gdtv.cn still has 4")
    out = await ok(grpc_epg, "channels", "delete", CH, "--force", "-o", fmt)
    [row] = rows_of(out, fmt, ("id", "deleted", "version"))
    assert (row["id"], text_of(row["deleted"])) == (CH, "true")
    async with await epg(grpc_epg) as client:
        with pytest.raises(ChannelNotFound):
            await client.get_channel(CH)


# ---------------------------------------------------------------- programmes


@pytest.mark.parametrize("fmt", FORMATS)
async def test_add_a_programme_then_list_and_get_it(grpc_epg: Grpc, fmt: str) -> None:
    await seed(grpc_epg, count=1)  # 08:00 to 08:30 +08:00 on 2 March
    out = await ok(
        grpc_epg, "programmes", "add", CH, "--start", "2026-03-02T08:30:00+08:00",
        "--stop", "2026-03-02T09:00:00+08:00", "--title", "zh:早间新闻", "--title", "en:Morning",
        "--category", "zh:新闻", "--rating", "CN:G", "--no-catchup", "-o", fmt,
    )  # fmt: skip
    [row] = rows_of(out, fmt, RESULT_COLUMNS)
    assert row["change"] == "written"
    async with await epg(grpc_epg) as client:
        added = await client.get_programme(row["id"])
    assert added.start == T0 + timedelta(minutes=30)
    assert added.titles == (Text("zh", "早间新闻"), Text("en", "Morning"))
    assert (added.categories, added.ratings[0].system, added.ratings[0].value) == (
        (Text("zh", "新闻"),), "CN", "G",
    )  # fmt: skip
    assert added.rights == Rights(catchup_allowed=False)
    window = ("--from", "2026-03-02T08:00:00+08:00", "--to", "2026-03-02T10:00:00+08:00")
    listed = rows_of(await ok(grpc_epg, "programmes", "list", CH, *window, "-o", fmt), fmt,
                     PROGRAMME_COLUMNS)  # fmt: skip
    assert [r["title"] for r in listed] == ["P0", "早间新闻"]
    [got] = rows_of(await ok(grpc_epg, "programmes", "get", added.id, "-o", fmt), fmt,
                    PROGRAMME_COLUMNS)  # fmt: skip
    assert (got["id"], got["start"], got["category"]) == (
        added.id, "2026-03-02T00:30:00+00:00", "新闻",
    )  # fmt: skip
    assert text_of(got["catchup_allowed"]) == "false"


async def test_an_overlapping_add_is_refused_unless_replace(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, count=2)
    args = ("programmes", "add", CH, "--start", "2026-03-02T00:15:00+00:00",
            "--stop", "2026-03-02T00:45:00+00:00", "--title", "Breaking")  # fmt: skip
    code, out, err = await headend(grpc_epg, *args)
    assert (code, out) == (EXIT_REFUSED, "")
    assert "conflicting_ids: " in err
    rows = rows_of(await ok(grpc_epg, *args, "--replace", "-o", "json"), "json", RESULT_COLUMNS)
    assert sorted(r["change"] for r in rows) == ["trimmed", "trimmed", "written"]
    async with await epg(grpc_epg) as client:
        titles = [p.title() for p in await client.range(CH, T0, T0 + timedelta(hours=1))]
    assert titles == ["P0", "Breaking", "P1"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_set_and_clear_a_blackout_keeping_the_rest(grpc_epg: Grpc, fmt: str) -> None:
    await seed(grpc_epg, count=1)
    async with await epg(grpc_epg) as client:
        [before] = await client.range(CH, T0, T0 + timedelta(hours=1))
        out = await ok(
            grpc_epg, "programmes", "edit", before.id, "--blackout-regions", "110000,120000",
            "--blackout-slate", "https://img.example.cn/slate.png", "-o", fmt,
        )  # fmt: skip
        assert rows_of(out, fmt, RESULT_COLUMNS)[0]["change"] == "written"
        blacked = await client.get_programme(before.id)
        assert blacked.rights == Rights(
            blackout_regions=("110000", "120000"), blackout_slate="https://img.example.cn/slate.png"
        )
        assert (blacked.titles, blacked.start, blacked.stop) == (
            before.titles, before.start, before.stop,
        )  # fmt: skip
        [row] = rows_of(await ok(grpc_epg, "programmes", "get", before.id, "-o", fmt), fmt,
                        PROGRAMME_COLUMNS)  # fmt: skip
        assert text_of(row["blackout_regions"]) == "110000,120000"
        await ok(grpc_epg, "programmes", "edit", before.id, "--clear-blackout",
                 "--title", "zh:重播", "--no-catchup")  # fmt: skip
        cleared = await client.get_programme(before.id)
    assert cleared.rights == Rights(catchup_allowed=False)
    assert (cleared.titles, cleared.start) == ((Text("zh", "重播"),), before.start)


async def test_set_languages_then_change_only_the_ones_given(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 0)
    out = await ok(
        grpc_epg, "programmes", "add", CH, "--id", "film-1", "--start", "2026-03-02T08:00:00+08:00",
        "--stop", "2026-03-02T09:30:00+08:00", "--title", "zh:电影", "--audio", "zh,en",
        "--subtitles", "zh,en", "-o", "json",
    )  # fmt: skip
    assert rows_of(out, "json", RESULT_COLUMNS)[0]["change"] == "written"
    async with await epg(grpc_epg) as client:
        added = await client.get_programme("film-1")
        assert (added.audio_languages, added.subtitle_languages) == (("zh", "en"), ("zh", "en"))
        # Only the audio languages change: subtitles, titles and times stay as they were.
        await ok(grpc_epg, "programmes", "edit", "film-1", "--audio", "en,zh,yue")
        edited = await client.get_programme("film-1")
        assert edited == replace(added, audio_languages=("en", "zh", "yue"))
        await ok(grpc_epg, "programmes", "edit", "film-1", "--subtitles", "")
        cleared = await client.get_programme("film-1")
    assert cleared == replace(edited, subtitle_languages=())
    [shown] = json.loads(await ok(grpc_epg, "programmes", "get", "film-1", "-o", "json"))
    assert shown["audio_languages"] == ["en", "zh", "yue"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_delete_programmes_by_id_and_by_window(grpc_epg: Grpc, fmt: str) -> None:
    await seed(grpc_epg, count=4)
    async with await epg(grpc_epg) as client:
        ids = [p.id for p in await client.range(CH, T0, T0 + timedelta(hours=2))]
        out = await ok(grpc_epg, "programmes", "delete", CH, ids[0], "-o", fmt)
        assert [(r["id"], r["change"]) for r in rows_of(out, fmt, RESULT_COLUMNS)] == [
            (ids[0], "removed")
        ]
        out = await ok(grpc_epg, "programmes", "delete", CH, "--from", "2026-03-02T01:00:00Z",
                       "--to", "2026-03-02T02:00:00+00:00", "-o", fmt)  # fmt: skip
        assert sorted(r["id"] for r in rows_of(out, fmt, RESULT_COLUMNS)) == sorted(ids[2:])
        left = await client.range(CH, T0, T0 + timedelta(hours=2))
    assert [p.id for p in left] == [ids[1]]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_expand_a_weekday_slot_in_local_time(grpc_epg: Grpc, fmt: str) -> None:
    await seed(grpc_epg, count=0)
    args = ("slots", "expand", CH, "--days", "1-5", "--at", "19:00", "--minutes", "30",
            "--title", "zh:新闻联播", "--category", "zh:新闻", "--first-day", "2026-03-02",
            "--last-day", "2026-03-08", "-o", fmt)  # fmt: skip
    week = (T0, T0 + timedelta(days=7))
    dry = rows_of(await ok(grpc_epg, *args, "--dry-run"), fmt, PROGRAMME_COLUMNS)
    async with await epg(grpc_epg) as client:
        assert await client.range(CH, *week) == ()
        rows = rows_of(await ok(grpc_epg, *args), fmt, PROGRAMME_COLUMNS)
        stored = await client.range(CH, *week)
    assert [r["id"] for r in rows] == [r["id"] for r in dry] == [p.id for p in stored]
    # Monday to Friday at 19:00 in Asia/Shanghai is 11:00 UTC.
    assert [p.start for p in stored] == [T0 + timedelta(days=d, hours=11) for d in range(5)]
    assert {p.categories for p in stored} == {(Text("zh", "新闻"),)}
    assert rows[0]["start"] == "2026-03-02T11:00:00+00:00"


# ---------------------------------------------------------------- guide queries


@pytest.mark.parametrize("fmt", FORMATS)
async def test_now_next_gaps_and_search(grpc_epg: Grpc, fmt: str) -> None:
    await seed(grpc_epg, count=4)  # P0..P3, 00:00 to 02:00 UTC
    async with await epg(grpc_epg) as client:
        [p1] = [p for p in await client.range(CH, T0, T0 + timedelta(hours=2)) if p.title() == "P1"]
        await client.delete_programmes(CH, ids=[p1.id])
    out = await ok(grpc_epg, "now-next", CH, "--at", "2026-03-02T08:10:00+08:00", "-o", fmt)
    [row] = rows_of(out, fmt, ("channel_id", "now_start", "now_stop", "now_title",
                               "next_start", "next_title"))  # fmt: skip
    assert (row["channel_id"], row["now_title"], row["next_title"]) == (CH, "P0", "P2")
    assert row["next_start"] == "2026-03-02T01:00:00+00:00"
    out = await ok(grpc_epg, "gaps", CH, "--from", "2026-03-02T00:00:00Z",
                   "--to", "2026-03-02T03:00:00Z", "-o", fmt)  # fmt: skip
    gaps = rows_of(out, fmt, ("channel_id", "start", "stop", "minutes"))
    assert [(g["start"], text_of(g["minutes"])) for g in gaps] == [
        ("2026-03-02T00:30:00+00:00", "30"), ("2026-03-02T02:00:00+00:00", "60"),
    ]  # fmt: skip
    out = await ok(grpc_epg, "gaps", CH, "--from", "2026-03-02T00:00:00Z",
                   "--to", "2026-03-02T03:00:00Z", "--min-minutes", "45", "-o", fmt)  # fmt: skip
    assert len(rows_of(out, fmt, ("channel_id", "start", "stop", "minutes"))) == 1
    out = await ok(grpc_epg, "search", "p3", "--from", "2026-03-02T00:00:00Z", "-o", fmt)
    [found] = rows_of(out, fmt, PROGRAMME_COLUMNS)
    assert (found["title"], found["start"]) == ("P3", "2026-03-02T01:30:00+00:00")


# ---------------------------------------------------------------- target and failures


async def test_target_overrides_epg_target(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, count=0)
    elsewhere = {"EPG_TARGET": NOWHERE}
    code, out, err = await headend(grpc_epg, "channels", "list", **elsewhere)
    assert (code, out) == (EXIT_UNAVAILABLE, "")
    assert err.startswith("headend epg: epg unavailable: ")
    code, out, err = await headend(
        grpc_epg, "--target", grpc_epg.target, "channels", "list", "-o", "csv", **elsewhere
    )
    assert (code, err) == (0, "")
    assert [r["id"] for r in rows_of(out, "csv", CHANNEL_COLUMNS)] == [CH]
    # It may also follow the command's name.
    code, out, err = await headend(
        grpc_epg, "channels", "list", "--target", grpc_epg.target, "-o", "csv", **elsewhere
    )
    assert (code, err) == (0, "")
    assert [r["id"] for r in rows_of(out, "csv", CHANNEL_COLUMNS)] == [CH]
    # Given after the command, it wins over one given before it.
    code, _, err = await headend(
        grpc_epg, "--target", grpc_epg.target, "channels", "list", "--target", NOWHERE, **elsewhere
    )
    assert code == EXIT_UNAVAILABLE, err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("channels", "get", "nope.gdtv.cn"), id="channel"),
        pytest.param(("programmes", "get", "p0000000000000000000"), id="programme"),
        pytest.param(("programmes", "edit", "p0000000000000000000", "--no-catchup"), id="edit"),
    ],
)
async def test_a_refusal_is_one_line_and_exit_1(grpc_epg: Grpc, args: tuple[str, ...]) -> None:
    code, out, err = await headend(grpc_epg, *args)
    assert (code, out) == (EXIT_REFUSED, "")
    assert err.startswith("headend epg: NOT_FOUND: no ")
    # One line; below it, indented, the details the service attached.
    _, *details = err.splitlines()
    assert details
    assert all(line.startswith("  ") for line in details)
    async with await epg(grpc_epg) as client:
        with pytest.raises(ProgrammeNotFound):
            await client.get_programme("p0000000000000000000")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("programmes", "list", CH, "--from", "yesterday"), id="not-iso"),
        pytest.param(("gaps", CH, "--to", "2026-03-02T08:00:00"), id="no-offset"),
        pytest.param(("now-next", "--at", "2026-13-01T00:00:00Z"), id="no-such-month"),
        pytest.param(
            f"slots expand {CH} --days 0-5 --at 19:00 --minutes 30 --title x "
            "--first-day 2026-03-02 --last-day 2026-03-08".split(),
            id="weekday",
        ),
    ],
)
async def test_a_bad_argument_exits_2_before_any_call(
    grpc_epg: Grpc, args: tuple[str, ...]
) -> None:
    code, out, err = await headend(grpc_epg, *args, EPG_TARGET=NOWHERE)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.splitlines()[-1].startswith("headend epg ")
    assert "error: argument " in err.splitlines()[-1]
