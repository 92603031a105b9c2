"""The set-top box journey under load (issue 7).

The real stack of the end-to-end tests (Redis, EPG, subscriber, a live channel
transcoded from FFmpeg testsrc2 over UDP with 2 s segments, the origin, three
nginx edges, the routing face with the front door) serves N simulated boxes
(``cdn_ctl.stb.SetTopBox``) run in separate client processes: each logs in,
opens the live master (lease), then polls its variant playlist through the
front door every target duration (a 302 to its edge) and fetches the new
segments from the edge. Reported: the front door's request rate, p50/p99
latency of its 302 as the boxes saw it, errors (goal: 0) and the edge hit
ratio (nginx ``X-Cache``, i.e. ``$upstream_cache_status``, over every edge
response).

Throughput ratio: ``wrk`` drives the front door's variant poll (session token
check, entitlement and blackout from cache, lease touch, sticky routing, URL
signing, 302) and a trivial aiohttp handler answering a fixed 302, both served
by the same process the same way, rounds interleaved, in the same run.

Full: 500 boxes for 2 minutes. ``BENCH_SHORT=1``: 50 boxes for 15 s, and only
"zero errors" is asserted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.conftest import SHORT, Report, median
from cdn_ctl.stb import SetTopBox
from headend.redisproc import RedisServer
from tests.e2e.conftest import LIVE, build_stack, seed_boxes

BOXES = 50 if SHORT else 500
SECONDS = 15 if SHORT else 120
CLIENT_PROCESSES = 1 if SHORT else 2
WRK_SECONDS = 3 if SHORT else 10
WRK_ROUNDS = 2 if SHORT else 3
TARGET_SECONDS = 2.0


async def _boxes(url: str, creds: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        boxes = [SetTopBox(http, url, mac=m, secret=s) for m, s in creds]
        gate = asyncio.Semaphore(20)

        async def login(box: SetTopBox) -> None:
            async with gate:
                await box.login()

        await asyncio.gather(*(login(b) for b in boxes))

        async def play(box: SetTopBox) -> Any:
            # Boxes switch on spread over one target duration, as they would.
            await asyncio.sleep(random.uniform(0, TARGET_SECONDS))
            return await box.play_live(LIVE, seconds=seconds)

        started = time.monotonic()
        results = await asyncio.gather(*(play(b) for b in boxes), return_exceptions=True)
        elapsed = time.monotonic() - started
    latencies: list[float] = []
    cache: Counter[str] = Counter()
    errors: list[str] = []
    polls = segments = masters = 0
    for r in results:
        if isinstance(r, BaseException):
            errors.append(f"{type(r).__name__}: {r}")
            continue
        masters += 1
        polls += r.polls
        segments += r.segments
        latencies += r.front_door_seconds
        cache.update(r.cache)
        errors += r.errors
    return {
        "latencies": latencies,
        "cache": dict(cache),
        "errors": errors,
        "polls": polls,
        "masters": masters,
        "segments": segments,
        "elapsed": elapsed,
    }


def _client_main(url: str, creds: list[tuple[str, str]], seconds: float, out: Any) -> None:
    out.put(asyncio.run(_boxes(url, creds, seconds)))


async def _wrk(url: str, headers: dict[str, str], seconds: int) -> float:
    args = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
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
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/x.m3u8"})

    app = web.Application()
    app.router.add_get("/live/{channel}/{rung}/{name}", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _journey(workdir: Path, redis_url: str) -> dict[str, Any]:
    async with build_stack(redis_url, workdir, edge_sessions=BOXES * 4) as stack:
        services = stack.services
        boxes = await seed_boxes(services.subscriber_target, services.api_key, BOXES)
        creds = [(b.mac, b.secret) for b in boxes]
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        parts = [creds[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
        procs = [
            ctx.Process(target=_client_main, args=(stack.url, part, SECONDS, out), daemon=True)
            for part in parts
        ]
        for proc in procs:
            proc.start()
        runs = [await asyncio.to_thread(out.get, True, SECONDS + 300) for _ in procs]
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)

        # Throughput against a trivial handler, served by this same process.
        async with aiohttp.ClientSession() as http:
            c1 = stack.world.boxes["c1"]
            box = SetTopBox(http, stack.url, mac=c1.mac, secret=c1.secret)
            await box.login()
            _, variant = await box.open_live(LIVE)
        trivial_runner, trivial = await _trivial()
        ours, theirs = [], []
        try:
            path = variant.removeprefix(stack.url)
            for _ in range(WRK_ROUNDS):
                ours.append(await _wrk(variant, box._auth(), WRK_SECONDS))
                theirs.append(await _wrk(trivial + path, {}, WRK_SECONDS))
        finally:
            await trivial_runner.cleanup()
    return {"runs": runs, "ours": ours, "theirs": theirs}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_journey_load(benchmark: Any, report: Report, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(asyncio.run(_journey(tmp_path, redis.url)))

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        redis.stop()
    runs = result["runs"]
    latencies = sorted(x for r in runs for x in r["latencies"])
    errors = [e for r in runs for e in r["errors"]]
    cache: Counter[str] = Counter()
    for r in runs:
        cache.update(r["cache"])
    elapsed = max(r["elapsed"] for r in runs)
    requests = sum(r["polls"] + r["masters"] for r in runs)
    rate = requests / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    hits = cache.get("HIT", 0)
    hit_ratio = hits / max(1, sum(cache.values()))
    segments = sum(r["segments"] for r in runs)
    ratio = report.ratio(
        "front door variant poll (302) throughput vs trivial aiohttp 302",
        median(result["ours"]),
        median(result["theirs"]),
        unit="req/s",
    )
    report.line(
        f"journey load: {BOXES} boxes x {SECONDS} s: front door {rate:.1f} req/s, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {len(errors)}, "
        f"edge hit ratio {hit_ratio:.3f} ({dict(cache)}), segments {segments}"
    )
    benchmark.extra_info.update(
        {
            "boxes": BOXES,
            "seconds": SECONDS,
            "front_door_rps": round(rate, 1),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "errors": len(errors),
            "edge_hit_ratio": round(hit_ratio, 4),
            "throughput_ratio": round(ratio, 3),
            "segments": segments,
        }
    )
    assert errors == [], errors[:5]
