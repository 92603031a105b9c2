"""Leases: one stream per box, the stream limit, channel-switch grace, heartbeat and TTL expiry.

The service reads a manual clock and the lease script compares against the
time it is given, so expiry is exercised by moving the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from headend.rpc import error_details
from protos import subscriber_pb2 as pb
from subscriber.errors import DeviceNotFound
from subscriber.store import SubscriberStore
from subscriber.store.codec import lease_keys
from tests.support.subscriber import ALICE_MAC, Api

BOX2, BOX3 = "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"

LEASES, METAS = lease_keys("acme", "alice")


@pytest.fixture
async def boxes(world: Api) -> Api:
    """alice (limit 2, entitled to basic) with three boxes."""
    for mac in (BOX2, BOX3):
        await world.call(
            "BindDevice",
            pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac=mac),
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
    assert (one.active_leases, two.active_leases, two.max_streams) == (1, 2, 2)
    err = await refused(boxes, BOX3)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    meta = error_details(err).metadata
    assert meta["limit"] == "2"
    assert set(meta["leases"].split(",")) == {one.lease_id, two.lease_id}
    assert set(meta["devices"].split(",")) == {ALICE_MAC, BOX2}


async def test_channel_switch_on_the_same_box_replaces_its_lease(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    await start(boxes, BOX2)
    switched = await start(boxes, ALICE_MAC, "cctv2")
    assert switched.lease_id != one.lease_id
    assert (switched.reused, switched.replaced_lease_id, switched.active_leases) == (
        True,
        one.lease_id,
        2,
    )
    assert switched.channel_id == "cctv2"
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_ended_slot_is_kept_for_its_box_during_grace_then_freed(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    await start(boxes, BOX2)
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    boxes.clock.advance(4)  # inside the 5 s grace: the switching box keeps its slot
    assert (await refused(boxes, BOX3)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    back = await start(boxes, ALICE_MAC, "cctv2")
    assert back.reused
    assert back.replaced_lease_id == one.lease_id
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, lease_id=back.lease_id))
    boxes.clock.advance(5.001)  # grace over: the slot is anyone's
    third = await start(boxes, BOX3)
    assert not third.reused
    assert third.replaced_lease_id == ""
    assert third.active_leases == 2


async def test_leases_that_stop_heartbeating_expire(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    two = await start(boxes, BOX2)
    boxes.clock.advance(20)
    beat = await boxes.call("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    assert beat.expire_time.ToDatetime().timestamp() == pytest.approx(
        boxes.clock.now.timestamp() + 30
    )
    boxes.clock.advance(20)  # box2 missed its TTL (30 s); box1 beat 20 s ago
    third = await start(boxes, BOX3)
    assert third.active_leases == 2
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=BOX2, lease_id=two.lease_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_heartbeat_after_end_or_from_another_box_is_refused(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=BOX2, lease_id=one.lease_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await boxes.call("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    err = await boxes.fails("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_denied_playback_takes_no_slot(boxes: Api) -> None:
    err = await boxes.fails(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv5")
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err).metadata["reason"] == "NOT_ENTITLED"
    assert [k async for k in boxes.redis.scan_iter(match="sub:{acme}:lease*")] == []


async def test_concurrent_starts_never_exceed_the_limit(boxes: Api) -> None:
    macs = [f"aa:bb:cc:00:01:{i:02x}" for i in range(6)]
    for mac in macs:
        await boxes.call(
            "BindDevice",
            pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac=mac),
            as_="carrier:acme",
        )
    results = await asyncio.gather(*(start(boxes, m) for m in macs), return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.Session)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 2
    assert len(lost) == 4
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in lost)
    assert await boxes.redis.zcard(LEASES) == 2


# --- one stream per box (attacker finding: a shared token played three channels at once) ---


async def limit_one(api: Api) -> None:
    """alice may stream on one box at a time."""
    sub = await api.call(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"),
        as_="carrier:acme",
    )
    await api.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(name="carriers/acme/subscribers/alice", max_streams=1),
            update_mask=FieldMask(paths=["max_streams"]),
            expected_version=sub.version,
        ),
        as_="carrier:acme",
    )


async def test_one_box_switching_channels_holds_one_lease(boxes: Api) -> None:
    await limit_one(boxes)
    ch1 = await start(boxes, ALICE_MAC, "cctv1")
    ch2 = await start(boxes, ALICE_MAC, "cctv2")
    assert (ch2.replaced_lease_id, ch2.active_leases, ch2.max_streams) == (ch1.lease_id, 1, 1)
    assert await boxes.redis.zrange(LEASES, 0, -1) == [ch2.lease_id.encode()]
    meta = await boxes.redis.hgetall(METAS)
    assert meta == {ch2.lease_id.encode(): f"{ALICE_MAC}\tcctv2\tactive\t440305".encode()}
    before = await boxes.snapshot()
    for method, request in (
        ("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=ch1.lease_id)),
        ("EndSession", pb.EndSessionRequest(mac=ALICE_MAC, lease_id=ch1.lease_id)),
    ):
        assert (await boxes.fails(method, request)).code() == grpc.StatusCode.NOT_FOUND
    assert await boxes.snapshot() == before
    beat = await boxes.call("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=ch2.lease_id))
    assert (beat.channel_id, beat.active_leases) == ("cctv2", 1)


async def test_three_channels_on_one_box_leave_one_stream(boxes: Api) -> None:
    await limit_one(boxes)
    leases = [await start(boxes, ALICE_MAC, ch) for ch in ("cctv1", "cctv2", "cctv1")]
    assert [s.active_leases for s in leases] == [1, 1, 1]
    for lease in leases[:-1]:
        err = await boxes.fails(
            "Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=lease.lease_id)
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    beat = await boxes.call(
        "Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=leases[-1].lease_id)
    )
    assert beat.active_leases == 1


async def test_second_box_of_a_one_stream_subscriber_is_refused(boxes: Api) -> None:
    await limit_one(boxes)
    first = await start(boxes, ALICE_MAC)
    before = await boxes.snapshot()
    err = await refused(boxes, BOX2)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    meta = error_details(err).metadata
    assert (meta["limit"], meta["leases"], meta["devices"]) == ("1", first.lease_id, ALICE_MAC)
    assert await boxes.snapshot() == before


async def test_concurrent_starts_on_one_box_leave_one_lease(boxes: Api) -> None:
    await limit_one(boxes)
    results = await asyncio.gather(*(start(boxes, ALICE_MAC, "cctv1") for _ in range(8)))
    assert all(r.active_leases == 1 for r in results)
    assert await boxes.redis.zcard(LEASES) == 1
    replaced = {r.replaced_lease_id for r in results} - {""}
    assert len(replaced) == 7  # each start ended exactly the lease before it


@pytest.mark.parametrize("method", ["Heartbeat", "EndSession"])
async def test_another_boxs_lease_is_not_found_and_untouched(boxes: Api, method: str) -> None:
    mine = await start(boxes, ALICE_MAC)
    await start(boxes, BOX2)
    before = await boxes.snapshot()
    request_type = pb.HeartbeatRequest if method == "Heartbeat" else pb.EndSessionRequest
    err = await boxes.fails(method, request_type(mac=BOX2, lease_id=mine.lease_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert await boxes.snapshot() == before


async def test_heartbeats_keep_the_lease_keys_alive(boxes: Api) -> None:
    one = await start(boxes, ALICE_MAC)
    for key in lease_keys("acme", "alice"):
        await boxes.redis.pexpire(key, 1000)  # as if the start was long ago
    await boxes.call("Heartbeat", pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=one.lease_id))
    for key in lease_keys("acme", "alice"):
        assert await boxes.redis.pttl(key) > 30_000  # outlives the lease (TTL 30 s)


async def test_no_lease_for_a_box_no_longer_bound_to_that_subscriber(boxes: Api) -> None:
    """The lease script re-checks the MAC binding: a box moved meanwhile gets no lease."""
    store = SubscriberStore(boxes.redis)
    before = await boxes.snapshot()
    with pytest.raises(DeviceNotFound):
        await store.start_lease(
            "beta",
            "bob",  # alice's box, as if it had been read before a move
            lease_id="0123456789abcdef",
            mac=ALICE_MAC,
            channel="cctv1",
            now=boxes.clock.now,
            ttl_ms=30_000,
            grace_ms=5_000,
            limit=2,
        )
    assert await boxes.snapshot() == before
