"""Builders and clients for the attack tests: the platform under test and a box or
attacker speaking raw HTTP to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from cdn_ctl.edge import EdgeProcess
from cdn_ctl.server import RoutingProcess
from cdn_ctl.signing import KeyRing
from headend.auth import KeyStore
from headend.seed import World
from tests.support.cdn import FakeOrigin
from tests.support.world import Services


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
        box = self.world.boxes[label]
        async with http.post(
            f"{self.url}/api/login", json={"mac": box.mac, "secret": box.secret}
        ) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["token"])


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
