"""The set-top box journey under load (issue 7).

The real stack of the end-to-end tests (Redis, EPG, subscriber, a live channel
transcoded from FFmpeg testsrc2 over UDP with 2 s segments, the origin, three
nginx edges, the routing face with the front door) serves N simulated boxes
(``cdn_ctl.sim.stb.SetTopBox``) run in separate client processes: each logs in,
opens the live master (lease), then polls its variant playlist through the
front door every target duration (a 302 to its edge) and fetches the new
segments from the edge. Reported: the front door's request rate, p50/p99
latency of its 302 as the boxes saw it, errors (goal: 0) and the edge hit
ratio (nginx ``X-Cache``, i.e. ``$upstream_cache_status``, over every edge
response).

Throughput ratio: ``wrk`` drives the front door's variant poll (session token
check, entitlement and blackout from cache, lease touch, sticky routing, URL
signing, 302) and a trivial aiohttp handler answering a fixed 302, both served
by the same process the same way, rounds interleaved, in the same run (one box
token at thousands of requests a second: the stack's per-token fetch limit is
raised for it, see ``DOOR``). Goal (issue 21): >= 0.8, asserted in full mode;
short mode asserts only a loose floor (a few seconds of wrk on a loaded 2-core
machine swing the ratio by +-0.15). As a reference, and reported only: the
same path against a real nginx answering ``return 302`` with one worker (one
event loop, like the front door's process) in the same rounds.

The boxes' code is shared with ``test_journey_attack`` (:mod:`bench.journey`).

Full: 500 boxes for 2 minutes. ``BENCH_SHORT=1``: 50 boxes for 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.conftest import SHORT, Report, median
from bench.journey import figures, run_boxes
from bench.wrk import wrk_rate
from cdn_ctl.sim.stb import SetTopBox
from headend.redisproc import RedisServer
from tests.support.journey import build_stack
from tests.support.net import free_port
from tests.support.world import LIVE, seed_boxes

BOXES = 50 if SHORT else 500
SECONDS = 15 if SHORT else 120
CLIENT_PROCESSES = 1 if SHORT else 2
WRK_SECONDS = 3 if SHORT else 10
WRK_ROUNDS = 2 if SHORT else 3
# wrk drives one box token thousands of times a second, far past a box's few polls a
# minute: the per-token fetch limit is raised to its maximum (FRONTDOOR_FETCHES_PER_MINUTE
# allows up to 1,000,000) so the throughput rounds measure the 302 path, the limiter's
# counting included, rather than its 429s. The boxes' journey is far below either limit.
DOOR = {"fetches_per_minute": 1_000_000}
# The variant poll's throughput over the trivial aiohttp 302's: the issue's goal, and the
# short mode's floor (a few seconds of wrk beside everything else on 2 loaded cores).
GOAL = 0.8
SHORT_FLOOR = 0.4
TRIVIAL_LOCATION = "http://127.0.0.1:9/x.m3u8"
NGINX_CONF = """
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 302 {location}; }}
    }}
}}
"""


async def _trivial() -> tuple[web.AppRunner, str]:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": TRIVIAL_LOCATION})

    app = web.Application()
    app.router.add_get("/live/{channel}/{rung}/{name}", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@contextlib.asynccontextmanager
async def _nginx(workdir: Path) -> AsyncIterator[str]:
    """A real nginx answering every request with ``return 302`` (one worker)."""
    prefix = workdir / "nginx302"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(port=port, location=TRIVIAL_LOCATION))
    proc = subprocess.Popen(  # noqa: ASYNC220 - a plain Popen, as the edges run nginx
        ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/", allow_redirects=False) as resp:
                        if resp.status == 302:
                            break
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _journey(workdir: Path, redis_url: str) -> dict[str, Any]:
    async with build_stack(redis_url, workdir, edge_sessions=BOXES * 4, door=DOOR) as stack:
        services = stack.services
        boxes = await seed_boxes(services.subscriber_target, services.api_key, BOXES)
        creds = [(b.mac, b.secret) for b in boxes]
        runs = await run_boxes(stack.url, creds, SECONDS, CLIENT_PROCESSES)

        # Throughput against a trivial handler, served by this same process.
        async with aiohttp.ClientSession() as http:
            c1 = stack.world.boxes["c1"]
            box = SetTopBox(http, stack.url, mac=c1.mac, secret=c1.secret)
            await box.login()
            _, variant = await box.open_live(LIVE)
        trivial_runner, trivial = await _trivial()
        ours: list[float] = []
        theirs: list[float] = []
        nginx: list[float] = []
        try:
            async with _nginx(workdir) as reference:
                path = variant.removeprefix(stack.url)
                for _ in range(WRK_ROUNDS):
                    ours.append(await wrk_rate(variant, box._auth(), WRK_SECONDS))
                    theirs.append(await wrk_rate(trivial + path, {}, WRK_SECONDS))
                    nginx.append(await wrk_rate(reference + path, {}, WRK_SECONDS))
        finally:
            await trivial_runner.cleanup()
    return {"runs": runs, "ours": ours, "theirs": theirs, "nginx": nginx}


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
    journey = figures(result["runs"], BOXES)
    ours, theirs, nginx = result["ours"], result["theirs"], result["nginx"]
    ratio = report.ratio(
        "front door variant poll (302) throughput vs trivial aiohttp 302",
        median(ours),
        median(theirs),
        unit="req/s",
    )
    round_ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    nginx_ratio = median(ours) / median(nginx)
    report.line(
        f"front door variant poll per-round ratios: {', '.join(f'{r:.3f}' for r in round_ratios)}"
        f"; vs nginx return 302 (1 worker): {nginx_ratio:.3f} "
        f"({median(ours):,.0f} vs {median(nginx):,.0f} req/s)"
    )
    report.line(f"journey load: {BOXES} boxes x {SECONDS} s: {journey.line()}")
    benchmark.extra_info.update(
        {
            "boxes": BOXES,
            "seconds": SECONDS,
            "front_door_rps": round(journey.rate, 1),
            "p50_ms": round(journey.p50_ms, 2),
            "p99_ms": round(journey.p99_ms, 2),
            "errors": len(journey.errors),
            "edge_hit_ratio": round(journey.hit_ratio, 4),
            "throughput_ratio": round(ratio, 3),
            "round_ratios": [round(r, 3) for r in round_ratios],
            "nginx_302_rps": round(median(nginx), 1),
            "vs_nginx_ratio": round(nginx_ratio, 3),
            "segments": journey.segments,
        }
    )
    assert journey.errors == (), journey.errors[:5]
    assert ratio >= (SHORT_FLOOR if SHORT else GOAL), round_ratios
