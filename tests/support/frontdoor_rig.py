"""A real front door over one nginx edge and a stand-in origin, with the real EPG and
subscriber services, and transcode's control service (channels kept in Redis, no node
runs them) as its live directory: the rig of the device profile and live format tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.playerlinks import PlayerLinks
from cdn_ctl.signing import KeyRing
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.upstream import EpgCache, SubscriberCache
from headend.auth import PLAYBACK, KeyStore, Principal
from headend.rpc import RpcServer, RpcSettings
from headend.seed import World
from subscriber.client import SubscriberClient
from subscriber.domain import DeviceProfile
from tests.support.cdn import EdgeFactory, FakeOrigin, two_region_routing
from tests.support.world import CARRIER, Services, frontdoor_settings, seed_world, start_services
from transcode.client import TranscodeClient
from transcode.farm import ChannelIntents
from transcode.server import create_server as create_transcode
from transcode.settings import ControlSettings, QueueSettings

OriginT = TypeVar("OriginT", bound=FakeOrigin)


@dataclass
class Door(Generic[OriginT]):
    """The running front door, its world, and the origin behind its edge."""

    url: str
    frontdoor: FrontDoor
    world: World
    services: Services
    metrics: CdnMetrics
    origin: OriginT

    def box(self, label: str, http: aiohttp.ClientSession) -> SetTopBox:
        b = self.world.boxes[label]
        return SetTopBox(http, self.url, mac=b.mac, secret=b.secret)

    async def logged_in(self, http: aiohttp.ClientSession, label: str) -> SetTopBox:
        box = self.box(label, http)
        await box.login()
        return box

    async def define(self, profile: DeviceProfile) -> None:
        """The carrier's profile for the test boxes' model ("sim"), replacing the last."""
        async with SubscriberClient(
            self.services.subscriber_target, self.services.api_key
        ) as client:
            await client.define_device_profile(
                DeviceProfile(CARRIER, "sim", "", ("sim",), profile.formats, profile.codecs,
                              profile.max_height)
            )  # fmt: skip

    async def undefine(self) -> None:
        """No profile names the model: its boxes get the platform's."""
        async with SubscriberClient(
            self.services.subscriber_target, self.services.api_key
        ) as client:
            await client.delete_device_profile(CARRIER, "sim")

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@dataclass
class Control:
    """Transcode's control service as a test holds it: its target, its server (a test
    may stop it) and the admin and playback keys."""

    target: str
    server: RpcServer
    admin_key: str
    playback_key: str


@contextlib.asynccontextmanager
async def control_service(
    redis: aioredis.Redis, tmp_path: Path, channels: Mapping[str, Mapping[str, Any]]
) -> AsyncIterator[Control]:
    """Transcode's control service with ``channels`` started (id -> ``start_channel``
    keywords, the source a placeholder)."""
    keys = KeyStore(redis)
    _, admin = await keys.create(Principal("admin"))
    _, playback = await keys.create(PLAYBACK)
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path / "origin",
        queue=QueueSettings(),
    )
    intents = ChannelIntents(redis, stop_wait_seconds=0.2)
    server, port = await create_transcode(settings, redis=redis, keys=keys, channels=intents)
    target = f"127.0.0.1:{port}"
    try:
        async with TranscodeClient(target, admin) as client:
            for channel, options in channels.items():
                await client.start_channel(channel, "udp://239.9.9.9:5000", **options)
        yield Control(target, server, admin, playback)
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def front_door(
    redis: aioredis.Redis, edges: EdgeFactory, ring: KeyRing, *, origin: OriginT, transcode: str
) -> AsyncIterator[Door[OriginT]]:
    """A front door (background tasks off: no alerts; the live directory read once)
    routing to one nginx edge in front of ``origin``, player links on."""
    await origin.start()
    services = await start_services(redis)
    metrics = CdnMetrics()
    try:
        world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
        edge = await edges("v1", upstream=origin.address)
        _, routing = two_region_routing(edge.config.listen_port, ring)
        settings = frontdoor_settings(services, transcode_target=transcode)
        async with aiohttp.ClientSession() as http:
            frontdoor = FrontDoor(
                settings,
                routing=routing,
                subscriber=SubscriberCache(
                    services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0
                ),
                epg=EpgCache(services.epg_target, services.api_key),
                http=http,
                links=PlayerLinks(redis),
                metrics=metrics,
            )
            frontdoor.alerts.hold([])
            server = TestServer(create_box_app(frontdoor), host="127.0.0.1")
            try:
                assert frontdoor.outputs is not None
                assert await frontdoor.outputs.refresh()
                await server.start_server()
                url = str(server.make_url("")).rstrip("/")
                yield Door(url, frontdoor, world, services, metrics, origin)
            finally:
                await server.close()
                await frontdoor.stop()
    finally:
        await services.stop()
        await origin.stop()
