"""CdnControlService over real gRPC on port 0 with real Redis: registry, masked updates,
drain, paged lists, resource names, denials."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask

from cdn_ctl.domain import EdgeHealth, EdgeTraffic, Health
from cdn_ctl.server import create_server
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend.auth import KeyStore
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from protos import cdn_pb2, cdn_pb2_grpc


def pb_edge(edge_id: str = "v1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "name": f"edges/{edge_id}",
        "region": "110101",
        "tier": cdn_pb2.TIER_EDGE,
        "host": "127.0.0.1",
        "port": 8101,
        "capacity_sessions": 200,
        "capacity_mbps": 1000.0,
        "uplink_mbps": 100.0,
    }
    fields.update(overrides)
    return cdn_pb2.Edge(**fields)


def register(edge_id: str = "v1", **overrides: Any) -> Any:
    return cdn_pb2.RegisterEdgeRequest(edge_id=edge_id, edge=pb_edge(edge_id, **overrides))


@pytest.fixture
async def stub(redis: aioredis.Redis, keys: KeyStore, ring: KeyRing) -> AsyncIterator[Any]:
    settings = CdnSettings(rpc=RpcSettings(port=0), keys=ring)
    server, port = await create_server(settings, redis=redis, keys=keys)
    channel = client_channel(f"127.0.0.1:{port}")
    yield cdn_pb2_grpc.CdnControlServiceStub(channel)
    await channel.close()
    await server.stop(0)


async def test_register_then_list_with_health_and_load(
    stub: Any, tokens: Any, redis: aioredis.Redis
) -> None:
    admin = bearer(await tokens())
    mid = await stub.RegisterEdge(
        register("mid1", tier=cdn_pb2.TIER_MID, region="110100"),
        metadata=admin,
    )
    assert (mid.name, mid.version) == ("edges/mid1", 1)
    await stub.RegisterEdge(register("v1", parent_id="mid1"), metadata=admin)
    store = EdgeStore(redis)
    traffic = EdgeTraffic(cache_hit_ratio=0.9, uplink_mbps_used=12.5, uplink_use=0.125)
    await store.put_health(
        {"v1": EdgeHealth(Health.DEGRADED, 1.0, 1, 5, 42.0, "1 of last 5 probes failed", traffic)}
    )
    await store.publish_leases("replica-a", {"v1": 50}, now=time.time(), ttl_seconds=60)
    listed = await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)
    by_name = {s.edge.name: s for s in listed.edges}
    assert list(by_name) == ["edges/mid1", "edges/v1"]
    v1 = by_name["edges/v1"]
    assert (v1.edge.parent_id, v1.edge.tier, v1.edge.capacity_sessions) == (
        "mid1",
        cdn_pb2.TIER_EDGE,
        200,
    )
    assert (v1.health, v1.failed_probes, v1.probes, v1.active_sessions) == (
        cdn_pb2.HEALTH_STATE_DEGRADED,
        1,
        5,
        50,
    )
    assert v1.load == pytest.approx(0.25)
    assert (v1.cache_hit_ratio, v1.uplink_mbps_used, v1.uplink_use) == (0.9, 12.5, 0.125)
    mid1 = by_name["edges/mid1"]
    assert mid1.health == cdn_pb2.HEALTH_STATE_UNKNOWN
    # Never probed: no traffic measured, which is not a ratio of 0.
    assert (mid1.cache_hit_ratio, mid1.uplink_mbps_used, mid1.uplink_use) == (-1, -1, -1)


@pytest.mark.parametrize(
    ("edge", "field"),
    [
        pytest.param(pb_edge(region="12345"), "region", id="short-region"),
        pytest.param(pb_edge(region="01a101"), "region", id="non-digit-region"),
        pytest.param(pb_edge(region="190101"), "region", id="no-such-province"),
        pytest.param(pb_edge(capacity_sessions=0), "capacity_sessions", id="zero-sessions"),
        pytest.param(pb_edge(capacity_mbps=-1.0), "capacity_mbps", id="negative-mbps"),
        pytest.param(pb_edge(uplink_mbps=0.0), "uplink_mbps", id="zero-uplink"),
        pytest.param(pb_edge(tier=cdn_pb2.TIER_UNSPECIFIED), "tier", id="no-tier"),
        pytest.param(pb_edge("Bad_Id"), "edge_id", id="bad-id"),
        pytest.param(pb_edge(""), "edge_id", id="no-id"),
        pytest.param(pb_edge(port=0), "port", id="no-port"),
        pytest.param(pb_edge(parent_id="v1"), "parent_id", id="own-parent"),
    ],
)
async def test_register_refuses_bad_input_and_stores_nothing(
    stub: Any, tokens: Any, edge: Any, field: str
) -> None:
    admin = bearer(await tokens())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RegisterEdge(
            cdn_pb2.RegisterEdgeRequest(edge_id=edge.name.removeprefix("edges/"), edge=edge),
            metadata=admin,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err.value).fields
    assert error_details(err.value).reason == "INVALID_EDGE"
    assert not (await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)).edges


async def test_register_conflicts(stub: Any, tokens: Any) -> None:
    admin = bearer(await tokens())
    await stub.RegisterEdge(register("v1"), metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as dup:
        await stub.RegisterEdge(register("v1", port=9999), metadata=admin)
    assert dup.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(dup.value).reason == "EDGE_EXISTS"
    with pytest.raises(grpc.aio.AioRpcError) as orphan:
        await stub.RegisterEdge(register("v2", parent_id="nope"), metadata=admin)
    assert orphan.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(orphan.value).reason == "EDGE_CONFLICT"
    with pytest.raises(grpc.aio.AioRpcError) as village_parent:
        await stub.RegisterEdge(register("v3", parent_id="v1"), metadata=admin)
    assert village_parent.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)
    assert [(s.edge.name, s.edge.port) for s in listed.edges] == [("edges/v1", 8101)]


async def test_the_request_edge_id_names_the_edge_not_the_edge_name(stub: Any, tokens: Any) -> None:
    admin = bearer(await tokens())
    request = cdn_pb2.RegisterEdgeRequest(edge_id="v7", edge=pb_edge("ignored"))
    assert (await stub.RegisterEdge(request, metadata=admin)).name == "edges/v7"


async def test_update_and_drain(stub: Any, tokens: Any) -> None:
    admin = bearer(await tokens())
    await stub.RegisterEdge(register("v1"), metadata=admin)
    updated = await stub.UpdateEdge(
        cdn_pb2.UpdateEdgeRequest(edge=pb_edge("v1", capacity_sessions=500), expected_version=1),
        metadata=admin,
    )
    assert (updated.capacity_sessions, updated.version) == (500, 2)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await stub.UpdateEdge(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge("v1", capacity_sessions=1), expected_version=1),
            metadata=admin,
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    drained = await stub.DrainEdge(cdn_pb2.DrainEdgeRequest(name="edges/v1"), metadata=admin)
    assert drained.draining
    assert drained.version == 3
    # An update keeps the draining flag; only DrainEdge(resume) clears it.
    kept = await stub.UpdateEdge(
        cdn_pb2.UpdateEdgeRequest(edge=pb_edge("v1", capacity_sessions=600)), metadata=admin
    )
    assert kept.draining
    assert kept.capacity_sessions == 600
    resumed = await stub.DrainEdge(
        cdn_pb2.DrainEdgeRequest(name="edges/v1", resume=True), metadata=admin
    )
    assert not resumed.draining


def _update_ghost(s: Any, m: Any) -> Any:
    return s.UpdateEdge(cdn_pb2.UpdateEdgeRequest(edge=pb_edge("ghost")), metadata=m)


def _drain_ghost(s: Any, m: Any) -> Any:
    return s.DrainEdge(cdn_pb2.DrainEdgeRequest(name="edges/ghost"), metadata=m)


def _drain_bad_id(s: Any, m: Any) -> Any:
    return s.DrainEdge(cdn_pb2.DrainEdgeRequest(name="edges/Bad Id"), metadata=m)


def _register_empty(s: Any, m: Any) -> Any:
    return s.RegisterEdge(cdn_pb2.RegisterEdgeRequest(), metadata=m)


def _register(s: Any, m: Any) -> Any:
    return s.RegisterEdge(register("x1"), metadata=m)


def _update(s: Any, m: Any) -> Any:
    return s.UpdateEdge(cdn_pb2.UpdateEdgeRequest(edge=pb_edge("v1", port=1)), metadata=m)


def _drain(s: Any, m: Any) -> Any:
    return s.DrainEdge(cdn_pb2.DrainEdgeRequest(name="edges/v1"), metadata=m)


def _list(s: Any, m: Any) -> Any:
    return s.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=m)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        pytest.param(_update_ghost, grpc.StatusCode.NOT_FOUND, id="update-unknown"),
        pytest.param(_drain_ghost, grpc.StatusCode.NOT_FOUND, id="drain-unknown"),
        pytest.param(_drain_bad_id, grpc.StatusCode.INVALID_ARGUMENT, id="drain-bad-id"),
        pytest.param(_register_empty, grpc.StatusCode.INVALID_ARGUMENT, id="register-empty"),
    ],
)
async def test_unknown_and_malformed_edges(
    stub: Any, tokens: Any, call: Any, code: grpc.StatusCode
) -> None:
    admin = bearer(await tokens())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stub, admin)
    assert err.value.code() == code
    assert not (await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)).edges


@pytest.mark.parametrize("principal", ["carrier:acme", "broadcaster:tv1"])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(_register, id="register"),
        pytest.param(_update, id="update"),
        pytest.param(_drain, id="drain"),
        pytest.param(_list, id="list"),
    ],
)
async def test_only_admins_touch_the_cdn(stub: Any, tokens: Any, principal: str, call: Any) -> None:
    admin = bearer(await tokens())
    await stub.RegisterEdge(register("v1"), metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stub, bearer(await tokens(principal)))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anon:
        await call(stub, ())
    assert anon.value.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)
    assert [(s.edge.name, s.edge.port, s.edge.draining) for s in listed.edges] == [
        ("edges/v1", 8101, False)
    ]


async def test_update_changes_only_the_masked_fields(stub: Any, tokens: Any) -> None:
    admin = bearer(await tokens())
    await stub.RegisterEdge(register("mid1", tier=cdn_pb2.TIER_MID), metadata=admin)
    await stub.RegisterEdge(register("v1", parent_id="mid1"), metadata=admin)
    # Only the port is masked: the message's other (zero) fields are not written.
    ported = await stub.UpdateEdge(
        cdn_pb2.UpdateEdgeRequest(
            edge=cdn_pb2.Edge(name="edges/v1", port=9000, region="999999"),
            update_mask=FieldMask(paths=["port"]),
        ),
        metadata=admin,
    )
    assert (ported.port, ported.region, ported.parent_id, ported.version) == (
        9000, "110101", "mid1", 2,
    )  # fmt: skip
    # No mask: the fields set in the message.
    hosted = await stub.UpdateEdge(
        cdn_pb2.UpdateEdgeRequest(edge=cdn_pb2.Edge(name="edges/v1", host="10.0.0.9")),
        metadata=admin,
    )
    assert (hosted.host, hosted.port, hosted.capacity_sessions) == ("10.0.0.9", 9000, 200)
    # A masked empty parent_id moves the edge under the origin.
    orphaned = await stub.UpdateEdge(
        cdn_pb2.UpdateEdgeRequest(
            edge=cdn_pb2.Edge(name="edges/v1"), update_mask=FieldMask(paths=["parent_id"])
        ),
        metadata=admin,
    )
    assert (orphaned.parent_id, orphaned.host, orphaned.version) == ("", "10.0.0.9", 4)
    # Every masked field is validated as the merged edge.
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.UpdateEdge(
            cdn_pb2.UpdateEdgeRequest(
                edge=cdn_pb2.Edge(name="edges/v1", port=9001),
                update_mask=FieldMask(paths=["port", "capacity_sessions"]),
            ),
            metadata=admin,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "capacity_sessions" in error_details(bad.value).fields
    listed = await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)
    assert [(s.edge.name, s.edge.port) for s in listed.edges] == [
        ("edges/mid1", 8101), ("edges/v1", 9000),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge(), update_mask=FieldMask(paths=["version"])),
            "update_mask",
            id="output-only-path",
        ),
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge(), update_mask=FieldMask(paths=["name"])),
            "update_mask",
            id="immutable-path",
        ),
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge(), update_mask=FieldMask(paths=["draining"])),
            "update_mask",
            id="draining-path",
        ),
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge(), update_mask=FieldMask(paths=["nope"])),
            "update_mask",
            id="unknown-path",
        ),
        pytest.param(cdn_pb2.UpdateEdgeRequest(edge=pb_edge("v1/x")), "edge.name", id="deep-name"),
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=cdn_pb2.Edge(name="v1", port=1)), "edge.name", id="bare"
        ),
        pytest.param(
            cdn_pb2.UpdateEdgeRequest(edge=pb_edge("Bad_Id")), "edge.name", id="bad-id-in-name"
        ),
    ],
)
async def test_bad_update_mask_or_name_is_invalid_argument_and_changes_nothing(
    stub: Any, tokens: Any, request_: Any, field: str
) -> None:
    admin = bearer(await tokens())
    await stub.RegisterEdge(register("v1"), metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateEdge(request_, metadata=admin)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err.value).fields
    listed = await stub.ListEdges(cdn_pb2.ListEdgesRequest(), metadata=admin)
    assert [(s.edge.name, s.edge.version) for s in listed.edges] == [("edges/v1", 1)]


@pytest.mark.parametrize(
    "name", ["v1", "edges/", "edges/v1/x", "edge/v1", "edges/BAD", "edges/" + "a" * 64]
)
async def test_drain_refuses_a_bad_name_on_the_name_field(
    stub: Any, tokens: Any, name: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DrainEdge(cdn_pb2.DrainEdgeRequest(name=name), metadata=bearer(await tokens()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error_details(err.value).fields) == ["name"]


async def test_list_edges_pages_by_id(stub: Any, tokens: Any) -> None:
    admin = bearer(await tokens())
    for edge_id in ("v3", "v1", "v2"):
        await stub.RegisterEdge(register(edge_id), metadata=admin)
    first = await stub.ListEdges(cdn_pb2.ListEdgesRequest(page_size=2), metadata=admin)
    await stub.RegisterEdge(register("v0"), metadata=admin)  # sorts before the token
    last = await stub.ListEdges(
        cdn_pb2.ListEdgesRequest(page_size=2, page_token=first.next_page_token), metadata=admin
    )
    assert [s.edge.name for s in first.edges] == ["edges/v1", "edges/v2"]
    assert ([s.edge.name for s in last.edges], last.next_page_token) == (["edges/v3"], "")
    for request_, field in [
        (cdn_pb2.ListEdgesRequest(page_size=-1), "page_size"),
        (cdn_pb2.ListEdgesRequest(page_token="not-a-token"), "page_token"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListEdges(request_, metadata=admin)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in error_details(err.value).fields


async def test_unknown_edge_reason_is_upper_snake(stub: Any, tokens: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _drain_ghost(stub, bearer(await tokens()))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value).reason == "EDGE_NOT_FOUND"
