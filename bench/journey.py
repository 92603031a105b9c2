"""N simulated set-top boxes walking the live journey, shared by the journey benchmarks.

Each box (``cdn_ctl.sim.stb.SetTopBox``) logs in, opens the live master (its lease),
then polls its variant playlist through the front door every target duration
(a 302 to its edge) and fetches the new segments from the edge. The boxes run
in separate client processes (``spawn``), so their own CPU is not the front
door's; every box connects from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cdn_ctl.sim.stb import SetTopBox
from tests.support.world import LIVE

TARGET_SECONDS = 2.0
# Logins in flight at once per client process (boxes switch on over a few seconds).
LOGIN_CONCURRENCY = 20
# How long past its playing time a client process may take to report.
REPORT_GRACE_SECONDS = 300.0

Credentials = list[tuple[str, str]]


@dataclass
class BoxRun:
    """What the boxes of one client process saw."""

    latencies: list[float] = field(default_factory=list)  # front door 302, seconds
    cache: Counter[str] = field(default_factory=Counter)  # edge X-Cache per response
    errors: list[str] = field(default_factory=list)
    polls: int = 0
    masters: int = 0
    segments: int = 0
    elapsed: float = 0.0


async def play_boxes(url: str, creds: Credentials, seconds: float) -> BoxRun:
    """Log every box in, then play live for ``seconds``; a box that fails is an error."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=10)
    run = BoxRun()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        boxes = [SetTopBox(http, url, mac=m, secret=s) for m, s in creds]
        gate = asyncio.Semaphore(LOGIN_CONCURRENCY)

        async def login(box: SetTopBox) -> None:
            async with gate:
                await box.login()

        logins = await asyncio.gather(*(login(b) for b in boxes), return_exceptions=True)
        ready = []
        for box, result in zip(boxes, logins, strict=True):
            if isinstance(result, BaseException):
                run.errors.append(f"login {type(result).__name__}: {result}")
            else:
                ready.append(box)

        async def play(box: SetTopBox) -> Any:
            # Boxes switch on spread over one target duration, as they would.
            await asyncio.sleep(random.uniform(0, TARGET_SECONDS))
            return await box.play_live(LIVE, seconds=seconds)

        started = time.monotonic()
        results = await asyncio.gather(*(play(b) for b in ready), return_exceptions=True)
        run.elapsed = time.monotonic() - started
    for r in results:
        if isinstance(r, BaseException):
            run.errors.append(f"{type(r).__name__}: {r}")
            continue
        run.masters += 1
        run.polls += r.polls
        run.segments += r.segments
        run.latencies += r.front_door_seconds
        run.cache.update(r.cache)
        run.errors += r.errors
    return run


def _client_main(url: str, creds: Credentials, seconds: float, out: Any) -> None:
    out.put(asyncio.run(play_boxes(url, creds, seconds)))


async def run_boxes(url: str, creds: Credentials, seconds: float, processes: int) -> list[BoxRun]:
    """Play ``creds`` split over ``processes`` client processes; every process's run."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_client_main, args=(url, creds[i::processes], seconds, out), daemon=True)
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        runs = []
        for _ in procs:
            try:
                runs.append(await asyncio.to_thread(out.get, True, seconds + REPORT_GRACE_SECONDS))
            except queue.Empty as err:
                raise RuntimeError("a box client process did not report") from err
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()
    return runs


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class JourneyFigures:
    """One journey run, all client processes together."""

    boxes: int
    requests: int  # front door playback requests: masters + variant polls
    rate: float  # of those, per second of playing time
    p50_ms: float
    p99_ms: float
    errors: tuple[str, ...]
    cache: dict[str, int]
    hit_ratio: float
    segments: int

    def line(self) -> str:
        """The run as one report line."""
        return (
            f"front door {self.rate:.1f} req/s, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, errors {len(self.errors)}, "
            f"edge hit ratio {self.hit_ratio:.3f} ({self.cache}), segments {self.segments}"
        )


def figures(runs: list[BoxRun], boxes: int) -> JourneyFigures:
    """Sum the client processes' runs into the journey's figures."""
    latencies = sorted(x for r in runs for x in r.latencies)
    cache: Counter[str] = Counter()
    for r in runs:
        cache.update(r.cache)
    elapsed = max((r.elapsed for r in runs), default=0.0)
    requests = sum(r.polls + r.masters for r in runs)
    return JourneyFigures(
        boxes=boxes,
        requests=requests,
        rate=requests / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=tuple(e for r in runs for e in r.errors),
        cache=dict(cache),
        hit_ratio=cache.get("HIT", 0) / max(1, sum(cache.values())),
        segments=sum(r.segments for r in runs),
    )
