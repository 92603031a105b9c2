"""The operator console's pages over a provincial-size platform: p95 and median of the full
HTTP render time of each page, against the console's own ``/healthz`` in the same run;
and the reports page against a scan of the raw lease log of the day it shows.

The stack is the real one: redis-server, the EPG, subscriber, transcode and CDN gRPC
servers on port 0 (``tests.support.rest.every_service``) and the console app in front of
them (``tests.support.console.console_face``), one logged-in admin operator (the login
form, its CSRF token, the session cookie). Seeded before timing:

- 300 channels with eight days of guide, by the guide bench's own seeding (the EPG store);
- their live status written straight into transcode's channel hashes (``config_mapping``
  and ``status_mapping``, what a running channel's node writes), most live, some on a
  backup source, on slate, stale or stopped: 300 FFmpeg channels are far more than this
  machine runs, and the mosaic only reads the hashes (thumbnails are separate requests,
  not timed here; none exists, so each would be the placeholder);
- 2,000 village edges in 40 counties, registered through ``RegisterEdge`` (nothing
  listens at them and no probe runs: health is unknown, which the page shows as such);
- 1,000,000 subscribers (``BENCH_SHORT=1``: 20,000), one box and two packages each,
  through ``ImportSubscribers``, the fastest real path (the subscriber import bench's
  rows);
- queued jobs and dead letters through the queue's own steps;
- a day of viewing by the viewing bench's own seeding (the store's recording path), and
  live sessions now through ``StartSession`` (the mosaic's viewers), plus refused and
  allowed ``Authorize`` calls for the box the helpdesk page shows.

Each round requests ``/healthz`` and every page once, in turn, so load drift reaches them
alike; the figure per page is its p95 over the rounds and the ratio of that p95 to the
median ``/healthz`` time (an HTTP round trip through the same client and middleware that
calls no service). The guard holds every page's ratio under :data:`GUARD`, generous for a
loaded 2-core machine; no absolute time is asserted.

The store-level comparison (``ViewingStore.query`` for one day against the raw-log scan,
asserted equal) is ``bench/test_viewing_report.py``; here the same scan is timed against
the reports page that shows the seeded day, through the console.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.conftest import SHORT, Report, median
from bench.test_epg_guide_status import _seed as seed_guide
from bench.test_subscriber_import import build_chunks
from bench.test_viewing_report import _scan as scan_raw_log
from bench.test_viewing_report import _seed as seed_viewing_day
from headend.auth import ADMIN, KeyStore, Principal
from headend.clock import utc_now
from headend.redisproc import RedisServer
from headend.rpc import bearer, client_channel
from protos import cdn_pb2, cdn_pb2_grpc
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.reports.domain import DAY, floor_to
from subscriber.reports.store import ViewingStore
from tests.support.console import Operator, console_face, dead_letters
from tests.support.rest import every_service
from transcode.domain import ChannelState, ChannelStatus, LiveChannel, RungRate
from transcode.jobs import Job, JobState
from transcode.live import CHANNELS as LIVE_CHANNELS
from transcode.live import channel_key, config_mapping, status_mapping
from transcode.queue import JobQueue

EDGES = 2_000
COUNTIES = 40
SUBSCRIBERS = 20_000 if SHORT else 1_000_000
REQUESTS = 30 if SHORT else 100
SCAN_ROUNDS = 5
QUEUED_JOBS = 100
DEAD_LETTERS = 20
WATCHING = 300  # boxes with a live session now
CARRIER = "acme"
# The helpdesk's box: an imported one in the middle of the import.
HELPDESK_ROW = SUBSCRIBERS // 2
# Every page's p95 under this many /healthz medians (measured on an idle 2-core machine:
# at most ~1,000, the guide page, most of it the EPG's ListGuideStatus).
GUARD = 5_000
PAGES = ("channels", "edges", "jobs", "guide", "subscribers", "helpdesk", "reports")

pytestmark = pytest.mark.timeout(1800)


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    client: aioredis.Redis
    operator: Operator
    paths: dict[str, str]  # page -> the path requested
    viewing_day: datetime  # the seeded day of viewing
    seeding: list[str]  # what seeding took, for the report


def _status(n: int, cid: str) -> dict[Any, str]:
    """Channel ``n``'s hash: most live on their primary, every 10th on a backup, every
    25th on slate, every 30th stale (no segment for a minute), every 50th stopped."""
    channel = LiveChannel(id=cid, source=f"udp://239.1.{n >> 8}.{n & 255}:5000",
                          backup_sources=(f"http://backup.example/{cid}.ts",))  # fmt: skip
    now = utc_now()
    state = ChannelState.LIVE
    if n % 50 == 0:
        state = ChannelState.STOPPED
    elif n % 25 == 0:
        state = ChannelState.SLATE
    age = timedelta(seconds=60 if n % 30 == 0 else 3)
    status = ChannelStatus(
        channel=channel,
        state=state,
        media_sequence=10_000 + n,
        source_index=1 if n % 10 == 0 else 0,
        last_segment_at=now - age,
        target_duration_seconds=6,
        rungs=(RungRate("1080p", 4_800_000), RungRate("720p", 2_800_000),
               RungRate("480p", 1_200_000)),
    )  # fmt: skip
    return config_mapping(channel) | status_mapping(status, status.media_sequence + 1)


async def _seed_live(client: aioredis.Redis, ids: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for n, cid in enumerate(ids):
        pipe.hset(channel_key(cid), mapping=_status(n, cid))
        pipe.sadd(LIVE_CHANNELS, cid)
    await pipe.execute()


async def _seed_subscribers(target: str, token: str, ids: list[str]) -> list[pb.ImportRow]:
    """The carrier, its two packages and the imported subscribers; the helpdesk's row."""
    async with client_channel(target) as channel:
        stub = pb_grpc.SubscriberServiceStub(channel)
        md = bearer(token)
        await stub.CreateCarrier(
            pb.CreateCarrierRequest(
                carrier_id=CARRIER,
                carrier=pb.Carrier(display_name="Acme", network_type=pb.NETWORK_TYPE_TELECOM),
            ),
            metadata=md,
        )
        # basic: every channel but the last 50; sports: 20 of those; the last 30 in none.
        for package, channels in (("basic", ids[:-50]), ("sports", ids[-50:-30])):
            await stub.DefinePackage(
                pb.DefinePackageRequest(
                    package=pb.Package(
                        name=f"packages/{package}", display_name=package, channel_ids=channels
                    )
                ),
                metadata=md,
            )
        chunks = build_chunks(SUBSCRIBERS)

        async def rows() -> AsyncIterator[pb.ImportSubscribersRequest]:
            for chunk in chunks:
                yield chunk

        summary = await stub.ImportSubscribers(rows(), metadata=md)
        assert summary.created == SUBSCRIBERS, summary
        assert summary.failed == 0, summary
        every = [row for chunk in chunks for row in chunk.rows]
        return [every[HELPDESK_ROW], *every[:WATCHING]]


