"""The world the front door and journey tests play in, and the services it lives on.

:func:`journey_plan` is the test world's seed data, seeded by the platform's own
steps (:mod:`headend.seed`, as ``headend demo`` seeds its world); the EPG and
subscriber servers run in this process on port 0 with real key auth.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.signing import KeyRing, SigningKey
from epg.owners import OwnersSettings
from epg.server import create_server as create_epg
from epg.settings import EpgSettings
from headend.auth import ADMIN, KeyStore
from headend.pki import LocalPki
from headend.redisconn import RedisSettings
from headend.rpc import ClientTls, RpcServer, RpcSettings, bearer, client_channel
from headend.seed import (
    Box,
    BoxSpec,
    ChannelSpec,
    PackageSpec,
    Plan,
    ProgrammeSpec,
    SubscriberSpec,
    Targets,
    World,
    seed,
)
from protos import epg_pb2, epg_pb2_grpc, subscriber_pb2, subscriber_pb2_grpc
from subscriber.server import create_server as create_subscriber
from subscriber.settings import SubscriberSettings
from tests.support.subscriber import device_name

REGION = "110101"
OTHER_REGION = "440305"
SESSION_KEY = b"s" * 32
RING = KeyRing((SigningKey("k1", b"edge-secret-0123456789"),), "k1")
# Channel ids are DNS-like, as XMLTV suggests.
LIVE = "news1.cn"
SPORT = "sport.cn"
PREMIUM = "movies.cn"
CARRIER = "acme"


def journey_plan(now: datetime) -> Plan:
    """Three channels with a day of guide, a carrier, four subscribers, five boxes.

    ``news1.cn`` (catch-up 1 day): hourly programmes; the one two hours ago
    (``barred``) is not catch-up-allowed; the one three hours ahead is blacked out
    in REGION; ``earlier`` and ``now`` label the last hour's and this hour's.
    ``sport.cn`` (no catch-up): the programme on air now is blacked out in REGION.
    ``movies.cn``: in no package the subscribers hold.
    Subscriber ``alice`` (REGION, 1 stream) has boxes ``a1`` and ``a2``;
    ``bob`` (OTHER_REGION, 2 streams) has ``b1``; ``carol`` (REGION, 2 streams) has
    ``c1``; ``erin`` (REGION, 1 stream) has ``e1``.
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    labels = {0: "now", -1: "earlier", -2: "barred"}
    news = []
    for i in range(-12, 12):
        start = hour + timedelta(hours=i)
        news.append(
            ProgrammeSpec(
                start,
                start + timedelta(hours=1),
                (("en", f"News at {start:%H}:00"),),
                catchup_allowed=i != -2,
                blackout_regions=(REGION,) if i == 3 else (),
                blackout_slate="http://slates.example/news.png" if i == 3 else "",
                label=labels.get(i, ""),
            )
        )
    derby = ProgrammeSpec(
        hour - timedelta(hours=1),
        hour + timedelta(hours=2),
        (("en", "Derby"),),
        blackout_regions=(REGION[:2] + "0000",),
        blackout_slate="http://slates.example/sport.png",
    )
    macs = (f"02:00:00:00:00:{n:02x}" for n in itertools.count(1))
    subscribers = tuple(
        SubscriberSpec(
            sid,
            sid.title(),
            region,
            max_streams=streams,
            packages=("basic",),
            boxes=tuple(BoxSpec(label, next(macs), model="sim") for label in boxes),
        )
        for sid, region, streams, boxes in (
            ("alice", REGION, 1, ("a1", "a2")),
            ("bob", OTHER_REGION, 2, ("b1",)),
            ("carol", REGION, 2, ("c1",)),
            ("erin", REGION, 1, ("e1",)),
        )
    )
    return Plan(
        channels=tuple(
            ChannelSpec(
                cid,
                number,
                (("en", name),),
                owner="demo",
                group=group,
                catchup_days=days,
                logo_url=f"http://logos.example/{cid}.png",
            )
            for number, (cid, name, days, group) in enumerate(
                [
                    (LIVE, "News One", 1, "News"),
                    (SPORT, "Sport", 0, "Sport"),
                    (PREMIUM, "Movies", 3, "Movies"),
                ],
                start=1,
            )
        ),
        guides={LIVE: tuple(news), SPORT: (derby,)},
        carrier_id=CARRIER,
        carrier_name="Acme Cable",
        network_type="cable",
        packages=(
            PackageSpec("basic", "Basic", (LIVE, SPORT)),
            PackageSpec("premium", "Premium", (PREMIUM,)),
        ),
        subscribers=subscribers,
    )


async def seed_world(
    epg_target: str, subscriber_target: str, api_key: str, *, tls: ClientTls | None = None
) -> World:
    """The :func:`journey_plan` world around now, seeded through the services' gRPC faces."""
    return await seed(
        journey_plan(datetime.now(UTC)), Targets(epg_target, subscriber_target, tls=tls), api_key
    )


