"""SubscriberService over real gRPC and Redis: carriers, subscribers, boxes, packages,
entitlements, playback authorization, idempotency and audit."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from headend.rpc import error_details
from protos import subscriber_pb2 as pb
from subscriber.store.codec import dev_key
from tests.support.subscriber import ALICE_MAC, Api, device_name

ACME = "carrier:acme"


def _ts(clock_now, **delta: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(clock_now + timedelta(**delta))
    return stamp


# --- 1. carriers ------------------------------------------------------------------------------


async def test_admin_creates_carriers_and_carrier_sees_only_itself(api: Api) -> None:
    made = await api.call(
        "CreateCarrier",
        pb.CreateCarrierRequest(
            carrier_id="acme",
            carrier=pb.Carrier(display_name="Acme Telecom", network_type=pb.NETWORK_TYPE_TELECOM),
        ),
    )
    assert (made.status, made.network_type) == (pb.CARRIER_STATUS_ACTIVE, pb.NETWORK_TYPE_TELECOM)
    got = await api.call("GetCarrier", pb.GetCarrierRequest(name="carriers/acme"), as_=ACME)
    assert (got.name, got.display_name) == ("carriers/acme", "Acme Telecom")
    listed = await api.call("ListCarriers", pb.ListCarriersRequest())
    assert [c.name for c in listed.carriers] == ["carriers/acme"]
    err = await api.fails("ListCarriers", pb.ListCarriersRequest(), as_=ACME)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await api.fails(
        "CreateCarrier",
        pb.CreateCarrierRequest(
            carrier_id="acme",
            carrier=pb.Carrier(display_name="Again", network_type=pb.NETWORK_TYPE_CABLE),
        ),
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(
            pb.CreateCarrierRequest(
                carrier_id="Bad Id",
                carrier=pb.Carrier(display_name="x", network_type=pb.NETWORK_TYPE_MOBILE),
            ),
            "carrier_id",
            id="id",
        ),
        pytest.param(
            pb.CreateCarrierRequest(
                carrier_id="acme:s",
                carrier=pb.Carrier(display_name="x", network_type=pb.NETWORK_TYPE_MOBILE),
            ),
            "carrier_id",
            id="colon-would-share-keys",
        ),
        pytest.param(
            pb.CreateCarrierRequest(
                carrier_id="pkg",
                carrier=pb.Carrier(display_name="x", network_type=pb.NETWORK_TYPE_MOBILE),
            ),
            "carrier_id",
            id="reserved",
        ),
        pytest.param(
            pb.CreateCarrierRequest(carrier_id="ok", carrier=pb.Carrier(display_name="x")),
            "network_type",
            id="network",
        ),
        pytest.param(
            pb.CreateCarrierRequest(
                carrier_id="ok",
                carrier=pb.Carrier(display_name=" ", network_type=pb.NETWORK_TYPE_MOBILE),
            ),
            "name",
            id="name",
        ),
    ],
)
async def test_bad_carrier_is_refused_and_nothing_stored(
    api: Api, request_: pb.CreateCarrierRequest, field: str
) -> None:
    err = await api.fails("CreateCarrier", request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
    assert await api.snapshot() == {}


async def test_suspended_carrier_cannot_change_data_and_its_boxes_cannot_play(world: Api) -> None:
    await world.call(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(name="carriers/acme", status=pb.CARRIER_STATUS_SUSPENDED),
    )
    err = await world.fails(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="carol",
            subscriber=pb.Subscriber(display_name="C", region_code="110101"),
        ),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    decision = await world.call("Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"))
    assert (decision.allowed, decision.reason) == (False, pb.DENY_REASON_CARRIER_NOT_ACTIVE)


# --- 2. subscribers ---------------------------------------------------------------------------


async def test_subscriber_create_get_list_count(world: Api) -> None:
    for i in range(3):
        await world.call(
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id=f"s{i}",
                subscriber=pb.Subscriber(
                    display_name=f"S {i}",
                    region_code="110101",
                    max_streams=3,
                    contact_phone="+86 138 0000 0000",
                    contact_email="s@example.cn",
                ),
            ),
            as_=ACME,
        )
    got = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/s1"), as_=ACME
    )
    assert (got.status, got.max_streams, got.version) == (pb.SUBSCRIBER_STATUS_ACTIVE, 3, 1)
    page = await world.call(
        "ListSubscribers", pb.ListSubscribersRequest(parent="carriers/acme", page_size=2), as_=ACME
    )
    assert [s.name for s in page.subscribers] == [
        "carriers/acme/subscribers/alice",
        "carriers/acme/subscribers/s0",
    ]
    assert page.total_size == 4
    rest = await world.call(
        "ListSubscribers",
        pb.ListSubscribersRequest(
            parent="carriers/acme", page_size=2, page_token=page.next_page_token
        ),
        as_=ACME,
    )
    assert [s.name.rsplit("/", 1)[1] for s in rest.subscribers] == ["s1", "s2"]
    err = await world.fails(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="s1",
            subscriber=pb.Subscriber(display_name="dup", region_code="110101"),
        ),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"region_code": "123"}, "region_code", id="region"),
        pytest.param({"subscriber_id": "has space"}, "subscriber_id", id="id"),
        pytest.param({"max_streams": 99}, "max_streams", id="limit"),
        pytest.param({"display_name": ""}, "display_name", id="name"),
        pytest.param({"contact_email": "nope"}, "contact_email", id="email"),
    ],
)
async def test_bad_subscriber_fields_refused_nothing_changed(
    world: Api, changes: dict[str, object], field: str
) -> None:
    before = await world.snapshot()
    fields: dict[str, Any] = {"display_name": "Carol", "region_code": "110101", **changes}
    sid = fields.pop("subscriber_id", "carol")
    request = pb.CreateSubscriberRequest(
        parent="carriers/acme", subscriber_id=sid, subscriber=pb.Subscriber(**fields)
    )
    err = await world.fails("CreateSubscriber", request, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
    assert await world.snapshot() == before


async def test_update_uses_optimistic_concurrency(world: Api) -> None:
    sub = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"), as_=ACME
    )
    updated = await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name="carriers/acme/subscribers/alice", display_name="Alice Wang", max_streams=4
            ),
            update_mask=FieldMask(paths=["display_name", "max_streams"]),
            expected_version=sub.version,
        ),
        as_=ACME,
    )
    assert (updated.display_name, updated.max_streams, updated.version) == (
        "Alice Wang",
        4,
        sub.version + 1,
    )
    before = await world.snapshot()
    err = await world.fails(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name="carriers/acme/subscribers/alice", display_name="Lost Update"
            ),
            update_mask=FieldMask(paths=["display_name"]),
            expected_version=sub.version,
        ),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.ABORTED
    assert error_details(err).metadata["current_version"] == str(sub.version + 1)
    assert await world.snapshot() == before


async def test_lifecycle_and_expiry_refuse_playback(world: Api) -> None:
    async def reason() -> int:
        got = await world.call("Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"))
        return got.reason

    async def status(value: Any) -> pb.Subscriber:
        return await world.call(
            "SetSubscriberStatus",
            pb.SetSubscriberStatusRequest(name="carriers/acme/subscribers/alice", status=value),
            as_=ACME,
        )

    assert await reason() == pb.DENY_REASON_NONE
    await status(pb.SUBSCRIBER_STATUS_SUSPENDED)
    assert await reason() == pb.DENY_REASON_SUBSCRIBER_SUSPENDED
    sub = await status(pb.SUBSCRIBER_STATUS_ACTIVE)
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name="carriers/acme/subscribers/alice", service_end=_ts(world.clock.now, days=1)
            ),
            update_mask=FieldMask(paths=["service_end"]),
            expected_version=sub.version,
        ),
        as_=ACME,
    )
    assert await reason() == pb.DENY_REASON_NONE
    world.clock.advance(86_400)
    assert await reason() == pb.DENY_REASON_SERVICE_EXPIRED
    await status(pb.SUBSCRIBER_STATUS_TERMINATED)
    assert await reason() == pb.DENY_REASON_SUBSCRIBER_TERMINATED
    err = await world.fails(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/alice", status=pb.SUBSCRIBER_STATUS_ACTIVE
        ),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


# --- 3. devices -------------------------------------------------------------------------------


async def test_mac_is_normalised_and_unique_platform_wide_without_leaking_holder(
    world: Api,
) -> None:
    before = await world.snapshot()
    err = await world.fails(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac="AA-BB-CC-00-00-01"),
        as_="carrier:beta",
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    text = f"{err.details()} {error_details(err)}"
    assert "acme" not in text
    assert "alice" not in text
    assert await world.snapshot() == before
    other = await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac="AABB.CC00.0002"),
        as_="carrier:beta",
    )
    assert other.mac == "aa:bb:cc:00:00:02"
    assert other.status == pb.DEVICE_STATUS_BOUND


async def test_bad_mac_refused_nothing_changed(world: Api) -> None:
    before = await world.snapshot()
    err = await world.fails(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac="01:00:5e:00:00:01"),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "mac" in error_details(err).fields
    assert await world.snapshot() == before


async def test_device_secret_shown_once_stored_hashed_and_exchanged_at_login(world: Api) -> None:
    secret = world.alice_secret  # type: ignore[attr-defined]
    stored: dict[Any, Any] = await world.redis.hgetall(dev_key("acme", ALICE_MAC))
    assert stored[b"h"].decode() == hashlib.sha256(secret.encode()).hexdigest()
    dumps = [await world.redis.dump(k) or b"" async for k in world.redis.scan_iter()]
    assert all(secret.encode() not in d for d in dumps)
    login = await world.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac="AA:BB:CC:00:00:01", device_secret=secret)
    )
    assert (login.carrier_id, login.subscriber_id, login.region_code) == ("acme", "alice", "440305")
    assert list(login.channel_ids) == ["cctv1", "cctv2"]
    assert login.deny_reason == pb.DENY_REASON_NONE
    for mac, wrong in ((ALICE_MAC, "x" * 43), ("aa:bb:cc:00:00:09", secret)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=mac, device_secret=wrong))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reactivation_rotates_the_secret(world: Api) -> None:
    old = world.alice_secret  # type: ignore[attr-defined]
    new = await world.call(
        "ActivateDevice", pb.ActivateDeviceRequest(name=device_name("acme", ALICE_MAC)), as_=ACME
    )
    assert new.device_secret
    assert new.device_secret != old
    with pytest.raises(grpc.aio.AioRpcError):
        await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=old))
    await world.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=new.device_secret)
    )


async def test_block_unblock_unbind_and_replace(world: Api) -> None:
    async def authorize(mac: str = ALICE_MAC) -> pb.AuthorizeResponse:
        return await world.call("Authorize", pb.AuthorizeRequest(mac=mac, channel_id="cctv1"))

    v0 = (await authorize()).subscriber_version
    blocked = await world.call(
        "BlockDevice",
        pb.BlockDeviceRequest(name=device_name("acme", ALICE_MAC), blocked=True),
        as_=ACME,
    )
    assert blocked.status == pb.DEVICE_STATUS_BLOCKED
    decision = await authorize()
    assert decision.reason == pb.DENY_REASON_DEVICE_BLOCKED
    assert decision.subscriber_version > v0
    unblocked = await world.call(
        "BlockDevice",
        pb.BlockDeviceRequest(name=device_name("acme", ALICE_MAC), blocked=False),
        as_=ACME,
    )
    assert unblocked.status == pb.DEVICE_STATUS_ACTIVATED
    new = await world.call(
        "ReplaceDevice",
        pb.ReplaceDeviceRequest(
            name=device_name("acme", ALICE_MAC), new_mac="aa:bb:cc:00:00:0a", serial="SN2"
        ),
        as_=ACME,
    )
    assert (new.name, new.mac, new.status, new.subscriber) == (
        "carriers/acme/devices/aabbcc00000a",
        "aa:bb:cc:00:00:0a",
        pb.DEVICE_STATUS_BOUND,
        "carriers/acme/subscribers/alice",
    )
    assert (await authorize()).reason == pb.DENY_REASON_UNKNOWN_DEVICE
    assert (await authorize("aa:bb:cc:00:00:0a")).allowed
    devices = await world.call(
        "ListDevices", pb.ListDevicesRequest(parent="carriers/acme/subscribers/alice"), as_=ACME
    )
    assert [d.mac for d in devices.devices] == ["aa:bb:cc:00:00:0a"]
    old = await world.call(
        "GetDevice", pb.GetDeviceRequest(name=device_name("acme", ALICE_MAC)), as_=ACME
    )
    assert old.status == pb.DEVICE_STATUS_UNBOUND
    # the replaced MAC is free again, for anyone
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=ALICE_MAC),
        as_="carrier:beta",
    )
    unbound = await world.call(
        "UnbindDevice", pb.UnbindDeviceRequest(name="carriers/acme/devices/aabbcc00000a"), as_=ACME
    )
    assert unbound.status == pb.DEVICE_STATUS_UNBOUND
    assert (await authorize("aa:bb:cc:00:00:0a")).reason == pb.DENY_REASON_UNKNOWN_DEVICE


# --- 4. packages and entitlements -------------------------------------------------------------


async def test_entitlements_effective_channels_and_version(world: Api) -> None:
    async def effective(**delta: float) -> pb.EffectiveChannelsResponse:
        return await world.call(
            "EffectiveChannels",
            pb.EffectiveChannelsRequest(
                name="carriers/acme/subscribers/alice", at=_ts(world.clock.now, **delta)
            ),
            as_=ACME,
        )

    first = await effective()
    assert list(first.channel_ids) == ["cctv1", "cctv2"]
    sub = await world.call(
        "Entitle",
        pb.EntitleRequest(
            name="carriers/acme/subscribers/alice",
            package_id="sports",
            valid_from=_ts(world.clock.now, days=1),
            valid_until=_ts(world.clock.now, days=8),
        ),
        as_=ACME,
    )
    assert sub.version == first.subscriber_version + 1
    assert list((await effective()).channel_ids) == ["cctv1", "cctv2"]
    assert list((await effective(days=2)).channel_ids) == ["cctv1", "cctv2", "cctv5"]
    assert list((await effective(days=8)).channel_ids) == ["cctv1", "cctv2"]
    revoked = await world.call(
        "RevokeEntitlement",
        pb.RevokeEntitlementRequest(name="carriers/acme/subscribers/alice/entitlements/basic"),
        as_=ACME,
    )
    assert revoked.version == sub.version + 1
    ents = await world.call(
        "ListEntitlements",
        pb.ListEntitlementsRequest(parent="carriers/acme/subscribers/alice"),
        as_=ACME,
    )
    assert [e.name for e in ents.entitlements] == [
        "carriers/acme/subscribers/alice/entitlements/sports"
    ]
    assert ents.subscriber_version == revoked.version
    # the catalogue changes what a package means for everyone entitled to it
    await world.call(
        "DefinePackage",
        pb.DefinePackageRequest(
            package=pb.Package(
                name="packages/sports", display_name="Sports+", channel_ids=["cctv5", "cctv5plus"]
            )
        ),
    )
    assert list((await effective(days=2)).channel_ids) == ["cctv5", "cctv5plus"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"package_id": "nope"}, "package_id", id="unknown-package"),
        pytest.param({"valid_until": "past"}, "valid_until", id="empty-window"),
    ],
)
async def test_bad_entitlement_refused_nothing_changed(
    world: Api, changes: dict[str, str], field: str
) -> None:
    request = pb.EntitleRequest(name="carriers/acme/subscribers/alice", package_id="sports")
    if "package_id" in changes:
        request.package_id = changes["package_id"]
    if "valid_until" in changes:
        request.valid_until.CopyFrom(_ts(world.clock.now, days=-1))
    before = await world.snapshot()
    err = await world.fails("Entitle", request, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
    assert await world.snapshot() == before


async def test_only_admin_defines_packages_and_bad_package_refused(world: Api) -> None:
    err = await world.fails(
        "DefinePackage",
        pb.DefinePackageRequest(
            package=pb.Package(name="packages/x", display_name="x", channel_ids=["a"])
        ),
        as_=ACME,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    before = await world.snapshot()
    err = await world.fails(
        "DefinePackage",
        pb.DefinePackageRequest(
            package=pb.Package(name="packages/x", display_name="x", channel_ids=[])
        ),
    )
    assert "channel_ids" in error_details(err).fields
    assert await world.snapshot() == before
    listed = await world.call("ListPackages", pb.ListPackagesRequest(), as_=ACME)
    assert [p.name for p in listed.packages] == ["packages/basic", "packages/sports"]


# --- 5. authorize -----------------------------------------------------------------------------


async def test_authorize_reasons_and_version(world: Api) -> None:
    async def authorize(mac: str, channel: str) -> pb.AuthorizeResponse:
        return await world.call("Authorize", pb.AuthorizeRequest(mac=mac, channel_id=channel))

    ok = await authorize("AA:BB:CC:00:00:01", "cctv2")
    assert (ok.allowed, ok.carrier_id, ok.subscriber_id) == (True, "acme", "alice")
    assert ok.subscriber_version > 0
    denied = await authorize(ALICE_MAC, "cctv5")
    assert (denied.allowed, denied.reason) == (False, pb.DENY_REASON_NOT_ENTITLED)
    unknown = await authorize("aa:bb:cc:99:99:99", "cctv1")
    assert (unknown.reason, unknown.subscriber_version) == (pb.DENY_REASON_UNKNOWN_DEVICE, 0)
    err = await world.fails(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="x"), as_="broadcaster:cctv"
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


# --- 7. idempotency ---------------------------------------------------------------------------


async def test_idempotent_retry_returns_first_result_and_changes_nothing(world: Api) -> None:
    request = pb.CreateSubscriberRequest(
        parent="carriers/acme",
        subscriber_id="carol",
        subscriber=pb.Subscriber(display_name="Carol", region_code="110101"),
        idempotency_key="req-1",
    )
    first = await world.call("CreateSubscriber", request, as_=ACME)
    after_first = await world.snapshot()
    again = await world.call("CreateSubscriber", request, as_=ACME)
    assert again == first
    assert await world.snapshot() == after_first
    changed = pb.CreateSubscriberRequest()
    changed.CopyFrom(request)
    changed.subscriber.display_name = "Someone Else"
    err = await world.fails("CreateSubscriber", changed, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in error_details(err).fields
    assert await world.snapshot() == after_first


async def test_idempotent_entitle_and_session_retries(world: Api) -> None:
    request = pb.EntitleRequest(
        name="carriers/acme/subscribers/alice", package_id="sports", idempotency_key="e-1"
    )
    first = await world.call("Entitle", request, as_=ACME)
    world.clock.advance(10)
    assert await world.call("Entitle", request, as_=ACME) == first
    start = pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv1", idempotency_key="s-1")
    one = await world.call("StartSession", start)
    assert await world.call("StartSession", start) == one


async def test_failed_request_does_not_burn_its_key(world: Api) -> None:
    request = pb.EntitleRequest(
        name="carriers/acme/subscribers/nobody", package_id="sports", idempotency_key="e-2"
    )
    err = await world.fails("Entitle", request, as_=ACME)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await world.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="nobody",
            subscriber=pb.Subscriber(display_name="N", region_code="110101"),
        ),
        as_=ACME,
    )
    assert (await world.call("Entitle", request, as_=ACME)).name.endswith("/nobody")


async def test_activation_replay_never_returns_the_stored_secret(world: Api) -> None:
    request = pb.ActivateDeviceRequest(name=device_name("acme", ALICE_MAC), idempotency_key="a-1")
    first = await world.call("ActivateDevice", request, as_=ACME)
    replay = await world.call("ActivateDevice", request, as_=ACME)
    assert first.device_secret
    assert replay.device_secret == ""
    assert replay.device == first.device
    raw: bytes = b"".join(
        [await world.redis.get(k) or b"" async for k in world.redis.scan_iter(match="sub:*:idem:*")]
    )
    assert first.device_secret.encode() not in raw


# --- 9. audit ---------------------------------------------------------------------------------


async def test_every_change_is_audited_with_before_and_after(world: Api) -> None:
    page = await world.call("ListAudit", pb.ListAuditRequest(parent="carriers/acme"), as_=ACME)
    rpcs = [e.rpc for e in page.entries]
    assert rpcs == ["CreateCarrier", "CreateSubscriber", "BindDevice", "ActivateDevice", "Entitle"]
    assert all(e.principal for e in page.entries)
    sub = await world.call(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"), as_=ACME
    )
    await world.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(name="carriers/acme/subscribers/alice", region_code="110105"),
            update_mask=FieldMask(paths=["region_code"]),
            expected_version=sub.version,
        ),
        as_=ACME,
    )
    pages, token = [], ""
    while True:
        got = await world.call(
            "ListAudit",
            pb.ListAuditRequest(parent="carriers/acme", page_size=2, page_token=token),
            as_=ACME,
        )
        pages.append(got.entries)
        token = got.next_page_token
        if not token:
            break
    entries = [e for p in pages for e in p]
    assert len(entries) == 6
    assert [len(p) for p in pages][:3] == [2, 2, 2]
    last = entries[-1]
    assert (last.rpc, last.principal, last.subject) == (
        "UpdateSubscriber",
        "carrier:acme",
        "subscriber/alice",
    )
    assert json.loads(last.before_json)["region_code"] == "440305"
    assert json.loads(last.after_json)["region_code"] == "110105"
    catalogue = await world.call("ListAudit", pb.ListAuditRequest())
    assert [e.rpc for e in catalogue.entries] == ["DefinePackage", "DefinePackage"]


async def test_concurrent_authorizes_share_a_round_trip_but_not_answers(world: Api) -> None:
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac="aa:bb:cc:00:00:0b"),
        as_="carrier:beta",
    )
    asks = [
        (ALICE_MAC, "cctv1"),
        (ALICE_MAC, "cctv5"),
        ("aa:bb:cc:00:00:0b", "cctv1"),
        ("aa:bb:cc:99:00:00", "cctv1"),
    ] * 10
    replies = await asyncio.gather(
        *(world.call("Authorize", pb.AuthorizeRequest(mac=m, channel_id=c)) for m, c in asks)
    )
    expected = [(True, "alice"), (False, "alice"), (False, "bob"), (False, "")] * 10
    assert [(r.allowed, r.subscriber_id) for r in replies] == expected
    assert [r.reason for r in replies[:4]] == [
        pb.DENY_REASON_NONE,
        pb.DENY_REASON_NOT_ENTITLED,
        pb.DENY_REASON_NOT_ENTITLED,
        pb.DENY_REASON_UNKNOWN_DEVICE,
    ]
