"""``Authorize`` throughput against a trivial handler on the same harness, same run.

Subject: ``Authorize`` (admin key, as the CDN front door calls it) for 1,000
provisioned boxes in turn, each entitled, on a real redis-server.
Baseline: a trivial unary handler (returns an empty message) mounted on the
same harness (``headend.rpc.start_server``, same bearer-key auth, metrics,
concurrency cap). Also recorded: the same trivial handler on a bare
``grpc.aio`` server (no harness), to show what the harness itself costs.
Load: 32 concurrent callers on one channel, client in the same process.

Goal (issue 4): ratio >= 0.6, asserted in full mode. ``BENCH_SHORT=1`` runs fewer
calls and asserts a 0.45 regression guard (the short run is noisy on shared CI).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from bench.conftest import SHORT, Report, median
from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings, ServiceSpec, bearer, start_server
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings

CALLS = 2_000 if SHORT else 10_000
ROUNDS = 5
CONCURRENCY = 32
BOXES = 1_000
TRIVIAL = "/bench.Trivial/Ping"


async def _ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""


def _trivial_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "bench.Trivial", {"Ping": grpc.unary_unary_rpc_method_handler(_ping)}
    )


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    redis_server: RedisServer
    client: aioredis.Redis
    servers: list[Any]
    channels: dict[str, grpc.aio.Channel]
    token: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    redis_server = RedisServer(Path(tmp_path_factory.mktemp("sub-auth-bench")))
    redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    keys = KeyStore(client)

    async def start() -> Stack:
        _, token = await keys.create(ADMIN)
        service, service_port = await create_server(SubscriberSettings(), redis=client, keys=keys)
        trivial_spec = ServiceSpec(
            "bench.Trivial", lambda s: s.add_generic_rpc_handlers((_trivial_handler(),))
        )
        harness, harness_port = await start_server(
            RpcSettings(), services=[trivial_spec], authenticator=keys
        )
        bare = grpc.aio.server()
        bare.add_generic_rpc_handlers((_trivial_handler(),))
        bare_port = bare.add_insecure_port("127.0.0.1:0")
        await bare.start()
        channels = {
            name: grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            for name, port in (
                ("service", service_port),
                ("harness", harness_port),
                ("bare", bare_port),
            )
        }
        stack = Stack(loop, redis_server, client, [service, harness, bare], channels, token)
        await provision(stack)
        return stack

    stack = loop.run_until_complete(start())
    yield stack

    async def stop() -> None:
        for channel in stack.channels.values():
            await channel.close()
        for server in stack.servers:
            await server.stop(0)
        await client.aclose()

    loop.run_until_complete(stop())
    loop.close()
    redis_server.stop()


def mac(i: int) -> str:
    return f"02:00:00:00:{i >> 8 & 255:02x}:{i & 255:02x}"


async def provision(stack: Stack) -> None:
    stub = pb_grpc.SubscriberServiceStub(stack.channels["service"])
    md = bearer(stack.token)
    await stub.CreateCarrier(
        pb.CreateCarrierRequest(
            carrier_id="acme",
            carrier=pb.Carrier(display_name="Acme", network_type=pb.NETWORK_TYPE_TELECOM),
        ),
        metadata=md,
    )
    await stub.DefinePackage(
        pb.DefinePackageRequest(
            package=pb.Package(
                name="packages/basic", display_name="Basic", channel_ids=["cctv1", "cctv2"]
            )
        ),
        metadata=md,
    )

    async def rows() -> AsyncIterator[pb.ImportSubscribersRequest]:
        yield pb.ImportSubscribersRequest(
            parent="carriers/acme",
            rows=[
                pb.ImportRow(
                    row=i,
                    subscriber_id=f"a{i}",
                    display_name=f"A {i}",
                    region_code="440305",
                    mac=mac(i),
                    package_ids=["basic"],
                )
                for i in range(BOXES)
            ],
        )

    summary = await stub.ImportSubscribers(rows(), metadata=md)
    assert summary.created == BOXES


async def drive(call: Callable[[int], Awaitable[Any]]) -> float:
    """Calls per second for CALLS calls from CONCURRENCY callers."""
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < CALLS:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return CALLS / (time.perf_counter() - start)


def test_authorize_throughput(benchmark: Any, stack: Stack, report: Report) -> None:
    md = bearer(stack.token)
    authorize = pb_grpc.SubscriberServiceStub(stack.channels["service"]).Authorize
    requests = [pb.AuthorizeRequest(mac=mac(i), channel_id="cctv1") for i in range(BOXES)]
    harness_ping = stack.channels["harness"].unary_unary(TRIVIAL)
    bare_ping = stack.channels["bare"].unary_unary(TRIVIAL)
    rates: dict[str, list[float]] = {"authorize": [], "harness": [], "bare": []}

    async def one_authorize(i: int) -> None:
        reply = await authorize(requests[i % BOXES], metadata=md)
        assert reply.allowed

    async def one_harness(i: int) -> None:
        await harness_ping(b"", metadata=md)

    async def one_bare(i: int) -> None:
        await bare_ping(b"")

    def round_() -> None:
        # Interleaved so drift on a shared machine hits all three alike.
        rates["harness"].append(stack.loop.run_until_complete(drive(one_harness)))
        rates["authorize"].append(stack.loop.run_until_complete(drive(one_authorize)))
        rates["bare"].append(stack.loop.run_until_complete(drive(one_bare)))

    stack.loop.run_until_complete(drive(one_authorize))  # warm caches and connections
    benchmark.pedantic(round_, rounds=ROUNDS, iterations=1)
    auth, harness, bare = (median(rates[k]) for k in ("authorize", "harness", "bare"))
    # The median of per-round ratios: each pair ran back to back, so load drift cancels.
    ratio = median([a / h for a, h in zip(rates["authorize"], rates["harness"], strict=True)])
    benchmark.extra_info.update(
        authorize_per_s=round(auth),
        trivial_harness_per_s=round(harness),
        trivial_bare_per_s=round(bare),
        ratio_vs_trivial_harness=ratio,
        harness_vs_bare=harness / bare,
        calls=CALLS,
        concurrency=CONCURRENCY,
    )
    report.line(
        f"subscriber Authorize / trivial harness handler, median of per-round ratios: {ratio:.3f}"
    )
    report.ratio(
        "subscriber Authorize vs trivial handler on the same harness (medians)",
        auth,
        harness,
        unit="calls/s",
    )
    report.line(
        f"subscriber Authorize bare-server reference: trivial handler without the harness "
        f"{bare:,.0f} calls/s (harness trivial {harness:,.0f}, Authorize {auth:,.0f})"
    )
    # The goal is 0.6. On the shared 2-core CI box the short run swings by
    # about +-0.1 with load, so it guards against regressions at 0.45 instead.
    assert ratio >= (0.45 if SHORT else 0.6)
