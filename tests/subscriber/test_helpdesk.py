"""The helpdesk's view of one box (``ListDeviceEvents``) and the playback metrics, through
a real server on port 0 and real Redis: every login, decision and lease recorded with why,
newest first, capped; a carrier finds only its own boxes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask

from headend.auth import KeyStore
from headend.rpc import RpcServer
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.domain.helpdesk import DEVICE_EVENTS_KEPT, DEVICE_EVENTS_TTL_SECONDS
from subscriber.server import create_server
from subscriber.store.codec import events_key
from tests.support.subscriber import (
    ALICE_MAC,
    Api,
    ManualClock,
    device_name,
    lease_settings,
    seed_world,
)
from tests.support.tokens import Tokens

ACME, BETA = "carrier:acme", "carrier:beta"
SECOND_MAC = "aa:bb:cc:00:00:02"
ANY = device_name("-", ALICE_MAC)


async def events(
    api: Api, parent: str = ANY, as_: str = ACME, size: int = 0
) -> pb.ListDeviceEventsResponse:
    return await api.call(
        "ListDeviceEvents", pb.ListDeviceEventsRequest(parent=parent, page_size=size), as_
    )


def summary(reply: pb.ListDeviceEventsResponse) -> list[tuple[int, str, bool, int, str]]:
    return [(e.kind, e.channel_id, e.allowed, e.reason, e.detail) for e in reply.events]


async def second_box(world: Api) -> str:
    """A second activated box on alice's account; returns its secret."""
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac=SECOND_MAC),
        as_=ACME,
    )
    reply = await world.call(
        "ActivateDevice", pb.ActivateDeviceRequest(name=device_name("acme", SECOND_MAC)), as_=ACME
    )
    return str(reply.device_secret)


async def test_every_request_of_a_box_is_listed_newest_first_with_why(world: Api) -> None:
    secret: str = world.alice_secret  # type: ignore[attr-defined]
    await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=secret))
    world.clock.advance(1)
    with pytest.raises(grpc.aio.AioRpcError):
        await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret="guess"))
    world.clock.advance(1)
    await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), "playback"
    )
    await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv5"), "playback"
    )
    err = await world.fails(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv5"), "playback"
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    lease = await world.call(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv1"), "playback"
    )
    reply = await events(world)
    assert reply.device == device_name("acme", ALICE_MAC)
    assert [s.lease_id for s in reply.active_sessions] == [lease.lease_id]
    assert reply.active_sessions[0].max_streams == 2
    await world.call(
        "EndSession", pb.EndSessionRequest(mac=ALICE_MAC, lease_id=lease.lease_id), "playback"
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await world.call(
            "EndSession",
            pb.EndSessionRequest(mac=ALICE_MAC, lease_id="0123456789abcdef"),
            "playback",
        )
    reply = await events(world)
    assert summary(reply) == [
        (pb.DEVICE_EVENT_KIND_END_SESSION, "", False, pb.DENY_REASON_UNSPECIFIED,
         "no live lease with that id for this box"),
        (pb.DEVICE_EVENT_KIND_END_SESSION, "cctv1", True, pb.DENY_REASON_NONE, ""),
        (pb.DEVICE_EVENT_KIND_START_SESSION, "cctv1", True, pb.DENY_REASON_NONE, ""),
        (pb.DEVICE_EVENT_KIND_START_SESSION, "cctv5", False, pb.DENY_REASON_NOT_ENTITLED,
         "no entitled package carries the channel"),
        (pb.DEVICE_EVENT_KIND_AUTHORIZE, "cctv5", False, pb.DENY_REASON_NOT_ENTITLED,
         "no entitled package carries the channel"),
        (pb.DEVICE_EVENT_KIND_AUTHORIZE, "cctv1", True, pb.DENY_REASON_NONE, ""),
        (pb.DEVICE_EVENT_KIND_LOGIN, "", False, pb.DENY_REASON_UNSPECIFIED,
         "wrong or missing device secret"),
        (pb.DEVICE_EVENT_KIND_LOGIN, "", True, pb.DENY_REASON_NONE, ""),
    ]  # fmt: skip
    assert reply.events[1].lease_id == reply.events[2].lease_id == lease.lease_id
    times = [e.time.seconds for e in reply.events]
    assert times == sorted(times, reverse=True)
    assert times[0] - times[-1] == 2
    assert not reply.active_sessions  # ended: no longer live


async def test_the_stream_limit_names_the_boxes_holding_the_streams(world: Api) -> None:
    await second_box(world)
    sub = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice")
    )
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(name=sub.name, max_streams=1),
            update_mask=FieldMask(paths=["max_streams"]),
            expected_version=sub.version,
        ),
    )
    held = await world.call(
        "StartSession", pb.StartSessionRequest(mac=SECOND_MAC, channel_id="cctv1"), "playback"
    )
    err = await world.fails(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv2"), "playback"
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reply = await events(world, as_="admin")
    refused = reply.events[0]
    assert (refused.kind, refused.allowed, refused.reason) == (
        pb.DEVICE_EVENT_KIND_START_SESSION, False, pb.DENY_REASON_UNSPECIFIED,
    )  # fmt: skip
    assert refused.detail == f"stream limit 1 reached ({SECOND_MAC})"
    # The subscriber's live leases, whichever box holds them.
    assert [(s.lease_id, s.mac, s.active_leases) for s in reply.active_sessions] == [
        (held.lease_id, SECOND_MAC, 1)
    ]


async def test_a_blocked_box_logs_in_refused_and_says_so(world: Api) -> None:
    await world.call(
        "BlockDevice",
        pb.BlockDeviceRequest(name=device_name("acme", ALICE_MAC), blocked=True),
        as_=ACME,
    )
    secret: str = world.alice_secret  # type: ignore[attr-defined]
    login = await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=secret))
    assert login.deny_reason == pb.DENY_REASON_DEVICE_BLOCKED
    [event] = (await events(world)).events
    assert (event.kind, event.allowed, event.reason, event.detail) == (
        pb.DEVICE_EVENT_KIND_LOGIN, False, pb.DENY_REASON_DEVICE_BLOCKED, "the box is blocked",
    )  # fmt: skip