async def _seed_edges(target: str, token: str) -> None:
    async with client_channel(target) as channel:
        stub = cdn_pb2_grpc.CdnControlServiceStub(channel)

        async def register(n: int) -> None:
            county = f"4403{n % COUNTIES + 1:02d}"
            await stub.RegisterEdge(
                cdn_pb2.RegisterEdgeRequest(
                    edge_id=f"v{county}-{n:04d}",
                    edge=cdn_pb2.Edge(
                        region=county, tier=cdn_pb2.TIER_EDGE, host=f"10.{n >> 8}.{n & 255}.1",
                        port=80, capacity_sessions=200, capacity_mbps=1000, uplink_mbps=1000,
                    ),
                ),
                metadata=bearer(token),
            )  # fmt: skip

        for start in range(0, EDGES, 50):
            await asyncio.gather(*(register(n) for n in range(start, min(EDGES, start + 50))))


async def _seed_jobs(client: aioredis.Redis) -> None:
    queue = JobQueue(client)
    now = utc_now()
    for n in range(QUEUED_JOBS):
        job = Job(f"vod{n:04d}", f"/media/in/{n:04d}.mp4", f"asset{n:04d}", "default",
                  JobState.QUEUED, now, now)  # fmt: skip
        assert await queue.submit(job)
    await dead_letters(client, *(f"dead{n:03d}" for n in range(DEAD_LETTERS)))


