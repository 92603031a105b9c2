"""SIGKILL durability: with ``appendfsync always``, a redis-server killed between acknowledged
import calls keeps every acknowledged row after restart, and a request cut off by the kill
leaves its idempotency key free once Redis is back (a real redis-server, killed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import ADMIN, KeyStore, Principal
from headend.clock import utc_now
from headend.redisproc import RedisServer
from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.errors import StoreUnavailable
from subscriber.server import create_server
from subscriber.service import SubscriberService
from subscriber.service import base as service_base
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore
from subscriber.store.base import Claim
from subscriber.store.codec import (
    audit_key,
    idempotency_key,
    mac_key,
    parse_holder,
    sub_key,
    subs_key,
)
from tests.subscriber.test_import import rows, split
from tests.support.world import REGION


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
            pb.CreateCarrierRequest(
                carrier_id="acme",
                carrier=pb.Carrier(display_name="Acme", network_type=pb.NETWORK_TYPE_TELECOM),
            ),
            metadata=md,
        )
        for package in ("basic", "sports"):
            await stub.DefinePackage(
                pb.DefinePackageRequest(
                    package=pb.Package(
                        name=f"packages/{package}",
                        display_name=package,
                        channel_ids=[f"{package}-1"],
                    )
                ),
                metadata=md,
            )
        acknowledged = rows(600)

        async def call(batch: list[pb.ImportRow]) -> pb.ImportSummary:
            async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
                for part in split(batch, 100):
                    yield pb.ImportSubscribersRequest(parent="carriers/acme", rows=part)

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
        page = await stub.ListSubscribers(
            pb.ListSubscribersRequest(parent="carriers/acme"), metadata=md
        )
        assert page.total_size == 600
        assert (await call(acknowledged[:200])).unchanged == 200
    finally:
        await channel.close()
        await server.stop(0)
        await client.aclose()


async def test_a_request_failed_by_a_redis_outage_frees_its_key_once_redis_is_back(
    fsync_always: RedisServer,
) -> None:
    """A failover mid-request: the request fails, and its claim on the idempotency key
    (already on disk, or on the promoted replica) must not answer "still running" to every
    retry for the claim's whole life. The release is retried until Redis is back."""
    client = aioredis.Redis.from_url(fsync_always.url, socket_timeout=1)
    service = SubscriberService(
        store=SubscriberStore(client), settings=SubscriberSettings(), clock=utc_now
    )
    runs: list[str] = []

    async def outage() -> bytes:
        runs.append("first")
        fsync_always.kill()  # the claim is on disk (appendfsync always)
        asyncio.get_running_loop().call_later(1.0, fsync_always.start)
        raise StoreUnavailable("the subscriber store (Redis) is unavailable")

    async def succeed() -> bytes:
        runs.append("retry")
        return b"created"

    try:
        with pytest.raises(StoreUnavailable):
            await service.idempotent(ADMIN, "key-1", "fp", outage)
        # Redis is back with the claim gone: the retry runs, not "still running".
        assert await client.get(idempotency_key("_admin", "key-1")) is None
        assert await service.idempotent(ADMIN, "key-1", "fp", succeed) == b"created"
        assert runs == ["first", "retry"]
    finally:
        await client.aclose()


