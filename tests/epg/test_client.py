"""``EpgClient`` against a real EPG server: domain values in and out, errors rebuilt."""

from __future__ import annotations

import asyncio
import io
import socket
from dataclasses import replace
from datetime import timedelta

import pytest
from lxml import etree

from epg.client import EpgClient
from epg.domain import Channel, Programme, Rights, WritePolicy
from epg.errors import ChannelExists, InvalidProgramme, NotAllowed, ProgrammeNotFound
from headend.rpc import ServiceUnavailable
from tests.epg.support import CH, GUIDE, T0, Grpc, channel, day_of, prog


async def _client(g: Grpc, who: str = "broadcaster:gdtv") -> EpgClient:
    return EpgClient(g.target, await g.token(who))


async def test_calls_take_and_return_domain_values(grpc_epg: Grpc) -> None:
    async with await _client(grpc_epg) as epg:
        created = await epg.create_channel(channel())
        assert isinstance(created, Channel)
        assert (created.id, created.owner, created.version > 0) == (CH, "gdtv", True)
        barred = prog(T0, pid="p-barred", rights=Rights(catchup_allowed=False))
        written = await epg.put_programmes(
            CH, [*day_of(T0 + timedelta(hours=1), 2), barred], policy=WritePolicy.REPLACE
        )
        assert (len(written.written), written.version > created.version) == (3, True)
        assert [c.id for c in await epg.list_channels(active_only=True)] == [CH]
        found = await epg.range(CH, T0, T0 + timedelta(hours=2))
        assert all(isinstance(p, Programme) for p in found)
        assert [p.start for p in found] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1.5)]
        got = await epg.get_programme("p-barred")
        assert (got.channel_id, got.rights.catchup_allowed) == (CH, False)
        assert replace(got, id="") == replace(barred, id="")


async def test_a_domain_error_comes_back_as_the_same_leaf(grpc_epg: Grpc) -> None:
    async with await _client(grpc_epg) as epg, await _client(grpc_epg, "broadcaster:hntv") as other:
        await epg.create_channel(channel())
        with pytest.raises(ChannelExists):
            await epg.create_channel(channel())
        with pytest.raises(ProgrammeNotFound) as missing:
            await epg.get_programme("nope")
        assert missing.value.details == {"programme_id": "nope"}
        with pytest.raises(InvalidProgramme) as bad:
            await epg.put_programmes(CH, [prog(T0, 0)])
        assert bad.value.field == "programmes[0].stop"
        with pytest.raises(NotAllowed):
            await other.put_programmes(CH, [prog(T0)])


@pytest.mark.parametrize(
    "pid",
    [
        pytest.param("a/b", id="slash"),
        pytest.param("p 1", id="space"),
        pytest.param("", id="empty"),
        pytest.param("p" * 600, id="long"),
        pytest.param("-p", id="bad-first-char"),
    ],
)
async def test_a_bad_programme_id_is_the_epgs_invalid_programme(grpc_epg: Grpc, pid: str) -> None:
    # The front door and the origin answer this with "no such programme", not 503.
    async with await _client(grpc_epg, "playback") as epg:
        with pytest.raises(InvalidProgramme) as bad:
            await epg.get_programme(pid)
        assert bad.value.field == "name"


async def test_lists_read_every_page(grpc_epg: Grpc) -> None:
    async with await _client(grpc_epg) as epg:
        await epg.create_channel(channel())
        guide = day_of(T0, 1100, minutes=10)
        for i in range(0, len(guide), 400):  # the test server's batches hold 500
            await epg.put_programmes(CH, guide[i : i + 400])
        found = await epg.range(CH, T0, T0 + timedelta(days=8))
        assert [p.start for p in found] == [T0 + timedelta(minutes=10 * i) for i in range(1100)]
        gaps = await epg.list_gaps(CH, T0, T0 + timedelta(days=8))
        assert [g.start for g in gaps] == [T0 + timedelta(minutes=11_000)]


async def test_xmltv_goes_in_and_out_as_a_report_and_bytes(grpc_epg: Grpc) -> None:
    async with await _client(grpc_epg) as epg:
        report = await epg.import_xmltv(io.BytesIO(GUIDE), channel_map={"SRC-GD1": CH})
        assert (report.channels_created, report.programmes_written) == (1, 3)
        assert [(p.line, p.channel) for p in report.problems] == [(17, CH)]
        chunks = [c async for c in epg.export_xmltv([CH], T0, T0 + timedelta(days=1))]
    doc = etree.fromstring(b"".join(chunks))
    assert len(doc.findall("programme")) == 3


async def test_the_change_feed_says_where_it_starts_then_yields_changes(grpc_epg: Grpc) -> None:
    async with await _client(grpc_epg) as epg, epg.watch_changes() as feed:
        assert feed.version == 0  # an empty guide: nothing to resume from
        await epg.create_channel(channel())
        change = await asyncio.wait_for(anext(feed), 10)
        assert (change.kind, change.channel_id, change.version > feed.version) == (
            "channel",
            CH,
            True,
        )


async def test_the_epg_down_is_service_unavailable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with EpgClient(f"127.0.0.1:{port}", "key", timeout_seconds=2) as epg:
        with pytest.raises(ServiceUnavailable) as down:
            await epg.get_programme("p1")
        assert (down.value.service, down.value.reason) == ("epg", "UNAVAILABLE")
        with pytest.raises(ServiceUnavailable):
            async with epg.watch_changes():
                pass
