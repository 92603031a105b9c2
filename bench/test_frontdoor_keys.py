"""Content key requests at the front door (issue 15).

``wrk`` drives ``GET /keys/{channel}/{key_id}`` through the real CDN process's front
door (box token check, fetch and key rate limits, the cached key, the cached
entitlement verdict, the box's live lease, the blackout rule over the key's span, the
16 bytes) and a trivial aiohttp handler answering 16 fixed bytes, both served by this
same process the same way, rounds interleaved, in the same run. Behind the front
door: real Redis, real EPG and subscriber gRPC servers, a real nginx edge (for the
box's live master) and a ``ContentKeyStore``. One box token makes thousands of
requests a second, so its fetch and key limits are raised to their maxima (``DOOR``):
the rounds measure the key path, the limiters' counting included, not their 429s.

Goal: ratio >= 0.6, asserted in full mode (short mode records it: a few seconds of
load on a shared 2-core machine swing it too much).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.conftest import SHORT, Report, median
from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings, RoutingSettings
from cdn_ctl.signing import KeyRing, SigningKey
from cdn_ctl.store import EdgeStore
from headend.auth import PLAYBACK, KeyStore
from headend.contentkeys import ContentKeySettings, ContentKeyStore, KekRing, scope_for_channel
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings
from tests.support.cdn import FakeOrigin, eventually
from tests.support.net import free_port
from tests.support.world import LIVE, REGION, frontdoor_settings, seed_world, start_services

WRK_SECONDS = 3 if SHORT else 10
WRK_ROUNDS = 2 if SHORT else 3
FLOOR = 0.6
ROTATION = 600
RING = KeyRing((SigningKey("k1", b"bench-keys-edge-secret-0123"),), "k1")
DOOR = {"fetches_per_minute": 1_000_000, "key_requests_per_minute": 1_000_000}


async def _wrk(url: str, headers: dict[str, str], seconds: int) -> float:
    args = ["wrk", "-t1", "-c16", f"-d{seconds}s"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out.decode())
    assert found, out.decode()
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.decode())
    assert non2xx is None, out.decode()
    return float(found.group(1))


async def _trivial() -> tuple[web.AppRunner, str]:
    async def key(request: web.Request) -> web.Response:
        return web.Response(
            body=bytes(16),
            content_type="application/octet-stream",
            headers={"Cache-Control": "no-store"},
        )

    app = web.Application()
    app.router.add_get("/keys/{channel}/{key_id}", key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _measure(workdir: Path, redis_url: str) -> tuple[list[float], list[float]]:
    redis = connect(redis_url)
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    _, playback_key = await KeyStore(redis).create(PLAYBACK)
    origin = FakeOrigin()
    await origin.start()
    edge = EdgeProcess(
        EdgeConfig(edge_id="v1", listen_port=free_port(), upstream=origin.address),
        prefix=workdir / "v1",
        keys=RING,
    )
    await edge.start()
    await EdgeStore(redis).create(
        Edge("v1", REGION, Tier.EDGE, "127.0.0.1", edge.config.listen_port, 100, 1e4, 1e4)
    )
    keks = KekRing.generate("kek1")
    settings = CdnSettings(
        rpc=RpcSettings(port=0),
        keys=RING,
        http_port=0,
        admin_port=0,
        routing=RoutingSettings(),
        replica_id="bench-keys",
        frontdoor=frontdoor_settings(services, api_key=playback_key, **DOOR),
        content_keys=ContentKeySettings(keks=keks, rotation_seconds=ROTATION),
    )
    period = int(datetime.now(UTC).timestamp()) // ROTATION
    key = await ContentKeyStore(redis, keks).key_for(
        scope_for_channel(LIVE), period, rotation_seconds=ROTATION
    )
    ours: list[float] = []
    theirs: list[float] = []
    async with aiohttp.ClientSession() as http:
        process = RoutingProcess(settings, redis=redis, http=http, access_log=False)
        trivial_runner, trivial = await _trivial()
        try:
            url = f"http://127.0.0.1:{await process.start()}"

            async def routable() -> bool:
                return bool(process.routing.candidates(LIVE, REGION))

            await eventually(routable)  # the first probe may find nginx still starting
            c1 = world.boxes["c1"]
            async with http.post(
                f"{url}/api/login", json={"mac": c1.mac, "secret": c1.secret}
            ) as resp:
                auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            async with http.get(f"{url}/live/{LIVE}/master.m3u8", headers=auth) as resp:
                assert resp.status == 200, await resp.text()
            path = f"/keys/{LIVE}/{key.key_id}"
            async with http.get(url + path, headers=auth) as resp:
                assert await resp.read() == key.key
            await _wrk(url + path, auth, 1)  # warm both
            await _wrk(trivial + path, {}, 1)
            for _ in range(WRK_ROUNDS):
                ours.append(await _wrk(url + path, auth, WRK_SECONDS))
                theirs.append(await _wrk(trivial + path, {}, WRK_SECONDS))
        finally:
            await trivial_runner.cleanup()
            await process.stop()
            await edge.stop()
            await origin.stop()
            await services.stop()
            await redis.aclose()
    return ours, theirs


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_key_requests_against_trivial_handler(
    benchmark: Any, report: Report, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    result: dict[str, list[float]] = {}

    def run() -> None:
        result["ours"], result["theirs"] = asyncio.run(_measure(tmp_path, redis.url))

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        redis.stop()
    ours, theirs = result["ours"], result["theirs"]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    ratio = report.ratio(
        "front door key requests/s vs trivial aiohttp 16 bytes",
        median(ours),
        median(theirs),
        unit="req/s",
    )
    report.line(f"front door keys per-round ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    benchmark.extra_info.update(
        {
            "keys_per_second": median(ours),
            "trivial_per_second": median(theirs),
            "ratio": ratio,
            "round_ratios": ratios,
        }
    )
    if not SHORT:
        assert median(ratios) >= FLOOR
