"""The gRPC face on port 0 with real auth: messages, status codes, details, streams."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from lxml import etree

from headend.rpc import error_details
from protos import epg_pb2
from tests.epg.support import (
    CH,
    GUIDE,
    PARENT,
    T0,
    Grpc,
    chunks,
    pb_channel,
    pb_create,
    pb_prog,
    pname,
    seed,
    ts,
)


async def test_overlap_is_failed_precondition_with_conflicting_ids(grpc_epg: Grpc) -> None:
    await seed(grpc_epg)
    md = await grpc_epg.md("broadcaster:gdtv")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=PARENT, programmes=[pb_prog(T0 + timedelta(minutes=45))]
            ),
            metadata=md,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error_details(err.value)
    assert details.reason == "SCHEDULE_CONFLICT"
    assert len(details.metadata["conflicting_ids"].split(",")) == 2
    replaced = await grpc_epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=PARENT,
            programmes=[pb_prog(T0 + timedelta(minutes=45))],
            policy=epg_pb2.WRITE_POLICY_REPLACE,
        ),
        metadata=md,
    )
    assert len(replaced.trimmed_ids) == 2
    assert len(replaced.written_ids) == 1


@pytest.mark.parametrize(
    ("programme", "field"),
    [
        pytest.param(pb_prog(T0, 0), "programmes[0].stop", id="zero-duration"),
        pytest.param(
            epg_pb2.Programme(titles=[epg_pb2.LocalizedText(text="x")]),
            "programmes[0].start",
            id="missing-start",
        ),
        pytest.param(
            pb_prog(T0, title="x" * 300), "programmes[0].titles[0].text", id="title-too-long"
        ),
        pytest.param(
            pb_prog(T0, blackout_regions=["abc"]),
            "programmes[0].blackout_regions[0]",
            id="bad-region",
        ),
    ],
)
async def test_bad_programmes_are_invalid_argument_naming_the_field(
    grpc_epg: Grpc, programme: epg_pb2.Programme, field: str
) -> None:
    await seed(grpc_epg, 0)
    md = await grpc_epg.md("broadcaster:gdtv")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(parent=PARENT, programmes=[programme]), metadata=md
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err.value).fields
    got = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(
            parent=PARENT, start=ts(T0 - timedelta(days=1)), stop=ts(T0 + timedelta(days=1))
        ),
        metadata=md,
    )
    assert list(got.programmes) == []


async def test_unknown_timezone_names_the_field(grpc_epg: Grpc) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.CreateChannel(pb_create(timezone="Asia/Beijing"), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "channel.timezone" in error_details(err.value).fields
    listed = await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    assert list(listed.channels) == []


async def test_now_next_range_grid_gaps_search_and_get_programme(grpc_epg: Grpc) -> None:
    await seed(grpc_epg)
    md = await grpc_epg.md("carrier:acme")
    nn = await grpc_epg.stub.NowNext(
        epg_pb2.NowNextRequest(at=ts(T0 + timedelta(minutes=40))), metadata=md
    )
    (entry,) = nn.entries
    assert entry.channel_id == CH
    assert (entry.now.titles[0].text, entry.next.titles[0].text) == ("P1", "P2")
    assert entry.now.catchup_allowed
    window: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(hours=3))}
    rng = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
    )
    assert [p.titles[0].text for p in rng.programmes] == ["P0", "P1", "P2", "P3"]
    grid = await grpc_epg.stub.Grid(epg_pb2.GridRequest(**window), metadata=md)
    assert grid.rows[0].channel.name == PARENT
    assert len(grid.rows[0].programmes) == 4
    assert grid.next_page_token == ""
    gaps = await grpc_epg.stub.ListGaps(
        epg_pb2.ListGapsRequest(parent=PARENT, **window), metadata=md
    )
    assert [g.start.ToDatetime(UTC) for g in gaps.gaps] == [T0 + timedelta(hours=2)]
    found = await grpc_epg.stub.Search(epg_pb2.SearchRequest(text="p2", **window), metadata=md)
    assert [p.titles[0].text for p in found.programmes] == ["P2"]
    one = await grpc_epg.stub.GetProgramme(
        epg_pb2.GetProgrammeRequest(name=rng.programmes[1].name), metadata=md
    )
    assert one.start.ToDatetime(UTC) == T0 + timedelta(minutes=30)


async def test_get_programme_carries_catchup_and_blackout(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 0)
    md = await grpc_epg.md("broadcaster:gdtv")
    await grpc_epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=PARENT,
            programmes=[
                pb_prog(
                    T0,
                    90,
                    name=pname("match-1"),
                    catchup_allowed=False,
                    blackout_regions=["440100", "440300"],
                    blackout_slate="https://slate.example/blackout.m3u8",
                )
            ],
        ),
        metadata=md,
    )
    got = await grpc_epg.stub.GetProgramme(
        epg_pb2.GetProgrammeRequest(name=pname("match-1")),
        metadata=await grpc_epg.md("carrier:acme"),
    )
    assert got.HasField("catchup_allowed")
    assert got.catchup_allowed is False
    assert list(got.blackout_regions) == ["440100", "440300"]
    assert got.blackout_slate == "https://slate.example/blackout.m3u8"
    assert got.stop.ToDatetime(UTC) - got.start.ToDatetime(UTC) == timedelta(minutes=90)


async def test_update_channel_with_stale_version_is_aborted(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 0)
    md = await grpc_epg.md("broadcaster:gdtv")
    ok = await grpc_epg.stub.UpdateChannel(
        epg_pb2.UpdateChannelRequest(
            channel=pb_channel(owner="gdtv", group="news"), expected_version=1
        ),
        metadata=md,
    )
    assert ok.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.UpdateChannel(
            epg_pb2.UpdateChannelRequest(channel=pb_channel(owner="gdtv"), expected_version=1),
            metadata=md,
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert error_details(err.value).metadata["current_version"] == "2"


async def test_expand_slots_uses_iso_weekdays_and_the_channel_zone(grpc_epg: Grpc) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    await grpc_epg.stub.CreateChannel(pb_create(), metadata=md)
    rule = epg_pb2.SlotRule(
        weekdays=[1, 2, 3, 4, 5],
        hour=19,
        minute=0,
        duration_seconds=1800,
        titles=[epg_pb2.LocalizedText(lang="zh", text="新闻联播")],
        first_day=epg_pb2.LocalDate(year=2026, month=3, day=2),
        last_day=epg_pb2.LocalDate(year=2026, month=3, day=8),
    )
    res = await grpc_epg.stub.ExpandSlots(
        epg_pb2.ExpandSlotsRequest(parent=PARENT, rule=rule), metadata=md
    )
    assert [p.start.ToDatetime(UTC).hour for p in res.programmes] == [11] * 5
    assert res.version > 0
    bad = epg_pb2.SlotRule()
    bad.CopyFrom(rule)
    bad.first_day.month = 2
    bad.first_day.day = 30
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ExpandSlots(
            epg_pb2.ExpandSlotsRequest(parent=PARENT, rule=bad), metadata=md
        )
    assert "rule.first_day" in error_details(err.value).fields


async def test_import_then_export_round_trips_and_validates(grpc_epg: Grpc, dtd_path: Path) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    options = epg_pb2.ImportOptions(channel_map={"SRC-GD1": CH})
    report = await grpc_epg.stub.ImportXmltv(chunks(GUIDE, options, 100), metadata=md)
    assert (report.channels_created, report.programmes_written) == (1, 3)
    assert [(p.line, p.channel_id) for p in report.problems] == [(17, CH)]
    window: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(days=1))}
    parts = [
        c.data
        async for c in grpc_epg.stub.ExportXmltv(
            epg_pb2.ExportXmltvRequest(gzip=True, **window), metadata=md
        )
    ]
    exported = gzip.decompress(b"".join(parts))
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(etree.fromstring(exported)), dtd.error_log
    before = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
    )
    await grpc_epg.stub.DeleteChannel(
        epg_pb2.DeleteChannelRequest(name=PARENT, force=True), metadata=md
    )
    again = await grpc_epg.stub.ImportXmltv(chunks(exported, size=4096), metadata=md)
    assert (again.channels_created, again.programmes_written, len(again.problems)) == (1, 3, 0)
    after = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
    )
    assert after == before
    first = after.programmes[0]
    assert [t.text for t in first.titles] == ["早间新闻", "Morning News"]
    assert (first.episode_xmltv_ns, first.episode_onscreen) == ("0.0.0/1", "E1")
    assert first.previously_shown
    assert first.premiere
    assert first.ratings[0].value == "G"
    channel = await grpc_epg.stub.GetChannel(epg_pb2.GetChannelRequest(name=PARENT), metadata=md)
    assert [n.text for n in channel.names] == ["广东卫视", "Guangdong"]
    assert channel.logo_url == "https://img.example.cn/gd.png"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE tv [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<tv><channel id="x.cn"><display-name>&f;</display-name></channel></tv>
"""


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        pytest.param(BOMB, grpc.StatusCode.INVALID_ARGUMENT, "file", id="xml-bomb"),
        pytest.param(
            gzip.compress(GUIDE)[:-10],
            grpc.StatusCode.INVALID_ARGUMENT,
            "file",
            id="truncated-gzip",
        ),
        pytest.param(
            b"<tv>" + b" " * 1_000_001,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "",
            id="upload-too-large",
        ),
        pytest.param(
            b"<tv>\n<programme>\n</tv>", grpc.StatusCode.INVALID_ARGUMENT, "line 3", id="malformed"
        ),
    ],
)
async def test_hostile_or_broken_uploads_are_refused_and_change_nothing(
    grpc_epg: Grpc, data: bytes, code: grpc.StatusCode, field: str
) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ImportXmltv(chunks(data, size=65536), metadata=md)
    assert err.value.code() == code
    if field:
        assert field in error_details(err.value).fields
    listed = await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    assert list(listed.channels) == []


