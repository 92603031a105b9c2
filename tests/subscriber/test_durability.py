"""SIGKILL durability: with ``appendfsync always``, a redis-server killed between acknowledged
import calls keeps every acknowledged row after restart (a real redis-server, killed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import ADMIN, KeyStore
from headend.redisproc import RedisServer
from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings
from subscriber.store.codec import audit_key, mac_key, parse_holder, sub_key, subs_key
from tests.subscriber.test_import import rows, split


@pytest.fixture
def fsync_always(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


async def test_sigkill_between_acknowledged_batches_loses_no_row(
    fsync_always: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(fsync_always.url)
    keys = KeyStore(client)
    _, token = await keys.create(ADMIN)
    server, port = await create_server(
        SubscriberSettings(import_batch_rows=100), redis=client, keys=keys
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.SubscriberServiceStub(channel)
    md = bearer(token)
    try:
        await stub.CreateCarrier(
            pb.CreateCarrierRequest(carrier_id="acme", name="Acme", network_type=pb.TELECOM),
            metadata=md,
        )
        for package in ("basic", "sports"):
            await stub.DefinePackage(
                pb.DefinePackageRequest(
                    package=pb.Package(
                        package_id=package, name=package, channel_ids=[f"{package}-1"]
                    )
                ),
                metadata=md,
            )
        acknowledged = rows(600)

        async def call(batch: list[pb.ImportRow]) -> pb.ImportSummary:
            async def gen() -> AsyncIterator[pb.ImportChunk]:
                for part in split(batch, 100):
                    yield pb.ImportChunk(carrier_id="acme", rows=part)

            return await stub.ImportSubscribers(gen(), metadata=md)

        for batch in split(acknowledged, 200):
            assert (await call(batch)).created == 200  # acknowledged

        fsync_always.kill()  # SIGKILL: no shutdown, no final flush
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(rows(10, first=600))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE

        fsync_always.start()  # same data dir: replays the AOF
        fresh = aioredis.Redis.from_url(fsync_always.url)
        try:
            assert await fresh.zcard(subs_key("acme")) == 600
            for row in acknowledged:
                stored: dict[Any, Any] = await fresh.hgetall(sub_key("acme", row.subscriber_id))
                assert stored[b"n"].decode() == row.display_name
                assert {b"ent:basic", b"ent:sports", f"dev:{row.mac}".encode()} <= set(stored)
                holder: bytes = await fresh.get(mac_key(row.mac))  # type: ignore[assignment]
                assert parse_holder(holder) == ("acme", row.subscriber_id)
                assert await fresh.pttl(mac_key(row.mac)) == -1  # kept, not a lapsing claim
            assert await fresh.xlen(audit_key("acme")) == 601  # carrier + 600 rows
        finally:
            await fresh.aclose()
        # the running service reconnects by itself and sees the same rows
        page = await stub.ListSubscribers(pb.ListSubscribersRequest(carrier_id="acme"), metadata=md)
        assert page.total_count == 600
        assert (await call(acknowledged[:200])).unchanged == 200
    finally:
        await channel.close()
        await server.stop(0)
        await client.aclose()
