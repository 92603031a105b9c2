"""``SubscriberClient`` against a real server: domain values in and out, errors rebuilt."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from headend.auth import Principal
from headend.ids import is_lease_id
from headend.rpc import ServiceUnavailable
from subscriber.client import SubscriberClient
from subscriber.domain import DenyReason, ImportRow, Package
from subscriber.errors import (
    DeviceLoginFailed,
    InvalidField,
    LeaseNotFound,
    PlaybackDenied,
    StreamLimitReached,
    SubscriberExists,
)
from tests.support.subscriber import ALICE_MAC, START, Api

CAROL_MAC = "aa:bb:cc:00:0c:01"


async def _client(api: Api, who: str) -> SubscriberClient:
    return SubscriberClient(f"127.0.0.1:{api.port}", await api.tokens(who))


def _row(row: int, subscriber_id: str, region: str) -> ImportRow:
    return ImportRow(
        row=row,
        subscriber_id=subscriber_id,
        display_name=subscriber_id.title(),
        region_code=region,
        status="",
        service_end=START + timedelta(days=30),
        max_streams=0,
        contact_phone="",
        contact_email="",
        mac="",
        serial="",
        model="",
        package_ids=("basic",),
        entitled_from=None,
        entitled_until=None,
    )


async def test_a_carrier_provisions_with_domain_values(world: Api) -> None:
    async with await _client(world, "carrier:acme") as acme:
        assert await acme.whoami() == Principal("carrier", "acme")
        carol = await acme.create_subscriber(
            "acme", "carol", display_name="Carol", region_code="110101", max_streams=1
        )
        assert (carol.status, carol.region_code, carol.max_streams) == ("active", "110101", 1)
        bound = await acme.bind_device("acme", "carol", CAROL_MAC.upper(), model="B860")
        assert (bound.mac, bound.status, bound.activated_at) == (CAROL_MAC, "bound", None)
        device, secret = await acme.activate_device("acme", CAROL_MAC)
        assert (device.status, len(secret) > 20) == ("activated", True)
        entitled = await acme.entitle("acme", "carol", "sports")
        assert entitled.version > carol.version
        held, version = await acme.list_entitlements("acme", "carol")
        assert [e.package_id for e in held] == ["sports"]
        assert version == entitled.version
        suspended = await acme.set_subscriber_status("acme", "carol", "suspended")
        assert suspended.status == "suspended"
        assert await acme.get_subscriber("acme", "carol") == suspended
        assert Package("sports", "sports", ("cctv5",)) in await acme.list_packages()
        summary = await acme.import_subscribers(
            "acme", [_row(2, "dan", "440305"), _row(3, "eve", "999999")]
        )
        assert (summary.rows, summary.created) == (2, 1)
        assert [(e.row, e.field) for e in summary.errors] == [(3, "region_code")]


async def test_the_front_door_plays_with_domain_values(world: Api) -> None:
    secret = world.alice_secret  # type: ignore[attr-defined]
    async with await _client(world, "playback") as door:
        login = await door.device_login(ALICE_MAC, secret)
        assert (login.carrier_id, login.subscriber_id, login.region_code) == (
            "acme",
            "alice",
            "440305",
        )
        assert (login.channel_ids, login.deny_reason) == (("cctv1", "cctv2"), None)
        allowed = await door.authorize(ALICE_MAC, "cctv1")
        assert (allowed.allowed, allowed.subscriber_version) == (True, login.subscriber_version)
        refused = await door.authorize(ALICE_MAC, "cctv5")
        assert refused.reason is DenyReason.NOT_ENTITLED
        assert await door.effective_channels("acme", "alice") == (
            ("cctv1", "cctv2"),
            login.subscriber_version,
        )
        lease = await door.start_lease(ALICE_MAC, "cctv1")
        assert is_lease_id(lease.lease_id)
        assert (lease.channel_id, lease.active_leases, lease.replaced_lease_id) == ("cctv1", 1, "")
        switched = await door.start_lease(ALICE_MAC, "cctv2")
        assert (switched.reused, switched.replaced_lease_id) == (True, lease.lease_id)
        beat = await door.heartbeat(ALICE_MAC, switched.lease_id)
        assert (beat.lease_id, beat.channel_id) == (switched.lease_id, "cctv2")
        await door.end_lease(ALICE_MAC, switched.lease_id)


async def test_a_domain_error_comes_back_as_the_same_leaf(world: Api) -> None:
    async with (
        await _client(world, "playback") as door,
        await _client(world, "carrier:acme") as acme,
    ):
        with pytest.raises(DeviceLoginFailed):
            await door.device_login(ALICE_MAC, "wrong")
        with pytest.raises(PlaybackDenied) as denied:
            await door.start_lease(ALICE_MAC, "cctv5")
        assert denied.value.details == {"reason": "NOT_ENTITLED"}
        with pytest.raises(LeaseNotFound):
            await door.heartbeat(ALICE_MAC, "0123456789abcdef")
        with pytest.raises(InvalidField) as bad:
            await door.heartbeat(ALICE_MAC, "not-a-lease")
        assert bad.value.field == "lease_id"
        with pytest.raises(SubscriberExists):
            await acme.create_subscriber("acme", "alice", display_name="A", region_code="440305")
        with pytest.raises(InvalidField) as region:
            await acme.create_subscriber("acme", "zed", display_name="Z", region_code="990101")
        assert region.value.field == "region_code"
        await acme.create_subscriber(
            "acme", "duo", display_name="D", region_code="440305", max_streams=1
        )
        for mac in ("aa:bb:cc:00:0d:01", "aa:bb:cc:00:0d:02"):
            await acme.bind_device("acme", "duo", mac)
            await acme.activate_device("acme", mac)
        await acme.entitle("acme", "duo", "basic")
        await door.start_lease("aa:bb:cc:00:0d:01", "cctv1")
        with pytest.raises(StreamLimitReached) as full:
            await door.start_lease("aa:bb:cc:00:0d:02", "cctv1")
        assert full.value.details["limit"] == "1"


async def test_the_service_down_is_service_unavailable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with SubscriberClient(f"127.0.0.1:{port}", "key", timeout_seconds=2) as door:
        with pytest.raises(ServiceUnavailable) as down:
            await door.authorize(ALICE_MAC, "cctv1")
    assert (down.value.service, down.value.reason) == ("subscriber", "UNAVAILABLE")
