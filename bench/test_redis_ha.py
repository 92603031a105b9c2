"""The platform on a Sentinel set and on a Cluster: throughput against one node, and
failover time.

Subjects, on a real Sentinel set (one master, one replica, three Sentinels on
loopback) and on a real three-master Redis Cluster (:mod:`tests.support.redisha`),
through the real EPG and subscriber gRPC servers and their clients:

- **Provisioning**: ``CreateSubscriber`` with an idempotency key (as a carrier's system
  sends it), 16 callers at once; on the Sentinel set with ``REDIS_WRITE_REPLICAS=1``
  (every acknowledged subscriber is on the replica).
- **Authorize**: the front door's per-play check for seeded boxes, 32 callers at once.

Baseline, same run: the same calls against one redis-server over loopback TCP (the same
transport, so the ratio is the cost of replication and Sentinel discovery, not of TCP
against a Unix socket), without replica acknowledgement.

**Failover**: SIGKILL the master, then time until a subscriber write and an EPG
schedule write succeed again through their services (``REDIS_WRITE_REPLICAS=0`` here:
with one replica and ``WAIT 1``, writes resume only once a replica is back, which is
the host's reboot time, not the platform's). Each round runs on a fresh set. Sentinels
declare a master down after 1 s.

``BENCH_SHORT=1``: fewer calls, 2 failover rounds (full: 5).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.conftest import SHORT, Report, median
from epg.client import EpgClient
from epg.domain import Programme, Text
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from headend.rpc import ServiceUnavailable
from subscriber.client import SubscriberClient
from tests.support.net import free_port
from tests.support.redisha import ClusterSet, SentinelSet
from tests.support.world import CARRIER, LIVE, REGION, Services, seed_boxes, seed_world
from tests.support.world import start_services as start_world_services

CREATES = 600 if SHORT else 5_000
AUTHORIZES = 2_000 if SHORT else 10_000
BOXES = 200
ROUNDS = 3
FAILOVERS = 2 if SHORT else 5
# Replication and discovery cost some throughput; these floors catch a gross regression.
PROVISIONING_FLOOR = 0.3
AUTHORIZE_FLOOR = 0.5


@dataclass
class Platform:
    """EPG and subscriber services on one Redis, seeded, with clients."""

    services: Services
    subscribers: SubscriberClient
    epg: EpgClient
    macs: list[str]
    close: Callable[[], Awaitable[None]]


async def _platform(url: str, settings: RedisSettings) -> Platform:
    client = connect(url, settings)
    await client.flushall()
    services = await start_world_services(client, redis_settings=settings)
    await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    boxes = await seed_boxes(services.subscriber_target, services.api_key, BOXES)
    subscribers = SubscriberClient(services.subscriber_target, services.api_key, timeout_seconds=10)
    epg = EpgClient(services.epg_target, services.api_key, timeout_seconds=10)

    async def close() -> None:
        await subscribers.close()
        await epg.close()
        await services.stop()
        await client.aclose()

    return Platform(services, subscribers, epg, [b.mac for b in boxes], close)


async def _drive(calls: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Calls per second of ``calls`` calls made by ``concurrency`` callers."""
    numbers = iter(range(calls))

    async def caller() -> None:
        for n in numbers:
            await one(n)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


_RUN = itertools.count()


async def _provisioning(platform: Platform) -> float:
    run = next(_RUN)

    async def create(n: int) -> None:
        sid = f"p{run}-{n}"
        await platform.subscribers.create_subscriber(
            CARRIER, sid, display_name=sid, region_code=REGION, idempotency_key=sid
        )

    return await _drive(CREATES, 16, create)


async def _authorize(platform: Platform) -> float:
    async def check(n: int) -> None:
        decision = await platform.subscribers.authorize(platform.macs[n % BOXES], LIVE)
        assert decision.allowed

    return await _drive(AUTHORIZES, 32, check)


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    ha = SentinelSet(tmp_path_factory.mktemp("bench-sentinel")).start()
    yield ha
    ha.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSet]:
    nodes = ClusterSet(tmp_path_factory.mktemp("bench-cluster")).start()
    yield nodes
    nodes.stop()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("bench-single"), port=free_port())
    server.start()
    yield server
    server.stop()


