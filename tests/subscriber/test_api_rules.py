"""SubscriberService by Google's API rules: resource names, page tokens bound to their query,
update masks, enum zero values, ErrorInfo reasons and the HTTP rule of every unary RPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from headend.rpc import error_details
from protos import subscriber_pb2 as pb
from subscriber import convert, domain
from tests.support.subscriber import ALICE_MAC, Api

ACME = "carrier:acme"
ALICE = "carriers/acme/subscribers/alice"


async def _refused(api: Api, method: str, request: Any, field: str, as_: str = "admin") -> None:
    before = await api.snapshot()
    err = await api.fails(method, request, as_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field in error_details(err).fields, error_details(err)
    assert await api.snapshot() == before


# ---------------------------------------------------------------- pages


async def test_subscribers_page_on_and_a_token_is_bound_to_its_carrier(world: Api) -> None:
    for sid in ("s0", "s1", "s2"):
        await world.call(
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id=sid,
                subscriber=pb.Subscriber(display_name=sid, region_code="110101"),
            ),
            as_=ACME,
        )
    first = await world.call(
        "ListSubscribers", pb.ListSubscribersRequest(parent="carriers/acme", page_size=3)
    )
    assert [s.name for s in first.subscribers] == [
        ALICE,
        "carriers/acme/subscribers/s0",
        "carriers/acme/subscribers/s1",
    ]
    assert (first.total_size, bool(first.next_page_token)) == (4, True)
    last = await world.call(
        "ListSubscribers",
        pb.ListSubscribersRequest(
            parent="carriers/acme", page_size=3, page_token=first.next_page_token
        ),
    )
    assert [s.name for s in last.subscribers] == ["carriers/acme/subscribers/s2"]
    assert last.next_page_token == ""
    other = pb.ListSubscribersRequest(parent="carriers/beta", page_token=first.next_page_token)
    await _refused(world, "ListSubscribers", other, "page_token")
    forged = pb.ListSubscribersRequest(parent="carriers/acme", page_token="s0")
    await _refused(world, "ListSubscribers", forged, "page_token")
    negative = pb.ListSubscribersRequest(parent="carriers/acme", page_size=-1)
    await _refused(world, "ListSubscribers", negative, "page_size")


async def test_lists_held_in_memory_page_and_refuse_another_lists_token(world: Api) -> None:
    first = await world.call("ListPackages", pb.ListPackagesRequest(page_size=1))
    second = await world.call(
        "ListPackages", pb.ListPackagesRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [p.name for p in (*first.packages, *second.packages)] == [
        "packages/basic",
        "packages/sports",
    ]
    assert second.next_page_token == ""
    await _refused(
        world,
        "ListCarriers",
        pb.ListCarriersRequest(page_token=first.next_page_token),
        "page_token",
    )
    await world.call("Entitle", pb.EntitleRequest(name=ALICE, package_id="sports"), as_=ACME)
    held = await world.call(
        "ListEntitlements", pb.ListEntitlementsRequest(parent=ALICE, page_size=1), as_=ACME
    )
    assert [e.name for e in held.entitlements] == [f"{ALICE}/entitlements/basic"]
    rest = await world.call(
        "ListEntitlements",
        pb.ListEntitlementsRequest(parent=ALICE, page_size=1, page_token=held.next_page_token),
        as_=ACME,
    )
    assert [e.name for e in rest.entitlements] == [f"{ALICE}/entitlements/sports"]
    assert (rest.next_page_token, rest.subscriber_version) == ("", held.subscriber_version)
    await world.call(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="carol",
            subscriber=pb.Subscriber(display_name="Carol", region_code="110101"),
        ),
        as_=ACME,
    )
    other = pb.ListEntitlementsRequest(
        parent="carriers/acme/subscribers/carol", page_token=held.next_page_token
    )
    await _refused(world, "ListEntitlements", other, "page_token", as_=ACME)


async def test_audit_pages_from_an_entry_and_its_token_keeps_that_start(world: Api) -> None:
    everything = await world.call("ListAudit", pb.ListAuditRequest(parent="carriers/acme"))
    ids = [e.entry_id for e in everything.entries]
    assert len(ids) >= 4
    first = await world.call(
        "ListAudit",
        pb.ListAuditRequest(parent="carriers/acme", page_size=2, after_entry_id=ids[0]),
    )
    assert [e.entry_id for e in first.entries] == ids[1:3]
    second = await world.call(
        "ListAudit",
        pb.ListAuditRequest(
            parent="carriers/acme",
            page_size=2,
            after_entry_id=ids[0],
            page_token=first.next_page_token,
        ),
    )
    assert [e.entry_id for e in second.entries] == ids[3:5]
    moved = pb.ListAuditRequest(
        parent="carriers/acme", after_entry_id=ids[1], page_token=first.next_page_token
    )
    await _refused(world, "ListAudit", moved, "page_token")
    bad = pb.ListAuditRequest(parent="carriers/acme", after_entry_id="yesterday")
    await _refused(world, "ListAudit", bad, "after_entry_id")


# ---------------------------------------------------------------- update masks


async def _alice(api: Api) -> Any:
    return await api.call("GetSubscriber", pb.GetSubscriberRequest(name=ALICE), as_=ACME)


async def _update(api: Api, version: int, paths: list[str] | None, **fields: Any) -> Any:
    request = pb.UpdateSubscriberRequest(
        subscriber=pb.Subscriber(name=ALICE, **fields), expected_version=version
    )
    if paths is not None:
        request.update_mask.CopyFrom(FieldMask(paths=paths))
    return await api.call("UpdateSubscriber", request, as_=ACME)


async def test_update_changes_only_the_masked_fields(world: Api) -> None:
    before = await _alice(world)
    after = await _update(
        world, before.version, ["display_name"], display_name="Alice W", region_code="110101"
    )
    assert (after.display_name, after.region_code) == ("Alice W", before.region_code)
    assert after.version == before.version + 1
    # No mask: the fields set in the message.
    after = await _update(world, after.version, None, contact_email="alice@example.cn")
    assert (after.contact_email, after.display_name) == ("alice@example.cn", "Alice W")
    end = Timestamp(seconds=1_900_000_000)
    after = await _update(world, after.version, ["service_end"], service_end=end)
    assert after.service_end == end
    # service_end in the mask but unset: open-ended again.
    after = await _update(world, after.version, ["service_end"])
    assert not after.HasField("service_end")
    assert (await _alice(world)).display_name == "Alice W"


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param(["status"], id="output-only-status"),
        pytest.param(["version"], id="output-only-version"),
        pytest.param(["name"], id="identity"),
        pytest.param(["display_name", "no_such_field"], id="unknown"),
    ],
)
async def test_update_mask_with_a_path_it_may_not_change_is_refused(
    world: Api, paths: list[str]
) -> None:
    sub = await _alice(world)
    request = pb.UpdateSubscriberRequest(
        subscriber=pb.Subscriber(name=ALICE, display_name="X", status=pb.SUBSCRIBER_STATUS_ACTIVE),
        update_mask=FieldMask(paths=paths),
        expected_version=sub.version,
    )
    await _refused(world, "UpdateSubscriber", request, "update_mask", as_=ACME)


# ---------------------------------------------------------------- names

BAD_NAMES = [
    pytest.param("GetSubscriber", pb.GetSubscriberRequest(name="acme/alice"), "name", id="short"),
    pytest.param(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/"),
        "name",
        id="empty-id",
    ),
    pytest.param("GetCarrier", pb.GetCarrierRequest(name="acme"), "name", id="carrier-id-only"),
    pytest.param(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme/subscribers",
            subscriber_id="x",
            subscriber=pb.Subscriber(display_name="X", region_code="110101"),
        ),
        "parent",
        id="create-parent",
    ),
    pytest.param(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(name="subscribers/alice", display_name="X"),
            expected_version=1,
        ),
        "subscriber.name",
        id="update-name",
    ),
    pytest.param(
        "GetDevice",
        pb.GetDeviceRequest(name=f"carriers/acme/devices/{ALICE_MAC}"),
        "name",
        id="device-mac-with-colons",
    ),
    pytest.param(
        "BlockDevice",
        pb.BlockDeviceRequest(name="carriers/acme/devices/AABBCC000001", blocked=True),
        "name",
        id="device-upper-case",
    ),
    pytest.param(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/acme", mac="aa:bb:cc:00:00:09"),
        "parent",
        id="bind-under-carrier",
    ),
    pytest.param(
        "RevokeEntitlement",
        pb.RevokeEntitlementRequest(name=ALICE),
        "name",
        id="entitlement-as-subscriber",
    ),
    pytest.param(
        "DefinePackage",
        pb.DefinePackageRequest(package=pb.Package(name="basic", channel_ids=["cctv1"])),
        "package.name",
        id="package-id-only",
    ),
    pytest.param("ListAudit", pb.ListAuditRequest(parent="acme"), "parent", id="audit-parent"),
]


@pytest.mark.parametrize(("method", "request_", "field"), BAD_NAMES)
async def test_bad_names_are_invalid_arguments_naming_the_field(
    world: Api, method: str, request_: Any, field: str
) -> None:
    await _refused(world, method, request_, field)


async def test_a_device_is_named_by_its_mac_without_colons(world: Api) -> None:
    name = "carriers/acme/devices/aabbcc000001"
    device = await world.call("GetDevice", pb.GetDeviceRequest(name=name), as_=ACME)
    assert (device.name, device.mac, device.subscriber) == (name, ALICE_MAC, ALICE)
    err = await world.fails(
        "GetDevice", pb.GetDeviceRequest(name="carriers/beta/devices/aabbcc000001"), as_=ACME
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


# ---------------------------------------------------------------- enums and reasons


async def test_allowed_answers_say_so_and_their_deny_reason_is_none(world: Api) -> None:
    ok = await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), as_="playback"
    )
    assert (ok.allowed, ok.reason) == (True, pb.DENY_REASON_NONE)
    no = await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv5"), as_="playback"
    )
    assert (no.allowed, no.reason) == (False, pb.DENY_REASON_NOT_ENTITLED)
    login = await world.call(
        "DeviceLogin",
        pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=world.alice_secret),  # type: ignore[attr-defined]
    )
    assert (login.allowed, login.deny_reason) == (True, pb.DENY_REASON_NONE)


def test_a_refusal_for_a_reason_this_side_does_not_know_stays_a_refusal() -> None:
    unknown = pb.AuthorizeResponse(allowed=False, reason=99, subscriber_version=3)  # type: ignore[arg-type]
    assert convert.decision_from_pb(unknown).reason == domain.DenyReason.NOT_ENTITLED
    allowed = pb.AuthorizeResponse(allowed=True, reason=pb.DENY_REASON_NONE)
    assert convert.decision_from_pb(allowed).allowed
    for reason in domain.DenyReason:
        wire = convert.decision(domain.Decision(reason))
        assert pb.DenyReason.Name(wire.reason) == f"DENY_REASON_{reason.value}"
        assert convert.decision_from_pb(wire).reason is reason


async def test_reasons_are_the_error_classes_in_upper_snake_case(world: Api) -> None:
    async def reason(method: str, request: Any, as_: str = ACME) -> tuple[str, dict[str, str]]:
        details = error_details(await world.fails(method, request, as_))
        return details.reason, details.metadata

    assert await reason(
        "GetSubscriber", pb.GetSubscriberRequest(name="carriers/acme/subscribers/nobody")
    ) == ("SUBSCRIBER_NOT_FOUND", {})
    assert (await reason("GetCarrier", pb.GetCarrierRequest(name="nope")))[0] == (
        "INVALID_ARGUMENT"
    )
    assert (
        await reason(
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="alice",
                subscriber=pb.Subscriber(display_name="A", region_code="110101"),
            ),
        )
    )[0] == "SUBSCRIBER_EXISTS"
    # The front door reads the refusal's DenyReason from the metadata, without its prefix.
    assert await reason(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv5"), "playback"
    ) == ("PLAYBACK_DENIED", {"reason": "NOT_ENTITLED"})
