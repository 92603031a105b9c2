"""Viewing reports: a known set of sessions played through the real service (channel
switches, hour boundaries, an expiry without EndSession, two carriers, two regions) and
the figures they imply, to the second; who may read them (a broadcaster its channels', as
the real EPG names their owners); refused windows.

The clock is the service's manual clock; the expiry sweep is run by hand at a known time
(the server's own sweep is set to an hour, so it never runs during a test).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from epg.client import EpgClient
from epg.owners import ChannelOwners, OwnersSettings
from headend.auth import KeyStore
from headend.rpc import bearer, to_timestamp
from protos import reports_pb2 as rpb
from protos import reports_pb2_grpc as rpb_grpc
from protos import subscriber_pb2 as pb
from subscriber.reports.convert import row_from_pb
from subscriber.reports.domain import ViewingRow
from subscriber.reports.export import csv_text
from subscriber.reports.service import ViewingMetrics, ViewingReports
from subscriber.reports.settings import ReportSettings
from subscriber.reports.store import ViewingStore, log_key
from subscriber.settings import SubscriberSettings
from tests.epg.support import Grpc, serve_epg
from tests.epg.support import channel as guide_channel
from tests.support.net import free_port
from tests.support.subscriber import ALICE_MAC, START, Api, ManualClock, serve
from tests.support.tokens import Tokens

A, B, C = ALICE_MAC, "aa:bb:cc:00:00:0b", "aa:bb:cc:00:00:0c"
DAY0 = START.replace(hour=0)
H12, H13, H14 = START, START + timedelta(hours=1), START + timedelta(hours=2)


def at(hhmm: str) -> datetime:
    """A time on the test's day (2027-03-01, UTC)."""
    hours, minutes = hhmm.split(":")
    return DAY0 + timedelta(hours=int(hours), minutes=int(minutes))


# The sessions played, as (box, channel, start, end of watching): what the figures must
# add up to. A's first lease ends when it switches channel; C stops heartbeating after
# 13:05 and expires unannounced; B starts exactly on the hour.
SESSIONS = (
    (A, "cctv1", at("12:50"), at("13:20")),
    (A, "cctv2", at("13:20"), at("13:45")),
    (C, "cctv1", at("12:55"), at("13:05")),
    (B, "cctv1", at("13:00"), at("14:10")),
    (B, "cctv5", at("14:20"), at("14:30")),
)


# The channels' owners, as the guide has them.
OWNERS = {"cctv1": "cctv", "cctv2": "cctv", "cctv5": "sports"}


@pytest.fixture
async def epg(redis: aioredis.Redis, keys: KeyStore, tokens: Tokens) -> AsyncIterator[Grpc]:
    """The real EPG, with the channels of ``OWNERS``."""
    async with serve_epg(redis, keys, tokens) as served:
        async with EpgClient(served.target, await tokens()) as guide:
            for number, (cid, owner) in enumerate(OWNERS.items(), 1):
                await guide.create_channel(guide_channel(cid, owner=owner, number=number))
        yield served


def _settings(epg_target: str) -> SubscriberSettings:
    return SubscriberSettings(
        lease_ttl_seconds=1800,
        lease_grace_seconds=5,
        default_max_streams=2,
        reports=ReportSettings(sweep_seconds=3600),
        owners=OwnersSettings(target=epg_target),
    )


@pytest.fixture
def settings(epg: Grpc) -> SubscriberSettings:
    """Leases of 30 minutes (few heartbeats per hour); the server's own sweep never runs;
    owners asked of the real EPG."""
    return _settings(epg.target)


