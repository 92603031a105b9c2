"""Simulated boxes that watch for an emergency alert, for the alert benchmark.

Each box logs in, opens the live master (its lease), then reloads its variant playlist
through the front door every target duration, as a player does, from a random phase:
it follows the 302 to its edge and reads the playlist. It notes the wall-clock time of
its first reload the front door sent to a cut view of the emergency feed (the
decision), and of its first playlist that lists a segment of the feed (the content it
would play next). The boxes run in separate client processes (``spawn``), so their CPU
is not the front door's; each process says when its boxes are playing, then plays for
the seconds it was given.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp

from bench.journey import LOGIN_CONCURRENCY, REPORT_GRACE_SECONDS, TARGET_SECONDS
from cdn_ctl.sim.stb import SetTopBox
from tests.support.world import LIVE

# The part of a cut view's URL that names the feed's segments (transcode.cuts.FEED_DIR).
FEED_PART = "/feed/"

Box = tuple[str, str, bool]  # mac, secret, inside the alert's regions


@dataclass
class Watch:
    """One box's view of the alert: when it was switched (epoch seconds; 0: never)."""

    inside: bool
    decided: float = 0.0
    content: float = 0.0


@dataclass
class WatchRun:
    """What the boxes of one client process saw."""

    watches: list[Watch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reloads: int = 0


async def _watch(box: SetTopBox, watch: Watch, feed: str, until: float, run: WatchRun) -> None:
    _lease, variant = await box.open_live(LIVE)
    await asyncio.sleep(random.uniform(0, TARGET_SECONDS))
    http = box.http
    while time.time() < until:
        async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
            location = resp.headers.get("Location", "")
        run.reloads += 1
        now = time.time()
        if not location:
            run.errors.append(f"reload answered {resp.status}")
        elif f"/x/{feed}/" in location:
            watch.decided = watch.decided or now
            async with http.get(location) as resp:
                text = await resp.text()
            if any(FEED_PART in urljoin(location, line) for line in text.splitlines()):
                watch.content = watch.content or time.time()
        await asyncio.sleep(TARGET_SECONDS)


async def watch_boxes(
    url: str, boxes: list[Box], feed: str, seconds: float, ready: Any
) -> WatchRun:
    """Log every box in and start it; say so on ``ready``; watch for ``seconds``."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    run = WatchRun()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:
        players = [SetTopBox(http, url, mac=m, secret=s) for m, s, _ in boxes]
        gate = asyncio.Semaphore(LOGIN_CONCURRENCY)

        async def login(box: SetTopBox) -> None:
            async with gate:
                await box.login()

        await asyncio.gather(*(login(b) for b in players))
        ready.put("ready")
        until = time.time() + seconds
        run.watches = [Watch(inside) for _, _, inside in boxes]
        results = await asyncio.gather(
            *(_watch(b, w, feed, until, run) for b, w in zip(players, run.watches, strict=True)),
            return_exceptions=True,
        )
    run.errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return run


def _client_main(url: str, boxes: list[Box], feed: str, seconds: float, out: Any) -> None:
    try:
        out.put(asyncio.run(watch_boxes(url, boxes, feed, seconds, out)))
    except Exception as err:  # reported: the run fails with the reason
        out.put(WatchRun(errors=[f"client process: {type(err).__name__}: {err}"]))


class Watchers:
    """Client processes watching ``boxes`` (split between them) for ``seconds`` once all
    are playing; :meth:`playing` waits for that, :meth:`runs` for what they saw."""

    def __init__(self, url: str, boxes: list[Box], feed: str, seconds: float, processes: int):
        ctx = multiprocessing.get_context("spawn")
        self._out = ctx.Queue()
        self._seconds = seconds
        self._procs = [
            ctx.Process(
                target=_client_main,
                args=(url, boxes[i::processes], feed, seconds, self._out),
                daemon=True,
            )
            for i in range(processes)
        ]
        self._runs: list[WatchRun] = []
        for proc in self._procs:
            proc.start()

    async def _next(self) -> Any:
        try:
            return await asyncio.to_thread(
                self._out.get, True, self._seconds + REPORT_GRACE_SECONDS
            )
        except queue.Empty as err:
            raise RuntimeError("a box client process did not report") from err

    async def playing(self) -> None:
        """Until every process's boxes are logged in and playing."""
        started = 0
        while started < len(self._procs):
            item = await self._next()
            if item == "ready":
                started += 1
            else:
                self._runs.append(item)  # a process that failed early reports at once

    async def runs(self) -> list[WatchRun]:
        """Every process's run (then the processes are gone)."""
        try:
            while len(self._runs) < len(self._procs):
                self._runs.append(await self._next())
        finally:
            for proc in self._procs:
                await asyncio.to_thread(proc.join, 30)
                if proc.is_alive():
                    proc.kill()
        return self._runs