def _throughput(url: str, settings: RedisSettings, measure: Callable[[Platform], Any]) -> float:
    async def run() -> float:
        platform = await _platform(url, settings)
        try:
            await measure(platform)  # warm-up: connections, caches, scripts loaded
            return float(await measure(platform))
        finally:
            await platform.close()

    return asyncio.run(run())


@pytest.mark.parametrize("topology", ["sentinel", "cluster"])
@pytest.mark.parametrize(
    ("what", "measure", "floor"),
    [
        ("provisioning", _provisioning, PROVISIONING_FLOOR),
        ("authorize", _authorize, AUTHORIZE_FLOOR),
    ],
)
def test_throughput_against_one_node(
    benchmark: Any,
    report: Report,
    request: pytest.FixtureRequest,
    single: RedisServer,
    topology: str,
    what: str,
    measure: Callable[[Platform], Any],
    floor: float,
) -> None:
    if topology == "sentinel":
        url = request.getfixturevalue("sentinels").url
        settings, label = RedisSettings(write_replicas=1), "a Sentinel set (WAIT 1)"
    else:
        url = request.getfixturevalue("cluster").url
        settings, label = RedisSettings(), "a 3-master Cluster"
    ha: list[float] = []
    one: list[float] = []

    def one_round() -> None:
        ha.append(_throughput(url, settings, measure))
        one.append(_throughput(f"redis://127.0.0.1:{single.port}/0", RedisSettings(), measure))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    ratio = report.ratio(f"{what} on {label} vs one node", median(ha), median(one), unit="calls/s")
    assert ratio >= floor


def test_failover_to_the_first_write_of_each_service(
    benchmark: Any, report: Report, tmp_path_factory: pytest.TempPathFactory
) -> None:
    times: dict[str, list[float]] = {"subscriber": [], "epg": []}

    async def first_write(name: str, write: Callable[[int], Awaitable[Any]], start: float) -> None:
        for n in itertools.count():
            try:
                await write(n)
            except ServiceUnavailable:
                await asyncio.sleep(0.05)
                continue
            times[name].append(time.monotonic() - start)
            return

    async def round_() -> None:
        # A fresh set each round: every failover starts from a synced replica.
        sentinels = SentinelSet(tmp_path_factory.mktemp("failover")).start()
        platform = await _platform(sentinels.url, RedisSettings(socket_timeout_seconds=2.0))
        try:
            now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
            tag = next(_RUN)

            async def subscriber(n: int) -> None:
                sid = f"f{tag}-{n}"
                await platform.subscribers.create_subscriber(
                    CARRIER, sid, display_name=sid, region_code=REGION, idempotency_key=sid
                )

            async def epg(n: int) -> None:
                start = now + timedelta(hours=tag * 100 + n)
                await platform.epg.put_programmes(
                    LIVE,
                    [
                        Programme(
                            id=f"fo-{tag}-{n}",
                            channel_id=LIVE,
                            start=start,
                            stop=start + timedelta(minutes=30),
                            titles=(Text("en", "failover"),),
                        )
                    ],
                )

            await subscriber(-1)
            await epg(-1)
            old = sentinels.master_port()
            start = time.monotonic()
            sentinels.kill_master()
            await asyncio.gather(
                first_write("subscriber", subscriber, start), first_write("epg", epg, start)
            )
            await asyncio.to_thread(sentinels.wait_failover, old)
        finally:
            await platform.close()
            sentinels.stop()

    benchmark.pedantic(lambda: asyncio.run(round_()), rounds=FAILOVERS, iterations=1)
    for name, seconds in times.items():
        report.line(
            f"Redis master SIGKILL to the first {name} write: median "
            f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s over {len(seconds)} "
            "failovers (Sentinel down-after 1 s)"
        )
        # Down-after (1 s) plus an election: well under 10 s, or clients are not following.
        assert max(seconds) < 10.0
