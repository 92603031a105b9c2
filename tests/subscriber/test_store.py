"""The authorize script (the hot path, in Redis) decides exactly as ``domain.decide``, and
the steps a change split across slots leaves states readers and the next change accept."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from protos import subscriber_pb2 as pb
from subscriber import domain
from subscriber.domain import Device
from subscriber.errors import VersionMismatch
from subscriber.store import Audit, SubscriberStore
from subscriber.store.base import CLAIM_MS
from subscriber.store.codec import CARRIERS, dev_key, holder_value, mac_key, parse_holder
from tests.support.subscriber import ALICE_MAC, Api, device_name

ACME = "carrier:acme"


def _ts(api: Api, days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(api.clock.now + timedelta(days=days))
    return stamp


async def _account(api: Api, carrier: str, sid: str, mac: str) -> None:
    await api.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent=f"carriers/{carrier}",
            subscriber_id=sid,
            subscriber=pb.Subscriber(display_name=sid, region_code="110101"),
        ),
        as_=f"carrier:{carrier}",
    )
    await api.call(
        "BindDevice",
        pb.BindDeviceRequest(parent=f"carriers/{carrier}/subscribers/{sid}", mac=mac),
        as_=f"carrier:{carrier}",
    )


async def test_authorize_script_matches_domain_decide(world: Api) -> None:
    macs = {f"aa:bb:cc:00:10:{i:02x}": f"s{i}" for i in range(7)}
    for mac, sid in macs.items():
        await _account(world, "acme", sid, mac)
    m = list(macs)
    await world.call(
        "Entitle",
        pb.EntitleRequest(
            name="carriers/acme/subscribers/s0",
            package_id="sports",
            valid_from=_ts(world, 1),
            valid_until=_ts(world, 3),
        ),
        as_=ACME,
    )
    await world.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/acme/subscribers/s1", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/s1", status=pb.SUBSCRIBER_STATUS_SUSPENDED
        ),
        as_=ACME,
    )
    await world.call(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/s2", status=pb.SUBSCRIBER_STATUS_TERMINATED
        ),
        as_=ACME,
    )
    s3 = await world.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/acme/subscribers/s3", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name="carriers/acme/subscribers/s3", service_end=_ts(world, 2)
            ),
            update_mask=FieldMask(paths=["service_end"]),
            expected_version=s3.version,
        ),
        as_=ACME,
    )
    await world.call(
        "BlockDevice", pb.BlockDeviceRequest(name=device_name("acme", m[4]), blocked=True), as_=ACME
    )
    await world.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/acme/subscribers/s5", package_id="basic"),
        as_=ACME,
    )
    await world.call(
        "CreateCarrier",
        pb.CreateCarrierRequest(
            carrier_id="gamma",
            carrier=pb.Carrier(display_name="Gamma", network_type=pb.NETWORK_TYPE_MOBILE),
        ),
    )
    await _account(world, "gamma", "g0", "aa:bb:cc:00:20:00")
    await world.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/gamma/subscribers/g0", package_id="basic"),
        as_="carrier:gamma",
    )
    await world.call(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(name="carriers/gamma", status=pb.CARRIER_STATUS_SUSPENDED),
    )
    store = SubscriberStore(world.redis)
    seen = set()
    for mac in [ALICE_MAC, *m, "aa:bb:cc:00:20:00", "aa:bb:cc:99:99:99"]:
        for channel in ("cctv1", "cctv5", "nope"):
            for days in (0, 1, 2, 2.5, 3, 4):
                at = world.clock.now + timedelta(days=days)
                state, packages = await store.playback_state(mac)
                expected = domain.decide(state, channel, packages, at)
                assert await store.authorize(mac, channel, at, at) == expected, (mac, channel, days)
                seen.add(expected.reason)
    assert seen == {None, *domain.DenyReason}  # every outcome was exercised


async def test_a_box_moved_between_the_two_lookup_steps_is_unknown_both_ways(world: Api) -> None:
    # The index names a subscriber the box is not bound to (as if it moved meanwhile).
    await world.redis.set(mac_key(ALICE_MAC), holder_value("acme", "bob", "feed"))
    store = SubscriberStore(world.redis)
    state, packages = await store.playback_state(ALICE_MAC)
    assert state is None
    decision = await store.authorize(ALICE_MAC, "cctv1", world.clock.now, world.clock.now)
    assert decision == domain.decide(state, "cctv1", packages, world.clock.now)
    assert decision == domain.Decision(domain.DenyReason.UNKNOWN_DEVICE)


async def test_an_unbinding_stopped_before_its_index_step_frees_the_mac(world: Api) -> None:
    entry = await world.redis.get(mac_key(ALICE_MAC))
    await world.call("UnbindDevice", pb.UnbindDeviceRequest(name=device_name("acme", ALICE_MAC)))
    await world.redis.set(mac_key(ALICE_MAC), entry)  # its last step never ran
    store = SubscriberStore(world.redis)
    assert await store.mac_holder(ALICE_MAC) is None  # readers skip the left-over
    assert (
        await store.authorize(ALICE_MAC, "cctv1", world.clock.now, world.clock.now)
    ).carrier_id == "acme"
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=ALICE_MAC),
        as_="carrier:beta",
    )
    assert parse_holder(await world.redis.get(mac_key(ALICE_MAC))) == ("beta", "bob")
    assert await world.redis.pttl(mac_key(ALICE_MAC)) == -1


async def test_a_pending_claim_holds_the_mac_until_it_lapses(world: Api) -> None:
    mac = "aa:bb:cc:00:00:42"
    # Another bind claimed it and has not written its box yet.
    await world.redis.set(mac_key(mac), holder_value("acme", "alice", "feed"), px=CLAIM_MS)
    before = await world.snapshot("sub:{*")
    err = await world.fails(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=mac),
        as_="carrier:beta",
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await world.snapshot("sub:{*") == before
    await world.redis.delete(mac_key(mac))  # lapsed
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=mac),
        as_="carrier:beta",
    )


async def test_a_refused_bind_gives_its_claim_back(world: Api) -> None:
    store = SubscriberStore(world.redis)
    bob = await store.get_subscriber("beta", "bob")
    mac = "aa:bb:cc:00:00:43"
    device = Device("beta", mac, "bob", "", "", "bound", world.clock.now)
    tx = store.device_tx(bob, device, bind=True, unbind=False, expected_status="")
    with pytest.raises(VersionMismatch):
        await store.save_subscriber(
            bob,
            expected_version=bob.version + 1,  # somebody changed bob meanwhile
            audit=Audit("admin", "BindDevice"),
            before_json="",
            after_json="",
            extra=tx,
        )
    assert await world.redis.get(mac_key(mac)) is None
    assert not await world.redis.exists(dev_key("beta", mac))


async def test_a_carrier_missing_from_the_list_is_added_by_creating_it_again(world: Api) -> None:
    await world.redis.srem(CARRIERS, "beta")  # its second step never ran
    request = pb.CreateCarrierRequest(
        carrier_id="beta",
        carrier=pb.Carrier(display_name="Beta", network_type=pb.NETWORK_TYPE_CABLE),
    )
    err = await world.fails("CreateCarrier", request)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await world.call("ListCarriers", pb.ListCarriersRequest())
    assert "carriers/beta" in [c.name for c in listed.carriers]


async def test_a_batch_over_carriers_reloads_scripts_redis_forgot(world: Api) -> None:
    store = SubscriberStore(world.redis)
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac="aa:bb:cc:00:00:44"),
        as_="carrier:beta",
    )
    await world.redis.script_flush()  # as after a restart or a failover
    # Asked together, so one batch carries one script call per carrier.
    decisions = await asyncio.gather(
        store.authorize(ALICE_MAC, "cctv1", world.clock.now, world.clock.now),
        store.authorize("aa:bb:cc:00:00:44", "cctv1", world.clock.now, world.clock.now),
    )
    assert [(d.carrier_id, d.reason) for d in decisions] == [
        ("acme", None),
        ("beta", domain.DenyReason.NOT_ENTITLED),
    ]
