"""One day's viewing report (hour buckets, by channel) from the kept figures, against the
same figures computed by scanning the raw lease log; and what keeping the figures costs
the lease hot path. Same run, ratios.

Subject 1: ``ViewingStore.query`` for a seeded day. Baseline: read every carrier's raw
lease log (start and end records) and compute watch seconds, distinct boxes and peak
concurrency per hour and channel from it. The two must agree exactly (asserted), so the
baseline is also a check of the figures. The day is seeded through the store's own
recording path: boxes zapping between channels, heartbeats every 10 minutes, some leases
left to expire, the expiry sweep every 15 minutes.

Subject 2: lease steps (a start and three heartbeats per box) through the subscriber
store with the figures kept, against the same store without them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.conftest import SHORT, Report, median
from headend.clock import utc_now
from headend.redisproc import RedisServer
from subscriber.reports.domain import (
    DAY,
    HOUR,
    Dimension,
    Granularity,
    ViewingQuery,
    ViewingRow,
    floor_to,
)
from subscriber.reports.store import ViewingStore, index_key, log_key
from subscriber.store import SubscriberStore
from subscriber.store.codec import dev_key, sub_key
from subscriber.store.playback import LeaseEvent

BOXES = 200 if SHORT else 2_000
CHANNELS = 30 if SHORT else 300
CARRIERS = ("acme", "beta", "gamma")
REGIONS = ("440305", "440306", "110101", "310101")
ROUNDS = 5
BEAT = timedelta(minutes=10)
TTL = timedelta(minutes=30)
SWEEP = timedelta(minutes=15)
HOT_BOXES = 500 if SHORT else 2_000
CONCURRENCY = 32


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    server = RedisServer(tmp_path)
    server.start()
    client = aioredis.Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()
        server.stop()


def _day_of_events(day: datetime) -> list[tuple[datetime, LeaseEvent | None]]:
    """Every lease step of the seeded day in time order (None: a sweep), each at its own
    millisecond so no two steps of one channel tie."""
    rng = random.Random(19)
    steps: list[tuple[datetime, LeaseEvent | None]] = []
    for box in range(BOXES):
        mac = f"02:00:00:00:{box >> 8:02x}:{box & 255:02x}"
        carrier, region = CARRIERS[box % len(CARRIERS)], REGIONS[box % len(REGIONS)]
        at = day + timedelta(minutes=rng.randrange(0, 600), milliseconds=box + 1)
        for n in range(rng.randrange(3, 9)):
            lease, channel = f"{box:06x}{n:02x}", f"ch{rng.randrange(CHANNELS):03d}"

            def step(
                op: str,
                when: datetime,
                lease: str = lease,
                channel: str = channel,
                mac: str = mac,
                carrier: str = carrier,
                region: str = region,
            ) -> None:
                event = LeaseEvent(op, lease, mac, carrier, channel, region, when, when + TTL)  # type: ignore[arg-type]
                steps.append((when, event))

            step("start", at)
            length = timedelta(minutes=rng.randrange(2, 90), seconds=rng.randrange(60))
            beats = int(length / BEAT)
            for k in range(1, beats + 1):
                step("beat", at + k * BEAT)
            if rng.random() < 0.2:  # stops heartbeating: swept once expired
                at += beats * BEAT + TTL + timedelta(minutes=1)
            else:
                step("end", at + length)
                at += length
            at += timedelta(minutes=rng.randrange(0, 30))
    steps += [(day + k * SWEEP, None) for k in range(int((DAY + 12 * HOUR) / SWEEP))]
    return sorted(steps, key=lambda s: (s[0], s[1] is not None))


async def _seed(store: ViewingStore, day: datetime) -> None:
    batch: list[LeaseEvent] = []
    for when, event in _day_of_events(day):
        if event is None:
            if batch:
                await store.record(batch)
                batch = []
            await store.sweep(when)
        else:
            batch.append(event)
    if batch:
        await store.record(batch)


async def _scan(redis: Any, day: datetime) -> list[ViewingRow]:
    """The day's rows from the raw lease log alone."""
    leases: dict[bytes, dict[bytes, bytes]] = {}
    for raw in await redis.smembers(index_key((Dimension.CARRIER,))):
        for _, record in await redis.xrange(log_key(raw.decode())):
            leases.setdefault(record[b"lease"], {}).update(record)
            if record[b"op"] == b"start":
                leases[record[b"lease"]][b"start"] = record[b"at"]
    watch: dict[tuple[datetime, str], int] = defaultdict(int)
    boxes: dict[tuple[datetime, str], set[bytes]] = defaultdict(set)
    changes: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for lease in leases.values():
        channel, start = lease[b"channel"].decode(), int(lease[b"start"])
        end, left = int(lease[b"at"]), int(lease[b"left"])
        changes[channel] += [(start, 1), (left, -1)]
        moment = start
        boxes[(_hour(start), channel)].add(lease[b"mac"])
        while moment < end:
            upto = min(end, ms(_hour(moment) + HOUR))
            watch[(_hour(moment), channel)] += upto - moment
            boxes[(_hour(moment), channel)].add(lease[b"mac"])
            moment = upto
    peaks: dict[tuple[datetime, str], int] = {}
    for channel, steps in changes.items():
        steps.sort()
        live, hour = 0, _hour(steps[0][0])
        for moment, change in steps:
            if _hour(moment) != hour:
                # Every hour from the last change to this one began with ``live`` leases.
                if live:
                    h = hour + HOUR
                    while h <= _hour(moment):
                        peaks[(h, channel)] = max(peaks.get((h, channel), 0), live)
                        h += HOUR
                hour = _hour(moment)
            live += change
            if change > 0:
                peaks[(hour, channel)] = max(peaks.get((hour, channel), 0), live)
    keys = set(watch) | set(boxes) | set(peaks)
    rows = [
        ViewingRow(h, ch, watch.get((h, ch), 0) // 1000, len(boxes.get((h, ch), ())),
                   peaks.get((h, ch), 0))
        for h, ch in keys
        if day <= h < day + DAY
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (r.bucket_start, r.key))


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _hour(value: int | datetime) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, UTC)
    return floor_to(when, HOUR)


