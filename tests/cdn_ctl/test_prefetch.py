"""Edge prefetch against real nginx edges, a live stand-in origin, a real controller
publishing to real Redis, and the sidecar driven one poll at a time (its clocks moved
by the test, so the budget and the idle time need no sleeping)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cdn_ctl.domain import Edge, Health, Scope, Tier
from cdn_ctl.errors import PlaylistRefused
from cdn_ctl.health import HealthMonitor, HealthPolicy, HttpProber
from cdn_ctl.local import LocalEdges, LocalSettings, run_prefetch
from cdn_ctl.prefetch import Prefetcher, PrefetchMetrics, PrefetchSettings
from cdn_ctl.prefetch_plan import MAX_ENTRIES, TokenBucket, parse_master, parse_media
from cdn_ctl.routing import Controller, RoutePolicy, Router, RoutingService, RoutingSettings
from cdn_ctl.signing import KeyRing, token_prefix
from cdn_ctl.store import EdgeStore
from headend.settings import SettingsError
from tests.support.cdn import EdgeFactory, MovedClock, eventually
from tests.support.net import free_port
from tests.support.prefetch import LiveOrigin, segment_name
from tests.support.world import REGION

pytestmark = pytest.mark.slow
LEASE = "00000000000000a1"


@pytest.fixture
async def live() -> AsyncIterator[LiveOrigin]:
    origin = LiveOrigin()
    await origin.start()
    yield origin
    await origin.stop()


class Village:
    """One nginx edge, a controller routing leases to it, and its prefetch sidecar."""

    def __init__(
        self, redis: Any, ring: KeyRing, http: aiohttp.ClientSession, origin: LiveOrigin
    ) -> None:
        self.redis, self.ring, self.http, self.origin = redis, ring, http, origin
        self.clock = MovedClock(time.time())
        self.monotonic = MovedClock(0.0)
        self.store = EdgeStore(redis)
        # Small per-lease and per-channel figures: the thin uplinks here still get leases.
        self.router = Router(RoutePolicy(lease_mbps=0.01, channel_mbps=0.01))
        self.controller = Controller(
            store=self.store,
            router=self.router,
            monitor=HealthMonitor(
                HealthPolicy(rise=1, degraded_latency_ms=10_000),
                probe=HttpProber(http, timeout_seconds=10, keys=ring),
            ),
            replica_id="t",
            lease_ttl_seconds=60,
            clock=self.clock,
        )
        self.routing = RoutingService(
            router=self.router, keys=ring, settings=RoutingSettings(), clock=self.clock
        )
        self.metrics = PrefetchMetrics()
        self.edge: Edge | None = None
        self.sidecar: Prefetcher | None = None

    async def start(
        self, edges: EdgeFactory, *, uplink_mbps: float = 100.0, **settings: Any
    ) -> Prefetcher:
        proc = await edges("e1", upstream=self.origin.address)
        self.edge = Edge(
            "e1", REGION, Tier.EDGE, "127.0.0.1", proc.config.listen_port, 100, 1000.0, uplink_mbps
        )
        await self.store.create(self.edge)
        await self.controller.refresh()
        await self.controller.probe()
        self.sidecar = Prefetcher(
            self.edge,
            parent=self.origin.address,
            keys=self.ring,
            watch=self.store,
            http=self.http,
            settings=PrefetchSettings(enabled=True, **settings),
            metrics=self.metrics,
            clock=self.clock,
            monotonic=self.monotonic,
        )
        return self.sidecar

    def watch(self, channel: str, rung: str = "low", lease: str = LEASE) -> None:
        """A box's variant reload with a lease: routed (and counted) to the edge."""
        self.routing.redirect(
            Scope("live", channel), f"{rung}/index.m3u8", region=REGION, client_ip=None,
            lease_id=lease,
        )  # fmt: skip

    async def poll(self, seconds: float = 1.0) -> None:
        """Publish what the controller knows, let ``seconds`` pass, run one sidecar poll."""
        assert self.sidecar is not None
        await self.controller.refresh()
        self.clock.now += seconds
        self.monotonic.now += seconds
        await self.sidecar.step()

    async def box_get(self, channel: str, rung: str, name: str) -> str:
        """A box's request for a segment through the edge: nginx's cache status."""
        assert self.edge is not None
        prefix = token_prefix(
            self.ring, scope=f"live/{channel}/", expires_at=int(time.time()) + 60, client_ip=None
        )
        url = f"http://{self.edge.address}{prefix}live/{channel}/{rung}/{name}"
        async with self.http.get(url) as resp:
            await resp.read()
            assert resp.status == 200
            return resp.headers["X-Cache"]

    def count(self, metric: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(metric, {"edge": "e1", **labels})
        return value or 0.0


@pytest.fixture
async def village(redis: Any, ring: KeyRing, live: LiveOrigin) -> AsyncIterator[Village]:
    async with aiohttp.ClientSession() as http:
        yield Village(redis, ring, http, live)


async def test_a_watched_channels_new_segment_is_cached_before_any_box_asks(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    await village.start(edges)
    village.watch("ch1")
    live.publish("ch1")
    await village.poll()  # reads the playlists: what is there is not new
    await village.poll()  # the second reading of the edge's counters sets the budget
    name = live.publish("ch1")
    await village.poll()
    assert live.hits[f"/live/ch1/low/{name}"] == 1
    assert await village.box_get("ch1", "low", name) == "HIT"
    assert live.hits[f"/live/ch1/low/{name}"] == 1
    assert village.count("cdn_prefetch_segments_total", result="fetched") == 1
    assert village.count("cdn_prefetch_bytes_total") == live.size("low")
    # Only the rung a lease plays is prefetched.
    assert not [path for path in live.hits if path.startswith("/live/ch1/high/")]
    assert await village.box_get("ch1", "high", name) == "MISS"
    # The segment that was there before prefetch started is an ordinary miss.
    assert await village.box_get("ch1", "low", segment_name(0)) == "MISS"


async def test_an_unwatched_channel_is_not_prefetched(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    await village.start(edges)
    village.watch("ch1")
    for _ in range(3):
        live.publish("ch1")
        live.publish("ch2")
        await village.poll()
    assert not [path for path in live.hits if path.startswith("/live/ch2/")]
    assert await village.box_get("ch2", "low", segment_name(2)) == "MISS"
    assert await village.box_get("ch1", "low", segment_name(2)) == "HIT"


async def test_prefetch_stops_after_the_idle_time(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    sidecar = await village.start(edges, idle_seconds=30)
    village.watch("ch1")
    await village.poll()
    assert set(sidecar.channels) == {"ch1"}
    village.routing.end(LEASE)  # the box stopped
    await village.poll(seconds=20)
    assert set(sidecar.channels) == {"ch1"}  # not yet idle for 30 s
    await village.poll(seconds=11)
    assert sidecar.channels == {}
    assert village.count("cdn_prefetch_channels") == 0
    before = sum(live.hits.values())
    name = live.publish("ch1")
    await village.poll()
    await village.poll()
    assert sum(live.hits.values()) == before  # no playlist polled, nothing prefetched
    assert await village.box_get("ch1", "low", name) == "MISS"


async def test_a_small_uplink_makes_it_skip(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    # 0.5 x 0.1 Mb/s for 6 s is 37.5 kB: less than one 100 kB segment of the low rung.
    await village.start(edges, uplink_mbps=0.1, headroom=0.5, burst_seconds=6)
    village.watch("ch1")
    for _ in range(3):
        await village.poll()
    name = live.publish("ch1")
    await village.poll()
    assert live.hits[f"/live/ch1/low/{name}"] == 0
    assert village.count("cdn_prefetch_skipped_total", reason="headroom") == 1
    assert village.count("cdn_prefetch_segments_total", result="fetched") == 0
    assert await village.box_get("ch1", "low", name) == "MISS"


async def test_live_fetches_using_the_uplink_leave_prefetch_no_budget(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    # 2 Mb/s of uplink; boxes pull 3 x 300 kB of another channel within one second
    # (7.2 Mb/s): no headroom left, so nothing is prefetched.
    sidecar = await village.start(edges, uplink_mbps=2.0, burst_seconds=1)
    village.watch("ch1")
    for _ in range(5):
        live.publish("ch1")
        live.publish("ch2")
    await village.poll()
    for n in range(2, 5):
        assert await village.box_get("ch2", "high", segment_name(n)) == "MISS"
    await village.poll()
    assert sidecar.bucket.rate == 0.0
    assert village.count("cdn_prefetch_live_uplink_mbps") >= 2.0
    name = live.publish("ch1")
    await village.poll(seconds=0.5)
    assert live.hits[f"/live/ch1/low/{name}"] == 0
    assert village.count("cdn_prefetch_skipped_total", reason="headroom") == 1


HOSTILE = [
    pytest.param("../../other/low/index.m3u8", id="escapes-the-channel"),
    pytest.param("http://attacker.example/x.ts", id="absolute-url"),
    pytest.param("/live/ch2/low/seg.ts", id="absolute-path"),
    pytest.param("a%2e%2e/seg.ts", id="escaped-dots"),
    pytest.param(".hidden/seg.ts", id="dot-segment"),
    pytest.param('seg ".ts', id="unsafe-characters"),
    pytest.param("a/b/c/d/e/seg.ts", id="too-deep"),
]


@pytest.mark.parametrize("uri", HOSTILE)
async def test_a_playlist_with_absurd_uris_is_refused_whole(
    village: Village, edges: EdgeFactory, live: LiveOrigin, uri: str
) -> None:
    await village.start(edges)
    village.watch("ch1")
    await village.poll()
    live.publish("ch1")
    live.overrides["/live/ch1/low/index.m3u8"] = (
        f"#EXTM3U\n#EXTINF:2.0,\n{segment_name(0)}\n#EXTINF:2.0,\n{uri}\n"
    )
    for _ in range(3):
        await village.poll()
    assert village.count("cdn_prefetch_errors_total", kind="refused") == 3
    outside = [p for p in live.hits if not p.startswith("/live/ch1/")]
    assert outside == []
    assert live.hits["/live/ch1/low/" + segment_name(0)] == 0


async def test_a_huge_playlist_is_refused_with_bounded_reading(
    village: Village, edges: EdgeFactory, live: LiveOrigin
) -> None:
    await village.start(edges, max_playlist_bytes=4096)
    village.watch("ch1", "low")
    village.watch("ch1", "high", lease="00000000000000a2")
    huge = "#EXTM3U\n" + "".join(f"#EXTINF:2.0,\nseg_{n:07d}.ts\n" for n in range(50_000))
    live.overrides["/live/ch1/high/index.m3u8"] = huge
    for _ in range(3):
        live.publish("ch1")
        await village.poll()
    assert village.count("cdn_prefetch_errors_total", kind="refused") == 3
    assert not [p for p in live.hits if p.startswith("/live/ch1/high/seg_")]
    # The other rung is unaffected.
    assert village.count("cdn_prefetch_segments_total", result="fetched") >= 1


def test_parsing_bounds_and_order() -> None:
    master = (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900\nhi/i.m3u8\n#EXT-X-STREAM-INF:X=1\nlo/i.m3u8\n"
    )
    rungs = parse_master(master, base_dir="/live/c/")
    assert [(r.path, r.bandwidth_bps) for r in rungs] == [
        ("/live/c/lo/i.m3u8", 0),
        ("/live/c/hi/i.m3u8", 900),
    ]
    many = "#EXTM3U\n" + "#EXTINF:1,\ns.ts\n" * (MAX_ENTRIES + 1)
    with pytest.raises(PlaylistRefused):
        parse_media(many, base_dir="/live/c/lo/")
    with pytest.raises(PlaylistRefused):
        parse_media("not a playlist", base_dir="/live/c/lo/")
    with pytest.raises(PlaylistRefused):
        parse_media("#EXTM3U\n#EXTINF:99999,\ns.ts\n", base_dir="/live/c/lo/")


def test_the_bucket_skips_rather_than_exceeds() -> None:
    clock = MovedClock(0.0)
    bucket = TokenBucket(burst_seconds=2, clock=clock)
    bucket.set_rate(100)
    clock.now = 10.0
    assert not bucket.take(201)  # capped at two seconds' worth
    assert bucket.take(200)
    assert not bucket.take(1)
    bucket.charge(100)  # a segment larger than estimated: a debt
    clock.now = 11.0
    assert not bucket.take(1)
    clock.now = 12.0
    assert bucket.take(100)


def test_settings_name_a_bad_variable() -> None:
    assert PrefetchSettings.from_env({}).enabled is False
    settings = PrefetchSettings.from_env({"EDGE_PREFETCH": "1", "EDGE_PREFETCH_HEADROOM": "0.3"})
    assert (settings.enabled, settings.headroom) == (True, 0.3)
    with pytest.raises(SettingsError, match="EDGE_PREFETCH_HEADROOM"):
        PrefetchSettings.from_env({"EDGE_PREFETCH_HEADROOM": "1.5"})
    local = LocalSettings.from_env(
        {"CDN_SIGNING_KEYS": "k1:" + "A" * 43, "REDIS_URL": "redis://x", "EDGE_PREFETCH": "1"}
    )
    assert local.prefetch.enabled


async def test_the_controller_marks_only_watched_channels_per_edge(redis: Any) -> None:
    store = EdgeStore(redis)
    await store.mark_watched(
        {"e1": ["ch1/low", "ch2/low", "ch2/high"], "e2": ["ch3/low"]}, now=100.0, ttl_seconds=60
    )
    await store.mark_watched({"e1": ["ch2/low"]}, now=130.0, ttl_seconds=60)
    assert await store.watched("e1", since=120.0, limit=10) == {"ch2": {"low"}}
    assert await store.watched("e1", since=0.0, limit=10) == {
        "ch2": {"low", "high"},
        "ch1": {"low"},
    }
    assert list(await store.watched("e1", since=0.0, limit=1)) == ["ch2"]
    assert await store.watched("e3", since=0.0, limit=10) == {}


def test_the_ledger_knows_the_rung_each_live_lease_plays(ring: KeyRing) -> None:
    router = Router()
    router.set_edges([Edge("e1", REGION, Tier.EDGE, "127.0.0.1", 1, 100, 1000.0, 1000.0)])
    router.set_health({"e1": Health.UP})
    routing = RoutingService(router=router, keys=ring, settings=RoutingSettings())
    live = Scope("live", "ch1")
    routing.redirect(live, "low/index.m3u8", region=REGION, client_ip=None, lease_id=LEASE)
    assert router.watched() == {"e1": {"ch1/low"}}
    routing.redirect(live, "high/index.m3u8", region=REGION, client_ip=None, lease_id=LEASE)
    assert router.watched() == {"e1": {"ch1/high"}}  # the box switched rung
    window = Scope("catchup", "ch2", 1000, 2000)
    routing.redirect(window, "master.m3u8", region=REGION, client_ip=None, lease_id="0" * 15 + "b")
    assert router.watched() == {"e1": {"ch1/high"}}  # catch-up names no rung
    routing.end(LEASE)
    assert router.watched() == {}


async def test_the_launcher_runs_a_sidecar_beside_each_edge(
    tmp_path: Path, ring: KeyRing, live: LiveOrigin, redis: Any
) -> None:
    settings = LocalSettings.from_env(
        {
            "CDN_SIGNING_KEYS": ring.render(),
            "REDIS_URL": "unix:///tmp/x.sock",
            "CDN_LOCAL_EDGES": f"la:110101:{free_port()}",
            "CDN_ORIGIN_ADDRESS": live.address,
            "CDN_EDGE_DIR": str(tmp_path),
            "EDGE_PREFETCH": "1",
            "EDGE_PREFETCH_POLL_SECONDS": "0.05",
            "EDGE_PREFETCH_METRICS_PORT": "0",
        }
    )
    edges = LocalEdges(settings)
    await edges.start()
    sidecars = asyncio.create_task(run_prefetch(settings, edges, redis))
    try:
        await edges.register(redis)
        await EdgeStore(redis).mark_watched({"la": ["ch1/low"]}, now=time.time(), ttl_seconds=60)
        live.publish("ch1")

        async def read(path: str, times: int = 1) -> bool:
            return live.hits[path] >= times

        # Three polls of the watched rung: the edge's counters were read twice by then, so
        # the budget is set and filling.
        await eventually(lambda: read("/live/ch1/low/index.m3u8", 3))
        name = live.publish("ch1")
        await eventually(lambda: read(f"/live/ch1/low/{name}"))
    finally:
        sidecars.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sidecars
        await edges.stop()
    assert live.hits[f"/live/ch1/low/{name}"] == 1