async def _seed_playback(
    target: str, token: str, boxes: list[pb.ImportRow], ids: list[str]
) -> None:
    """Live sessions now for the watching boxes; the helpdesk box allowed twice, refused
    twice (no package holds the channel), then watching."""
    async with client_channel(target) as channel:
        stub = pb_grpc.SubscriberServiceStub(channel)
        md = bearer(token)
        helpdesk, watching = boxes[0], boxes[1:]
        for n, box in enumerate(watching):
            await stub.StartSession(
                pb.StartSessionRequest(mac=box.mac, channel_id=ids[n % 100]), metadata=md
            )
        for cid in (ids[0], ids[-10], ids[1], ids[-5]):
            await stub.Authorize(pb.AuthorizeRequest(mac=helpdesk.mac, channel_id=cid), metadata=md)
        await stub.StartSession(pb.StartSessionRequest(mac=helpdesk.mac, channel_id=ids[2]),
                                metadata=md)  # fmt: skip


async def _timed(run: Awaitable[Any]) -> float:
    began = time.perf_counter()
    await run
    return time.perf_counter() - began


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("console-bench")
    redis_server = RedisServer(work)
    redis_server.start()
    loop = asyncio.new_event_loop()
    # gRPC's aio layer asks for the current loop: an earlier suite's asyncio.run() left none.
    asyncio.set_event_loop(loop)
    opened = AsyncExitStack()

    async def start() -> Stack:
        client = aioredis.Redis.from_url(redis_server.url)
        opened.push_async_callback(client.aclose)
        keys = KeyStore(client)
        _, admin = await keys.create(ADMIN)
        _, playback = await keys.create(Principal.parse("playback"))
        targets = await opened.enter_async_context(every_service(client, keys, work))
        began = time.perf_counter()
        ids = await seed_guide(client)
        seeding = [f"guide {time.perf_counter() - began:.1f} s"]
        steps = (
            ("live status", _seed_live(client, ids)),
            ("edges", _seed_edges(targets["CDN_TARGET"], admin)),
            ("jobs", _seed_jobs(client)),
        )
        for name, step in steps:
            seeding.append(f"{name} {await _timed(step):.1f} s")
        began = time.perf_counter()
        boxes = await _seed_subscribers(targets["SUBSCRIBER_TARGET"], admin, ids)
        seeding.append(f"{SUBSCRIBERS:,} subscribers {time.perf_counter() - began:.1f} s")
        day = floor_to(utc_now(), DAY) - DAY
        seeding.append(
            f"viewing day {await _timed(seed_viewing_day(ViewingStore(client), day)):.1f} s"
        )
        await _seed_playback(targets["SUBSCRIBER_TARGET"], playback, boxes, ids)
        face = await opened.enter_async_context(console_face(targets))
        operator = await opened.enter_async_context(face.operator())
        assert (await operator.login(admin)).status == 303
        paths = {page: f"/{page}" for page in PAGES}
        paths["helpdesk"] = f"/helpdesk?mac={boxes[0].mac}"
        # The last two days: the whole seeded day (yesterday) and today's sessions so far.
        paths["reports"] = "/reports?days=2&granularity=hour&group_by=channel"
        return Stack(loop, client, operator, paths, day, seeding)

    try:
        yield loop.run_until_complete(start())
    finally:
        loop.run_until_complete(opened.aclose())
        loop.close()
        asyncio.set_event_loop(None)
        redis_server.stop()


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


