"""The whole platform for the set-top box journey, built once per module.

Real Redis, EPG and subscriber gRPC servers (port 0), transcode's gRPC
control with a live channel fed by FFmpeg ``testsrc2`` over UDP loopback
(2 s segments, the "low" ladder), the origin, three nginx edges, and the
routing face with the front door (port 0). ``seed_world`` is shared with
``tests/cdn_ctl/test_frontdoor.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.frontdoor.app import FrontDoor
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.health import HealthPolicy
from cdn_ctl.server import RoutingProcess
from cdn_ctl.service import Controller
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing, SigningKey
from cdn_ctl.store import EdgeStore
from epg.server import create_server as create_epg
from epg.settings import EpgSettings
from headend.auth import ADMIN, PLAYBACK, KeyStore
from headend.pki import LocalPki
from headend.redisproc import RedisServer
from headend.rpc import ClientTls, RpcServer, RpcSettings, bearer, client_channel
from protos import (
    epg_pb2,
    epg_pb2_grpc,
    subscriber_pb2,
    subscriber_pb2_grpc,
    transcode_pb2,
    transcode_pb2_grpc,
)
from subscriber.server import create_server as create_subscriber
from subscriber.settings import SubscriberSettings

REGION = "110101"
OTHER_REGION = "440305"
SESSION_KEY = b"s" * 32
RING = KeyRing((SigningKey("k1", b"edge-secret-0123456789"),), "k1")
# Channel ids are DNS-like, as XMLTV suggests.
LIVE = "news1.cn"
SPORT = "sport.cn"
PREMIUM = "movies.cn"


@dataclass(frozen=True, slots=True)
class Box:
    """A bound, activated box."""

    mac: str
    secret: str
    subscriber: str


@dataclass
class World:
    """What ``seed_world`` created."""

    carrier: str
    boxes: dict[str, Box]
    programmes: dict[str, str] = field(default_factory=dict)  # label -> programme id
    start: datetime = field(default_factory=lambda: datetime.now(UTC))


def _ts(msg: Any, name: str, when: datetime) -> None:
    getattr(msg, name).FromDatetime(when)


def _programme(
    start: datetime,
    stop: datetime,
    title: str,
    *,
    catchup: bool = True,
    blackout: tuple[str, ...] = (),
    slate: str = "",
) -> Any:
    p = epg_pb2.Programme(
        titles=[epg_pb2.LocalizedText(lang="en", text=title)],
        catchup_allowed=catchup,
        blackout_regions=list(blackout),
        blackout_slate=slate,
    )
    _ts(p, "start", start)
    _ts(p, "stop", stop)
    return p


async def seed_world(
    epg_target: str, subscriber_target: str, api_key: str, *, tls: ClientTls | None = None
) -> World:
    """Three channels with a day of guide, a carrier, two subscribers, three boxes.

    ``news1.cn`` (catch-up 1 day): hourly programmes; the one two hours ago is
    not catch-up-allowed; the one three hours ahead is blacked out in REGION.
    ``sport.cn`` (no catch-up): the programme on air now is blacked out in REGION.
    ``movies.cn``: in no package the subscribers hold.
    Subscriber ``alice`` (REGION, 1 stream) has boxes ``a1`` and ``a2``;
    ``bob`` (OTHER_REGION, 2 streams) has ``b1``; ``carol`` (REGION, 2 streams) has
    ``c1``; ``erin`` (REGION, 1 stream) has ``e1``.
    """
    md = bearer(api_key)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    world = World("acme", {})
    async with client_channel(epg_target, tls=tls) as chan:
        epg = epg_pb2_grpc.EpgServiceStub(chan)
        for number, (cid, name, days, group) in enumerate(
            [(LIVE, "News One", 1, "News"), (SPORT, "Sport", 0, "Sport"),
             (PREMIUM, "Movies", 3, "Movies")],
            start=1,
        ):  # fmt: skip
            await epg.CreateChannel(
                epg_pb2.CreateChannelRequest(
                    channel=epg_pb2.Channel(
                        id=cid,
                        number=number,
                        names=[epg_pb2.LocalizedText(lang="en", text=name)],
                        owner="demo",
                        catchup_days=days,
                        group=group,
                        logo_url=f"http://logos.example/{cid}.png",
                        active=True,
                    )
                ),
                metadata=md,
            )
        programmes = []
        for i in range(-12, 12):
            start = hour + timedelta(hours=i)
            programmes.append(
                _programme(
                    start,
                    start + timedelta(hours=1),
                    f"News at {start:%H}:00",
                    catchup=i != -2,
                    blackout=(REGION,) if i == 3 else (),
                    slate="http://slates.example/news.png" if i == 3 else "",
                )
            )
        put = await epg.PutProgrammes(
            epg_pb2.PutProgrammesRequest(channel_id=LIVE, programmes=programmes), metadata=md
        )
        ids = list(put.written_ids)
        world.programmes = {"now": ids[12], "barred": ids[10], "earlier": ids[11]}
        await epg.PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                channel_id=SPORT,
                programmes=[
                    _programme(
                        hour - timedelta(hours=1), hour + timedelta(hours=2), "Derby",
                        blackout=(REGION[:2] + "0000",), slate="http://slates.example/sport.png",
                    )
                ],
            ),
            metadata=md,
        )  # fmt: skip
    async with client_channel(subscriber_target, tls=tls) as chan:
        sub = subscriber_pb2_grpc.SubscriberServiceStub(chan)
        await sub.CreateCarrier(
            subscriber_pb2.CreateCarrierRequest(
                carrier_id="acme", name="Acme Cable", network_type=subscriber_pb2.CABLE
            ),
            metadata=md,
        )
        await sub.DefinePackage(
            subscriber_pb2.DefinePackageRequest(
                package=subscriber_pb2.Package(
                    package_id="basic", name="Basic", channel_ids=[LIVE, SPORT]
                )
            ),
            metadata=md,
        )
        await sub.DefinePackage(
            subscriber_pb2.DefinePackageRequest(
                package=subscriber_pb2.Package(
                    package_id="premium", name="Premium", channel_ids=[PREMIUM]
                )
            ),
            metadata=md,
        )
        for sid, region, streams, macs in (
            ("alice", REGION, 1, ("a1", "a2")),
            ("bob", OTHER_REGION, 2, ("b1",)),
            ("carol", REGION, 2, ("c1",)),
            ("erin", REGION, 1, ("e1",)),
        ):
            await sub.CreateSubscriber(
                subscriber_pb2.CreateSubscriberRequest(
                    carrier_id="acme",
                    subscriber_id=sid,
                    display_name=sid.title(),
                    region_code=region,
                    max_streams=streams,
                ),
                metadata=md,
            )
            await sub.Entitle(
                subscriber_pb2.EntitleRequest(
                    carrier_id="acme", subscriber_id=sid, package_id="basic"
                ),
                metadata=md,
            )
            for label in macs:
                mac = f"02:00:00:00:00:{len(world.boxes) + 1:02x}"
                await sub.BindDevice(
                    subscriber_pb2.BindDeviceRequest(
                        carrier_id="acme", subscriber_id=sid, mac=mac, model="sim"
                    ),
                    metadata=md,
                )
                act = await sub.ActivateDevice(
                    subscriber_pb2.ActivateDeviceRequest(carrier_id="acme", mac=mac),
                    metadata=md,
                )
                world.boxes[label] = Box(mac, act.device_secret, sid)
    return world


async def seed_boxes(
    subscriber_target: str, api_key: str, count: int, *, region: str = REGION
) -> list[Box]:
    """``count`` more subscribers of ``acme`` with the basic package and one activated box
    each (bulk import, then one ``ActivateDevice`` per box)."""
    md = bearer(api_key)
    rows = [
        subscriber_pb2.ImportRow(
            row=i + 1,
            subscriber_id=f"load-{i:05d}",
            display_name=f"Load {i}",
            region_code=region,
            max_streams=2,
            mac=f"06:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            package_ids=["basic"],
        )
        for i in range(count)
    ]

    async def chunks() -> AsyncIterator[Any]:
        for start in range(0, len(rows), 500):
            yield subscriber_pb2.ImportChunk(carrier_id="acme", rows=rows[start : start + 500])

    async with client_channel(subscriber_target) as chan:
        stub = subscriber_pb2_grpc.SubscriberServiceStub(chan)
        summary = await stub.ImportSubscribers(chunks(), metadata=md)
        assert summary.failed == 0, summary.errors
        gate = asyncio.Semaphore(32)

        async def activate(row: Any) -> Box:
            async with gate:
                act = await stub.ActivateDevice(
                    subscriber_pb2.ActivateDeviceRequest(carrier_id="acme", mac=row.mac),
                    metadata=md,
                )
            return Box(act.device.mac, act.device_secret, row.subscriber_id)

        return list(await asyncio.gather(*(activate(r) for r in rows)))


async def set_status(subscriber_target: str, api_key: str, subscriber: str, status: Any) -> None:
    """Suspend or reactivate a subscriber."""
    async with client_channel(subscriber_target) as chan:
        await subscriber_pb2_grpc.SubscriberServiceStub(chan).SetSubscriberStatus(
            subscriber_pb2.SetSubscriberStatusRequest(
                carrier_id="acme", subscriber_id=subscriber, status=status
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


async def start_services(redis: aioredis.Redis, *, pki: LocalPki | None = None) -> Services:
    """EPG and subscriber services on port 0 with real key auth (mTLS with ``pki``)."""
    keys = KeyStore(redis)
    _, api_key = await keys.create(ADMIN)
    epg, epg_port = await create_epg(
        EpgSettings(rpc=server_rpc(pki), watch_block_ms=100), redis=redis, keys=keys
    )
    sub, sub_port = await create_subscriber(
        SubscriberSettings(rpc=server_rpc(pki)), redis=redis, keys=keys
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


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Everything the journey tests talk to."""

    url: str
    world: World
    services: Services
    edges: list[EdgeProcess]
    frontdoor: FrontDoor
    controller: Controller
    origin_port: int
    admin_url: str = ""
    channel: str = LIVE

    def edge(self, edge_id: str) -> EdgeProcess:
        """One edge by id."""
        return next(e for e in self.edges if e.config.edge_id == edge_id)


