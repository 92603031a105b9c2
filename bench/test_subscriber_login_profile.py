"""The cost of resolving a box's device profile at login, same run.

Subject: the store's login lookup (``SubscriberStore.login_state``: the MAC index, then
``load_playback.lua`` resolving each box's profile in the same call) for 1,000
provisioned boxes in turn, half of whose models a profile names and half falling back
to the carrier's ``default`` profile, on a real redis-server.
Baseline: the same boxes' lookup without profiles (``playback_state``, what a login
read before profiles and what leases still read), on the same store.
Load: 32 concurrent callers in the same process (the lookups coalesce, as in service).

Goal: ratio >= 0.85 (a login costs at most ~15% more in the store), asserted in full
mode; ``BENCH_SHORT=1`` runs fewer lookups and asserts a 0.7 regression guard.
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
from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore

CALLS = 4_000 if SHORT else 20_000
ROUNDS = 5
CONCURRENCY = 32
BOXES = 1_000


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    redis_server: RedisServer
    client: aioredis.Redis
    store: SubscriberStore


def mac(i: int) -> str:
    return f"02:00:00:00:{i >> 8 & 255:02x}:{i & 255:02x}"


async def provision(stub: pb_grpc.SubscriberServiceStub, token: str) -> None:
    md = bearer(token)
    await stub.CreateCarrier(
        pb.CreateCarrierRequest(
            carrier_id="acme",
            carrier=pb.Carrier(display_name="Acme", network_type=pb.NETWORK_TYPE_TELECOM),
        ),
        metadata=md,
    )
    for profile_id, models in (("uhd", [f"M{i}" for i in range(0, 64, 2)]), ("default", [])):
        await stub.DefineDeviceProfile(
            pb.DefineDeviceProfileRequest(
                device_profile=pb.DeviceProfile(
                    name=f"carriers/acme/deviceProfiles/{profile_id}",
                    models=models,
                    formats=[pb.DELIVERY_FORMAT_HLS_CMAF, pb.DELIVERY_FORMAT_HLS_TS],
                    codecs=[pb.VIDEO_CODEC_HEVC, pb.VIDEO_CODEC_H264],
                    max_height=2160,
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
                    model=f"M{i % 64}",  # even: named by uhd; odd: the default
                )
                for i in range(BOXES)
            ],
        )

    summary = await stub.ImportSubscribers(rows(), metadata=md)
    assert summary.created == BOXES


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    redis_server = RedisServer(Path(tmp_path_factory.mktemp("sub-login-bench")))
    redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    keys = KeyStore(client)

    async def start() -> None:
        _, token = await keys.create(ADMIN)
        server, port = await create_server(SubscriberSettings(), redis=client, keys=keys)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await provision(pb_grpc.SubscriberServiceStub(channel), token)
        finally:
            await server.stop(0)

    loop.run_until_complete(start())
    yield Stack(loop, redis_server, client, SubscriberStore(client))
    loop.run_until_complete(client.aclose())
    loop.close()
    redis_server.stop()


async def drive(call: Callable[[int], Awaitable[Any]]) -> float:
    """Lookups per second for CALLS lookups from CONCURRENCY callers."""
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < CALLS:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return CALLS / (time.perf_counter() - start)


def test_login_profile_resolution_cost(benchmark: Any, stack: Stack, report: Report) -> None:
    macs = [mac(i) for i in range(BOXES)]
    rates: dict[str, list[float]] = {"login": [], "playback": []}

    async def one_login(i: int) -> None:
        state, _, profile = await stack.store.login_state(macs[i % BOXES])
        assert state is not None
        assert profile.profile_id == ("uhd" if i % 2 == 0 else "default")

    async def one_playback(i: int) -> None:
        state, _ = await stack.store.playback_state(macs[i % BOXES])
        assert state is not None

    def round_() -> None:
        # Interleaved so drift on a shared machine hits both alike.
        rates["playback"].append(stack.loop.run_until_complete(drive(one_playback)))
        rates["login"].append(stack.loop.run_until_complete(drive(one_login)))

    stack.loop.run_until_complete(drive(one_login))  # warm the scripts and the catalogue
    benchmark.pedantic(round_, rounds=ROUNDS, iterations=1)
    login, playback = median(rates["login"]), median(rates["playback"])
    ratio = median([a / b for a, b in zip(rates["login"], rates["playback"], strict=True)])
    benchmark.extra_info.update(
        login_per_s=round(login), playback_per_s=round(playback), ratio=ratio, calls=CALLS
    )
    report.line(f"subscriber login lookup with profile / without, median of per-round ratios: "
                f"{ratio:.3f}")  # fmt: skip
    report.ratio(
        "subscriber login lookup with device profile vs without (medians)",
        login,
        playback,
        unit="lookups/s",
    )
    assert ratio >= (0.7 if SHORT else 0.85)