async def _check_pages(stack: Stack) -> None:
    """Every page shows the seeded platform (its JSON twin, same loader)."""
    op = stack.operator

    async def data(page: str) -> Any:
        path = stack.paths[page].replace(f"/{page}", f"/api/{page}.json", 1)
        answer = await op.get(path)
        assert answer.status == 200, answer.text
        assert not answer.json["missing"], answer.json["missing"]
        return answer.json

    channels = (await data("channels"))["channels"]
    assert len(channels) == 300
    assert {c["state"] for c in channels} >= {"live", "backup", "slate", "stopped"}
    assert sum(c["viewers"] for c in channels) == WATCHING + 1
    edges = (await data("edges"))["regions"]
    assert len(edges) == COUNTIES
    assert sum(len(r["edges"]) for r in edges) == EDGES
    jobs = await data("jobs")
    assert len(jobs["queued"]) == QUEUED_JOBS
    assert jobs["dead_total"] == DEAD_LETTERS
    assert len((await data("guide"))["channels"]) == 300
    counts = (await data("subscribers"))["carriers"]
    assert [(c["carrier"], c["total"]) for c in counts] == [(CARRIER, SUBSCRIBERS)]
    helpdesk = await data("helpdesk")
    assert [e["reason"] for e in helpdesk["events"] if not e["allowed"]] == ["NOT_ENTITLED"] * 2
    assert len(helpdesk["leases"]) == 1
    assert (await data("reports"))["rows"]


def test_console_pages_p95_against_healthz(benchmark: Any, stack: Stack, report: Report) -> None:
    stack.loop.run_until_complete(_check_pages(stack))
    op = stack.operator
    times: dict[str, list[float]] = {name: [] for name in ("healthz", *PAGES)}
    sizes: dict[str, int] = {}

    async def request(name: str) -> None:
        path = "/healthz" if name == "healthz" else stack.paths[name]
        began = time.perf_counter()
        answer = await op.get(path)
        times[name].append(time.perf_counter() - began)
        assert answer.status == 200, answer.text
        sizes[name] = len(answer.text)
        op.history.clear()

    def one_round() -> None:
        for name in times:
            stack.loop.run_until_complete(request(name))

    benchmark.pedantic(one_round, rounds=REQUESTS, iterations=1)
    report.line(
        f"console pages: 300 channels, {EDGES:,} edges, {SUBSCRIBERS:,} subscribers; "
        f"{REQUESTS} requests per page; seeding: {', '.join(stack.seeding)}"
    )
    base = median(times["healthz"])
    ratios: dict[str, float] = {}
    for page in PAGES:
        p95, mid = _p95(times[page]), median(times[page])
        report.line(
            f"console {stack.paths[page]}: p95 {p95 * 1000:,.1f} ms, median {mid * 1000:,.1f} ms,"
            f" {sizes[page] / 1024:,.0f} KiB"
        )
        ratios[page] = report.ratio(
            f"console {page} page p95 vs /healthz median", p95 * 1000, base * 1000, unit="ms"
        )
        benchmark.extra_info[f"{page}_p95_ms"] = p95 * 1000
        benchmark.extra_info[f"{page}_median_ms"] = mid * 1000
    benchmark.extra_info.update(healthz_median_ms=base * 1000, subscribers=SUBSCRIBERS)
    assert max(ratios.values()) < GUARD, ratios


def test_reports_page_against_a_scan_of_the_raw_log(
    benchmark: Any, stack: Stack, report: Report
) -> None:
    op = stack.operator
    path = stack.paths["reports"]
    times: dict[str, list[float]] = {"page": [], "scan": []}

    def one_round() -> None:
        times["page"].append(stack.loop.run_until_complete(_timed(op.get(path))))
        scan = scan_raw_log(stack.client, stack.viewing_day)
        times["scan"].append(stack.loop.run_until_complete(_timed(scan)))

    benchmark.pedantic(one_round, rounds=SCAN_ROUNDS, iterations=1)
    op.history.clear()
    page, scan = median(times["page"]), median(times["scan"])
    benchmark.extra_info.update(reports_page_s=page, raw_scan_s=scan)
    ratio = report.ratio(
        "raw-log scan of the seeded day / reports page showing it (two days by channel, hourly)",
        scan * 1000,
        page * 1000,
        unit="ms",
    )
    # Short mode's day is 200 boxes' (the scan is small; the page also renders HTML).
    assert ratio > (0.5 if SHORT else 1)