class Viewing:
    """``ViewingReportService`` on the test server, and the hand-run sweep."""

    def __init__(self, api: Api, owners: ChannelOwners) -> None:
        self.api = api
        self.stub = rpb_grpc.ViewingReportServiceStub(api.channel)
        self.reports = ViewingReports(
            store=ViewingStore(api.redis), settings=ReportSettings(), owners=owners,
            clock=api.clock,
        )  # fmt: skip
        self.metrics = ViewingMetrics()

    async def query(self, as_: str = "admin", **fields: Any) -> list[ViewingRow]:
        fields.setdefault("start_time", to_timestamp(DAY0))
        fields.setdefault("end_time", to_timestamp(DAY0 + timedelta(days=1)))
        token = await self.api.tokens(as_)
        reply = await self.stub.QueryViewing(
            rpb.QueryViewingRequest(**fields), metadata=bearer(token)
        )
        return [row_from_pb(row) for row in reply.rows]

    async def refused(self, as_: str = "admin", **fields: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.query(as_, **fields)
        return info.value.code()

    async def viewers(self, as_: str = "admin", channel_id: str = "") -> list[tuple[str, str, int]]:
        token = await self.api.tokens(as_)
        reply = await self.stub.CountViewers(
            rpb.CountViewersRequest(channel_id=channel_id), metadata=bearer(token)
        )
        return [(v.channel_id, v.carrier_id, v.viewers) for v in reply.viewers]


def table(rows: list[ViewingRow]) -> list[tuple[str, str, int, int, int]]:
    return [
        (r.bucket_start.strftime("%H:%M"), r.key, r.watch_seconds, r.unique_boxes,
         r.peak_concurrency)
        for r in rows
    ]  # fmt: skip


async def _subscriber(api: Api, carrier: str, sid: str, region: str, mac: str) -> None:
    parent = f"carriers/{carrier}/subscribers/{sid}"
    await api.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent=f"carriers/{carrier}",
            subscriber_id=sid,
            subscriber=pb.Subscriber(display_name=sid, region_code=region),
        ),
    )
    await api.call("BindDevice", pb.BindDeviceRequest(parent=parent, mac=mac))
    for package in ("basic", "sports"):
        await api.call("Entitle", pb.EntitleRequest(name=parent, package_id=package))


@pytest.fixture
async def played(world: Api, settings: SubscriberSettings) -> AsyncIterator[Viewing]:
    """The sessions of ``SESSIONS`` played, with the heartbeats that keep them, at their
    times; C's lease expires at 13:35 and is swept at 13:50."""
    async with ChannelOwners(settings.owners) as owners:
        yield await _play(world, owners)


async def _play(world: Api, owners: ChannelOwners) -> Viewing:
    await _subscriber(world, "acme", "carol", "110101", C)
    await world.call(
        "BindDevice", pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=B)
    )
    for package in ("basic", "sports"):
        await world.call(
            "Entitle",
            pb.EntitleRequest(name="carriers/beta/subscribers/bob", package_id=package),
        )
    viewing = Viewing(world, owners)
    leases: dict[str, str] = {}

    async def step(when: str, op: str, mac: str = "", channel: str = "") -> None:
        world.clock.now = at(when)
        if op == "start":
            reply = await world.call(
                "StartSession", pb.StartSessionRequest(mac=mac, channel_id=channel)
            )
            leases[mac] = reply.lease_id
        elif op == "beat":
            await world.call("Heartbeat", pb.HeartbeatRequest(mac=mac, lease_id=leases[mac]))
        elif op == "end":
            await world.call("EndSession", pb.EndSessionRequest(mac=mac, lease_id=leases[mac]))
        else:
            await viewing.reports.sweep(viewing.metrics)

    world.viewing_steps = step  # type: ignore[attr-defined]
    for when, op, mac, channel in (
        ("12:50", "start", A, "cctv1"),
        ("12:55", "start", C, "cctv1"),
        ("13:00", "start", B, "cctv1"),
        ("13:05", "beat", C, ""),
        ("13:10", "beat", A, ""),
        ("13:20", "start", A, "cctv2"),
        ("13:25", "beat", B, ""),
        ("13:40", "beat", A, ""),
        ("13:45", "end", A, ""),
        ("13:50", "sweep", "", ""),
        ("13:50", "beat", B, ""),
        ("14:10", "end", B, ""),
        ("14:20", "start", B, "cctv5"),
        ("14:30", "end", B, ""),
    ):
        await step(when, op, mac, channel)
    return viewing


def _watched(sessions: Iterator[tuple[str, str, datetime, datetime]]) -> int:
    return sum(int((end - start).total_seconds()) for _, _, start, end in sessions)


async def test_hourly_figures_by_channel_are_the_sessions_played(played: Viewing) -> None:
    assert table(await played.query()) == [
        ("12:00", "cctv1", 900, 2, 2),
        ("13:00", "cctv1", 5100, 3, 3),
        ("13:00", "cctv2", 1500, 1, 1),
        ("14:00", "cctv1", 600, 1, 1),
        ("14:00", "cctv5", 600, 1, 1),
    ]