async def seed_boxes(
    subscriber_target: str, api_key: str, count: int, *, region: str = REGION, first: int = 0
) -> list[Box]:
    """``count`` more subscribers of ``acme`` in ``region`` with the basic package and one
    activated box each (bulk import, then one ``ActivateDevice`` per box); numbered from
    ``first``, so several calls (one per region) make distinct subscribers and boxes."""
    md = bearer(api_key)
    rows = [
        subscriber_pb2.ImportRow(
            row=i - first + 1,
            subscriber_id=f"load-{i:05d}",
            display_name=f"Load {i}",
            region_code=region,
            max_streams=2,
            mac=f"06:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            package_ids=["basic"],
        )
        for i in range(first, first + count)
    ]

    async def chunks() -> AsyncIterator[Any]:
        for start in range(0, len(rows), 500):
            yield subscriber_pb2.ImportSubscribersRequest(
                parent=f"carriers/{CARRIER}", rows=rows[start : start + 500]
            )

    async with client_channel(subscriber_target) as chan:
        stub = subscriber_pb2_grpc.SubscriberServiceStub(chan)
        summary = await stub.ImportSubscribers(chunks(), metadata=md)
        assert summary.failed == 0, summary.errors
        gate = asyncio.Semaphore(32)

        async def activate(row: Any) -> Box:
            async with gate:
                act = await stub.ActivateDevice(
                    subscriber_pb2.ActivateDeviceRequest(name=device_name(CARRIER, row.mac)),
                    metadata=md,
                )
            return Box(act.device.mac, act.device_secret, row.subscriber_id)

        return list(await asyncio.gather(*(activate(r) for r in rows)))


async def set_status(subscriber_target: str, api_key: str, subscriber: str, status: Any) -> None:
    """Suspend or reactivate a subscriber."""
    async with client_channel(subscriber_target) as chan:
        await subscriber_pb2_grpc.SubscriberServiceStub(chan).SetSubscriberStatus(
            subscriber_pb2.SetSubscriberStatusRequest(
                name=f"carriers/{CARRIER}/subscribers/{subscriber}", status=status
            ),
            metadata=bearer(api_key),
        )


async def black_out(
    epg_target: str, api_key: str, channel: str, start: datetime, stop: datetime, region: str
) -> None:
    """Put a programme blacked out in ``region`` on ``channel`` over ``[start, stop)``,
    replacing what it overlaps."""
    programme = epg_pb2.Programme(
        titles=[epg_pb2.LocalizedText(lang="en", text="Breaking")], blackout_regions=[region]
    )
    programme.start.FromDatetime(start)
    programme.stop.FromDatetime(stop)
    async with client_channel(epg_target) as chan:
        await epg_pb2_grpc.EpgServiceStub(chan).PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=f"channels/{channel}",
                programmes=[programme],
                policy=epg_pb2.WRITE_POLICY_REPLACE,
            ),
            metadata=bearer(api_key),
        )


@dataclass
class Services:
    """EPG and subscriber servers on port 0, and an admin key."""

    epg: RpcServer
    subscriber: RpcServer
    epg_target: str
    subscriber_target: str
    api_key: str
    tls: ClientTls | None = None

    async def stop(self) -> None:
        """Stop both servers."""
        await self.epg.stop(0)
        await self.subscriber.stop(0)


def server_rpc(pki: LocalPki | None) -> RpcSettings:
    """A server on port 0: plaintext, or mTLS with the private CA's server pair."""
    if pki is None:
        return RpcSettings(port=0)
    return RpcSettings(
        port=0,
        tls_cert_file=pki.server.cert_file,
        tls_key_file=pki.server.key_file,
        tls_client_ca_file=pki.ca_file,
    )


def client_tls(pki: LocalPki | None) -> ClientTls | None:
    """What callers dial the servers of :func:`server_rpc` with."""
    if pki is None:
        return None
    return ClientTls(pki.ca_file, pki.client.cert_file, pki.client.key_file)


async def start_services(
    redis: aioredis.Redis,
    *,
    pki: LocalPki | None = None,
    redis_settings: RedisSettings | None = None,
) -> Services:
    """EPG and subscriber services on port 0 with real key auth (mTLS with ``pki``;
    ``redis_settings``: what their acknowledged writes wait for)."""
    keys = KeyStore(redis)
    _, api_key = await keys.create(ADMIN)
    store = redis_settings or RedisSettings()
    epg, epg_port = await create_epg(
        EpgSettings(rpc=server_rpc(pki), watch_block_ms=100, redis=store), redis=redis, keys=keys
    )
    # The subscriber's viewing reports ask this EPG which channels a broadcaster owns.
    owners = OwnersSettings(target=f"127.0.0.1:{epg_port}", tls=client_tls(pki))
    sub, sub_port = await create_subscriber(
        SubscriberSettings(rpc=server_rpc(pki), redis=store, owners=owners), redis=redis, keys=keys
    )
    return Services(
        epg, sub, f"127.0.0.1:{epg_port}", f"127.0.0.1:{sub_port}", api_key, client_tls(pki)
    )


def frontdoor_settings(services: Services, **overrides: Any) -> FrontDoorSettings:
    """Front door settings for tests: short caches and heartbeats."""
    values: dict[str, Any] = {
        "epg_target": services.epg_target,
        "subscriber_target": services.subscriber_target,
        "api_key": services.api_key,
        "session_keys": (("s1", SESSION_KEY),),
        "session_active_kid": "s1",
        "entitlement_ttl_seconds": 1.0,
        "heartbeat_seconds": 1.0,
        "master_ttl_seconds": 2.0,
    }
    values.update(overrides)
    return FrontDoorSettings(**values)