async def test_strict_import_refuses_everything(grpc_epg: Grpc) -> None:
    md = await grpc_epg.md("broadcaster:gdtv")
    options = epg_pb2.ImportOptions(strict=True, channel_map={"SRC-GD1": CH})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ImportXmltv(chunks(GUIDE, options, 4096), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 17" in error_details(err.value).metadata["first"]
    listed = await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    assert list(listed.channels) == []


async def test_watch_changes_streams_versions_in_order(grpc_epg: Grpc) -> None:
    md = await grpc_epg.md("carrier:acme")
    call = grpc_epg.stub.WatchChanges(epg_pb2.WatchChangesRequest(from_version=0), metadata=md)
    # Deterministic: the server sends headers once the feed is positioned.
    await call.initial_metadata()
    await seed(grpc_epg, 2)
    got: list[epg_pb2.Change] = []
    async for change in call:
        got.append(change)
        if len(got) == 2:
            break
    call.cancel()
    assert [c.kind for c in got] == [epg_pb2.CHANGE_KIND_CHANNEL, epg_pb2.CHANGE_KIND_PROGRAMMES]
    assert got[0].version < got[1].version
    assert got[1].window_start.ToDatetime(UTC) == T0
    assert len(got[1].programme_ids) == 2


async def test_watch_changes_resumes_from_a_version(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 2)
    md = await grpc_epg.md("admin")
    call = grpc_epg.stub.WatchChanges(
        epg_pb2.WatchChangesRequest(from_version=1, channel_ids=[CH]), metadata=md
    )
    change = await call.read()
    call.cancel()
    assert change.version == 2
    assert change.kind == epg_pb2.CHANGE_KIND_PROGRAMMES


@pytest.mark.parametrize(
    ("who", "code"),
    [
        pytest.param("device:aa:bb:cc:dd:ee:ff", grpc.StatusCode.PERMISSION_DENIED, id="device"),
        pytest.param("broadcaster:hntv", grpc.StatusCode.PERMISSION_DENIED, id="other-owner"),
        pytest.param("carrier:acme", grpc.StatusCode.PERMISSION_DENIED, id="carrier-write"),
    ],
)
async def test_writes_by_others_are_denied(grpc_epg: Grpc, who: str, code: grpc.StatusCode) -> None:
    await seed(grpc_epg, 1)
    md = await grpc_epg.md(who)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=PARENT, programmes=[pb_prog(T0 + timedelta(days=1))]
            ),
            metadata=md,
        )
    assert err.value.code() == code
    rng = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, start=ts(T0), stop=ts(T0 + timedelta(days=2))),
        metadata=await grpc_epg.md("admin"),
    )
    assert len(rng.programmes) == 1


async def test_missing_key_is_unauthenticated(grpc_epg: Grpc) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ListChannels(epg_pb2.ListChannelsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("env", "status", "message"),
    [
        pytest.param({}, 2, "REDIS_URL is required", id="no-redis-url"),
        pytest.param(
            {"REDIS_URL": "unix:///nonexistent/redis.sock"},
            1,
            "cannot reach Redis",
            id="unreachable",
        ),
        pytest.param(
            {"REDIS_URL": "redis://x", "EPG_GRPC_PORT": "http"}, 2, "EPG_GRPC_PORT", id="bad-port"
        ),
    ],
)
def test_main_exits_with_one_clear_line(
    repo_root: Path, env: dict[str, str], status: int, message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EPG_GRPC_PORT")}
    proc = subprocess.run(
        [sys.executable, "-m", "epg"],
        cwd=repo_root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == status
    assert message in proc.stderr


async def test_timestamps_past_year_9999_are_invalid_arguments(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 1)
    far = Timestamp(seconds=10**12)  # year ~33658: no datetime holds it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ListProgrammes(
            epg_pb2.ListProgrammesRequest(parent=PARENT, start=ts(T0), stop=far),
            metadata=await grpc_epg.md(),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stop" in error_details(err.value).fields