async def test_a_box_keeps_its_latest_events_for_a_week(world: Api) -> None:
    for i in range(DEVICE_EVENTS_KEPT + 5):
        await world.call(
            "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id=f"ch{i}"), "playback"
        )
    key = events_key("acme", ALICE_MAC)
    assert await world.redis.llen(key) == DEVICE_EVENTS_KEPT
    assert 0 < await world.redis.ttl(key) <= DEVICE_EVENTS_TTL_SECONDS
    assert len((await events(world)).events) == 50  # the default page
    reply = await events(world, size=1000)  # capped at what a box keeps
    assert len(reply.events) == DEVICE_EVENTS_KEPT
    assert reply.events[0].channel_id == f"ch{DEVICE_EVENTS_KEPT + 4}"
    assert reply.events[-1].channel_id == "ch5"


async def test_events_older_than_a_week_are_not_shown(world: Api) -> None:
    playback = "playback"
    await world.call("Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="old"), playback)
    world.clock.advance(DEVICE_EVENTS_TTL_SECONDS - 1)
    await world.call("Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="new"), playback)
    assert [e.channel_id for e in (await events(world)).events] == ["new", "old"]
    world.clock.advance(2)
    assert [e.channel_id for e in (await events(world)).events] == ["new"]


async def test_a_carrier_finds_only_its_own_boxes(world: Api) -> None:
    await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), "playback"
    )
    # By name and through the MAC index, for acme and the admin alike.
    for parent, as_ in ((ANY, ACME), (device_name("acme", ALICE_MAC), ACME), (ANY, "admin")):
        assert len((await events(world, parent, as_)).events) == 1
    # Beta: acme's box and a box that exists nowhere are the same NOT_FOUND.
    ghost = device_name("-", "aa:bb:cc:0f:0f:0f")
    found = await world.fails("ListDeviceEvents", pb.ListDeviceEventsRequest(parent=ANY), BETA)
    missing = await world.fails("ListDeviceEvents", pb.ListDeviceEventsRequest(parent=ghost), BETA)
    assert found.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert found.details() == missing.details()
    # Naming acme is refused before anything is read; the playback role reads no history.
    named = pb.ListDeviceEventsRequest(parent=device_name("acme", ALICE_MAC))
    for as_ in (BETA, "playback", "broadcaster:cctv"):
        err = await world.fails("ListDeviceEvents", named, as_)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, as_
    for as_ in ("playback", "broadcaster:cctv"):
        err = await world.fails("ListDeviceEvents", pb.ListDeviceEventsRequest(parent=ANY), as_)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, as_