def _feed(port: int) -> subprocess.Popen[bytes]:
    """A real-time MPEG-TS feed (testsrc2 320x180 + tone) to udp://127.0.0.1:port."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
         "-c:a", "aac", "-b:a", "64k",
         "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the module's stack."""
    return tmp_path_factory.mktemp("e2e")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, e2e_dir: Path) -> AsyncIterator[Stack]:
    """The platform, up once for the module (see the module docstring)."""
    async with build_stack(redis_server.url, e2e_dir) as up:
        yield up


@contextlib.asynccontextmanager
async def build_stack(
    redis_url: str,
    workdir: Path,
    *,
    edge_sessions: int = 100,
    access_log: bool = True,
    door: dict[str, Any] | None = None,
    pki: LocalPki | None = None,
) -> AsyncIterator[Stack]:
    """Start everything (torn down in reverse order, also when a step fails); the CDN
    faces run as the real :class:`cdn_ctl.server.RoutingProcess` (``door`` overrides
    front door settings)."""
    door = door or {}
    from transcode.archive import ArchiveIndex
    from transcode.live import LiveManager
    from transcode.origin import start_origin
    from transcode.server import create_server as create_transcode
    from transcode.settings import ControlSettings, OriginSettings, QueueSettings

    async with contextlib.AsyncExitStack() as down:
        redis = aioredis.Redis.from_url(redis_url)
        down.push_async_callback(redis.aclose)
        await redis.flushall()
        services = await start_services(redis, pki=pki)
        down.push_async_callback(services.stop)
        world = await seed_world(
            services.epg_target, services.subscriber_target, services.api_key, tls=services.tls
        )
        root = workdir / "origin"
        manager = LiveManager(redis=redis, archive=ArchiveIndex(redis), origin_root=root)
        down.push_async_callback(manager.close)
        control = ControlSettings(
            rpc=server_rpc(pki), redis_url=redis_url, origin_root=root, queue=QueueSettings()
        )
        transcode, tc_port = await create_transcode(
            control, redis=redis, keys=KeyStore(redis), channels=manager
        )
        down.push_async_callback(transcode.stop, 0)
        udp = free_port(socket.SOCK_DGRAM)
        feed = _feed(udp)
        down.callback(feed.wait)
        down.callback(feed.kill)
        origin_runner, origin_port = await start_origin(
            OriginSettings(redis_url=redis_url, origin_root=root, port=0), redis=redis
        )
        down.push_async_callback(origin_runner.cleanup)
        async with client_channel(f"127.0.0.1:{tc_port}", tls=services.tls) as chan:
            await transcode_pb2_grpc.TranscodeServiceStub(chan).StartChannel(
                transcode_pb2.StartChannelRequest(
                    channel=transcode_pb2.Channel(
                        id=LIVE,
                        source=f"udp://127.0.0.1:{udp}",
                        profile="low",
                        segment_seconds=2,
                        window_segments=6,
                        catchup_days=1,
                    )
                ),
                metadata=bearer(services.api_key),
            )
        edges = []
        store = EdgeStore(redis)
        # Two village edges in the boxes' region (one is the failover of the other) and one
        # in another region.
        for edge_id, region in (("edge-a", REGION), ("edge-b", REGION), ("edge-c", OTHER_REGION)):
            port = free_port()
            proc = EdgeProcess(
                EdgeConfig(edge_id=edge_id, listen_port=port, upstream=f"127.0.0.1:{origin_port}"),
                prefix=workdir / edge_id,
                keys=RING,
            )
            await proc.start()
            down.push_async_callback(proc.stop)
            edges.append(proc)
            await store.create(
                Edge(edge_id, region, Tier.EDGE, "127.0.0.1", port, edge_sessions, 1e4, 1e4)
            )
        http = await down.enter_async_context(aiohttp.ClientSession())
        _, playback_key = await KeyStore(redis).create(PLAYBACK)
        settings = CdnSettings(
            rpc=RpcSettings(port=0),
            keys=RING,
            http_port=0,
            admin_port=0,
            # Fast detection: a dead edge is down after 2 of the last 3 probes (0.2 s
            # apart), and back 2 s after it answers again.
            health=HealthPolicy(window=3, fall=2, rise=1, hold_down_seconds=2.0),
            probe_interval_seconds=0.2,
            refresh_seconds=0.5,
            replica_id="e2e",
            frontdoor=frontdoor_settings(
                services, api_key=playback_key, grpc_tls=services.tls, **door
            ),
        )
        process = RoutingProcess(settings, redis=redis, http=http, access_log=access_log)
        await process.start()
        down.push_async_callback(process.stop)
        frontdoor = process.frontdoor
        assert frontdoor is not None
        port = process.port
        await asyncio.wait_for(frontdoor.epg.watching.wait(), 10)
        await asyncio.wait_for(
            _until_live(http, f"http://127.0.0.1:{origin_port}/live/{LIVE}/master.m3u8"), 60
        )
        yield Stack(
            f"http://127.0.0.1:{port}",
            world,
            services,
            edges,
            frontdoor,
            process.controller,
            origin_port,
            admin_url=f"http://127.0.0.1:{process.admin_port}",
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _until_live(http: aiohttp.ClientSession, url: str) -> None:
    """The origin serves the channel's master once the first segments are out
    (the live supervisor offers no event to await from outside)."""
    while True:
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
