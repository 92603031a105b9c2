"""A real SubscriberService on gRPC port 0, a manual clock, and a seeded world to test against."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber import convert
from subscriber.domain import normalize_mac
from subscriber.errors import InvalidField
from subscriber.server import create_server
from subscriber.settings import SubscriberSettings
from subscriber.store.codec import is_record_key
from tests.support.tokens import Tokens

START = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ALICE_MAC = "aa:bb:cc:00:00:01"


def device_name(carrier: str, mac: str) -> str:
    """A box's resource name from a MAC in any notation (a malformed one kept as it is,
    for the tests of refusals)."""
    with contextlib.suppress(InvalidField):
        mac = normalize_mac(mac)
    return convert.device_name(carrier, mac)


class ManualClock:
    """A clock the test moves by hand, so lease expiry needs no sleeping."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Api:
    """A client on the test server; ``call`` runs one RPC as a principal (default admin)."""

    stub: pb_grpc.SubscriberServiceStub
    channel: grpc.aio.Channel
    tokens: Tokens
    clock: ManualClock
    redis: Any  # replies are bytes (no decode_responses)
    port: int

    async def call(self, method: str, request: Any, as_: str = "admin") -> Any:
        token = await self.tokens(as_)
        return await getattr(self.stub, method)(request, metadata=bearer(token))

    async def fails(self, method: str, request: Any, as_: str = "admin") -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.call(method, request, as_)
        return info.value

    async def snapshot(self, pattern: str = "sub:*") -> dict[bytes, Any]:
        """Every key matching ``pattern`` with its value (a refused request changes none),
        but the helpdesk's records of requests, which every request may add to; SCAN, not
        KEYS, so a cluster answers from every master."""
        found: dict[bytes, Any] = {}
        keys = {k async for k in self.redis.scan_iter(match=pattern, count=1000)}
        for key in sorted(k for k in keys if not is_record_key(k)):
            kind = (await self.redis.type(key)).decode()
            if kind == "hash":
                found[key] = await self.redis.hgetall(key)
            elif kind == "string":
                found[key] = await self.redis.get(key)
            elif kind == "set":
                found[key] = await self.redis.smembers(key)
            elif kind == "zset":
                found[key] = await self.redis.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                found[key] = await self.redis.xlen(key)
        return found


def lease_settings() -> SubscriberSettings:
    """Small, readable lease numbers."""
    return SubscriberSettings(
        lease_ttl_seconds=30, lease_grace_seconds=5, default_max_streams=2, import_batch_rows=50
    )


@asynccontextmanager
async def serve(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    clock: ManualClock,
    settings: SubscriberSettings,
) -> AsyncIterator[Api]:
    """The service on a real gRPC server bound to port 0, stopped on exit."""
    server, port = await create_server(settings, redis=redis, keys=keys, clock=clock)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Api(pb_grpc.SubscriberServiceStub(channel), channel, tokens, clock, redis, port)
    finally:
        await channel.close()
        await server.stop(0)


async def seed_world(api: Api) -> Api:
    """Carriers acme (telecom) and beta (cable); packages basic and sports; acme's alice with an
    activated box entitled to basic; beta's bob."""
    for carrier, network in (("acme", pb.NETWORK_TYPE_TELECOM), ("beta", pb.NETWORK_TYPE_CABLE)):
        await api.call(
            "CreateCarrier",
            pb.CreateCarrierRequest(
                carrier_id=carrier,
                carrier=pb.Carrier(display_name=carrier.title(), network_type=network),
            ),
        )
    for package, channels in (("basic", ["cctv1", "cctv2"]), ("sports", ["cctv5"])):
        await api.call(
            "DefinePackage",
            pb.DefinePackageRequest(
                package=pb.Package(
                    name=f"packages/{package}", display_name=package, channel_ids=channels
                )
            ),
        )
    for carrier, sid in (("acme", "alice"), ("beta", "bob")):
        await api.call(
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent=f"carriers/{carrier}",
                subscriber_id=sid,
                subscriber=pb.Subscriber(display_name=sid.title(), region_code="440305"),
            ),
            as_=f"carrier:{carrier}",
        )
    await api.call(
        "BindDevice",
        pb.BindDeviceRequest(
            parent="carriers/acme/subscribers/alice", mac=ALICE_MAC, serial="SN1", model="B860"
        ),
        as_="carrier:acme",
    )
    reply = await api.call(
        "ActivateDevice",
        pb.ActivateDeviceRequest(name=device_name("acme", ALICE_MAC)),
        as_="carrier:acme",
    )
    api.alice_secret = reply.device_secret  # type: ignore[attr-defined]
    await api.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/acme/subscribers/alice", package_id="basic"),
        as_="carrier:acme",
    )
    return api