async def _timed(run: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def test_report_query_against_a_scan_of_the_raw_log(
    benchmark: Any, report: Report, redis: aioredis.Redis
) -> None:
    day = floor_to(utc_now(), DAY) - DAY
    store = ViewingStore(redis)
    seeded = await _timed(lambda: _seed(store, day))
    query = ViewingQuery(day, day + DAY, Granularity.HOUR, Dimension.CHANNEL)
    rows = await store.query(query)
    assert rows
    assert rows == await _scan(redis, day)
    times: dict[str, list[float]] = {"query": [], "scan": []}
    for _ in range(ROUNDS):
        times["query"].append(await _timed(lambda: store.query(query)))
        times["scan"].append(await _timed(lambda: _scan(redis, day)))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    entries = sum([await redis.xlen(log_key(c)) for c in CARRIERS])
    q, s = median(times["query"]), median(times["scan"])
    benchmark.extra_info.update(query_s=q, scan_s=s, rows=len(rows), log_entries=entries)
    report.line(
        f"viewing report, one day by channel per hour ({BOXES} boxes, {CHANNELS} channels, "
        f"{entries} raw log records, {len(rows)} rows; seeded in {seeded:.1f} s): "
        f"kept figures {q * 1000:.1f} ms vs raw-log scan {s * 1000:.1f} ms"
    )
    ratio = report.ratio("raw-log scan / kept-figures query (time)", s * 1000, q * 1000, unit="ms")
    assert ratio > 1


async def test_lease_steps_with_and_without_the_figures(
    benchmark: Any, report: Report, redis: aioredis.Redis
) -> None:
    viewing = ViewingStore(redis)
    stores = {"kept": SubscriberStore(redis, viewing=viewing), "none": SubscriberStore(redis)}
    for box in range(HOT_BOXES):
        mac = f"02:00:00:01:{box >> 8:02x}:{box & 255:02x}"
        await redis.hset(dev_key("acme", mac), mapping={"sub": f"s{box}", "st": "active"})
        await redis.hset(sub_key("acme", f"s{box}"), mapping={"r": "440305"})
    now = utc_now()
    rates: dict[str, list[float]] = {"kept": [], "none": []}

    async def drive(name: str, round_: int) -> float:
        store, counter = stores[name], itertools.count()

        async def one(box: int) -> None:
            mac, sid = f"02:00:00:01:{box >> 8:02x}:{box & 255:02x}", f"s{box}"
            lease = f"{name}{round_}{box:08x}"
            await store.start_lease("acme", sid, lease_id=lease, mac=mac, channel="cctv1",
                                    now=now, ttl_ms=60_000, grace_ms=10_000, limit=2)  # fmt: skip
            for k in range(1, 4):
                await store.touch_lease("acme", sid, lease_id=lease, mac=mac,
                                        now=now + timedelta(seconds=k), extend_ms=60_000,
                                        keep_ms=70_000, end=False)  # fmt: skip

        async def worker() -> None:
            while (box := next(counter)) < HOT_BOXES:
                await one(box)

        seconds = await _timed(lambda: asyncio.gather(*(worker() for _ in range(CONCURRENCY))))
        return HOT_BOXES * 4 / seconds

    for round_ in range(ROUNDS):
        rates["none"].append(await drive("none", round_))
        rates["kept"].append(await drive("kept", round_))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    ratio = median([k / n for k, n in zip(rates["kept"], rates["none"], strict=True)])
    benchmark.extra_info.update(ratio=ratio)
    report.ratio(
        "lease steps (StartSession/Heartbeat store calls) with viewing figures vs without",
        median(rates["kept"]),
        median(rates["none"]),
        unit="steps/s",
    )
    assert ratio > 0.1
