"""Bulk provisioning through the client-streaming ``ImportSubscribers`` RPC.

Subject: N subscribers, each with one box and two entitlements, streamed in
chunks of 1,000 rows to a real server on a real redis-server (AOF
``everysec``, the default). Baseline, same run, same redis-server: a raw
redis-py pipelined write (1,000 commands per round trip) of as many keys as
the import creates (3 per subscriber: account hash, box hash, MAC index).
Also recorded: the baseline for N keys (one per subscriber).

Goals (issue 4): >= 10,000 subscribers/s and ratio >= 0.25 at N = 100,000 (both
asserted in full mode). ``BENCH_SHORT=1`` uses N = 5,000 and asserts the ratio only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import redis.asyncio as aioredis

from bench.conftest import SHORT, Report, median
from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from headend.rpc import RpcServer, bearer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings

N = 5_000 if SHORT else 100_000
ROUNDS = 3
CHUNK = 1_000
PIPELINE = 1_000


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    redis_server: RedisServer
    client: aioredis.Redis
    keys: KeyStore
    server: RpcServer
    channel: grpc.aio.Channel
    stub: pb_grpc.SubscriberServiceStub


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    redis_server = RedisServer(Path(tmp_path_factory.mktemp("sub-bench")))
    redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    keys = KeyStore(client)

    async def start() -> tuple[RpcServer, grpc.aio.Channel]:
        # grpc.aio objects bind to the loop running when they are made
        server, port = await create_server(SubscriberSettings(), redis=client, keys=keys)
        return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    server, channel = loop.run_until_complete(start())
    yield Stack(
        loop, redis_server, client, keys, server, channel, pb_grpc.SubscriberServiceStub(channel)
    )
    loop.run_until_complete(channel.close())
    loop.run_until_complete(server.stop(0))
    loop.run_until_complete(client.aclose())
    loop.close()
    redis_server.stop()


def build_chunks(n: int) -> list[pb.ImportSubscribersRequest]:
    """n rows (one box, two entitlements each) in chunks of CHUNK rows, built before timing."""
    rows = [
        pb.ImportRow(
            row=i + 2,
            subscriber_id=f"acct{i:07d}",
            display_name=f"Subscriber {i}",
            region_code="440305",
            mac=f"02:00:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            serial=f"SN{i:09d}",
            model="B860AV2.1",
            package_ids=["basic", "sports"],
        )
        for i in range(n)
    ]
    return [
        pb.ImportSubscribersRequest(parent="carriers/acme", rows=rows[i : i + CHUNK])
        for i in range(0, n, CHUNK)
    ]


async def seed(stack: Stack) -> str:
    """Empty Redis, then a carrier, two packages and an admin key; returns the token."""
    await stack.client.flushall()
    _, token = await stack.keys.create(ADMIN)
    md = bearer(token)
    await stack.stub.CreateCarrier(
        pb.CreateCarrierRequest(
            carrier_id="acme",
            carrier=pb.Carrier(display_name="Acme", network_type=pb.NETWORK_TYPE_TELECOM),
        ),
        metadata=md,
    )
    for package in ("basic", "sports"):
        await stack.stub.DefinePackage(
            pb.DefinePackageRequest(
                package=pb.Package(
                    name=f"packages/{package}", display_name=package, channel_ids=[package]
                )
            ),
            metadata=md,
        )
    return token


async def run_import(
    stack: Stack, chunks: list[pb.ImportSubscribersRequest], token: str
) -> pb.ImportSummary:
    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        for chunk in chunks:
            yield chunk

    return await stack.stub.ImportSubscribers(gen(), metadata=bearer(token))


def raw_pipeline(url_socket: str, keys: int) -> float:
    """Seconds for a plain redis-py pipelined SET of ``keys`` keys (values like an account)."""
    client = redis.Redis(unix_socket_path=url_socket)
    client.flushall()
    value = b"n\x00Subscriber 0000000\x00r\x00440305\x00s\x00active\x00v\x001"
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"bench:{i}", value)
        if len(pipe) >= PIPELINE:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - start
    client.flushall()
    client.close()
    return elapsed


def test_bulk_import_throughput(benchmark: Any, stack: Stack, report: Report) -> None:
    chunks = build_chunks(N)
    import_seconds: list[float] = []
    created_keys: list[int] = []
    summaries: list[pb.ImportSummary] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        token = stack.loop.run_until_complete(seed(stack))
        return (token,), {}

    def subject(token: str) -> None:
        before = stack.loop.run_until_complete(stack.client.dbsize())
        start = time.perf_counter()
        summaries.append(stack.loop.run_until_complete(run_import(stack, chunks, token)))
        import_seconds.append(time.perf_counter() - start)
        created_keys.append(stack.loop.run_until_complete(stack.client.dbsize()) - before)

    benchmark.pedantic(subject, setup=setup, rounds=ROUNDS, iterations=1)
    assert all(s.created == N and s.failed == 0 for s in summaries)
    socket = str(stack.redis_server.socket)
    keys_written = created_keys[0]
    baseline = [raw_pipeline(socket, keys_written) for _ in range(ROUNDS)]
    baseline_n = [raw_pipeline(socket, N) for _ in range(ROUNDS)]

    subs_per_s = N / median(import_seconds)
    ratio = median(baseline) / median(import_seconds)
    ratio_n = median(baseline_n) / median(import_seconds)
    benchmark.extra_info.update(
        subscribers=N,
        subscribers_per_second=round(subs_per_s),
        keys_written=keys_written,
        import_median_s=median(import_seconds),
        raw_pipeline_median_s=median(baseline),
        ratio_vs_same_keys=ratio,
        raw_pipeline_n_keys_median_s=median(baseline_n),
        ratio_vs_n_keys=ratio_n,
    )
    report.line(
        f"subscriber bulk import, N={N:,} (1 box + 2 entitlements each): "
        f"{subs_per_s:,.0f} subscribers/s (median {median(import_seconds):.2f} s)"
    )
    # As rates over the same key count, so the ratio reads "import speed / raw speed".
    report.ratio(
        f"subscriber import vs raw redis-py pipeline, same {keys_written:,} keys",
        keys_written / median(import_seconds),
        keys_written / median(baseline),
        unit="keys/s",
    )
    report.ratio(
        f"subscriber import vs raw redis-py pipeline of {N:,} keys (one per subscriber)",
        N / median(import_seconds),
        N / median(baseline_n),
        unit="subscribers|keys/s",
    )
    assert ratio >= 0.25
    if not SHORT:
        # An absolute rate depends on the machine; the issue sets it for N = 100,000 here.
        assert subs_per_s >= 10_000