async def test_another_carriers_probe_leaves_no_event_on_the_box(world: Api) -> None:
    probe = await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), BETA
    )
    assert probe.reason == pb.DENY_REASON_UNKNOWN_DEVICE
    assert not (await events(world)).events
    await world.call("Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), ACME)
    assert len((await events(world)).events) == 1


@pytest.mark.parametrize(
    ("parent", "size", "field"),
    [
        pytest.param("", 0, "parent", id="empty"),
        pytest.param("carriers/acme/devices/AA:BB:CC:00:00:01", 0, "parent", id="colons"),
        pytest.param("carriers/acme/subscribers/alice", 0, "parent", id="subscriber"),
        pytest.param("carriers/Acme!/devices/aabbcc000001", 0, "carrier_id", id="carrier"),
        pytest.param(ANY, -1, "page_size", id="negative-page"),
    ],
)
async def test_bad_requests_are_refused_naming_the_field(
    world: Api, parent: str, size: int, field: str
) -> None:
    err = await world.fails(
        "ListDeviceEvents", pb.ListDeviceEventsRequest(parent=parent, page_size=size)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.details() or "")


async def test_an_unbound_box_keeps_its_history_by_name(world: Api) -> None:
    await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), "playback"
    )
    await world.call(
        "UnbindDevice", pb.UnbindDeviceRequest(name=device_name("acme", ALICE_MAC)), as_=ACME
    )
    reply = await events(world, device_name("acme", ALICE_MAC))
    assert len(reply.events) == 1
    assert not reply.active_sessions
    # The MAC index no longer names it: the admin's wildcard finds nothing.
    err = await world.fails("ListDeviceEvents", pb.ListDeviceEventsRequest(parent=ANY))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- metrics ----------------------------------------------------------------------------------


@pytest.fixture
async def served(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> AsyncIterator[tuple[RpcServer, Api]]:
    """The seeded world on a server whose metrics registry the test reads."""
    server, port = await create_server(lease_settings(), redis=redis, keys=keys)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    api = Api(pb_grpc.SubscriberServiceStub(channel), channel, tokens, ManualClock(), redis, port)
    try:
        await seed_world(api)
        yield server, api
    finally:
        await channel.close()
        await server.stop(0)


async def test_logins_decisions_and_leases_are_counted_by_outcome(
    served: tuple[RpcServer, Api],
) -> None:
    server, api = served
    registry = server.metrics.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    # Every outcome exists before it happens (an alert's rate needs the series).
    assert (
        registry.get_sample_value("subscriber_device_logins_total", {"outcome": "bad_secret"}) == 0
    )
    secret: str = api.alice_secret  # type: ignore[attr-defined]
    await api.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=secret))
    for mac in (ALICE_MAC, "aa:bb:cc:0f:0f:0f"):
        with pytest.raises(grpc.aio.AioRpcError):
            await api.stub.DeviceLogin(pb.DeviceLoginRequest(mac=mac, device_secret="guess"))
    for channel in ("cctv1", "cctv1", "cctv5"):
        await api.call(
            "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id=channel), "playback"
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await api.call(
            "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv5"), "playback"
        )
    await api.call(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv1"), "playback"
    )
    logins = "subscriber_device_logins_total"
    assert value(logins, outcome="allowed") == 1
    assert value(logins, outcome="bad_secret") == 1
    assert value(logins, outcome="unknown_device") == 1
    decisions = "subscriber_authorize_decisions_total"
    assert value(decisions, reason="allowed") == 2
    assert value(decisions, reason="not_entitled") == 1
    starts = "subscriber_lease_starts_total"
    assert (value(starts, outcome="allowed"), value(starts, outcome="not_entitled")) == (1, 1)
