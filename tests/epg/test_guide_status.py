"""ListGuideStatus: how far ahead each channel's guide runs, its gaps, the latest imports;
and the ``epg_guide_hours_ahead`` gauge fed by the same read."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.domain import GUIDE_GAP_SECONDS
from epg.errors import ImportRejected, InvalidQuery, NotAllowed
from epg.metrics import GuideMetrics
from epg.server import create_server
from epg.service import EpgService
from epg.settings import EpgSettings
from epg.store import EpgStore
from epg.store.imports import IMPORTS, KEEP_OVERALL, KEEP_PER_PRINCIPAL, imports_key
from headend.auth import ADMIN, KeyStore
from headend.rpc import RpcSettings
from protos import epg_pb2
from tests.epg.support import (
    BROADCASTER,
    CARRIER,
    DEVICE,
    OTHER,
    T0,
    Grpc,
    channel,
    chunks,
    day_of,
    pb_create,
    pb_prog,
    prog,
    xmltv,
    xprog,
)

CH = "gd1.gdtv.cn"
HN = "hn1.hntv.cn"


async def _two_days_with_holes(service: EpgService) -> None:
    """gd1: 30-minute programmes from T0 - 1 h to T0 + 50 h, less one programme at T0 + 2 h
    (a 30-minute gap), one at T0 + 30 h, and 30 s trimmed off the one at T0 + 5 h."""
    await service.create_channel(BROADCASTER, channel())
    holes = {T0 + timedelta(hours=2), T0 + timedelta(hours=30)}
    schedule = [p for p in day_of(T0 - timedelta(hours=1), 102) if p.start not in holes]
    short = T0 + timedelta(hours=5)
    schedule = [
        replace(p, stop=p.stop - timedelta(seconds=30)) if p.start == short else p for p in schedule
    ]
    await service.put_programmes(BROADCASTER, CH, schedule)


async def test_the_end_hours_ahead_and_gaps_from_now_to_the_horizon(service: EpgService) -> None:
    await _two_days_with_holes(service)
    await service.create_channel(OTHER, channel(HN, owner="hntv", number=2))
    ended = "ended.gdtv.cn"
    await service.create_channel(BROADCASTER, channel(ended, number=3))
    await service.put_programmes(BROADCASTER, ended, [prog(T0 - timedelta(hours=3), 60, ch=ended)])
    channels = await service.list_channels(ADMIN)
    now = T0 + timedelta(minutes=10)
    week = await service.guide_status(ADMIN, channels, at=now)
    gd, hn, gone = week
    assert gd.channel.id == CH
    assert gd.guide_end == T0 + timedelta(hours=50)
    assert gd.hours_ahead == pytest.approx(50 - 1 / 6)
    # The one rule ListGaps applies, from now to the end of the guide; the 60 s one is not.
    listed = await service.list_gaps(
        ADMIN, CH, now, T0 + timedelta(hours=50), min_seconds=GUIDE_GAP_SECONDS
    )
    assert list(gd.gaps) == listed
    assert [(g.start - T0, g.stop - g.start) for g in gd.gaps] == [
        (timedelta(hours=2), timedelta(minutes=30)),
        (timedelta(hours=30), timedelta(minutes=30)),
    ]
    assert gd.gap_seconds == 3600
    assert (hn.guide_end, hn.hours_ahead, hn.gaps) == (None, 0.0, ())
    assert (gone.guide_end, gone.hours_ahead, gone.gaps) == (T0 - timedelta(hours=2), 0.0, ())
    # A 24-hour horizon sees only the first gap; the end is still the end.
    [day] = await service.guide_status(ADMIN, channels[:1], horizon_hours=24, at=now)
    assert (day.guide_end, len(day.gaps), day.gap_seconds) == (gd.guide_end, 1, 1800)


async def test_a_programme_running_at_now_and_a_gap_at_the_end_of_the_horizon(
    service: EpgService,
) -> None:
    await service.create_channel(BROADCASTER, channel())
    await service.put_programmes(
        BROADCASTER, CH, [prog(T0, 120), prog(T0 + timedelta(hours=3), 600)]
    )
    [status] = await service.guide_status(
        ADMIN, await service.list_channels(ADMIN), horizon_hours=1, at=T0 + timedelta(hours=1)
    )
    assert status.gaps == ()
    [status] = await service.guide_status(
        ADMIN, await service.list_channels(ADMIN), horizon_hours=3, at=T0 + timedelta(hours=1)
    )
    assert [(g.start - T0, g.stop - T0) for g in status.gaps] == [
        (timedelta(hours=2), timedelta(hours=3))
    ]


@pytest.mark.parametrize("hours", [pytest.param(-1, id="negative"), pytest.param(745, id="long")])
async def test_a_horizon_out_of_range_is_refused(service: EpgService, hours: int) -> None:
    with pytest.raises(InvalidQuery) as err:
        await service.guide_status(ADMIN, [], horizon_hours=hours)
    assert err.value.field == "horizon_hours"


async def test_another_tenants_channel_or_a_device_is_refused(service: EpgService) -> None:
    await service.create_channel(BROADCASTER, channel())
    channels = await service.list_channels(ADMIN)
    with pytest.raises(NotAllowed):
        await service.guide_status(OTHER, channels)
    with pytest.raises(NotAllowed):
        await service.guide_status(DEVICE, [])
    assert len(await service.guide_status(CARRIER, channels)) == 1


# ---------------------------------------------------------------- imports


def _guide(day: str) -> bytes:
    return xmltv(
        '<channel id="gd1.gdtv.cn"><display-name>GD</display-name></channel>',
        xprog(f"{day}080000 +0000", f"{day}090000 +0000", "A"),
        xprog(f"{day}090000 +0000", f"{day}083000 +0000", "Backwards"),
    )


async def test_imports_are_recorded_newest_first_and_each_broadcaster_sees_its_own(
    service: EpgService,
) -> None:
    await service.create_channel(BROADCASTER, channel())
    await service.create_channel(OTHER, channel(HN, owner="hntv", number=2))
    first = await service.import_xmltv(BROADCASTER, io.BytesIO(_guide("20260302")))
    with pytest.raises(ImportRejected):
        await service.import_xmltv(BROADCASTER, io.BytesIO(_guide("20260303")), strict=True)
    other = xmltv(xprog("20260302080000 +0000", "20260302090000 +0000", "H", ch=HN))
    await service.import_xmltv(OTHER, io.BytesIO(other))
    with pytest.raises(NotAllowed):  # not a writer: nothing to record
        await service.import_xmltv(CARRIER, io.BytesIO(other))

    mine = await service.recent_imports(BROADCASTER)
    assert [r.principal for r in mine] == ["broadcaster:gdtv"] * 2
    refused, done = mine
    assert refused.report is None
    assert "strict import changed nothing" in refused.error
    assert done.error == ""
    assert done.report == first
    assert done.report.problems_total == 1
    assert done.time <= refused.time
    everyone = await service.recent_imports(ADMIN)
    assert [r.principal for r in everyone] == [
        "broadcaster:hntv", "broadcaster:gdtv", "broadcaster:gdtv",
    ]  # fmt: skip
    assert await service.recent_imports(CARRIER) == []


async def test_the_record_keeps_the_latest_per_principal_and_overall(
    store: EpgStore, redis: aioredis.Redis
) -> None:
    for n in range(KEEP_OVERALL + 10):
        await store.record_import(f"broadcaster:b{n % 3}", f"r{n}")
    assert await redis.llen(IMPORTS) == KEEP_OVERALL
    assert await redis.llen(imports_key("broadcaster:b0")) == KEEP_PER_PRINCIPAL
    assert await store.recent_imports(None, 3) == ["r209", "r208", "r207"]
    assert await store.recent_imports("broadcaster:b1", 2) == ["r208", "r205"]


# ---------------------------------------------------------------- gRPC


async def test_list_guide_status_pages_like_list_channels_with_the_imports(
    grpc_epg: Grpc,
) -> None:
    admin = await grpc_epg.md()
    gdtv = await grpc_epg.md("broadcaster:gdtv")
    now = datetime.now(UTC).replace(microsecond=0)
    for n, cid in enumerate(("a.gdtv.cn", "b.gdtv.cn", "c.gdtv.cn"), start=1):
        await grpc_epg.stub.CreateChannel(pb_create(cid, number=n, owner="gdtv"), metadata=admin)
    await grpc_epg.stub.CreateChannel(pb_create(HN, number=9, owner="hntv"), metadata=admin)
    # a: from an hour ago to 72 hours ahead with a 30-minute hole at +24 h.
    start = now - timedelta(hours=1)
    programmes = [
        pb_prog(start + timedelta(minutes=30 * i))
        for i in range(146)
        if start + timedelta(minutes=30 * i) != now - timedelta(hours=1) + timedelta(hours=25)
    ]
    await grpc_epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(parent="channels/a.gdtv.cn", programmes=programmes),
        metadata=gdtv,
    )
    seen: list[epg_pb2.GuideStatus] = []
    token = ""
    pages = 0
    while True:
        reply = await grpc_epg.stub.ListGuideStatus(
            epg_pb2.ListGuideStatusRequest(page_size=2, page_token=token), metadata=admin
        )
        seen += reply.channels
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 2
    assert [g.channel for g in seen] == [
        "channels/a.gdtv.cn", "channels/b.gdtv.cn", "channels/c.gdtv.cn", f"channels/{HN}",
    ]  # fmt: skip
    a = seen[0]
    assert a.display_name == "广东卫视"
    assert a.guide_end.ToDatetime(UTC) == start + timedelta(minutes=30 * 146)
    assert 71.9 < a.hours_ahead <= 72
    assert (a.gaps, a.gap_seconds) == (1, 1800)
    assert not seen[1].HasField("guide_end")
    assert seen[1].hours_ahead == 0
    mine = await grpc_epg.stub.ListGuideStatus(epg_pb2.ListGuideStatusRequest(), metadata=gdtv)
    assert [g.channel for g in mine.channels] == [g.channel for g in seen[:3]]
    day = await grpc_epg.stub.ListGuideStatus(
        epg_pb2.ListGuideStatusRequest(horizon_hours=12, page_size=1), metadata=gdtv
    )
    assert (day.channels[0].gaps, day.channels[0].hours_ahead > 71) == (0, True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ListGuideStatus(
            epg_pb2.ListGuideStatusRequest(horizon_hours=745), metadata=admin
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.ListGuideStatus(
            epg_pb2.ListGuideStatusRequest(page_token="bm9wZQ"), metadata=admin
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_imports_on_the_wire(grpc_epg: Grpc) -> None:
    gdtv = await grpc_epg.md("broadcaster:gdtv")
    admin = await grpc_epg.md()
    await grpc_epg.stub.CreateChannel(pb_create(CH, owner="gdtv"), metadata=admin)
    answered = await grpc_epg.stub.ImportXmltv(chunks(_guide("20260302")), metadata=gdtv)
    with pytest.raises(grpc.aio.AioRpcError):
        await grpc_epg.stub.ImportXmltv(
            chunks(_guide("20260302"), epg_pb2.ImportOptions(strict=True)), metadata=gdtv
        )
    reply = await grpc_epg.stub.ListGuideStatus(epg_pb2.ListGuideStatusRequest(), metadata=gdtv)
    refused, done = reply.recent_imports
    assert refused.principal == done.principal == "broadcaster:gdtv"
    assert "strict" in refused.error
    assert not refused.HasField("result")
    assert done.result == answered
    assert done.error == ""
    assert abs(done.time.ToDatetime(UTC) - datetime.now(UTC)) < timedelta(minutes=5)
    hn = await grpc_epg.md("broadcaster:hntv")
    theirs = await grpc_epg.stub.ListGuideStatus(epg_pb2.ListGuideStatusRequest(), metadata=hn)
    assert list(theirs.recent_imports) == []
    assert len((await grpc_epg.stub.ListGuideStatus(
        epg_pb2.ListGuideStatusRequest(), metadata=admin)).recent_imports) == 2  # fmt: skip


# ---------------------------------------------------------------- the gauge


async def test_the_gauge_follows_active_channels(service: EpgService) -> None:
    now = datetime.now(UTC)
    await service.create_channel(BROADCASTER, channel())
    await service.put_programmes(BROADCASTER, CH, [prog(now.replace(microsecond=0), 600)])
    await service.create_channel(BROADCASTER, channel("off.gdtv.cn", number=2, active=False))
    await service.create_channel(OTHER, channel(HN, owner="hntv", number=3))
    registry = CollectorRegistry()
    metrics = GuideMetrics(service, registry, every_seconds=60)
    await metrics.refresh()
    hours = registry.get_sample_value("epg_guide_hours_ahead", {"channel": CH})
    assert hours is not None
    assert 9.9 < hours <= 10
    assert registry.get_sample_value("epg_guide_hours_ahead", {"channel": HN}) == 0
    assert registry.get_sample_value("epg_guide_hours_ahead", {"channel": "off.gdtv.cn"}) is None
    await service.delete_channel(OTHER, HN, force=True)
    await metrics.refresh()
    assert registry.get_sample_value("epg_guide_hours_ahead", {"channel": HN}) is None


async def test_the_server_exports_the_gauge_on_its_metrics_port(
    redis: aioredis.Redis, keys: KeyStore, tokens
) -> None:
    server, _ = await create_server(
        EpgSettings(rpc=RpcSettings(port=0, metrics_port=0), guide_status_seconds=1),
        redis=redis,
        keys=keys,
    )
    try:
        service = EpgService(store=EpgStore(redis))
        await service.create_channel(BROADCASTER, channel())
        assert server.metrics_endpoint is not None
        url = f"http://127.0.0.1:{server.metrics_endpoint.port}/metrics"
        wanted = f'epg_guide_hours_ahead{{channel="{CH}"}} 0.0'
        text = ""
        for _ in range(100):  # the task refreshes every second
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            if wanted in text:
                break
            await asyncio.sleep(0.1)
        assert wanted in text
        assert 'headend_task_up{task="epg-guide-status"} 1.0' in text
    finally:
        await server.stop(0)
