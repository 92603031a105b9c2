"""Sizing's measurement: seed a private redis-server through the stores' own code and
read what each kind of item costs (``scripts/sizing.py`` reports it and sizes a province).

Each kind is seeded in two equal halves after ``MEMORY PURGE``: the second half's
cost per item is the slope (what one more item costs once hash tables and sorted sets
have their steady-state encodings), the rest is fixed overhead. The keyspace tables are
left out of each slope and added back per key at the end (:func:`footprint`).

Then the playback path's calls on the seeded server (``sizing_calls.py``), and the CDN
controller's refresh (``sizing_refresh.py``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from sizing_calls import measure_calls  # scripts/, beside this file
from sizing_refresh import measure_refresh

from epg.domain import Channel, Programme, Text, WritePolicy, programme_id, validate_batch
from epg.store import EpgStore
from headend.auth import ADMIN
from headend.ids import new_lease_id
from headend.redisproc import RedisServer
from headend.sizing import Measured
from subscriber.domain import Carrier, ImportRow, Package, validate_import_row
from subscriber.settings import SubscriberSettings
from subscriber.store import Audit, SubscriberStore
from subscriber.store.codec import audit_key
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry
from transcode.ladder import Rung
from transcode.measure import aac_codec
from transcode.profiles import resolve_profile

CARRIER = "sizing"
PACKAGES = ("basic", "sports")
# Programme lengths cycled through a day (minutes), as the EPG import benchmark's guide:
# about 33 programmes a channel a day.
DURATIONS = (30, 45, 60, 35, 40, 50)
EPOCH = datetime(2026, 3, 2, tzinfo=UTC)
DESCRIPTION = "一段关于城市与乡村生活的纪录片。"


@dataclass(frozen=True, slots=True)
class Sample:
    """How much the measurement seeds (each kind in two equal halves)."""

    subscribers: int = 20_000
    channels: int = 20
    # Each half must already hold more than 128 programmes (or segments) a channel, past
    # Redis' compact listpack encoding, as a province's guide and archive do: >= 8 days.
    days: int = 14  # of guide
    archive_hours: float = 6.0  # of catch-up, every channel and rung
    leases: int = 4_000
    calls: int = 500  # of each playback kind (at most one per subscriber)
    edges: int = 200  # registered, with one controller replica's leases on each


def progress(line: str) -> None:
    """A progress line on stderr (stdout carries the table or the JSON)."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Footprint:
    """The server's memory apart from its keyspace tables, and the keys those tables hold."""

    data: int  # used_memory minus the keyspace tables (MEMORY STATS overhead.hashtable.*)
    keys: int
    expiring: int  # keys with a TTL (the expires table holds them a second time)


@dataclass(frozen=True, slots=True)
class Slope:
    """What one more item adds: bytes outside the keyspace tables, keys, keys with a TTL."""

    data: float
    keys: float
    expiring: float

    def per(self, units: float) -> Slope:
        """The same cost spread over ``units`` smaller items."""
        return Slope(self.data / units, self.keys / units, self.expiring / units)

    def bytes(self, per_key: float, per_expiring: float) -> float:
        """Bytes per item with the keyspace tables' cost per key added back."""
        return self.data + self.keys * per_key + self.expiring * per_expiring


async def footprint(redis: aioredis.Redis) -> Footprint:
    """The footprint once the allocator has returned what it can.

    The keyspace tables are left out here and added back per key (:func:`measure`): a
    table doubles when it fills, so a slope taken across a doubling would charge its
    whole new bucket array to the items that happened to cross it.
    """
    # A table that just doubled holds both arrays until Redis' cron has moved every key
    # (a few 100 ms ticks): let that finish first.
    await asyncio.sleep(0.5)
    await redis.execute_command("MEMORY", "PURGE")
    used = int((await redis.info("memory"))["used_memory"])
    tables = (await redis.memory_stats()).get("db.0", {})
    keyspace = (await redis.info("keyspace")).get("db0", {})
    return Footprint(
        used
        - int(tables.get("overhead.hashtable.main", 0))
        - int(tables.get("overhead.hashtable.expires", 0)),
        int(keyspace.get("keys", 0)),
        int(keyspace.get("expires", 0)),
    )


