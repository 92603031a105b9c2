"""Sizing's playback calls: what an ``Authorize``, a lease ``Heartbeat``, a
``StartSession`` and the front door's own guards cost Redis, on the server
``sizing_measure.py`` seeded (``scripts/sizing.py`` reports it).

Counted, not read from the code: each kind runs once under ``MONITOR`` (commands the
callers send, and those their scripts run: a script's commands are shown as ``lua``)
and then :data:`CPU_ROUNDS` times without it, reading the server's own CPU clock around
each run (the median counts). Calls go one at a time, so the store's batching of
concurrent lookups is not counted in its favour.
The guards (fetch budget sync, address watch, lease note for key requests) are the
classes ``cdn_ctl.server`` wires, on a fake clock: one box polling every target
duration for :data:`GUARD_SPAN_SECONDS`, each guard's syncs and refreshes as they fall.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from cdn_ctl.frontdoor.guard import AddressWatch, FetchLimiter
from cdn_ctl.frontdoor.keys import KeyDelivery
from headend.auth import PLAYBACK
from headend.sizing import Calls, frontdoor_default
from subscriber.reports.store import ViewingStore
from subscriber.service import SubscriberService
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore

# How long one box's polling is followed through the front door's guards (a fake clock).
GUARD_SPAN_SECONDS = 600
# Rounds of each kind without MONITOR, timed by the server's CPU clock (their median: the
# shared build machine's load moves one round by 20-30%).
CPU_ROUNDS = 3
# Written by the counting client when a run is over (MONITOR shows it last).
MARKER = "sizing-calls-done"


async def monitored(redis: aioredis.Redis, run: Callable[[], Awaitable[None]]) -> tuple[int, int]:
    """Commands clients sent, and commands scripts ran, while ``run`` ran."""
    async with redis.monitor() as monitor:

        async def read() -> tuple[int, int]:
            sent = scripted = 0
            while (info := await monitor.next_command())["command"] != f"ECHO {MARKER}":
                if info["client_type"] == "lua":
                    scripted += 1
                else:
                    sent += 1
            return sent, scripted

        reader = asyncio.create_task(read())
        await run()
        await redis.echo(MARKER)
        return await reader


async def server_cpu(redis: aioredis.Redis) -> float:
    """The server's own CPU clock (user + system seconds)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _cost(
    redis: aioredis.Redis,
    name: str,
    count: int,
    units: float,
    one: Callable[[int], Awaitable[None]],
    progress: Callable[[str], None],
) -> Calls:
    """What ``one(i)`` for i in [0, count) costs Redis, per one of ``units``."""

    async def run() -> None:
        for i in range(count):
            await one(i)

    sent, scripted = await monitored(redis, run)
    spent = []
    for _ in range(CPU_ROUNDS):
        before = await server_cpu(redis)
        await run()
        spent.append((await server_cpu(redis) - before) * 1e6 / units)
    cost = Calls(sent / units, scripted / units, statistics.median(spent))
    progress(
        f"  {name}: {cost.sent:.2f} commands sent, {cost.scripted:.2f} run by scripts, "
        f"{cost.cpu_us:.1f} us of Redis CPU each (median of "
        f"{', '.join(f'{us:.1f}' for us in spent)})"
    )
    return cost


class _Clock:
    """A settable clock for the front door's guards (time.time and time.monotonic alike)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def measure_calls(
    redis: aioredis.Redis,
    macs: Sequence[str],
    segment_seconds: float,
    *,
    progress: Callable[[str], None],
) -> tuple[Calls, Calls, Calls, Calls]:
    """Authorize, Heartbeat and StartSession through the service (with the viewing figures,
    as the server wires them) for each of the seeded boxes ``macs``, one at a time; and the
    front door's guards for one box polling every ``segment_seconds``, per viewer-second."""
    count = len(macs)
    store = SubscriberStore(redis, viewing=ViewingStore(redis))
    service = SubscriberService(store=store, settings=SubscriberSettings())
    channel = "ch0.sizing.cn"
    leases = [
        (await service.start_lease(PLAYBACK, macs[i], channel)).lease_id for i in range(count)
    ]

    async def authorize(i: int) -> None:
        await service.authorize(PLAYBACK, macs[i], channel, None)

    async def heartbeat(i: int) -> None:
        await service.heartbeat(PLAYBACK, macs[i], leases[i])

    async def start(i: int) -> None:
        leases[i] = (await service.start_lease(PLAYBACK, macs[i], channel)).lease_id

    async def poll(i: int) -> None:
        # A front door's guards as cdn_ctl.server wires them, one box polling for the span.
        clock = _Clock()
        addresses = AddressWatch(
            redis,
            max_addresses=int(frontdoor_default("max_addresses_per_token")),
            window_seconds=frontdoor_default("address_window_seconds"),
            clock=clock,
        )
        fetches = FetchLimiter(
            redis, per_minute=int(frontdoor_default("fetches_per_minute")), clock=clock
        )
        keys = KeyDelivery(
            None,  # type: ignore[arg-type]  # no key is asked for: polls only note the lease
            redis, limiter=None, cache_seconds=frontdoor_default("key_cache_seconds"),
            live_window_seconds=frontdoor_default("live_key_window_seconds"),
            grace_seconds=0, clock=clock,
        )  # fmt: skip
        token, polls = f"token{i}", 0
        for second in range(GUARD_SPAN_SECONDS):
            clock.now += 1
            if second >= polls * segment_seconds:
                polls += 1
                await addresses.allow(token, "10.1.2.3")
                fetches.allow(token)
                await keys.noted(macs[i], leases[i], channel)
            await fetches.sync()  # every second, as its task does

    boxes = min(count, 20)
    return (
        await _cost(redis, "Authorize", count, count, authorize, progress),
        await _cost(redis, "Heartbeat", count, count, heartbeat, progress),
        await _cost(redis, "StartSession (a zap)", count, count, start, progress),
        await _cost(
            redis,
            "front door guards, per viewer-second",
            boxes,
            boxes * GUARD_SPAN_SECONDS,
            poll,
            progress,
        ),
    )
