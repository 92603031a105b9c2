"""Every method of every gRPC service, called without a key, with a bad or revoked key,
and with keys of roles that may not use it: refused, and nothing in Redis changed.

The methods are read from the generated service descriptors, so a method added later is
in this suite without anyone remembering to add it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import symbol_database
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from cdn_ctl.server import create_server as create_cdn
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing, SigningKey
from epg.owners import OwnersSettings
from epg.server import create_server as create_epg
from epg.settings import EpgSettings
from headend.auth import CONFINED, KeyStore, Principal
from headend.rpc import RpcServer, RpcSettings, bearer, client_channel
from protos import (
    alerts_pb2,
    cdn_pb2,
    cues_pb2,
    epg_pb2,
    keys_pb2,
    reports_pb2,
    subscriber_pb2,
    transcode_pb2,
)
from subscriber.server import create_server as create_subscriber
from subscriber.settings import SubscriberSettings
from transcode.archive import ArchiveIndex
from transcode.live import LiveManager
from transcode.server import create_server as create_transcode
from transcode.settings import ControlSettings, QueueSettings

SERVICES: tuple[ServiceDescriptor, ...] = (
    epg_pb2.DESCRIPTOR.services_by_name["EpgService"],
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"],
    cues_pb2.DESCRIPTOR.services_by_name["CueService"],
    subscriber_pb2.DESCRIPTOR.services_by_name["SubscriberService"],
    keys_pb2.DESCRIPTOR.services_by_name["KeyService"],
    reports_pb2.DESCRIPTOR.services_by_name["ViewingReportService"],
    transcode_pb2.DESCRIPTOR.services_by_name["TranscodeService"],
    cdn_pb2.DESCRIPTOR.services_by_name["CdnControlService"],
)
# Methods anyone may call: a box proves its device secret in the request itself.
PUBLIC = {"/headend.subscriber.v1.SubscriberService/DeviceLogin"}
# Who may call what, beyond the admin: everything else must be refused to these roles.
OUTSIDERS = (
    Principal("playback"),
    Principal("carrier", "nobody"),
    Principal("broadcaster", "nobody"),
)


def _methods() -> Iterator[tuple[str, MethodDescriptor]]:
    for service in SERVICES:
        for method in service.methods:
            yield f"/{service.full_name}/{method.name}", method


METHODS = [pytest.param(path, method, id=path.rsplit(".", 1)[-1]) for path, method in _methods()]


@dataclass
class Servers:
    """Every gRPC server on port 0, over one Redis."""

    targets: dict[str, str]
    redis: aioredis.Redis
    keys: KeyStore


@pytest.fixture
async def servers(redis: aioredis.Redis, keys: KeyStore, tmp_path: Path) -> AsyncIterator[Servers]:
    started: list[RpcServer] = []
    epg, epg_port = await create_epg(EpgSettings(rpc=RpcSettings(port=0)), redis=redis, keys=keys)
    started.append(epg)
    # Subscriber and transcode ask this EPG which channels a broadcaster owns.
    owners = OwnersSettings(target=f"127.0.0.1:{epg_port}")
    sub, sub_port = await create_subscriber(
        SubscriberSettings(rpc=RpcSettings(port=0), owners=owners), redis=redis, keys=keys
    )
    started.append(sub)
    origin = tmp_path / "origin"
    manager = LiveManager(redis=redis, archive=ArchiveIndex(redis), origin_root=origin)
    control = ControlSettings(
        rpc=RpcSettings(port=0), redis_url="unused://", origin_root=origin,
        queue=QueueSettings(), owners=owners,
    )  # fmt: skip
    tc, tc_port = await create_transcode(control, redis=redis, keys=keys, channels=manager)
    started.append(tc)
    ring = KeyRing((SigningKey("k1", b"grpc-methods-secret-0123"),), "k1")
    cdn, cdn_port = await create_cdn(
        CdnSettings(rpc=RpcSettings(port=0), keys=ring), redis=redis, keys=keys
    )
    started.append(cdn)
    ports = {
        "headend.epg.v1.EpgService": epg_port,
        "headend.alerts.v1.AlertService": epg_port,
        "headend.cues.v1.CueService": epg_port,
        "headend.subscriber.v1.SubscriberService": sub_port,
        "headend.keys.v1.KeyService": sub_port,
        "headend.reports.v1.ViewingReportService": sub_port,
        "headend.transcode.v1.TranscodeService": tc_port,
        "headend.cdn.v1.CdnControlService": cdn_port,
    }
    try:
        yield Servers({n: f"127.0.0.1:{p}" for n, p in ports.items()}, redis, keys)
    finally:
        await manager.close()
        for server in started:
            await server.stop(0)


async def _snapshot(redis: aioredis.Redis) -> dict[Any, Any]:
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


async def _call(
    servers: Servers, path: str, method: MethodDescriptor, metadata: Any
) -> grpc.StatusCode:
    service = path.split("/")[1]
    request_type = symbol_database.Default().GetSymbol(method.input_type.full_name)
    response_type = symbol_database.Default().GetSymbol(method.output_type.full_name)
    kwargs = {
        "request_serializer": request_type.SerializeToString,
        "response_deserializer": response_type.FromString,
    }
    async with client_channel(servers.targets[service]) as channel:
        try:
            if method.client_streaming:
                call = (
                    channel.stream_stream(path, **kwargs)
                    if method.server_streaming
                    else channel.stream_unary(path, **kwargs)
                )
                result = call(iter([request_type()]), metadata=metadata, timeout=5)
            else:
                call = (
                    channel.unary_stream(path, **kwargs)
                    if method.server_streaming
                    else channel.unary_unary(path, **kwargs)
                )
                result = call(request_type(), metadata=metadata, timeout=5)
            if method.server_streaming:
                async for _ in result:
                    break
                result.cancel()
            else:
                await result
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("path", "method"), METHODS)
async def test_every_method_wants_a_valid_key(
    servers: Servers, path: str, method: MethodDescriptor
) -> None:
    if path in PUBLIC:
        pytest.skip("public by design: the device secret is in the request")
    info, revoked = await servers.keys.create(Principal("carrier", "acme"))
    await servers.keys.revoke(info.key_id)
    before = await _snapshot(servers.redis)
    for metadata in (
        None,
        bearer("hk_0000000000000000_" + "x" * 43),
        bearer("not-a-key"),
        (("authorization", "Basic YWRtaW46YWRtaW4="),),
        bearer(revoked),
    ):
        assert await _call(servers, path, method, metadata) is grpc.StatusCode.UNAUTHENTICATED
    assert await _snapshot(servers.redis) == before


# What an outsider may legitimately do with an empty request: read its own scope.
_READS = {
    "EpgService": {
        "ListChannels", "NowNext", "ListProgrammes", "Grid", "Search", "ListGaps", "GetChannel",
        "GetProgramme", "ExportXmltv", "WatchChanges", "ListGuideStatus",
    },
    "KeyService": {"WhoAmI"},
    # The platform's package catalogue is what carriers sell from; a carrier counts its own
    # subscribers.
    "SubscriberService": {"ListPackages", "CountSubscribers"},
    # A carrier reads its own boxes' figures, a broadcaster its channels' (the admin
    # everyone's).
    "ViewingReportService": {"QueryViewing", "CountViewers"},
    # A broadcaster lists its own channels' live state (those the EPG says it owns); the
    # front doors (playback) read the channels' multicast groups and live outputs.
    "TranscodeService": {"ListChannels", "ListMulticastOutputs", "ListLiveOutputs"},
    # The front doors (playback) follow the alerts.
    "AlertService": {"ListAlerts"},
}  # fmt: skip


@pytest.mark.parametrize(("path", "method"), METHODS)
async def test_outsiders_change_nothing(
    servers: Servers, path: str, method: MethodDescriptor
) -> None:
    service, name = path.split("/")[1].rsplit(".", 1)[-1], method.name
    for principal in OUTSIDERS:
        _, token = await servers.keys.create(principal)
        before = await _snapshot(servers.redis)
        code = await _call(servers, path, method, bearer(token))
        after = await _snapshot(servers.redis)
        # Keys themselves live in Redis: the one just made is the only change allowed.
        assert after == before, (path, principal)
        assert code is not grpc.StatusCode.UNKNOWN, (path, principal)
        if code is grpc.StatusCode.OK:
            readable = name in _READS.get(service, set()) or path in PUBLIC
            assert readable, f"{principal} got OK from {path}"


@pytest.mark.parametrize(("path", "method"), METHODS)
async def test_an_emergency_key_calls_only_alert_service(
    servers: Servers, path: str, method: MethodDescriptor
) -> None:
    if path in PUBLIC:
        pytest.skip("public by design: the device secret is in the request")
    _, token = await servers.keys.create(Principal("emergency", "gd-eb"))
    before = await _snapshot(servers.redis)
    code = await _call(servers, path, method, bearer(token))
    if path in CONFINED["emergency"]:
        # Its own methods: an empty request is refused for its input, or read.
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (path, code)
    else:
        assert code is grpc.StatusCode.PERMISSION_DENIED, (path, code)
    assert await _snapshot(servers.redis) == before
