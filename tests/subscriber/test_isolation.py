"""Tenant isolation: every RPC, called by carrier beta against carrier acme's data.

Carrier-scoped RPCs are refused before anything is read (so an existing and a
missing account look the same); RPCs keyed by MAC see acme's boxes as unknown; the
counts beta reads are its own.
Afterwards acme's data is exactly as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from tests.support.subscriber import ALICE_MAC, Api, device_name

BETA = "carrier:beta"
DENIED, HIDDEN, NOT_FOUND, OWN = "denied", "hidden", "not-found", "own"


def _chunks(sid: str) -> Callable[[], AsyncIterator[pb.ImportSubscribersRequest]]:
    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        yield pb.ImportSubscribersRequest(
            parent="carriers/acme",
            rows=[pb.ImportRow(row=2, subscriber_id=sid, display_name="x", region_code="110101")],
        )

    return gen


def matrix(sid: str, mac: str, lease_id: str) -> dict[str, tuple[Any, str]]:
    """method -> (request aimed at acme, what beta must get)."""
    c = "acme"
    return {
        "CreateCarrier": (
            pb.CreateCarrierRequest(
                carrier_id="acme2",
                carrier=pb.Carrier(display_name="x", network_type=pb.NETWORK_TYPE_MOBILE),
            ),
            DENIED,
        ),
        "GetCarrier": (pb.GetCarrierRequest(name=f"carriers/{c}"), DENIED),
        "ListCarriers": (pb.ListCarriersRequest(), DENIED),
        "SetCarrierStatus": (
            pb.SetCarrierStatusRequest(name=f"carriers/{c}", status=pb.CARRIER_STATUS_SUSPENDED),
            DENIED,
        ),
        "DefinePackage": (
            pb.DefinePackageRequest(
                package=pb.Package(name="packages/basic", display_name="x", channel_ids=["y"])
            ),
            DENIED,
        ),
        "DefineDeviceProfile": (
            pb.DefineDeviceProfileRequest(
                device_profile=pb.DeviceProfile(
                    name=f"carriers/{c}/deviceProfiles/default",
                    formats=[pb.DELIVERY_FORMAT_HLS_TS],
                    codecs=[pb.VIDEO_CODEC_H264],
                )
            ),
            DENIED,
        ),
        "GetDeviceProfile": (
            pb.GetDeviceProfileRequest(name=f"carriers/{c}/deviceProfiles/default"),
            DENIED,
        ),
        "ListDeviceProfiles": (pb.ListDeviceProfilesRequest(parent=f"carriers/{c}"), DENIED),
        "DeleteDeviceProfile": (
            pb.DeleteDeviceProfileRequest(name=f"carriers/{c}/deviceProfiles/default"),
            DENIED,
        ),
        "CreateSubscriber": (
            pb.CreateSubscriberRequest(
                parent=f"carriers/{c}",
                subscriber_id=sid,
                subscriber=pb.Subscriber(display_name="x", region_code="110101"),
            ),
            DENIED,
        ),
        "GetSubscriber": (pb.GetSubscriberRequest(name=f"carriers/{c}/subscribers/{sid}"), DENIED),
        "ListSubscribers": (pb.ListSubscribersRequest(parent=f"carriers/{c}"), DENIED),
        "UpdateSubscriber": (
            pb.UpdateSubscriberRequest(
                subscriber=pb.Subscriber(name=f"carriers/{c}/subscribers/{sid}", display_name="x"),
                update_mask=FieldMask(paths=["display_name"]),
                expected_version=1,
            ),
            DENIED,
        ),
        "SetSubscriberStatus": (
            pb.SetSubscriberStatusRequest(
                name=f"carriers/{c}/subscribers/{sid}", status=pb.SUBSCRIBER_STATUS_TERMINATED
            ),
            DENIED,
        ),
        "BindDevice": (
            pb.BindDeviceRequest(parent=f"carriers/{c}/subscribers/{sid}", mac="aa:bb:cc:00:00:77"),
            DENIED,
        ),
        "GetDevice": (pb.GetDeviceRequest(name=device_name(c, mac)), DENIED),
        "ListDevices": (pb.ListDevicesRequest(parent=f"carriers/{c}/subscribers/{sid}"), DENIED),
        "ActivateDevice": (pb.ActivateDeviceRequest(name=device_name(c, mac)), DENIED),
        "UnbindDevice": (pb.UnbindDeviceRequest(name=device_name(c, mac)), DENIED),
        "BlockDevice": (pb.BlockDeviceRequest(name=device_name(c, mac), blocked=True), DENIED),
        "ReplaceDevice": (
            pb.ReplaceDeviceRequest(name=device_name(c, mac), new_mac="aa:bb:cc:00:00:78"),
            DENIED,
        ),
        "Entitle": (
            pb.EntitleRequest(name=f"carriers/{c}/subscribers/{sid}", package_id="sports"),
            DENIED,
        ),
        "RevokeEntitlement": (
            pb.RevokeEntitlementRequest(name=f"carriers/{c}/subscribers/{sid}/entitlements/basic"),
            DENIED,
        ),
        "ListEntitlements": (
            pb.ListEntitlementsRequest(parent=f"carriers/{c}/subscribers/{sid}"),
            DENIED,
        ),
        "EffectiveChannels": (
            pb.EffectiveChannelsRequest(name=f"carriers/{c}/subscribers/{sid}"),
            DENIED,
        ),
        "ImportSubscribers": (_chunks(sid), DENIED),
        "ListAudit": (pb.ListAuditRequest(parent=f"carriers/{c}"), DENIED),
        # carriers/- resolves to the caller's own carrier: acme's box is simply not there.
        "ListDeviceEvents": (
            pb.ListDeviceEventsRequest(parent=device_name("-", mac)),
            NOT_FOUND,
        ),
        "CountSubscribers": (pb.CountSubscribersRequest(), OWN),
        "ListProvisioningErrors": (
            pb.ListProvisioningErrorsRequest(parent=f"carriers/{c}"),
            DENIED,
        ),
        "Authorize": (pb.AuthorizeRequest(mac=mac, channel_id="cctv1"), HIDDEN),
        "StartSession": (pb.StartSessionRequest(mac=mac, channel_id="cctv1"), HIDDEN),
        "Heartbeat": (pb.HeartbeatRequest(mac=mac, lease_id=lease_id), NOT_FOUND),
        "EndSession": (pb.EndSessionRequest(mac=mac, lease_id=lease_id), NOT_FOUND),
    }


# Not tenant data: the catalogue is shared, and DeviceLogin's credential is the box secret.
SHARED = {"ListPackages", "DeviceLogin"}


def test_matrix_covers_every_rpc() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["SubscriberService"].methods_by_name)
    assert set(matrix("a", "b", "c")) | SHARED == methods


async def _call(api: Api, method: str, request: Any) -> Any:
    token = await api.tokens(BETA)
    stub = getattr(api.stub, method)
    if callable(request):
        return await stub(request(), metadata=bearer(token))
    return await stub(request, metadata=bearer(token))


async def _outcome(api: Api, method: str, request: Any) -> tuple[str, str]:
    try:
        reply = await _call(api, method, request)
    except grpc.aio.AioRpcError as err:
        return err.code().name, err.details() or ""
    return "OK", str(reply)


@pytest.fixture
async def acme_lease(world: Api) -> str:
    lease = await world.call(
        "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id="cctv1")
    )
    return lease.lease_id


@pytest.mark.parametrize("method", sorted(matrix("a", "b", "c")))
async def test_wrong_tenant_cannot_read_change_or_probe(
    world: Api, acme_lease: str, method: str
) -> None:
    before = await world.snapshot()
    existing = matrix("alice", ALICE_MAC, acme_lease)
    missing = matrix("ghost", "aa:bb:cc:0f:0f:0f", "0123456789abcdef")
    request, expected = existing[method]
    code, text = await _outcome(world, method, request)
    if expected == DENIED:
        assert code == "PERMISSION_DENIED"
    elif expected == NOT_FOUND:
        assert code == "NOT_FOUND"
    elif expected == OWN:
        assert code == "OK"
        assert "carriers/acme" not in text
    elif method == "Authorize":
        reply = await _call(world, method, request)
        assert (
            reply.allowed,
            reply.reason,
            reply.subscriber_version,
            reply.carrier_id,
            reply.subscriber_id,
        ) == (False, pb.DENY_REASON_UNKNOWN_DEVICE, 0, "", "")
    else:
        assert code == "FAILED_PRECONDITION"
        assert "UNKNOWN_DEVICE" in text
    # probing: an existing and a missing target are indistinguishable
    assert (code, text) == await _outcome(world, method, missing[method][0])
    assert "alice" not in text
    assert await world.snapshot() == before


async def test_shared_rpcs_reveal_no_tenant_data(world: Api) -> None:
    listed = await _call(world, "ListPackages", pb.ListPackagesRequest())
    assert {p.name for p in listed.packages} == {"packages/basic", "packages/sports"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret="guess"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_beta_sees_its_own_data_only(world: Api) -> None:
    page = await _call(world, "ListSubscribers", pb.ListSubscribersRequest(parent="carriers/beta"))
    assert [s.name for s in page.subscribers] == ["carriers/beta/subscribers/bob"]
    assert page.total_size == 1
    audit = await _call(world, "ListAudit", pb.ListAuditRequest(parent="carriers/beta"))
    assert {e.subject for e in audit.entries} == {"carrier/beta", "subscriber/bob"}


async def test_device_key_sees_only_its_own_box(world: Api) -> None:
    device = f"device:{ALICE_MAC}"
    own = await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), as_=device
    )
    assert own.allowed
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac="aa:bb:cc:00:00:0b"),
        as_=BETA,
    )
    other = await world.call(
        "Authorize", pb.AuthorizeRequest(mac="aa:bb:cc:00:00:0b", channel_id="cctv1"), as_=device
    )
    assert (other.reason, other.subscriber_version) == (pb.DENY_REASON_UNKNOWN_DEVICE, 0)
    err = await world.fails(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"),
        as_=device,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
