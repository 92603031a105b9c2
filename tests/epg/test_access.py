"""Who may do what in the EPG, over real gRPC: the least-privilege ``playback`` role.

The front door and the origin call the EPG with a ``playback`` key: it reads
everything the readers read (including the change feed) and every write is
refused with PERMISSION_DENIED before anything is stored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from lxml import etree

from headend.auth import PLAYBACK
from headend.rpc import error_details
from protos import epg_pb2
from tests.epg.support import (
    PARENT,
    T0,
    Call,
    Grpc,
    Metadata,
    chunks,
    pb_channel,
    pb_create,
    pb_prog,
    refused,
    seed,
    ts,
    xmltv,
    xprog,
)


def _text(text: str) -> list[epg_pb2.LocalizedText]:
    return [epg_pb2.LocalizedText(lang="en", text=text)]


async def _stream(call: Any) -> list[Any]:
    return [m async for m in call]


async def test_playback_reads_everything(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 4)
    md = await grpc_epg.md(PLAYBACK)
    window: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(days=1))}
    stub = grpc_epg.stub
    listed = await stub.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
    assert [c.name for c in listed.channels] == [PARENT]
    assert (
        await stub.GetChannel(epg_pb2.GetChannelRequest(name=PARENT), metadata=md)
    ).name == PARENT
    ranged = await stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
    )
    assert len(ranged.programmes) == 4
    name = ranged.programmes[0].name
    pid = name.rpartition("/")[2]
    got = await stub.GetProgramme(epg_pb2.GetProgrammeRequest(name=name), metadata=md)
    assert got.name == name
    now = await stub.NowNext(epg_pb2.NowNextRequest(at=ts(T0)), metadata=md)
    assert now.entries[0].now.name == name
    grid = await stub.Grid(epg_pb2.GridRequest(**window), metadata=md)
    assert len(grid.rows[0].programmes) == 4
    found = await stub.Search(epg_pb2.SearchRequest(text="P1", **window), metadata=md)
    assert [p.titles[0].text for p in found.programmes] == ["P1"]
    gaps = await stub.ListGaps(epg_pb2.ListGapsRequest(parent=PARENT, **window), metadata=md)
    assert len(gaps.gaps) == 1
    parts = await _stream(stub.ExportXmltv(epg_pb2.ExportXmltvRequest(**window), metadata=md))
    assert len(etree.fromstring(b"".join(p.data for p in parts)).findall("programme")) == 4
    watch = stub.WatchChanges(epg_pb2.WatchChangesRequest(), metadata=md)
    await watch.initial_metadata()  # positioned: the next write is seen
    await stub.DeleteProgrammes(
        epg_pb2.DeleteProgrammesRequest(parent=PARENT, ids=[pid]),
        metadata=await grpc_epg.md("broadcaster:gdtv"),
    )
    change = await watch.read()
    watch.cancel()
    assert (change.kind, list(change.programme_ids)) == (epg_pb2.CHANGE_KIND_PROGRAMMES, [pid])


def _import(g: Grpc, md: Metadata) -> Any:
    data = xmltv(xprog("20260305000000", "20260305010000", "Hijack"))
    return g.stub.ImportXmltv(chunks(data, epg_pb2.ImportOptions(owner="gdtv")), metadata=md)


def _rule() -> epg_pb2.SlotRule:
    return epg_pb2.SlotRule(
        weekdays=[1],
        hour=19,
        duration_seconds=1800,
        titles=_text("x"),
        first_day=epg_pb2.LocalDate(year=2026, month=3, day=9),
        last_day=epg_pb2.LocalDate(year=2026, month=3, day=9),
    )


WRITES: list[Any] = [
    pytest.param(
        lambda g, md: g.stub.CreateChannel(
            pb_create("pb.gdtv.cn", owner="gdtv"),
            metadata=md,
        ),
        id="CreateChannel",
    ),
    pytest.param(
        lambda g, md: g.stub.UpdateChannel(
            epg_pb2.UpdateChannelRequest(channel=pb_channel(owner="gdtv"), expected_version=1),
            metadata=md,
        ),
        id="UpdateChannel",
    ),
    pytest.param(
        lambda g, md: g.stub.DeleteChannel(
            epg_pb2.DeleteChannelRequest(name=PARENT, force=True), metadata=md
        ),
        id="DeleteChannel",
    ),
    pytest.param(
        lambda g, md: g.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=PARENT, programmes=[pb_prog(T0 + timedelta(days=3))]
            ),
            metadata=md,
        ),
        id="PutProgrammes",
    ),
    pytest.param(
        lambda g, md: g.stub.DeleteProgrammes(
            epg_pb2.DeleteProgrammesRequest(
                parent=PARENT, start=ts(T0), stop=ts(T0 + timedelta(days=1))
            ),
            metadata=md,
        ),
        id="DeleteProgrammes",
    ),
    pytest.param(
        lambda g, md: g.stub.ExpandSlots(
            epg_pb2.ExpandSlotsRequest(parent=PARENT, rule=_rule()), metadata=md
        ),
        id="ExpandSlots",
    ),
    pytest.param(
        lambda g, md: g.stub.ExpandSlots(
            epg_pb2.ExpandSlotsRequest(parent=PARENT, rule=_rule(), dry_run=True), metadata=md
        ),
        id="ExpandSlots-dry-run",
    ),
    pytest.param(_import, id="ImportXmltv"),
]


@pytest.mark.parametrize("call", WRITES)
async def test_playback_may_change_nothing(
    grpc_epg: Grpc, redis: aioredis.Redis, call: Call
) -> None:
    await seed(grpc_epg, 2)
    md = await grpc_epg.md(PLAYBACK)
    err = await refused(grpc_epg, redis, call, md)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(err).reason == "NOT_ALLOWED"