async def halves(
    redis: aioredis.Redis, name: str, count: int, seed: Callable[[int, int], Awaitable[None]]
) -> Slope:
    """Seed items [0, count) in two halves; what each item of the second half added."""
    half = count // 2
    before = await footprint(redis)
    began = time.perf_counter()
    await seed(0, half)
    seconds = time.perf_counter() - began
    middle = await footprint(redis)
    began = time.perf_counter()
    await seed(half, count)
    seconds += time.perf_counter() - began
    after = await footprint(redis)
    n = count - half
    slope = Slope(
        (after.data - middle.data) / n,
        (after.keys - middle.keys) / n,
        (after.expiring - middle.expiring) / n,
    )
    progress(
        f"  {name}: {count:,} in {seconds:.1f} s; outside the keyspace tables "
        f"{(after.data - before.data) / count:,.1f} B each overall, {slope.data:,.1f} B in "
        f"the second half; {slope.keys:g} keys, {slope.expiring:g} with a TTL each"
    )
    return slope


def mac(i: int) -> str:
    """A locally administered MAC for box ``i``."""
    return f"02:00:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def row(i: int) -> ImportRow:
    """Subscriber ``i`` as a carrier's import file gives it: one box, both packages."""
    return ImportRow(
        row=i + 2,
        subscriber_id=f"acct{i:08d}",
        display_name=f"用户 {i}",
        region_code="440305",
        status="active",
        service_end=None,
        max_streams=0,
        contact_phone=f"138{i:08d}",
        contact_email="",
        mac=mac(i),
        serial=f"SN{i:010d}",
        model="B860AV2.1",
        package_ids=PACKAGES,
        entitled_from=None,
        entitled_until=None,
    )


async def seed_subscribers(
    redis: aioredis.Redis, store: SubscriberStore, count: int, now: datetime
) -> tuple[Slope, float]:
    """Import ``count`` subscribers (one box, two entitlements each) as a carrier would."""
    audit = Audit(str(ADMIN), "sizing")
    await store.create_carrier(Carrier(CARRIER, "Sizing", "telecom", "active", now), audit, "")
    for package in PACKAGES:
        await store.put_package(Package(package, package, ("ch0.sizing.cn",)), audit, "", "", now)
    packages = await store.catalogue()
    default_streams = SubscriberSettings().default_max_streams
    batch = SubscriberSettings().import_batch_rows

    async def seed(lo: int, hi: int) -> None:
        for start in range(lo, hi, batch):
            rows = [
                validate_import_row(
                    row(i), default_max_streams=default_streams, packages=packages, now=now
                )
                for i in range(start, min(start + batch, hi))
            ]
            summary = await store.import_rows(CARRIER, rows, principal=str(ADMIN), now=now)
            if summary.created != len(rows):
                raise SystemExit(f"import refused rows: {summary.errors[:3]}")

    audit_before = int(await redis.memory_usage(audit_key(CARRIER), samples=0) or 0)
    slope = await halves(redis, "subscribers", count, seed)
    audit_after = int(await redis.memory_usage(audit_key(CARRIER), samples=0) or 0)
    # The stream grows by whole listpack nodes; its average per entry is the fair figure.
    audit_entry = (audit_after - audit_before) / count
    # The subscriber's own keys, and its audit entry apart (the stream is capped).
    return Slope(slope.data - audit_entry, slope.keys, slope.expiring), audit_entry


