"""Builders and clients for the attack tests: the platform under test and a box or
attacker speaking raw HTTP to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings, RoutingSettings
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend.auth import PLAYBACK, KeyStore
from headend.contentkeys import ContentKeySettings
from headend.rpc import RpcSettings
from headend.seed import World
from tests.support.cdn import FakeOrigin, eventually
from tests.support.net import free_port
from tests.support.world import (
    LIVE,
    REGION,
    Services,
    frontdoor_settings,
    seed_world,
    start_services,
)


async def login_box(http: aiohttp.ClientSession, url: str, world: World, label: str) -> str:
    """Log the seeded box ``label`` in at the front door ``url``; its box token."""
    box = world.boxes[label]
    async with http.post(f"{url}/api/login", json={"mac": box.mac, "secret": box.secret}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])


@dataclass
class Door:
    """One real CDN process and what stands behind it: the gRPC services with their seeded
    world, a real nginx edge registered in each region, and the process's two faces."""

    process: RoutingProcess
    services: Services
    world: World
    keys: KeyStore
    edge: EdgeProcess

    @property
    def url(self) -> str:
        """The public front door."""
        return f"http://127.0.0.1:{self.process.port}"

    @property
    def admin_url(self) -> str:
        """The admin listener."""
        return f"http://127.0.0.1:{self.process.admin_port}"


@asynccontextmanager
async def routing_process(
    redis: aioredis.Redis,
    prefix: Path,
    upstream: str,
    ring: KeyRing,
    *,
    replica_id: str,
    regions: Sequence[str] = (REGION,),
    door: Mapping[str, Any] | None = None,
    content_keys: ContentKeySettings | None = None,
    access_log: bool = True,
    **cdn: Any,
) -> AsyncIterator[Door]:
    """The CDN process over real services (seeded), one nginx edge in front of ``upstream``
    registered in every one of ``regions``; yields once every region routes to it (a new
    edge serves after a few good probes: a request before that would get 503 no_edge)."""
    services = await start_services(redis)
    edge = EdgeProcess(
        EdgeConfig(edge_id="v1", listen_port=free_port(), upstream=upstream),
        prefix=prefix / "v1",
        keys=ring,
    )
    try:
        world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
        keys = KeyStore(redis)
        _, playback_key = await keys.create(PLAYBACK)
        await edge.start()
        port = edge.config.listen_port
        for number, region in enumerate(regions, 1):
            await EdgeStore(redis).create(
                Edge(f"v{number}", region, Tier.EDGE, "127.0.0.1", port, 100, 1e4, 1e4)
            )
        settings = CdnSettings(
            rpc=RpcSettings(port=0),
            keys=ring,
            http_port=0,
            admin_port=0,
            routing=RoutingSettings(),
            replica_id=replica_id,
            frontdoor=frontdoor_settings(services, api_key=playback_key, **(door or {})),
            content_keys=content_keys or ContentKeySettings(),
            **cdn,
        )
        async with aiohttp.ClientSession() as http:
            process = RoutingProcess(settings, redis=redis, http=http, access_log=access_log)
            try:
                await process.start()

                async def routable() -> bool:
                    return all(process.routing.candidates(LIVE, r) for r in regions)

                await eventually(routable)
                yield Door(process, services, world, keys, edge)
            finally:
                await process.stop()
    finally:
        await edge.stop()
        await services.stop()


@dataclass
class Platform:
    """The faces under attack and what stands behind them."""

    url: str
    admin_url: str
    process: RoutingProcess
    world: World
    services: Services
    redis: aioredis.Redis
    keys: KeyStore
    edge: EdgeProcess
    origin: FakeOrigin
    ring: KeyRing

    @property
    def reserved(self) -> int:
        """Stream slots the routing ledger holds (capacity taken on the edges)."""
        return self.process.router.held

    async def login(self, http: aiohttp.ClientSession, label: str) -> str:
        """Log box ``label`` in; its token."""
        return await login_box(http, self.url, self.world, label)


async def get(
    http: aiohttp.ClientSession, url: str, *, token: str = "", **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    """One GET without following redirects: status, headers, body text."""
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(url, headers=headers, allow_redirects=False, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.text(errors="replace")


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def half_requests(host: str, port: int, count: int) -> list[Conn]:
    """``count`` connections that send part of a request head and then nothing more."""
    conns = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /lineup.m3u HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append((reader, writer))
    await asyncio.gather(*(w.drain() for _, w in conns), return_exceptions=True)
    return conns


async def closed_by_peer(conn: Conn, within_seconds: float) -> bool:
    """True when the server closes this connection within ``within_seconds``."""
    reader, _ = conn
    try:
        data = await asyncio.wait_for(reader.read(1024), within_seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b"" or reader.at_eof()


def close_all(conns: list[Conn]) -> None:
    """Close the attacker's side of every connection."""
    for _, writer in conns:
        writer.close()
