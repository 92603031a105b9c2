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
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.conftest import SHORT, Report, median
from bench.wrk import wrk_rate
from cdn_ctl.signing import KeyRing, SigningKey
from headend.contentkeys import ContentKeySettings, ContentKeyStore, KekRing, scope_for_channel
from headend.redisconn import connect
from headend.redisproc import RedisServer
from tests.support.cdn import FakeOrigin
from tests.support.security import routing_process
from tests.support.world import LIVE

WRK_SECONDS = 3 if SHORT else 10
WRK_ROUNDS = 2 if SHORT else 3
FLOOR = 0.6
ROTATION = 600
RING = KeyRing((SigningKey("k1", b"bench-keys-edge-secret-0123"),), "k1")
DOOR = {"fetches_per_minute": 1_000_000, "key_requests_per_minute": 1_000_000}


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
    keks = KekRing.generate("kek1")
    period = int(datetime.now(UTC).timestamp()) // ROTATION
    key = await ContentKeyStore(redis, keks).key_for(
        scope_for_channel(LIVE), period, rotation_seconds=ROTATION
    )
    ours: list[float] = []
    theirs: list[float] = []
    origin = FakeOrigin()
    await origin.start()
    trivial_runner, trivial = await _trivial()
    try:
        async with (
            routing_process(
                redis,
                workdir,
                origin.address,
                RING,
                replica_id="bench-keys",
                door=DOOR,
                content_keys=ContentKeySettings(keks=keks, rotation_seconds=ROTATION),
                access_log=False,
            ) as door,
            aiohttp.ClientSession() as http,
        ):
            c1 = door.world.boxes["c1"]
            async with http.post(
                f"{door.url}/api/login", json={"mac": c1.mac, "secret": c1.secret}
            ) as resp:
                auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            async with http.get(f"{door.url}/live/{LIVE}/master.m3u8", headers=auth) as resp:
                assert resp.status == 200, await resp.text()
            path = f"/keys/{LIVE}/{key.key_id}"
            url = door.url + path
            async with http.get(url, headers=auth) as resp:
                assert await resp.read() == key.key
            await wrk_rate(url, auth, 1)  # warm both
            await wrk_rate(trivial + path, {}, 1)
            for _ in range(WRK_ROUNDS):
                ours.append(await wrk_rate(url, auth, WRK_SECONDS))
                theirs.append(
                    await wrk_rate(trivial + f"/keys/{LIVE}/{key.key_id}", {}, WRK_SECONDS)
                )
    finally:
        await trivial_runner.cleanup()
        await origin.stop()
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