async def seed_guide(
    redis: aioredis.Redis, store: EpgStore, channels: int, days: int
) -> tuple[Slope, float]:
    """Write ``days`` of guide for ``channels`` channels, one batch per channel and day."""
    for c in range(channels):
        name = (Text("zh", f"频道 {c}"), Text("en", f"Channel {c}"))
        await store.create_channel(
            Channel(f"ch{c}.sizing.cn", c + 1, name, "sizing", catchup_days=7)
        )
    written = 0

    async def seed(lo: int, hi: int) -> None:
        nonlocal written
        for day in range(lo, hi):
            for c in range(channels):
                channel_id = f"ch{c}.sizing.cn"
                day_start = EPOCH + timedelta(days=day)
                when, i, batch = day_start, 0, []
                while when < day_start + timedelta(days=1):
                    stop = min(
                        when + timedelta(minutes=DURATIONS[(c + i) % len(DURATIONS)]),
                        day_start + timedelta(days=1),
                    )
                    batch.append(
                        Programme(
                            programme_id(channel_id, when), channel_id, when, stop,
                            titles=(Text("zh", f"节目 {c}-{day}-{i}"), Text("en", f"Show {i}")),
                            descriptions=(Text("zh", f"第 {i} 集: {DESCRIPTION}"),),
                            categories=(Text("zh", "纪录片"),),
                            episode_xmltv_ns=f"0.{i}.0/1",
                        )
                    )  # fmt: skip
                    when, i = stop, i + 1
                # The service's batch bound is no part of what is measured: a day fits.
                ordered = validate_batch(channel_id, batch, max_batch=len(batch))
                await store.write_programmes(channel_id, ordered, policy=WritePolicy.REFUSE)
                written += len(ordered)

    # Seeded by day, so the two halves are two spans of days of every channel.
    slope = await halves(redis, "guide days", days, seed)
    per_day = written / (channels * days)
    return slope.per(channels * per_day), per_day


async def seed_archive(
    redis: aioredis.Redis,
    index: ArchiveIndex,
    rungs: tuple[Rung, ...],
    channels: int,
    sample: Sample,
    segment_seconds: float,
) -> Slope:
    """Index ``archive_hours`` of segments of every rung of ``channels`` channels."""
    codecs = f"avc1.640028,{aac_codec('LC')}"
    facts = [RungInfo(r.name, codecs, r.width, r.height, 25.0) for r in rungs]
    for c in range(channels):
        await index.register_channel(f"ch{c}.sizing.cn", catchup_days=7, rungs=facts)
    per_rung = int(sample.archive_hours * 3600 / segment_seconds)
    start = EPOCH.timestamp()

    async def seed(lo: int, hi: int) -> None:
        for c in range(channels):
            channel_id = f"ch{c}.sizing.cn"
            entries = []
            for seq in range(lo, hi):
                # The publisher's layout: live/{channel}/{rung}/{seq:010d}.ts, sizes near the
                # rung's bitrate, starts with microseconds.
                when = datetime.fromtimestamp(start + seq * segment_seconds + 0.000123, UTC)
                for r in rungs:
                    size = (r.video_kbps + r.audio_kbps) * 125 * segment_seconds
                    entries.append(
                        (
                            r.name,
                            ArchiveEntry(
                                seq, when, segment_seconds - 0.04 * (seq % 3),
                                int(size) + 188 * (seq % 97),
                                f"live/{channel_id}/{r.name}/{seq:010d}.ts",
                            ),
                        )
                    )  # fmt: skip
            for i in range(0, len(entries), 5_000):
                await index.record_many(channel_id, entries[i : i + 5_000])

    slope = await halves(redis, "archive segments per rung", per_rung, seed)
    return slope.per(channels * len(rungs))


