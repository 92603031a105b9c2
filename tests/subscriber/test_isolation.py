"""Tenant isolation: every RPC, called by carrier beta against carrier acme's data.

Carrier-scoped RPCs are refused before anything is read (so an existing and a
missing account look the same); RPCs keyed by MAC see acme's boxes as unknown.
Afterwards acme's data is exactly as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from headend.rpc import bearer
from protos import subscriber_pb2 as pb
from tests.support.subscriber import ALICE_MAC, Api

BETA = "carrier:beta"
DENIED, HIDDEN, NOT_FOUND = "denied", "hidden", "not-found"


def _chunks(sid: str) -> Callable[[], AsyncIterator[pb.ImportChunk]]:
    async def gen() -> AsyncIterator[pb.ImportChunk]:
        yield pb.ImportChunk(
            carrier_id="acme",
            rows=[pb.ImportRow(row=2, subscriber_id=sid, display_name="x", region_code="110101")],
        )

    return gen


def matrix(sid: str, mac: str, lease_id: str) -> dict[str, tuple[Any, str]]:
    """method -> (request aimed at acme, what beta must get)."""
    c = "acme"
    return {
        "CreateCarrier": (
            pb.CreateCarrierRequest(carrier_id="acme2", name="x", network_type=pb.MOBILE),
            DENIED,
        ),
        "GetCarrier": (pb.GetCarrierRequest(carrier_id=c), DENIED),
        "ListCarriers": (pb.ListCarriersRequest(), DENIED),
        "SetCarrierStatus": (
            pb.SetCarrierStatusRequest(carrier_id=c, status=pb.CARRIER_SUSPENDED),
            DENIED,
        ),
        "DefinePackage": (
            pb.DefinePackageRequest(
                package=pb.Package(package_id="basic", name="x", channel_ids=["y"])
            ),
            DENIED,
        ),
        "CreateSubscriber": (
            pb.CreateSubscriberRequest(
                carrier_id=c, subscriber_id=sid, display_name="x", region_code="110101"
            ),
            DENIED,
        ),
        "GetSubscriber": (pb.GetSubscriberRequest(carrier_id=c, subscriber_id=sid), DENIED),
        "ListSubscribers": (pb.ListSubscribersRequest(carrier_id=c), DENIED),
        "UpdateSubscriber": (
            pb.UpdateSubscriberRequest(
                carrier_id=c, subscriber_id=sid, expected_version=1, display_name="x"
            ),
            DENIED,
        ),
        "SetSubscriberStatus": (
            pb.SetSubscriberStatusRequest(carrier_id=c, subscriber_id=sid, status=pb.TERMINATED),
            DENIED,
        ),
        "BindDevice": (
            pb.BindDeviceRequest(carrier_id=c, subscriber_id=sid, mac="aa:bb:cc:00:00:77"),
            DENIED,
        ),
        "GetDevice": (pb.GetDeviceRequest(carrier_id=c, mac=mac), DENIED),
        "ListDevices": (pb.ListDevicesRequest(carrier_id=c, subscriber_id=sid), DENIED),
        "ActivateDevice": (pb.ActivateDeviceRequest(carrier_id=c, mac=mac), DENIED),
        "UnbindDevice": (pb.UnbindDeviceRequest(carrier_id=c, mac=mac), DENIED),
        "BlockDevice": (pb.BlockDeviceRequest(carrier_id=c, mac=mac, blocked=True), DENIED),
        "ReplaceDevice": (
            pb.ReplaceDeviceRequest(carrier_id=c, old_mac=mac, new_mac="aa:bb:cc:00:00:78"),
            DENIED,
        ),
        "Entitle": (
            pb.EntitleRequest(carrier_id=c, subscriber_id=sid, package_id="sports"),
            DENIED,
        ),
        "RevokeEntitlement": (
            pb.RevokeEntitlementRequest(carrier_id=c, subscriber_id=sid, package_id="basic"),
            DENIED,
        ),
        "ListEntitlements": (pb.ListEntitlementsRequest(carrier_id=c, subscriber_id=sid), DENIED),
        "EffectiveChannels": (pb.EffectiveChannelsRequest(carrier_id=c, subscriber_id=sid), DENIED),
        "ImportSubscribers": (_chunks(sid), DENIED),
        "ListAudit": (pb.ListAuditRequest(carrier_id=c), DENIED),
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
    elif method == "Authorize":
        reply = await _call(world, method, request)
        assert (
            reply.allowed,
            reply.reason,
            reply.subscriber_version,
            reply.carrier_id,
            reply.subscriber_id,
        ) == (False, pb.UNKNOWN_DEVICE, 0, "", "")
    else:
        assert code == "FAILED_PRECONDITION"
        assert "UNKNOWN_DEVICE" in text
    # probing: an existing and a missing target are indistinguishable
    assert (code, text) == await _outcome(world, method, missing[method][0])
    assert "alice" not in text
    assert await world.snapshot() == before


async def test_shared_rpcs_reveal_no_tenant_data(world: Api) -> None:
    listed = await _call(world, "ListPackages", pb.ListPackagesRequest())
    assert {p.package_id for p in listed.packages} == {"basic", "sports"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world.stub.DeviceLogin(pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret="guess"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_beta_sees_its_own_data_only(world: Api) -> None:
    page = await _call(world, "ListSubscribers", pb.ListSubscribersRequest(carrier_id="beta"))
    assert [s.subscriber_id for s in page.subscribers] == ["bob"]
    assert page.total_count == 1
    audit = await _call(world, "ListAudit", pb.ListAuditRequest(carrier_id="beta"))
    assert {e.subject for e in audit.entries} == {"carrier/beta", "subscriber/bob"}


async def test_device_key_sees_only_its_own_box(world: Api) -> None:
    device = f"device:{ALICE_MAC}"
    own = await world.call(
        "Authorize", pb.AuthorizeRequest(mac=ALICE_MAC, channel_id="cctv1"), as_=device
    )
    assert own.allowed
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(carrier_id="beta", subscriber_id="bob", mac="aa:bb:cc:00:00:0b"),
        as_=BETA,
    )
    other = await world.call(
        "Authorize", pb.AuthorizeRequest(mac="aa:bb:cc:00:00:0b", channel_id="cctv1"), as_=device
    )
    assert (other.reason, other.subscriber_version) == (pb.UNKNOWN_DEVICE, 0)
    err = await world.fails(
        "GetSubscriber",
        pb.GetSubscriberRequest(carrier_id="acme", subscriber_id="alice"),
        as_=device,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
