"""``ListMulticastOutputs`` and ``ListLiveOutputs`` on a real transcode server (channels
kept in Redis as a farm's control plane keeps them): who may call them, paging, what they
hold (never a source), the client's domain values, and the REST routes the gateway serves
them on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rest import route_table
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from tests.support.rest import rest_face
from tests.support.tokens import Tokens
from transcode.client import TranscodeClient
from transcode.domain import Multicast, MulticastProtocol
from transcode.farm import ChannelIntents
from transcode.jobs import PackageFormat
from transcode.outputs import LiveOutput, MulticastOutput
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings

SOURCE = "udp://239.9.9.9:5000"
NEWS = MulticastOutput("news1.cn", Multicast("239.1.1.1", 5000, regions=("110000",)), True)
SPORT = MulticastOutput(
    "sport.cn",
    Multicast("239.1.1.2", 5002, protocol=MulticastProtocol.UDP, ttl=4, regions=("440305",)),
    False,
)


@dataclass
class Rig:
    target: str
    stub: pb_grpc.TranscodeServiceStub
    tokens: Tokens
    admin: tuple[tuple[str, str], ...]


def _channel(channel_id: str, multicast: Multicast | None) -> pb.Channel:
    message = pb.Channel(name=f"channels/{channel_id}", source=SOURCE)
    if multicast is not None:
        message.multicast.CopyFrom(
            pb.Multicast(
                group=multicast.group,
                port=multicast.port,
                protocol=pb.Multicast.PROTOCOL_UDP
                if multicast.protocol is MulticastProtocol.UDP
                else pb.Multicast.PROTOCOL_RTP,
                ttl=multicast.ttl,
                regions=list(multicast.regions),
            )
        )
    return message


@pytest.fixture
async def rig(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, tmp_path: Path
) -> AsyncIterator[Rig]:
    """News (multicast, started), a plain channel published as CMAF too, and sport
    (multicast, stopped)."""
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path / "origin",
        queue=QueueSettings(),
    )
    channels = ChannelIntents(redis, stop_wait_seconds=0.2)
    server, port = await create_server(settings, redis=redis, keys=keys, channels=channels)
    channel = client_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.TranscodeServiceStub(channel)
    admin = bearer(await tokens())
    try:
        for channel_id, multicast in (
            (NEWS.channel, NEWS.multicast),
            ("plain.cn", None),
            (SPORT.channel, SPORT.multicast),
        ):
            message = _channel(channel_id, multicast)
            if channel_id == "plain.cn":
                message.formats.append(pb.PACKAGE_FORMAT_CMAF)
            await stub.StartChannel(pb.StartChannelRequest(channel=message), metadata=admin)
        await stub.StopChannel(pb.StopChannelRequest(name="channels/sport.cn"), metadata=admin)
        yield Rig(f"127.0.0.1:{port}", stub, tokens, admin)
    finally:
        await channel.close()
        await server.stop(0)


@pytest.mark.parametrize("who", [pytest.param("admin", id="admin"),
                                 pytest.param("playback", id="playback")])  # fmt: skip
async def test_admin_and_front_doors_read_every_multicast_output_and_no_source(
    rig: Rig, who: str
) -> None:
    reply = await rig.stub.ListMulticastOutputs(
        pb.ListMulticastOutputsRequest(), metadata=bearer(await rig.tokens(who))
    )
    assert [(o.channel, o.multicast.group, o.multicast.port, o.running) for o in reply.outputs] == [
        ("news1.cn", "239.1.1.1", 5000, True),
        ("sport.cn", "239.1.1.2", 5002, False),
    ]
    assert list(reply.outputs[0].multicast.regions) == ["110000"]
    assert reply.outputs[1].multicast.protocol == pb.Multicast.PROTOCOL_UDP
    assert reply.next_page_token == ""
    assert SOURCE.encode() not in reply.SerializeToString()


@pytest.mark.parametrize(
    "who",
    [
        pytest.param("carrier:acme", id="carrier"),
        pytest.param("broadcaster:demo", id="broadcaster"),
        pytest.param("device:020000000001", id="device"),
        pytest.param("emergency:bj-eb", id="emergency"),
    ],
)
@pytest.mark.parametrize("rpc", ["ListMulticastOutputs", "ListLiveOutputs"])
async def test_other_roles_are_denied(rig: Rig, who: str, rpc: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, rpc)(_request(rpc), metadata=bearer(await rig.tokens(who)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("rpc", ["ListMulticastOutputs", "ListLiveOutputs"])
async def test_no_key_is_unauthenticated(rig: Rig, rpc: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, rpc)(_request(rpc))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _request(rpc: str, **fields: object) -> object:
    return getattr(pb, f"{rpc}Request")(**fields)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"page_size": -1}, "page_size", id="negative"),
        pytest.param({"page_token": "nope"}, "page_token", id="token"),
    ],
)
@pytest.mark.parametrize("rpc", ["ListMulticastOutputs", "ListLiveOutputs"])
async def test_bad_pages_are_invalid_argument_on_their_field(
    rig: Rig, fields: dict[str, object], field: str, rpc: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, rpc)(_request(rpc, **fields), metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields


async def test_pages_follow_channel_ids(rig: Rig) -> None:
    first = await rig.stub.ListMulticastOutputs(
        pb.ListMulticastOutputsRequest(page_size=1), metadata=rig.admin
    )
    assert [o.channel for o in first.outputs] == ["news1.cn"]
    second = await rig.stub.ListMulticastOutputs(
        pb.ListMulticastOutputsRequest(page_size=1000, page_token=first.next_page_token),
        metadata=rig.admin,
    )
    assert [o.channel for o in second.outputs] == ["sport.cn"]
    assert second.next_page_token == ""


async def test_the_client_returns_domain_values(rig: Rig) -> None:
    async with TranscodeClient(rig.target, await rig.tokens("playback")) as client:
        assert await client.list_multicast_outputs() == [NEWS, SPORT]
        assert await client.list_multicast_outputs(limit=1) == [NEWS]
    assert NEWS.url == "rtp://@239.1.1.1:5000"
    assert SPORT.url == "udp://@239.1.1.2:5002"


async def test_the_rest_face_serves_it_on_its_http_rule(rig: Rig) -> None:
    route, values = route_table().match("GET", "/v1/multicastOutputs")
    assert (route.method.name, values) == ("ListMulticastOutputs", {})
    async with rest_face({"TRANSCODE_TARGET": rig.target}) as api:
        reply = await api.request(
            "GET", "/v1/multicastOutputs", token=await rig.tokens("playback"),
            params={"pageSize": "1"},
        )  # fmt: skip
        assert reply.status == 200, reply.text
        body = reply.json
        assert [o["channel"] for o in body["outputs"]] == ["news1.cn"]
        assert body["outputs"][0]["multicast"]["group"] == "239.1.1.1"
        assert body["nextPageToken"]
        refused = await api.request(
            "GET", "/v1/multicastOutputs", token=await rig.tokens("carrier:acme")
        )
        assert refused.status == 403, refused.text


# ------------------------------------------------------------------------- live outputs

PLAIN = LiveOutput("plain.cn", None, True, (PackageFormat.CMAF,))


@pytest.mark.parametrize("who", ["admin", "playback"])
async def test_live_outputs_list_every_channel_with_its_packagings_and_no_source(
    rig: Rig, who: str
) -> None:
    reply = await rig.stub.ListLiveOutputs(
        pb.ListLiveOutputsRequest(), metadata=bearer(await rig.tokens(who))
    )
    found = [(o.channel, o.HasField("multicast"), o.running, list(o.formats))
             for o in reply.outputs]  # fmt: skip
    assert found == [
        ("news1.cn", True, True, []),
        ("plain.cn", False, True, [pb.PACKAGE_FORMAT_CMAF]),
        ("sport.cn", True, False, []),
    ]
    assert reply.outputs[0].multicast.group == "239.1.1.1"
    assert SOURCE.encode() not in reply.SerializeToString()


async def test_the_client_returns_live_outputs_as_domain_values(rig: Rig) -> None:
    news = LiveOutput(NEWS.channel, NEWS.multicast, True)
    sport = LiveOutput(SPORT.channel, SPORT.multicast, False)
    async with TranscodeClient(rig.target, await rig.tokens("playback")) as client:
        assert await client.list_live_outputs() == [news, PLAIN, sport]
        assert await client.list_live_outputs(limit=2) == [news, PLAIN]
    assert PLAIN.cmaf
    assert not news.cmaf


async def test_the_rest_face_serves_live_outputs_on_their_http_rule(rig: Rig) -> None:
    route, values = route_table().match("GET", "/v1/liveOutputs")
    assert (route.method.name, values) == ("ListLiveOutputs", {})
    async with rest_face({"TRANSCODE_TARGET": rig.target}) as api:
        reply = await api.request(
            "GET", "/v1/liveOutputs", token=await rig.tokens("playback"), params={"pageSize": "2"}
        )
        assert reply.status == 200, reply.text
        body = reply.json
        assert [o["channel"] for o in body["outputs"]] == ["news1.cn", "plain.cn"]
        assert body["outputs"][1]["formats"] == ["PACKAGE_FORMAT_CMAF"]
        refused = await api.request(
            "GET", "/v1/liveOutputs", token=await rig.tokens("carrier:acme")
        )
        assert refused.status == 403, refused.text