async def seed_leases(
    redis: aioredis.Redis, store: SubscriberStore, count: int, now: datetime
) -> Slope:
    """Start one live lease on each of the first ``count`` subscribers' boxes."""
    settings = SubscriberSettings()
    ttl_ms = int(settings.lease_ttl_seconds * 1000)
    grace_ms = int(settings.lease_grace_seconds * 1000)

    async def one(i: int) -> None:
        await store.start_lease(
            CARRIER, f"acct{i:08d}", lease_id=new_lease_id(), mac=mac(i),
            channel="ch0.sizing.cn", now=now, ttl_ms=ttl_ms, grace_ms=grace_ms,
            limit=settings.default_max_streams,
        )  # fmt: skip

    async def seed(lo: int, hi: int) -> None:
        # One at a time: concurrent calls would open pooled connections, whose buffers
        # Redis counts in used_memory and which are no part of a lease's cost.
        for i in range(lo, hi):
            await one(i)

    return await halves(redis, "leases", count, seed)


async def measure(
    sample: Sample, segment_seconds: float, folder: Path, *, watched: int, rung: str
) -> Measured:
    """Seed a private redis-server through the stores and measure each kind; the controller's
    refresh with ``watched`` channels played on ``rung`` on each of the sample's edges."""
    # No AOF: its rewrites fork, and a forked child stops the keyspace tables resizing.
    server = RedisServer(folder, args=("--appendonly", "no"))
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    try:
        empty = (await footprint(redis)).data
        now = datetime.now(UTC)
        progress(f"private redis-server in {folder}: {empty:,} B used empty")
        subscribers = SubscriberStore(redis)
        sub, audit_entry = await seed_subscribers(redis, subscribers, sample.subscribers, now)
        programme, per_day = await seed_guide(redis, EpgStore(redis), sample.channels, sample.days)
        rungs = resolve_profile("default", segment_seconds=segment_seconds).rungs
        segment = await seed_archive(
            redis, ArchiveIndex(redis), rungs, sample.channels, sample, segment_seconds
        )
        # Leases last lease_ttl_seconds: measured right after they start.
        leases = min(sample.leases, sample.subscribers)
        lease = await seed_leases(redis, subscribers, leases, datetime.now(UTC))
        # The keyspace tables' cost per key at the end (entry plus its share of buckets:
        # the sample ends just past a doubling, so this is the dear end of the range).
        await footprint(redis)  # lets a rehash in progress finish
        tables = (await redis.memory_stats())["db.0"]
        counts = (await redis.info("keyspace"))["db0"]
        per_key = int(tables["overhead.hashtable.main"]) / int(counts["keys"])
        per_expiring = int(tables["overhead.hashtable.expires"]) / max(1, int(counts["expires"]))
        used = int((await redis.info("memory"))["used_memory"])
        progress("playback calls, one at a time:")
        boxes = [mac(i) for i in range(min(sample.calls, sample.subscribers))]
        calls = await measure_calls(redis, boxes, segment_seconds, progress=progress)
        refresh = await measure_refresh(
            redis, edges=sample.edges, watched=watched, rung=rung, progress=progress
        )
    finally:
        await redis.aclose()
        server.stop()
    items = [
        (sub.bytes(per_key, per_expiring) + audit_entry, sample.subscribers),
        (programme.bytes(per_key, per_expiring), per_day * sample.channels * sample.days),
        (
            segment.bytes(per_key, per_expiring),
            sample.channels * len(rungs) * int(sample.archive_hours * 3600 / segment_seconds),
        ),
        (lease.bytes(per_key, per_expiring), leases),
    ]
    progress(f"keyspace tables: {per_key:.1f} B a key, {per_expiring:.1f} B more with a TTL")
    return Measured(
        subscriber=sub.bytes(per_key, per_expiring),
        audit_entry=audit_entry,
        programme=programme.bytes(per_key, per_expiring),
        segment=segment.bytes(per_key, per_expiring),
        lease=lease.bytes(per_key, per_expiring),
        programmes_per_day=per_day,
        empty_bytes=empty,
        fixed_bytes=used - empty - sum(cost * count for cost, count in items),
        authorize=calls[0],
        heartbeat=calls[1],
        start=calls[2],
        guards=calls[3],
        refresh=refresh,
    )
