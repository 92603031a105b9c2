"""The HTTP routing face with real Redis, real nginx edges and a fake origin."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeProcess
from cdn_ctl.health import HealthMonitor, HealthPolicy, HttpProber
from cdn_ctl.http import RoutingFace, create_app
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.routing import Controller, Router, RoutingService, RoutingSettings
from cdn_ctl.service import CdnService
from cdn_ctl.signing import KeyRing, sign_path
from cdn_ctl.store import EdgeStore
from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from tests.support.cdn import EdgeFactory, FakeOrigin

pytestmark = pytest.mark.slow
BOX = "110101"
# Lease ids as the subscriber service issues them (16 hex digits).
LEASE, OLD, NEW = "00000000000000a1", "00000000000000b1", "00000000000000b2"


class Stack:
    """Edges registered in Redis, a controller probing them, the routing face on a real port."""

    def __init__(self, redis: Any, ring: KeyRing, http: aiohttp.ClientSession) -> None:
        self.store = EdgeStore(redis)
        self.router = Router()
        self.monitor = HealthMonitor(
            HealthPolicy(
                window=3, fall=2, rise=1, hold_down_seconds=30, degraded_latency_ms=10_000
            ),
            probe=HttpProber(http, timeout_seconds=10, keys=ring),
        )
        self.controller = Controller(
            store=self.store,
            router=self.router,
            monitor=self.monitor,
            replica_id="t",
            lease_ttl_seconds=60,
        )
        self.metrics = CdnMetrics()
        self.routing = RoutingService(
            router=self.router, keys=ring, settings=RoutingSettings(), counter=self.metrics
        )
        self.face = RoutingFace(
            routing=self.routing, controller=self.controller, metrics=self.metrics
        )
        self.keys = KeyStore(redis)
        self.server = TestServer(create_app(self.face, authenticator=self.keys), host="127.0.0.1")
        self.http = http
        self.admin_key = ""
        self.nginx: dict[str, EdgeProcess] = {}

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))

    async def add(self, edges: EdgeFactory, origin: FakeOrigin, edge_id: str, region: str) -> Edge:
        proc = await edges(edge_id, upstream=origin.address, steering_base_url=self.url)
        self.nginx[edge_id] = proc
        edge = Edge(
            edge_id, region, Tier.EDGE, "127.0.0.1", proc.config.listen_port, 100, 1000.0, 1000.0
        )
        await CdnService(store=self.store).register(ADMIN, edge)
        return edge

    async def settle(self) -> None:
        assert await self.controller.refresh()
        await self.controller.probe()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        if not self.admin_key:
            _, self.admin_key = await self.keys.create(ADMIN)
        headers = {"Authorization": f"Bearer {self.admin_key}", **kwargs.pop("headers", {})}
        async with self.http.get(
            urljoin(self.url, path), allow_redirects=False, headers=headers, **kwargs
        ) as resp:
            return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def stack(redis: aioredis.Redis, ring: KeyRing) -> AsyncIterator[Stack]:
    async with aiohttp.ClientSession() as http:
        s = Stack(redis, ring, http)
        await s.server.start_server()
        yield s
        await s.server.close()


async def test_route_redirects_to_a_signed_edge_url_that_plays(
    stack: Stack, edges: EdgeFactory, origin: FakeOrigin
) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "c1", "110102")
    await stack.settle()
    status, headers, _ = await stack.get(
        f"/route/live/ch1/master.m3u8?region={BOX}&lease_id={LEASE}"
    )
    assert status == 302
    location = headers["Location"]
    assert location.startswith(f"{stack.nginx['v1'].url}/t/")
    assert f"/live/ch1/master.m3u8?lease_id={LEASE}" in location
    assert headers["X-Route-Reason"].startswith("county edge v1; up; load=0.01")
    assert headers["X-Route-Edge"] == "v1"
    async with stack.http.get(location) as resp:
        master = await resp.text()
    assert resp.status == 200
    assert f'SERVER-URI="{stack.url}/steering/ch1.json?base=v1&lease_id={LEASE}&' in master
    # Relative URIs inside the playlist inherit the path token.
    variant = urljoin(location, master.splitlines()[-1])
    async with stack.http.get(variant) as resp:
        media = await resp.text()
    assert resp.status == 200
    async with stack.http.get(urljoin(variant, media.splitlines()[-1])) as resp:
        assert resp.status == 200
        assert resp.headers["X-Cache"] == "MISS"
    assert origin.hits["/live/ch1/180p/seg_00013.ts"] == 1


async def test_no_edge_gives_503_with_retry_after(stack: Stack) -> None:
    await stack.settle()
    status, headers, body = await stack.get(f"/route/live/ch1/master.m3u8?region={BOX}")
    assert (status, headers["Retry-After"]) == (503, "5")
    assert json.loads(body)["error"] == "NoEdgeAvailable"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/route/live/ch1/master.m3u8?region=1101", "region", id="short-region"),
        pytest.param("/route/live/ch1/master.m3u8", "region", id="no-region"),
        pytest.param("/route/live/ch%20x/master.m3u8?region=110101", "channel", id="bad-channel"),
        pytest.param("/route/live/ch1/..%2Fch2/x.m3u8?region=110101", "scope", id="dot-dot"),
        pytest.param(
            "/route/live/ch1/master.m3u8?region=110101&lease_id=a%20b", "lease_id", id="bad-lease"
        ),
        pytest.param(
            "/route/live/ch1/master.m3u8?region=110101&session=box42", "lease_id", id="old-name"
        ),
        pytest.param("/route/live/ch1/master.m3u8?region=190101", "region", id="no-such-province"),
        pytest.param("/debug/route?channel=ch1&region=x", "region", id="debug-bad-region"),
        pytest.param(
            "/steering/ch1.json?region=110101&base=Bad_Id", "edge_id", id="steering-bad-base"
        ),
    ],
)
async def test_bad_requests_are_400_naming_the_field(stack: Stack, path: str, field: str) -> None:
    status, _, body = await stack.get(path)
    assert status == 400
    assert json.loads(body)["field"] == field
    assert stack.router.held == 0


async def test_edge_stopped_mid_session_moves_routes_and_steering(
    stack: Stack, edges: EdgeFactory, origin: FakeOrigin
) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "v2", BOX)
    await stack.add(edges, origin, "c1", "110102")
    await stack.settle()
    channel = next(
        f"ch{i}" for i in range(50) if stack.routing.explain(f"ch{i}", BOX).edge.edge_id == "v1"
    )
    status, headers, _ = await stack.get(
        f"/route/live/{channel}/master.m3u8?region={BOX}&lease_id={LEASE}"
    )
    lease = headers["Location"].split("lease_id=")[1].split("&")[0]
    steering_path = f"/steering/{channel}.json?base=v1&region={BOX}&lease_id={lease}"
    _, _, before = await stack.get(steering_path)
    manifest = json.loads(before)
    assert manifest["PATHWAY-PRIORITY"][0] == "v1"
    assert manifest["VERSION"] == 1
    assert manifest["TTL"] == 10
    assert manifest["RELOAD-URI"] == steering_path
    clones = {c["ID"]: c for c in manifest["PATHWAY-CLONES"]}
    assert clones["v2"]["BASE-ID"] == "v1"
    assert (
        clones["v2"]["URI-REPLACEMENT"]["HOST"]
        == f"127.0.0.1:{stack.nginx['v2'].config.listen_port}"
    )

    await stack.nginx["v1"].stop()
    await stack.controller.probe()
    assert stack.router.health["v1"].value == "degraded"
    await stack.controller.probe()  # 2 of the last 3 failed: down
    assert stack.router.health["v1"].value == "down"

    _, _, after = await stack.get(steering_path)
    moved = json.loads(after)
    assert "v1" not in moved["PATHWAY-PRIORITY"]
    assert moved["PATHWAY-PRIORITY"][0] == "v2"
    assert stack.router.edge_of(lease) == "v2"
    # The same lease asking for its playlist again gets a fresh redirect, never to v1.
    status, headers, _ = await stack.get(
        f"/route/live/{channel}/master.m3u8?region={BOX}&lease_id={lease}"
    )
    assert status == 302
    assert headers["X-Route-Edge"] == "v2"
    routed = set()
    for i in range(30):
        _, headers, _ = await stack.get(f"/route/live/ch{i}/master.m3u8?region={BOX}")
        routed.add(headers["X-Route-Edge"])
    assert "v1" not in routed


async def test_lease_stays_on_its_edge(
    stack: Stack, edges: EdgeFactory, origin: FakeOrigin
) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "v2", BOX)
    await stack.settle()
    path = f"/route/live/ch1/master.m3u8?region={BOX}&lease_id={LEASE}"
    _, first, _ = await stack.get(path)
    for _ in range(3):
        _, again, _ = await stack.get(path)
        assert again["X-Route-Edge"] == first["X-Route-Edge"]
        assert again["X-Route-Reason"].startswith("lease affinity: county edge ")
    assert stack.router.held == 1
    # Zapping to another channel is a new routing decision for the same lease.
    _, zapped, _ = await stack.get(f"/route/live/ch2/master.m3u8?region={BOX}&lease_id={LEASE}")
    assert not zapped["X-Route-Reason"].startswith("lease affinity")
    assert stack.router.held == 1
    assert stack.router.edge_of(LEASE, "ch2") == zapped["X-Route-Edge"]


async def test_debug_route_explains(stack: Stack, edges: EdgeFactory, origin: FakeOrigin) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "p1", "110201")
    await stack.settle()
    await stack.nginx["v1"].stop()
    await stack.controller.probe()
    await stack.controller.probe()
    status, _, body = await stack.get(f"/debug/route?channel=ch1&region={BOX}")
    report = json.loads(body)
    assert status == 200
    assert report["decision"]["edge"] == "p1"
    assert report["decision"]["level"] == "province"
    assert {"edge": "v1", "level": "county", "verdict": "down"} in report["considered"]
    assert report["edges"]["v1"]["health"] == "down"
    assert stack.router.held == 0  # explaining starts no lease


async def test_metrics_and_healthz(stack: Stack, edges: EdgeFactory, origin: FakeOrigin) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.settle()
    await stack.get(f"/route/live/ch1/master.m3u8?region={BOX}")
    await stack.get(f"/route/live/ch1/master.m3u8?region={BOX}&lease_id={LEASE}")
    await stack.get(f"/route/live/ch1/master.m3u8?region={BOX}&lease_id={LEASE}")
    await stack.get("/route/live/ch1/master.m3u8?region=1")
    _, _, text = await stack.get("/metrics")
    assert 'cdn_routes_total{decision="no_lease",level="county"} 1.0' in text.decode()
    assert 'cdn_routes_total{decision="lease_placed",level="county"} 1.0' in text.decode()
    assert 'cdn_routes_total{decision="lease_kept",level="county"} 1.0' in text.decode()
    assert 'cdn_route_failures_total{error="InvalidRouteRequest"} 1.0' in text.decode()
    assert 'cdn_edge_leases{edge="v1"} 1.0' in text.decode()  # only the lease is held
    assert 'cdn_edge_state{edge="v1",state="up"} 1.0' in text.decode()
    status, _, body = await stack.get("/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert json.loads(body)["edges"] == {"up": 1, "degraded": 0, "down": 0}


async def test_redis_unreachable_keeps_routing_on_last_known_state(
    tmp_path: Path, ring: KeyRing, edges: EdgeFactory, origin: FakeOrigin
) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    client = aioredis.Redis.from_url(private.url)
    try:
        async with aiohttp.ClientSession() as http:
            stack = Stack(client, ring, http)
            await stack.server.start_server()
            try:
                await stack.add(edges, origin, "v1", BOX)
                await stack.settle()
                # The operator's key was checked while Redis was up (and is cached).
                assert (await stack.get("/metrics"))[0] == 200
                private.kill()
                assert not await stack.controller.refresh()
                status, headers, _ = await stack.get(f"/route/live/ch1/master.m3u8?region={BOX}")
                assert status == 302
                assert headers["X-Route-Edge"] == "v1"
                _, _, body = await stack.get("/healthz")
                health = json.loads(body)
                assert health["status"] == "stale state"
                assert health["edges"]["up"] == 1
                await stack.controller.probe()  # probing goes on without Redis
                assert stack.router.health["v1"].value == "up"
            finally:
                await stack.server.close()
    finally:
        await client.aclose()
        private.kill()


async def test_draining_edge_keeps_its_leases_but_gets_no_new_ones(
    stack: Stack, edges: EdgeFactory, origin: FakeOrigin
) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "v2", BOX)
    await stack.settle()
    channel = next(
        f"ch{i}" for i in range(50) if stack.routing.explain(f"ch{i}", BOX).edge.edge_id == "v1"
    )
    route = f"/route/live/{channel}/master.m3u8?region={BOX}"
    _, headers, _ = await stack.get(f"{route}&lease_id={OLD}")
    assert headers["X-Route-Edge"] == "v1"
    await CdnService(store=stack.store).drain(ADMIN, "v1")
    await stack.settle()
    _, new, _ = await stack.get(f"{route}&lease_id={NEW}")
    assert new["X-Route-Edge"] == "v2"
    _, kept, _ = await stack.get(f"{route}&session={OLD}")  # the old parameter name
    assert kept["X-Route-Edge"] == "v1"
    _, _, body = await stack.get(f"/steering/{channel}.json?base=v1&region={BOX}&session={OLD}")
    assert json.loads(body)["PATHWAY-PRIORITY"][:2] == ["v1", "v2"]
    _, _, body = await stack.get(f"/steering/{channel}.json?base=v2&region={BOX}&lease_id={NEW}")
    assert "v1" not in json.loads(body)["PATHWAY-PRIORITY"]


def test_main_without_settings_exits_with_one_clear_line(repo_root: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cdn_ctl"],
        cwd=repo_root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cdn_ctl: setting CDN_SIGNING_KEYS: required: kid:base64url-secret[,kid:secret...] "
        "(>= 16 bytes)"
    ]


async def test_edge_traffic_gauges_and_a_removed_edge_loses_its_series(
    stack: Stack, edges: EdgeFactory, origin: FakeOrigin, ring: KeyRing, redis: aioredis.Redis
) -> None:
    await stack.add(edges, origin, "v1", BOX)
    await stack.add(edges, origin, "v2", "110102")
    await stack.settle()
    for name in ("seg_1.ts", "seg_2.ts", "seg_1.ts", "seg_1.ts", "seg_2.ts"):  # 2 misses, 3 hits
        url = stack.nginx["v1"].url + sign_path(
            ring, scope="live/ch1/", path=f"live/ch1/180p/{name}", expires_at=int(time.time()) + 60
        )
        async with stack.http.get(url) as resp:
            assert resp.status == 200
    await stack.controller.probe()
    _, _, body = await stack.get("/metrics")
    text = body.decode()
    assert 'cdn_edge_cache_hit_ratio{edge="v1"} 0.6' in text
    assert 'cdn_edge_uplink_mbps{edge="v1"}' in text
    assert 'cdn_edge_uplink_use{edge="v1"}' in text
    assert 'cdn_edge_cache_hit_ratio{edge="v2"}' not in text  # no request: nothing to judge
    assert 'cdn_edge_uplink_mbps{edge="v2"} 0.0' in text
    await redis.hdel("cdn:edges", "v1")
    await stack.settle()
    _, _, body = await stack.get("/metrics")
    text = body.decode()
    assert 'edge="v1"' not in text
    assert 'cdn_edge_state{edge="v2",state="up"} 1.0' in text