async def test_a_day_is_the_sum_of_its_hours_its_boxes_their_union(played: Viewing) -> None:
    rows = await played.query(granularity=rpb.GRANULARITY_DAY)
    assert table(rows) == [
        ("00:00", "cctv1", 6600, 3, 3),
        ("00:00", "cctv2", 1500, 1, 1),
        ("00:00", "cctv5", 600, 1, 1),
    ]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        pytest.param(
            rpb.DIMENSION_CARRIER,
            [
                ("12:00", "acme", 900, 2, 2),
                ("13:00", "acme", 3000, 2, 2),
                ("13:00", "beta", 3600, 1, 1),
                ("14:00", "beta", 1200, 1, 1),
            ],
            id="carrier",
        ),
        pytest.param(
            rpb.DIMENSION_REGION,
            [
                ("12:00", "110101", 300, 1, 1),
                ("12:00", "440305", 600, 1, 1),
                ("13:00", "110101", 300, 1, 1),
                ("13:00", "440305", 6300, 2, 2),
                ("14:00", "440305", 1200, 1, 1),
            ],
            id="region",
        ),
    ],
)
async def test_figures_by_carrier_and_region(
    played: Viewing, group_by: int, expected: list[tuple[str, str, int, int, int]]
) -> None:
    assert table(await played.query(group_by=group_by)) == expected


@pytest.mark.parametrize(
    "group_by", [rpb.DIMENSION_CHANNEL, rpb.DIMENSION_CARRIER, rpb.DIMENSION_REGION]
)
@pytest.mark.parametrize("granularity", [rpb.GRANULARITY_HOUR, rpb.GRANULARITY_DAY])
async def test_totals_equal_the_sessions_played(
    played: Viewing, group_by: int, granularity: int
) -> None:
    rows = await played.query(group_by=group_by, granularity=granularity)
    assert sum(r.watch_seconds for r in rows) == _watched(iter(SESSIONS)) == 8700


async def test_the_raw_lease_log_holds_every_lease_start_and_end(played: Viewing) -> None:
    intervals: dict[bytes, dict[str, int]] = {}
    for carrier in ("acme", "beta"):
        for _, record in await played.api.redis.xrange(log_key(carrier)):
            lease = intervals.setdefault(record[b"lease"], {})
            lease[record[b"op"].decode()] = int(record[b"at"])
    assert sorted(tuple(sorted(ops)) for ops in intervals.values()) == [
        *[("end", "start")] * 4,
        ("expire", "start"),
    ]
    watched = sum(
        (ops.get("end", ops.get("expire", 0)) - ops["start"]) // 1000 for ops in intervals.values()
    )
    assert watched == _watched(iter(SESSIONS))


async def test_a_carrier_reads_only_its_own_boxes(played: Viewing) -> None:
    assert table(await played.query("carrier:acme")) == [
        ("12:00", "cctv1", 900, 2, 2),
        ("13:00", "cctv1", 1500, 2, 2),
        ("13:00", "cctv2", 1500, 1, 1),
    ]
    by_carrier = await played.query("carrier:beta", group_by=rpb.DIMENSION_CARRIER)
    assert {r.key for r in by_carrier} == {"beta"}
    assert (
        await played.refused("carrier:beta", carrier_id="acme") is grpc.StatusCode.PERMISSION_DENIED
    )


async def test_a_broadcaster_reads_only_its_own_channels(played: Viewing) -> None:
    assert table(await played.query("broadcaster:cctv")) == [
        ("12:00", "cctv1", 900, 2, 2),
        ("13:00", "cctv1", 5100, 3, 3),
        ("13:00", "cctv2", 1500, 1, 1),
        ("14:00", "cctv1", 600, 1, 1),
    ]
    assert table(await played.query("broadcaster:sports")) == [("14:00", "cctv5", 600, 1, 1)]
    # By carrier or region: one of its channels, whose cells are exact.
    for group_by in (rpb.DIMENSION_CARRIER, rpb.DIMENSION_REGION):
        mine = await played.query("broadcaster:cctv", group_by=group_by, channel_id="cctv1")
        assert mine == await played.query(group_by=group_by, channel_id="cctv1")
        assert mine
        code = await played.refused("broadcaster:cctv", group_by=group_by)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        code = await played.refused("broadcaster:cctv", group_by=group_by, channel_id="cctv5")
        assert code is grpc.StatusCode.PERMISSION_DENIED
    for channel in ("cctv5", "nosuch"):  # another's, or nobody's: refused alike
        code = await played.refused("broadcaster:cctv", channel_id=channel)
        assert code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("who", ["playback", "device:aa:bb:cc:00:00:0b"])
async def test_other_roles_are_refused(played: Viewing, who: str) -> None:
    assert await played.refused(who) is grpc.StatusCode.PERMISSION_DENIED


