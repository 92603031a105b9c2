"""ListGuideStatus over 300 channels with a week of guide each, against asking each channel
for its gaps (ListGaps), in the same run.

The console's guide page shows, for every channel, how far its guide runs and its gaps
in the coming week. ListGuideStatus answers a page of channels with one script call
that returns only the programmes' times; the baseline is what a caller could do without
it: one ListGaps per channel over the same week (300 calls, each reading and decoding a
channel's programmes). Both go through a real EPG gRPC server on loopback (the same
harness, auth and interceptor), one call at a time; rounds alternate subject and
baseline, and the figure is the ratio of the medians (goal: under 0.5; asserted < 1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from bench.conftest import SHORT, Report, median
from epg.domain import Channel, Programme, Text, WritePolicy
from epg.server import create_server
from epg.settings import EpgSettings
from epg.store import EpgStore
from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from headend.rpc import RpcServer, RpcSettings, bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc

CHANNELS = 300
DAYS = 8  # from a day back to a week ahead
ROUNDS = 3 if SHORT else 7
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    server: RpcServer
    stub: epg_pb2_grpc.EpgServiceStub
    metadata: tuple[tuple[str, str], ...]
    channel_ids: list[str]


async def _seed(client: aioredis.Redis) -> list[str]:
    store = EpgStore(client)
    ids = [f"ch{n:03d}.bench.cn" for n in range(CHANNELS)]
    start = NOW - timedelta(days=1)
    for n, cid in enumerate(ids):
        await store.create_channel(
            Channel(id=cid, number=n, names=(Text("zh", f"频道 {n}"),), owner="bench", version=1)
        )
        week = [
            Programme(
                id=f"{cid}-{i}",
                channel_id=cid,
                start=start + timedelta(minutes=30 * i),
                stop=start + timedelta(minutes=30 * (i + 1)),
                titles=(Text("zh", f"节目 {i}"), Text("en", f"Show {i}")),
                descriptions=(Text("zh", "一段关于城市与乡村生活的纪录片。"),),
            )
            for i in range(48 * DAYS)
            if i % 97 != 50  # a hole now and then
        ]
        await store.write_programmes(cid, week, policy=WritePolicy.REFUSE)
    return ids


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis_server = RedisServer(tmp_path_factory.mktemp("epg-guide-status"))
    redis_server.start()
    loop = asyncio.new_event_loop()

    async def start() -> Stack:
        client = aioredis.Redis.from_url(redis_server.url)
        ids = await _seed(client)
        keys = KeyStore(client)
        _, token = await keys.create(ADMIN)
        # The gauge's task would read the same keys in the background: once an hour here.
        settings = EpgSettings(rpc=RpcSettings(port=0), guide_status_seconds=3600)
        server, port = await create_server(settings, redis=client, keys=keys)
        stub = epg_pb2_grpc.EpgServiceStub(client_channel(f"127.0.0.1:{port}"))
        return Stack(loop, server, stub, bearer(token), ids)

    built = loop.run_until_complete(start())
    try:
        yield built
    finally:
        loop.run_until_complete(built.server.stop(0))
        loop.close()
        redis_server.stop()


async def _guide_status(stack: Stack) -> list[epg_pb2.GuideStatus]:
    reply = await stack.stub.ListGuideStatus(
        epg_pb2.ListGuideStatusRequest(page_size=CHANNELS), metadata=stack.metadata
    )
    assert not reply.next_page_token
    return list(reply.channels)


async def _gaps_per_channel(stack: Stack) -> list[int]:
    # From now to where the guide ends, as ListGuideStatus looks.
    start, stop = Timestamp(), Timestamp()
    start.FromDatetime(datetime.now(UTC).replace(microsecond=0))
    stop.FromDatetime(NOW + timedelta(days=DAYS - 1))
    counts = []
    for cid in stack.channel_ids:
        reply = await stack.stub.ListGaps(
            epg_pb2.ListGapsRequest(
                parent=f"channels/{cid}", start=start, stop=stop, min_gap_seconds=60
            ),
            metadata=stack.metadata,
        )
        counts.append(len(reply.gaps))
    return counts


def test_list_guide_status_vs_list_gaps_per_channel(
    benchmark: Any, stack: Stack, report: Report
) -> None:
    statuses = stack.loop.run_until_complete(_guide_status(stack))
    counts = stack.loop.run_until_complete(_gaps_per_channel(stack))
    assert len(statuses) == CHANNELS
    # The same gaps either way (the guide ends within a week from now).
    assert [s.gaps for s in statuses] == counts
    assert all(6 * 24 < s.hours_ahead <= 7 * 24 for s in statuses)
    times: dict[str, list[float]] = {"status": [], "gaps": []}

    def one_round() -> None:
        for name, run in (("gaps", _gaps_per_channel), ("status", _guide_status)):
            began = time.perf_counter()
            stack.loop.run_until_complete(run(stack))
            times[name].append(time.perf_counter() - began)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    subject, baseline = median(times["status"]), median(times["gaps"])
    ratio = report.ratio(
        f"epg ListGuideStatus ({CHANNELS} channels x 7 days, one page)",
        subject * 1000,
        baseline * 1000,
        unit="ms (vs one ListGaps per channel)",
    )
    benchmark.extra_info.update(
        {"guide_status_ms": subject * 1000, "gaps_per_channel_ms": baseline * 1000, "ratio": ratio}
    )
    print(
        f"\nepg ListGuideStatus {subject * 1000:,.0f} ms for {CHANNELS} channels, "
        f"ListGaps per channel {baseline * 1000:,.0f} ms, ratio {ratio:.3f}"
    )
    assert ratio < 1
