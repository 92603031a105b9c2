"""A playing box through a Redis crash: the front door and the edge serve it from cache.

The store every control-plane part shares (EPG and subscriber as real
``python -m`` children, the front door and controller in this process, all
with the factory's default Redis settings) is SIGKILLed while a set-top box
plays live through the front door and a real nginx edge, kept down for
longer than the entitlement cache lives, and restarted. The box keeps
playing (at most a short stall), a new login meanwhile gets 503 with
Retry-After, the front door's EPG change feed reconnects by itself and its
EPG cache is dropped at most once, and nothing needs a restart.

The live pipeline (FFmpeg, the publisher, the origin) has a Redis of its own
here: it is not what this test is about, and its behaviour in an outage is
its owners' to test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.frontdoor.app import FrontDoor
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.health import HealthPolicy
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings
from cdn_ctl.sim.stb import BoxRefused, PlayStats, SetTopBox
from cdn_ctl.store import EdgeStore
from headend.auth import PLAYBACK, KeyStore
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings
from headend.seed import World
from tests.support.net import free_port
from tests.support.services import Platform, platform
from tests.support.world import LIVE, REGION, RING, seed_world
from transcode.archive import ArchiveIndex
from transcode.domain import LiveChannel
from transcode.live import LiveManager
from transcode.origin import start_origin
from transcode.settings import OriginSettings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

OUTAGE_SECONDS = 8.0  # several entitlement lifetimes and variant reloads
SESSION_KEY = b"f" * 32


@dataclass
class Door:
    """The platform around one front door."""

    url: str
    admin_url: str
    platform: Platform
    frontdoor: FrontDoor
    world: World

    def box(self, label: str, http: aiohttp.ClientSession) -> SetTopBox:
        """A seeded box as a client of the front door."""
        b = self.world.boxes[label]
        return SetTopBox(http, self.url, mac=b.mac, secret=b.secret)


def _feed(port: int) -> subprocess.Popen[bytes]:
    """A real-time MPEG-TS test feed to udp://127.0.0.1:port."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
         "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _until_live(http: aiohttp.ClientSession, url: str) -> None:
    """The origin serves the master once the first segments are out (nothing to await)."""
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(loop_scope="module")
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with contextlib.AsyncExitStack() as down:
        up = await down.enter_async_context(platform(tmp_path / "redis"))
        epg = await up.start("epg", "epg")
        subscriber = await up.start("subscriber", "subscriber")
        world = await seed_world(epg.target, subscriber.target, up.admin_key)
        # The live pipeline, on its own Redis (see the module docstring).
        media_redis = RedisServer(tmp_path / "media-redis")
        await asyncio.to_thread(media_redis.start)
        down.callback(media_redis.stop)
        media = connect(media_redis.url)
        down.push_async_callback(media.aclose)
        root = tmp_path / "origin"
        manager = LiveManager(redis=media, archive=ArchiveIndex(media), origin_root=root)
        down.push_async_callback(manager.close)
        udp = free_port(socket.SOCK_DGRAM)
        feed = _feed(udp)
        down.callback(feed.wait)
        down.callback(feed.kill)
        runner, origin_port = await start_origin(
            OriginSettings(redis_url=media_redis.url, origin_root=root, port=0), redis=media
        )
        down.push_async_callback(runner.cleanup)
        await manager.start(
            LiveChannel(
                id=LIVE, source=f"udp://127.0.0.1:{udp}", profile="low", segment_seconds=2,
                window_segments=6, catchup_days=1,
            )
        )  # fmt: skip
        # The control plane's Redis: the one that fails.
        redis = connect(up.redis.url)
        down.push_async_callback(redis.aclose)
        port = free_port()
        edge = EdgeProcess(
            EdgeConfig(edge_id="edge-a", listen_port=port, upstream=f"127.0.0.1:{origin_port}"),
            prefix=tmp_path / "edge-a",
            keys=RING,
        )
        await edge.start()
        down.push_async_callback(edge.stop)
        await EdgeStore(redis).create(
            Edge("edge-a", REGION, Tier.EDGE, "127.0.0.1", port, 100, 1e4, 1e4)
        )
        _, playback_key = await KeyStore(redis).create(PLAYBACK)
        http = await down.enter_async_context(aiohttp.ClientSession())
        settings = CdnSettings(
            rpc=RpcSettings(port=0),
            keys=RING,
            http_port=0,
            admin_port=0,
            health=HealthPolicy(window=3, fall=2, rise=1, hold_down_seconds=2.0),
            probe_interval_seconds=0.5,
            refresh_seconds=0.5,
            replica_id="faults",
            frontdoor=FrontDoorSettings(
                epg_target=epg.target,
                subscriber_target=subscriber.target,
                api_key=playback_key,
                session_keys=(("s1", SESSION_KEY),),
                session_active_kid="s1",
                entitlement_ttl_seconds=1.0,
                heartbeat_seconds=1.0,
                master_ttl_seconds=2.0,
            ),
        )
        process = RoutingProcess(settings, redis=redis, http=http, access_log=False)
        await process.start()
        down.push_async_callback(process.stop)
        assert process.frontdoor is not None
        await asyncio.wait_for(process.frontdoor.epg.watching.wait(), 10)
        await asyncio.wait_for(
            _until_live(http, f"http://127.0.0.1:{origin_port}/live/{LIVE}/master.m3u8"), 60
        )
        yield Door(
            f"http://127.0.0.1:{process.port}",
            f"http://127.0.0.1:{process.admin_port}",
            up,
            process.frontdoor,
            world,
        )