async def test_with_the_epg_down_a_broadcaster_is_unavailable_and_the_admin_served(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, clock: ManualClock
) -> None:
    closed = _settings(f"127.0.0.1:{free_port()}")
    async with (
        serve(redis, keys, tokens, clock, closed) as api,
        ChannelOwners(closed.owners) as owners,
    ):
        viewing = Viewing(api, owners)
        assert await viewing.refused("broadcaster:cctv") is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await viewing.viewers("broadcaster:cctv")
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert await viewing.query() == []
        assert await viewing.viewers() == []


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"start_time": None}, id="no-start"),
        pytest.param({"end_time": to_timestamp(DAY0)}, id="empty"),
        pytest.param({"end_time": to_timestamp(DAY0 + timedelta(days=93))}, id="over-92-days"),
        pytest.param({"start_time": to_timestamp(DAY0 - timedelta(days=401))}, id="too-old"),
        pytest.param({"region": "12"}, id="bad-region"),
        pytest.param({"channel_id": "no such/channel"}, id="bad-channel"),
        pytest.param({"granularity": 9}, id="bad-granularity"),
    ],
)
async def test_bad_windows_and_filters_are_refused(played: Viewing, fields: dict[str, Any]) -> None:
    assert await played.refused(**fields) is grpc.StatusCode.INVALID_ARGUMENT


async def test_viewers_now_and_the_gauges(world: Api, played: Viewing) -> None:
    step = world.viewing_steps  # type: ignore[attr-defined]
    await step("15:00", "start", A, "cctv1")
    await step("15:01", "start", B, "cctv1")
    await step("15:02", "start", C, "cctv2")
    assert await played.viewers() == [("cctv1", "acme", 1), ("cctv1", "beta", 1),
                                      ("cctv2", "acme", 1)]  # fmt: skip
    assert await played.viewers("carrier:beta") == [("cctv1", "beta", 1)]
    assert await played.viewers(channel_id="cctv2") == [("cctv2", "acme", 1)]
    assert await played.viewers("broadcaster:cctv", "cctv2") == [("cctv2", "acme", 1)]
    assert len(await played.viewers("broadcaster:cctv")) == 3
    assert await played.viewers("broadcaster:sports") == []
    await step("15:40", "sweep")  # all three expired at 15:30-15:32
    assert await played.viewers() == []
    await step("15:41", "start", B, "cctv5")
    await step("15:42", "sweep")
    assert await played.viewers("broadcaster:sports") == [("cctv5", "beta", 1)]
    sample = played.metrics.registry.get_sample_value
    assert sample("subscriber_viewers", {"channel": "cctv5", "carrier": "beta"}) == 1
    assert sample("subscriber_viewers", {"channel": "cctv1", "carrier": "acme"}) == 0
    assert sample("subscriber_leases_active") == 1


async def test_peaks_carry_into_hours_without_a_start(world: Api, played: Viewing) -> None:
    step = world.viewing_steps  # type: ignore[attr-defined]
    await step("16:50", "start", A, "cctv1")
    await step("17:15", "beat", A)
    await step("17:40", "beat", A)
    await step("18:05", "beat", A)
    await step("18:40", "sweep")  # expired at 18:35: watched until its last heartbeat
    rows = await played.query(channel_id="cctv1", start_time=to_timestamp(at("16:00")))
    assert table(rows) == [
        ("16:00", "cctv1", 600, 1, 1),
        ("17:00", "cctv1", 3600, 1, 1),
        ("18:00", "cctv1", 300, 1, 1),
    ]


def test_settlement_csv() -> None:
    rows = [ViewingRow(H13, "cctv1", 5100, 3, 3), ViewingRow(H14, "cctv5", 600, 1, 1)]
    assert csv_text(rows) == (
        "bucket_start,key,watch_seconds,unique_boxes,peak_concurrency\n"
        "2027-03-01T13:00:00Z,cctv1,5100,3,3\n"
        "2027-03-01T14:00:00Z,cctv5,600,1,1\n"
    )


async def test_the_cli_writes_the_settlement_csv(played: Viewing) -> None:
    env = {
        **os.environ,
        "SUBSCRIBER_TARGET": f"127.0.0.1:{played.api.port}",
        "HEADEND_API_KEY": await played.api.tokens("carrier:beta"),
    }
    args = ["--from", "2027-03-01T00:00:00Z", "--to", "2027-03-02T00:00:00+00:00", "--by",
            "channel", "--granularity", "day", "--csv"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend.cli", "reports", "viewing", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert (proc.returncode, err) == (0, b"")
    assert out.decode() == csv_text(await played.query("carrier:beta", granularity=2))
    assert out.decode().splitlines()[1:] == [
        "2027-03-01T00:00:00Z,cctv1,4200,1,1",
        "2027-03-01T00:00:00Z,cctv5,600,1,1",
    ]
