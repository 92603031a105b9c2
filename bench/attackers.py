"""Attackers for the journey-under-attack benchmark, run in a process of their own.

- Slow connections (slow-loris): each sends part of a request head to the front
  door and then either trickles one more header byte now and then or stays
  silent; when the server closes it, it opens again (a short pause between).
- Login brute force: each client posts wrong secrets for real boxes' MACs and
  for random ones, one attempt after another with a short pause, counting the
  answers (401 wrong secret, 429 locked out, anything else).

Every attacker binds its own loopback address (``local_addr``): the slow
connections one, each brute-force client another, none of them 127.0.0.1,
where the real boxes are. Everything is bounded: the number of connections
and clients, the time (a deadline and a stop event), and the total number of
connections opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# A request head cut off inside a header value: the server waits for the rest.
PARTIAL_HEAD = b"GET /lineup.m3u HTTP/1.1\r\nHost: frontdoor\r\nX-Slow: "
# A trickling connection sends one more header byte this often.
TRICKLE_SECONDS = 1.0
# Pause before a closed slow connection opens again, and after a refused connect.
REOPEN_SECONDS = 0.1
REFUSED_PAUSE_SECONDS = 0.5
# Every slow connection opens at most this many times in one attack.
MAX_OPENS_PER_CONNECTION = 200
# Pause between two attempts of one brute-force client.
BRUTE_PAUSE_SECONDS = 0.1
# How long the brute-force clients get to finish the attempt in flight when stopped.
BRUTE_STOP_SECONDS = 15.0
# Attackers report ready once this share of slow connections is open.
READY_SHARE = 1.0


@dataclass(frozen=True, slots=True)
class AttackPlan:
    """Who attacks, from where, for how long at most."""

    host: str
    port: int
    slow_connections: int
    slow_address: str
    brute_clients: int
    brute_addresses: tuple[str, ...]
    victim_macs: tuple[str, ...]
    max_seconds: float


@dataclass
class AttackStats:
    """What the attackers did and what the server answered."""

    opened: int = 0
    closed_by_server: int = 0  # the server closed (or reset) a slow connection
    answered: int = 0  # the server sent bytes on a slow connection before closing it
    connect_failed: int = 0
    attempts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # brute-force answers
    brute_errors: int = 0  # no HTTP answer (connection refused, reset, timeout)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the attackers' own process


def _random_mac(rng: random.Random) -> str:
    return "0a:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))


async def _slow(plan: AttackPlan, index: int, stats: AttackStats, opened: asyncio.Event) -> None:
    trickle = index % 2 == 0
    for _ in range(MAX_OPENS_PER_CONNECTION):
        try:
            reader, writer = await asyncio.open_connection(
                plan.host, plan.port, local_addr=(plan.slow_address, 0)
            )
        except OSError:
            stats.connect_failed += 1
            await asyncio.sleep(REFUSED_PAUSE_SECONDS)
            continue
        stats.opened += 1
        if stats.opened >= plan.slow_connections * READY_SHARE:
            opened.set()
        try:
            writer.write(PARTIAL_HEAD)
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(4096), TRICKLE_SECONDS)
                except TimeoutError:
                    if trickle:
                        writer.write(b"x")
                        await writer.drain()
                    continue
                if not data:
                    break
                stats.answered += 1
            stats.closed_by_server += 1
        except ConnectionError:
            stats.closed_by_server += 1
        finally:
            writer.close()
        await asyncio.sleep(REOPEN_SECONDS)


async def _brute(plan: AttackPlan, index: int, stats: AttackStats, stopping: asyncio.Event) -> None:
    rng = random.Random(index)
    address = plan.brute_addresses[index % len(plan.brute_addresses)]
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=1)
    timeout = aiohttp.ClientTimeout(total=10)
    url = f"http://{plan.host}:{plan.port}/api/login"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # Ends between attempts, so that the server never sees a request cut short.
        while not stopping.is_set():
            # Half the guesses are for real boxes (their lockout), half for random MACs.
            if plan.victim_macs and rng.random() < 0.5:
                mac = rng.choice(plan.victim_macs)
            else:
                mac = _random_mac(rng)
            secret = f"guess-{rng.randrange(1 << 32):08x}"
            stats.attempts += 1
            try:
                async with http.post(url, json={"mac": mac, "secret": secret}) as resp:
                    await resp.read()
                    stats.statuses[resp.status] = stats.statuses.get(resp.status, 0) + 1
            except (aiohttp.ClientError, TimeoutError):
                stats.brute_errors += 1
            await asyncio.sleep(BRUTE_PAUSE_SECONDS)


async def attack(plan: AttackPlan, stop: Any, ready: Any) -> AttackStats:
    """Run every attacker until ``stop`` (a ``multiprocessing`` event) is set or
    ``plan.max_seconds`` pass; ``ready`` is set once the slow connections are open."""
    stats = AttackStats()
    opened, stopping = asyncio.Event(), asyncio.Event()
    started, cpu = time.monotonic(), time.process_time()
    slow = [
        asyncio.create_task(_slow(plan, i, stats, opened)) for i in range(plan.slow_connections)
    ]
    brute = [
        asyncio.create_task(_brute(plan, i, stats, stopping)) for i in range(plan.brute_clients)
    ]
    deadline = started + plan.max_seconds
    announced = False
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if not announced and (opened.is_set() or plan.slow_connections == 0):
                ready.set()
                announced = True
            await asyncio.sleep(0.1)
    finally:
        stopping.set()
        if brute:
            await asyncio.wait(brute, timeout=BRUTE_STOP_SECONDS)
        for task in slow + brute:
            task.cancel()
        for task in slow + brute:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        ready.set()  # never leave the benchmark waiting
    stats.seconds = time.monotonic() - started
    stats.cpu_seconds = time.process_time() - cpu
    return stats


def attack_main(plan: AttackPlan, stop: Any, ready: Any, out: Any) -> None:
    """Process entry point: attack, then put the stats on ``out``."""
    out.put(asyncio.run(attack(plan, stop, ready)))