async def _login_refused(box: SetTopBox) -> BoxRefused:
    with pytest.raises(BoxRefused) as refused:
        await box.login()
    return refused.value


class Arrivals:
    """When each segment of a playing box arrived (recorded as it happens)."""

    def __init__(self, stats: PlayStats) -> None:
        self.stats = stats
        self.times: list[float] = []
        self._more = asyncio.Event()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        seen = self.stats.segments
        while True:
            await self.stats.progress.wait()
            self.stats.progress.clear()
            now = time.monotonic()
            self.times += [now] * (self.stats.segments - seen)
            seen = self.stats.segments
            self._more.set()

    async def more(self, count: int) -> None:
        """Wait for ``count`` more segments."""
        target = len(self.times) + count
        while len(self.times) < target:
            self._more.clear()
            await self._more.wait()

    def stalls(self) -> list[float]:
        """Gaps between successive segments."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]

    async def close(self) -> None:
        """Stop watching."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_a_playing_box_keeps_playing_through_a_redis_crash(door: Door) -> None:
    epg = door.frontdoor.epg
    stats = PlayStats()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        viewer = door.box("c1", http)
        await viewer.login()
        arrivals = Arrivals(stats)
        play = asyncio.create_task(viewer.play_live(LIVE, seconds=120, stop=stop, stats=stats))
        try:
            await asyncio.wait_for(arrivals.more(3), 30)
            drops_before = epg.drops
            door.platform.redis.kill()
            killed_at = time.monotonic()
            # Logging in needs the subscriber service, which needs its store: 503, retry.
            refused = await asyncio.wait_for(_login_refused(door.box("b1", http)), 10)
            assert (refused.status, refused.reason) == (503, "subscriber_unavailable")
            assert int(refused.retry_after) > 0
            # The playing box is served from the caches for the whole outage.
            await asyncio.wait_for(arrivals.more(2), OUTAGE_SECONDS)
            await asyncio.sleep(max(0.0, killed_at + OUTAGE_SECONDS - time.monotonic()))
            await asyncio.wait_for(arrivals.more(1), 10)
            await asyncio.to_thread(door.platform.redis.start)
            restarted_at = time.monotonic()
            # Everything comes back by itself: the change feed, logins, leases.
            await asyncio.wait_for(epg.watching.wait(), 20)
            await asyncio.wait_for(_login_when_back(door.box("b1", http)), 20)
            await asyncio.wait_for(arrivals.more(3), 30)
        finally:
            stop.set()
            result = await asyncio.wait_for(play, 30)
            await arrivals.close()
        async with http.get(f"{door.admin_url}/healthz") as resp:
            health = await resp.json()
    # 2 s segments: at most a short stall.
    assert max(arrivals.stalls()) < 8.0, arrivals.stalls()
    assert arrivals.times[-1] > restarted_at
    assert len(result.errors) <= 2, result.errors
    assert epg.drops - drops_before <= 1
    assert health["tasks"]["epg-changes"] == "running"
    assert all(state == "running" for state in health["tasks"].values()), health
    assert all(s.alive for s in door.platform.services.values())


async def _login_when_back(box: SetTopBox) -> None:
    """Log in once the subscriber service answers again (polled: it says when to retry)."""
    while True:
        try:
            await box.login()
            return
        except BoxRefused as err:
            if err.status != 503:
                raise
            await asyncio.sleep(float(err.retry_after or 1))
