"""CDN test builders: a stand-in origin counting hits, signing keys, started nginx edges."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from aiohttp import web

from cdn_ctl.domain import Edge, Health, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.routing import Router, RoutingService, RoutingSettings
from cdn_ctl.signing import KeyRing, SigningKey
from tests.support.net import free_port
from tests.support.world import OTHER_REGION, REGION

MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=320x180,CODECS="avc1.64000d"
180p/index.m3u8
"""
MEDIA = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:12
#EXTINF:6.000,
seg_00012.ts
#EXTINF:6.000,
seg_00013.ts
"""

EdgeFactory = Callable[..., Awaitable[EdgeProcess]]

T = TypeVar("T")


class MovedClock(Generic[T]):
    """A clock the test moves by setting ``now`` (TTLs and lifetimes without sleeping)."""

    def __init__(self, now: T) -> None:
        self.now = now

    def __call__(self) -> T:
        return self.now


class FakeOrigin:
    """A stand-in for transcode's origin: fixed playlists and segments, hit counting,
    and an optional gate that holds responses until the test opens it."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        name = path.rsplit("/", 1)[-1]
        if name == "master.m3u8":
            return web.Response(
                text=MASTER,
                content_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "max-age=2"},
            )
        if name.endswith(".m3u8"):
            return web.Response(
                text=MEDIA,
                content_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "max-age=1"},
            )
        if name.endswith(".ts"):
            body = (path.encode() * 400)[:18800]
            return web.Response(
                body=body,
                content_type="video/mp2t",
                headers={"Cache-Control": "public, max-age=86400, immutable"},
            )
        return web.Response(status=404, text="not found")

    async def start(self) -> None:
        """Serve on a free loopback port."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"


def rotation_ring() -> KeyRing:
    """Two keys (k1 old, k2 active), as during a rotation overlap."""
    return KeyRing(
        (SigningKey("k1", b"k1-secret-0123456789"), SigningKey("k2", b"k2-secret-abcdefghij")), "k2"
    )


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll an observable condition of a real process (nginx offers no event to await)."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def edge_factory(workdir: Path, ring: KeyRing) -> AsyncIterator[EdgeFactory]:
    """``await make("e1", upstream=origin.address, **config)`` -> a started nginx edge under
    ``workdir``; every edge made is stopped on exit."""
    started: list[EdgeProcess] = []

    async def make(edge_id: str, *, upstream: str, **kwargs: object) -> EdgeProcess:
        config = EdgeConfig(edge_id=edge_id, listen_port=free_port(), upstream=upstream, **kwargs)  # type: ignore[arg-type]
        edge = EdgeProcess(config, prefix=workdir / edge_id, keys=ring)
        await edge.start()
        started.append(edge)
        return edge

    try:
        yield make
    finally:
        for edge in started:
            await edge.stop()


def two_region_routing(port: int, ring: KeyRing) -> tuple[Router, RoutingService]:
    """Routing to one nginx on ``port``, registered as the edge of both test regions."""
    router = Router()
    router.set_edges([
        Edge("v1", REGION, Tier.EDGE, "127.0.0.1", port, 100, 1000.0, 1000.0),
        Edge("v2", OTHER_REGION, Tier.EDGE, "127.0.0.1", port, 100, 1000.0, 1000.0),
    ])  # fmt: skip
    router.set_health({"v1": Health.UP, "v2": Health.UP})
    return router, RoutingService(router=router, keys=ring, settings=RoutingSettings())
