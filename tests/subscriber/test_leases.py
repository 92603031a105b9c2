"""Concurrency leases: the stream limit, channel-switch grace, heartbeat and TTL expiry.

The service reads a manual clock and the lease script compares against the
time it is given, so expiry is exercised by moving the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from headend.rpc import error_details
from protos import subscriber_pb2 as pb
from tests.subscriber.conftest import ALICE_MAC, Api

BOX2, BOX3 = "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"


@pytest.fixture
async def boxes(world: Api) -> Api:
    """alice (limit 2, entitled to basic) with three boxes."""
    for mac in (BOX2, BOX3):
        await world.call(
            "BindDevice",
            pb.BindDeviceRequest(carrier_id="acme", subscriber_id="alice", mac=mac),
            as_="carrier:acme",
        )
    return world


async def start(api: Api, mac: str, channel: str = "cctv1") -> pb.Session:
    return await api.call("StartSession", pb.StartSessionRequest(mac=mac, channel_id=channel))


async def refused(api: Api, mac: str) -> grpc.aio.AioRpcError:
    return await api.fails("StartSession", pb.StartSessionRequest(mac=mac, channel_id="cctv1"))


async def test_over_the_limit_names_the_limit_and_the_holders(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    two = await start(boxes, BOX2)
    assert (one.active_sessions, two.active_sessions, two.max_streams) == (1, 2, 2)
    err = await refused(boxes, BOX3)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    meta = error_details(err).metadata
    assert meta["limit"] == "2"
    assert set(meta["sessions"].split(",")) == {one.session_id, two.session_id}
    assert set(meta["devices"].split(",")) == {ALICE_MAC, BOX2}


async def test_channel_switch_on_the_same_box_reuses_its_slot(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    await start(boxes, BOX2)
    switched = await start(boxes, ALICE_MAC, "cctv2")
    assert (switched.reused, switched.session_id, switched.active_sessions) == (
        True,
        one.session_id,
        2,
    )
    assert switched.channel_id == "cctv2"


async def test_ended_slot_is_kept_for_its_box_during_grace_then_freed(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    await start(boxes, BOX2)
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, session_id=one.session_id))
    boxes.clock.advance(4)  # inside the 5 s grace: the switching box keeps its slot
    assert (await refused(boxes, BOX3)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    back = await start(boxes, ALICE_MAC, "cctv2")
    assert back.reused
    assert back.session_id == one.session_id
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, session_id=one.session_id))
    boxes.clock.advance(5.001)  # grace over: the slot is anyone's
    third = await start(boxes, BOX3)
    assert not third.reused
    assert third.active_sessions == 2


async def test_leases_that_stop_heartbeating_expire(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    two = await start(boxes, BOX2)
    boxes.clock.advance(20)
    beat = await boxes.call(
        "Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, session_id=one.session_id)
    )
    assert beat.expires_at.ToDatetime().timestamp() == pytest.approx(
        boxes.clock.now.timestamp() + 30
    )
    boxes.clock.advance(20)  # box2 missed its TTL (30 s); box1 beat 20 s ago
    third = await start(boxes, BOX3)
    assert third.active_sessions == 2
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=BOX2, session_id=two.session_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_heartbeat_after_end_or_from_another_box_is_refused(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=BOX2, session_id=one.session_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, session_id=one.session_id))
    err = await boxes.fails(
        "Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, session_id=one.session_id)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_denied_playback_takes_no_slot(boxes: Api) -> None:
    err = await boxes.fails(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv5")
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err).metadata["reason"] == "NOT_ENTITLED"
    assert await boxes.redis.keys("sub:acme:lease*") == []


async def test_concurrent_starts_never_exceed_the_limit(boxes: Api) -> None:
    macs = [f"aa:bb:cc:00:01:{i:02x}" for i in range(6)]
    for mac in macs:
        await boxes.call(
            "BindDevice",
            pb.BindDeviceRequest(carrier_id="acme", subscriber_id="alice", mac=mac),
            as_="carrier:acme",
        )
    results = await asyncio.gather(*(start(boxes, m) for m in macs), return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.Session)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 2
    assert len(lost) == 4
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in lost)
    assert await boxes.redis.zcard("sub:acme:lease:alice") == 2