async def test_a_request_that_hangs_is_cut_off_before_its_claim_expires(
    fsync_always: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its claim must outlive it, or a retry would run the change a second time."""
    monkeypatch.setattr(service_base, "RUN_SECONDS", 0.3)
    client = aioredis.Redis.from_url(fsync_always.url)
    service = SubscriberService(
        store=SubscriberStore(client), settings=SubscriberSettings(), clock=utc_now
    )

    async def hang() -> bytes:
        await asyncio.Event().wait()
        return b""

    try:
        with pytest.raises(StoreUnavailable, match=r"longer than 0\.3 s"):
            await service.idempotent(ADMIN, "key-2", "fp", hang)
        assert await client.get(idempotency_key("_admin", "key-2")) is None
    finally:
        await client.aclose()


ACME = Principal("carrier", "acme")


async def _acme(server: RedisServer) -> tuple[aioredis.Redis, SubscriberService]:
    client = aioredis.Redis.from_url(server.url, socket_timeout=1)
    service = SubscriberService(
        store=SubscriberStore(client), settings=SubscriberSettings(), clock=utc_now
    )
    await service.create_carrier(ADMIN, "acme", "Acme", "telecom")
    return client, service


def _create(service: SubscriberService, subscriber_id: str) -> Callable[[], Awaitable[bytes]]:
    async def run() -> bytes:
        sub = await service.create_subscriber(
            ACME, "acme", subscriber_id=subscriber_id, display_name=subscriber_id,
            region_code=REGION, service_end=None, max_streams=0, contact_phone="",
            contact_email="",
        )  # fmt: skip
        return sub.subscriber_id.encode()

    return run


async def test_a_guarded_write_sent_again_after_a_lost_reply_is_not_run_twice(
    fsync_always: RedisServer,
) -> None:
    """redis-py sends a script again when its reply was lost (a connection dropped after
    Redis ran it): within an idempotent request the second run finds its mark in the
    claim and writes nothing, where it would otherwise fail "exists" on its own change."""
    client, service = await _acme(fsync_always)
    store = SubscriberStore(client)
    try:
        claim = await store.idempotency_claim("acme", "k-resent", "fp", 60)
        assert isinstance(claim, Claim)
        audited = await client.xlen(audit_key("acme"))
        with store.applying(claim):
            await _create(service, "s1")()
            assert claim.steps == 1
            claim.steps = 0  # the same call, sent again
            await _create(service, "s1")()
        assert claim.steps == 1
        assert await client.xlen(audit_key("acme")) == audited + 1  # one change, once
        assert await store.idempotency_finish(claim, "fp", b"s1", 60)
        assert await store.idempotency_claim("acme", "k-resent", "fp", 60) == b"s1"
    finally:
        await client.aclose()


async def test_a_change_lost_with_its_master_is_not_acknowledged_and_runs_again(
    fsync_always: RedisServer,
) -> None:
    """A failover can promote a replica that has the claim but not the change after it:
    the response is then not recorded (the claim lacks the change's mark), the request
    answers UNAVAILABLE, and its retry with the same key creates the subscriber."""
    client, service = await _acme(fsync_always)
    name = idempotency_key("acme", "k-lost")
    create = _create(service, "s2")

    async def lost_in_failover() -> bytes:
        claim = await client.get(name)
        assert claim is not None
        answer = await create()
        # The promoted replica: the claim as first written, none of the change.
        await client.set(name, claim, keepttl=True)
        await client.delete(sub_key("acme", "s2"))
        await client.zrem(subs_key("acme"), "s2")
        return answer

    try:
        with pytest.raises(StoreUnavailable, match="lost with a failed Redis master"):
            await service.idempotent(ACME, "k-lost", "fp", lost_in_failover)
        assert await client.get(name) is None  # released: the retry runs
        assert await service.idempotent(ACME, "k-lost", "fp", create) == b"s2"
        assert await client.exists(sub_key("acme", "s2"))
    finally:
        await client.aclose()


async def test_a_response_is_recorded_once_redis_is_back_from_a_crash(
    fsync_always: RedisServer,
) -> None:
    """The master dies after the change and before the response is recorded: the record
    waits for Redis (the change and its mark are on disk), and the retry replays."""
    client, service = await _acme(fsync_always)
    create = _create(service, "s3")

    async def crash_after_change() -> bytes:
        answer = await create()
        fsync_always.kill()
        asyncio.get_running_loop().call_later(1.0, fsync_always.start)
        return answer

    try:
        assert await service.idempotent(ACME, "k-crash", "fp", crash_after_change) == b"s3"
        ran: list[str] = []

        async def must_not_run() -> bytes:
            ran.append("again")
            return b""

        assert await service.idempotent(ACME, "k-crash", "fp", must_not_run) == b"s3"
        assert ran == []
    finally:
        await client.aclose()
