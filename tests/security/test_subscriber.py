"""Attacker findings against the subscriber service, each refused with nothing changed.

1. One box played three channels at once on a one-stream account (its lease was reused).
2. The playback role (the front door) must reach the playback RPCs only.
3. No control or line-separator character in any stored text, via every path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from headend.auth import KeyStore
from headend.rpc import bearer, error_details
from protos import keys_pb2, keys_pb2_grpc
from protos import subscriber_pb2 as pb
from subscriber.cli import import_rows
from subscriber.client import SubscriberClient
from subscriber.importfile import read_csv
from subscriber.settings import SubscriberSettings
from subscriber.store.codec import lease_keys, sub_key
from tests.support.subscriber import (
    ALICE_MAC,
    Api,
    ManualClock,
    device_name,
    lease_settings,
    seed_world,
    serve,
)
from tests.support.tokens import Tokens

ACME = "carrier:acme"
BOB_MAC = "aa:bb:cc:00:0b:01"


@pytest.fixture
async def world(redis: aioredis.Redis, keys: KeyStore, tokens: Tokens) -> AsyncIterator[Api]:
    """The seeded subscriber world on a real server (see ``tests.support.subscriber``)."""
    settings: SubscriberSettings = lease_settings()
    async with serve(redis, keys, tokens, ManualClock(), settings) as api:
        await seed_world(api)
        yield api


async def set_max_streams(api: Api, carrier: str, sid: str, limit: int) -> None:
    sub = await api.call(
        "GetSubscriber", pb.GetSubscriberRequest(name=f"carriers/{carrier}/subscribers/{sid}")
    )
    await api.call(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name=f"carriers/{carrier}/subscribers/{sid}", max_streams=limit
            ),
            update_mask=FieldMask(paths=["max_streams"]),
            expected_version=sub.version,
        ),
    )


# --- 1. one stream per box ---------------------------------------------------------------------


async def test_one_box_cannot_play_three_channels_on_a_one_stream_account(world: Api) -> None:
    await set_max_streams(world, "acme", "alice", 1)
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac="aa:bb:cc:00:00:02"),
        as_=ACME,
    )
    leases = [
        await world.call(
            "StartSession", pb.StartSessionRequest(mac=ALICE_MAC, channel_id=ch), as_="playback"
        )
        for ch in ("cctv1", "cctv2", "cctv1")
    ]
    assert len({lease.lease_id for lease in leases}) == 3
    assert [lease.replaced_lease_id for lease in leases] == [
        "",
        leases[0].lease_id,
        leases[1].lease_id,
    ]
    assert await world.redis.zcard(lease_keys("acme", "alice")[0]) == 1
    before = await world.snapshot()
    for old in leases[:2]:
        err = await world.fails(
            "Heartbeat",
            pb.HeartbeatRequest(mac=ALICE_MAC, lease_id=old.lease_id),
            as_="playback",
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await world.fails(
        "StartSession",
        pb.StartSessionRequest(mac="aa:bb:cc:00:00:02", channel_id="cctv1"),
        as_="playback",
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await world.snapshot() == before


# --- 2. the playback role ----------------------------------------------------------------------

PLAYBACK_RPCS = {"DeviceLogin", "Authorize", "EffectiveChannels"} | {
    "StartSession",
    "Heartbeat",
    "EndSession",
}
DENIED: list[Any] = [
    pytest.param(
        "CreateCarrier",
        pb.CreateCarrierRequest(
            carrier_id="gamma",
            carrier=pb.Carrier(display_name="G", network_type=pb.NETWORK_TYPE_TELECOM),
            idempotency_key="k1",
        ),
        id="CreateCarrier",
    ),
    pytest.param("GetCarrier", pb.GetCarrierRequest(name="carriers/acme"), id="GetCarrier"),
    pytest.param("ListCarriers", pb.ListCarriersRequest(), id="ListCarriers"),
    pytest.param(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(name="carriers/acme", status=pb.CARRIER_STATUS_SUSPENDED),
        id="SetCarrierStatus",
    ),
    pytest.param(
        "DefinePackage",
        pb.DefinePackageRequest(
            package=pb.Package(name="packages/x", display_name="X", channel_ids=["c1"]),
            idempotency_key="k2",
        ),
        id="DefinePackage",
    ),
    pytest.param("ListPackages", pb.ListPackagesRequest(), id="ListPackages"),
    pytest.param(
        "CreateSubscriber",
        pb.CreateSubscriberRequest(
            parent="carriers/acme",
            subscriber_id="eve",
            subscriber=pb.Subscriber(display_name="Eve", region_code="110101"),
        ),
        id="CreateSubscriber",
    ),
    pytest.param(
        "GetSubscriber",
        pb.GetSubscriberRequest(name="carriers/acme/subscribers/alice"),
        id="GetSubscriber",
    ),
    pytest.param(
        "ListSubscribers", pb.ListSubscribersRequest(parent="carriers/beta"), id="ListSubscribers"
    ),
    pytest.param(
        "UpdateSubscriber",
        pb.UpdateSubscriberRequest(
            subscriber=pb.Subscriber(
                name="carriers/acme/subscribers/alice", display_name="Mallory"
            ),
            update_mask=FieldMask(paths=["display_name"]),
            expected_version=4,
        ),
        id="UpdateSubscriber",
    ),
    pytest.param(
        "SetSubscriberStatus",
        pb.SetSubscriberStatusRequest(
            name="carriers/acme/subscribers/alice", status=pb.SUBSCRIBER_STATUS_SUSPENDED
        ),
        id="SetSubscriberStatus",
    ),
    pytest.param(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/acme/subscribers/alice", mac="aa:bb:cc:00:0e:01"),
        id="BindDevice",
    ),
    pytest.param(
        "GetDevice", pb.GetDeviceRequest(name=device_name("acme", ALICE_MAC)), id="GetDevice"
    ),
    pytest.param(
        "ListDevices",
        pb.ListDevicesRequest(parent="carriers/acme/subscribers/alice"),
        id="ListDevices",
    ),
    pytest.param(
        "ActivateDevice",
        pb.ActivateDeviceRequest(name=device_name("acme", ALICE_MAC), idempotency_key="k3"),
        id="ActivateDevice",
    ),
    pytest.param(
        "UnbindDevice",
        pb.UnbindDeviceRequest(name=device_name("acme", ALICE_MAC)),
        id="UnbindDevice",
    ),
    pytest.param(
        "BlockDevice",
        pb.BlockDeviceRequest(name=device_name("acme", ALICE_MAC), blocked=True),
        id="BlockDevice",
    ),
    pytest.param(
        "ReplaceDevice",
        pb.ReplaceDeviceRequest(name=device_name("acme", ALICE_MAC), new_mac="aa:bb:cc:00:0e:02"),
        id="ReplaceDevice",
    ),
    pytest.param(
        "Entitle",
        pb.EntitleRequest(name="carriers/acme/subscribers/alice", package_id="sports"),
        id="Entitle",
    ),
    pytest.param(
        "RevokeEntitlement",
        pb.RevokeEntitlementRequest(name="carriers/acme/subscribers/alice/entitlements/basic"),
        id="RevokeEntitlement",
    ),
    pytest.param(
        "ListEntitlements",
        pb.ListEntitlementsRequest(parent="carriers/acme/subscribers/alice"),
        id="ListEntitlements",
    ),
    pytest.param(
        "DefineDeviceProfile",
        pb.DefineDeviceProfileRequest(
            device_profile=pb.DeviceProfile(
                name="carriers/acme/deviceProfiles/uhd",
                models=["B860"],
                formats=[pb.DELIVERY_FORMAT_DASH],
                codecs=[pb.VIDEO_CODEC_HEVC],
            ),
            idempotency_key="k4",
        ),
        id="DefineDeviceProfile",
    ),
    pytest.param(
        "GetDeviceProfile",
        pb.GetDeviceProfileRequest(name="carriers/acme/deviceProfiles/default"),
        id="GetDeviceProfile",
    ),
    pytest.param(
        "ListDeviceProfiles",
        pb.ListDeviceProfilesRequest(parent="carriers/acme"),
        id="ListDeviceProfiles",
    ),
    pytest.param(
        "DeleteDeviceProfile",
        pb.DeleteDeviceProfileRequest(name="carriers/acme/deviceProfiles/default"),
        id="DeleteDeviceProfile",
    ),
    pytest.param("ListAudit", pb.ListAuditRequest(parent="carriers/acme"), id="ListAudit-carrier"),
    pytest.param("ListAudit", pb.ListAuditRequest(parent=""), id="ListAudit-platform"),
    pytest.param(
        "ListDeviceEvents",
        pb.ListDeviceEventsRequest(parent=device_name("-", ALICE_MAC)),
        id="ListDeviceEvents",
    ),
    pytest.param("CountSubscribers", pb.CountSubscribersRequest(), id="CountSubscribers"),
    pytest.param(
        "ListProvisioningErrors",
        pb.ListProvisioningErrorsRequest(parent="carriers/acme"),
        id="ListProvisioningErrors",
    ),
]
KEY_RPCS: list[Any] = [
    pytest.param("CreateKey", keys_pb2.CreateKeyRequest(principal="admin"), id="CreateKey"),
    pytest.param("RevokeKey", keys_pb2.RevokeKeyRequest(name="keys/" + "0" * 16), id="RevokeKey"),
    pytest.param("ListKeys", keys_pb2.ListKeysRequest(), id="ListKeys"),
]


def test_every_subscriber_rpc_is_classified() -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["SubscriberService"].methods}
    denied = {p.values[0] for p in DENIED} | {"ImportSubscribers"}
    assert methods == PLAYBACK_RPCS | denied
    assert not PLAYBACK_RPCS & denied


@pytest.mark.parametrize(("method", "request_"), DENIED)
async def test_playback_is_denied_everything_else(
    world: Api, method: str, request_: Message
) -> None:
    await world.tokens("playback")
    before = await world.snapshot("*")
    err = await world.fails(method, request_, as_="playback")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
    assert await world.snapshot("*") == before


@pytest.mark.parametrize("chunks", [1, 0], ids=["one-chunk", "no-chunks"])
async def test_playback_may_not_import(world: Api, chunks: int) -> None:
    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        for _ in range(chunks):
            row = pb.ImportRow(row=2, subscriber_id="eve", display_name="Eve", region_code="110101")
            yield pb.ImportSubscribersRequest(parent="carriers/acme", rows=[row])

    token = await world.tokens("playback")
    before = await world.snapshot("*")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world.stub.ImportSubscribers(gen(), metadata=bearer(token))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await world.snapshot("*") == before


@pytest.mark.parametrize(("method", "request_"), KEY_RPCS)
async def test_playback_may_not_manage_keys(world: Api, method: str, request_: Message) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(world.channel)
    token = await world.tokens("playback")
    before = await world.snapshot("*")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub, method)(request_, metadata=bearer(token))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await world.snapshot("*") == before


async def test_playback_may_ask_who_it_is(world: Api) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(world.channel)
    me = await stub.WhoAmI(
        keys_pb2.WhoAmIRequest(), metadata=bearer(await world.tokens("playback"))
    )
    assert me.principal == "playback"


async def test_playback_serves_every_carriers_boxes(world: Api) -> None:
    await world.call(
        "BindDevice",
        pb.BindDeviceRequest(parent="carriers/beta/subscribers/bob", mac=BOB_MAC),
        as_="carrier:beta",
    )
    await world.call(
        "Entitle",
        pb.EntitleRequest(name="carriers/beta/subscribers/bob", package_id="sports"),
        as_="carrier:beta",
    )
    login = await world.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=world.alice_secret)  # type: ignore[attr-defined]
    )
    assert login.carrier_id == "acme"
    for carrier, sid, mac, channel in (
        ("acme", "alice", ALICE_MAC, "cctv1"),
        ("beta", "bob", BOB_MAC, "cctv5"),
    ):
        decision = await world.call(
            "Authorize", pb.AuthorizeRequest(mac=mac, channel_id=channel), as_="playback"
        )
        assert (decision.allowed, decision.carrier_id) == (True, carrier)
        lineup = await world.call(
            "EffectiveChannels",
            pb.EffectiveChannelsRequest(name=f"carriers/{carrier}/subscribers/{sid}"),
            as_="playback",
        )
        assert channel in lineup.channel_ids
        lease = await world.call(
            "StartSession", pb.StartSessionRequest(mac=mac, channel_id=channel), as_="playback"
        )
        beat = await world.call(
            "Heartbeat", pb.HeartbeatRequest(mac=mac, lease_id=lease.lease_id), as_="playback"
        )
        assert beat.channel_id == channel
        await world.call(
            "EndSession",
            pb.EndSessionRequest(
                mac=mac, lease_id=lease.lease_id, idempotency_key=f"end-{carrier}"
            ),
            as_="playback",
        )


# --- 3. stored text ----------------------------------------------------------------------------

BAD_TEXT = ["\n", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\t"]
Build = Callable[[str], tuple[str, Message]]
TEXT_FIELDS: list[Any] = [
    pytest.param(
        lambda t: (
            "CreateCarrier",
            pb.CreateCarrierRequest(
                carrier_id="gamma",
                carrier=pb.Carrier(display_name=t, network_type=pb.NETWORK_TYPE_MOBILE),
            ),
        ),
        "admin",
        "name",
        id="carrier-name",
    ),
    pytest.param(
        lambda t: (
            "DefinePackage",
            pb.DefinePackageRequest(
                package=pb.Package(name="packages/news", display_name=t, channel_ids=["cctv13"])
            ),
        ),
        "admin",
        "name",
        id="package-name",
    ),
    pytest.param(
        lambda t: (
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve",
                subscriber=pb.Subscriber(display_name=t, region_code="110101"),
            ),
        ),
        ACME,
        "display_name",
        id="create-display-name",
    ),
    pytest.param(
        lambda t: (
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve",
                subscriber=pb.Subscriber(
                    display_name="Eve", region_code="110101", contact_email=f"eve{t}@example.com"
                ),
            ),
        ),
        ACME,
        "contact_email",
        id="create-email",
    ),
    pytest.param(
        lambda t: (
            "CreateSubscriber",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve",
                subscriber=pb.Subscriber(
                    display_name="Eve", region_code="110101", contact_phone=f"+86 10 1234{t}5678"
                ),
            ),
        ),
        ACME,
        "contact_phone",
        id="create-phone",
    ),
    pytest.param(
        lambda t: (
            "UpdateSubscriber",
            pb.UpdateSubscriberRequest(
                subscriber=pb.Subscriber(name="carriers/acme/subscribers/alice", display_name=t),
                update_mask=FieldMask(paths=["display_name"]),
                expected_version=3,
            ),
        ),
        ACME,
        "display_name",
        id="update-display-name",
    ),
    pytest.param(
        lambda t: (
            "UpdateSubscriber",
            pb.UpdateSubscriberRequest(
                subscriber=pb.Subscriber(
                    name="carriers/acme/subscribers/alice", contact_email=f"a{t}@example.com"
                ),
                update_mask=FieldMask(paths=["contact_email"]),
                expected_version=3,
            ),
        ),
        ACME,
        "contact_email",
        id="update-email",
    ),
    pytest.param(
        lambda t: (
            "BindDevice",
            pb.BindDeviceRequest(
                parent="carriers/acme/subscribers/alice", mac="aa:bb:cc:00:0e:01", serial=t
            ),
        ),
        ACME,
        "serial",
        id="bind-serial",
    ),
    pytest.param(
        lambda t: (
            "BindDevice",
            pb.BindDeviceRequest(
                parent="carriers/acme/subscribers/alice", mac="aa:bb:cc:00:0e:01", model=t
            ),
        ),
        ACME,
        "model",
        id="bind-model",
    ),
    pytest.param(
        lambda t: (
            "ReplaceDevice",
            pb.ReplaceDeviceRequest(
                name=device_name("acme", ALICE_MAC), new_mac="aa:bb:cc:00:0e:02", model=t
            ),
        ),
        ACME,
        "model",
        id="replace-model",
    ),
    pytest.param(
        lambda t: (
            "DefineDeviceProfile",
            pb.DefineDeviceProfileRequest(
                device_profile=pb.DeviceProfile(
                    name="carriers/acme/deviceProfiles/uhd",
                    display_name=t,
                    models=["B860"],
                    formats=[pb.DELIVERY_FORMAT_HLS_TS],
                    codecs=[pb.VIDEO_CODEC_H264],
                )
            ),
        ),
        ACME,
        "device_profile.display_name",
        id="profile-display-name",
    ),
    pytest.param(
        lambda t: (
            "DefineDeviceProfile",
            pb.DefineDeviceProfileRequest(
                device_profile=pb.DeviceProfile(
                    name="carriers/acme/deviceProfiles/uhd",
                    models=["B860", f"Q{t}5"],
                    formats=[pb.DELIVERY_FORMAT_HLS_TS],
                    codecs=[pb.VIDEO_CODEC_H264],
                )
            ),
        ),
        ACME,
        "device_profile.models[1]",
        id="profile-model",
    ),
]


@pytest.mark.parametrize("bad", BAD_TEXT, ids=[f"U+{ord(c):04X}" for c in BAD_TEXT])
@pytest.mark.parametrize(("build", "as_", "field"), TEXT_FIELDS)
async def test_control_characters_are_refused_naming_the_field(
    world: Api, build: Build, as_: str, field: str, bad: str
) -> None:
    method, request_ = build(f"Evil{bad}#EXTINF:-1,Forged")
    before = await world.snapshot()
    err = await world.fails(method, request_, as_=as_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field in error_details(err).fields, error_details(err)
    assert await world.snapshot() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("display_name", "Eve\u2028Forged", id="display_name"),
        pytest.param("serial", "SN\x1b[2J", id="serial"),
        pytest.param("model", "B860\n", id="model"),
        pytest.param("contact_email", "eve\x00@example.com", id="contact_email"),
    ],
)
async def test_import_rows_with_control_characters_are_refused(
    world: Api, field: str, value: str
) -> None:
    row = pb.ImportRow(
        row=2,
        subscriber_id="eve",
        display_name="Eve",
        region_code="110101",
        mac="aa:bb:cc:00:0e:09",
        serial="SN",
        model="M",
    )
    setattr(row, field, value)

    async def gen() -> AsyncIterator[pb.ImportSubscribersRequest]:
        yield pb.ImportSubscribersRequest(parent="carriers/acme", rows=[row])

    before = await world.snapshot()
    summary = await world.stub.ImportSubscribers(gen(), metadata=bearer(await world.tokens(ACME)))
    assert [(e.row, e.field) for e in summary.errors] == [(2, field)]
    assert await world.snapshot() == before


async def test_csv_cells_with_control_characters_are_refused_per_row(
    world: Api, tmp_path: Path
) -> None:
    path = tmp_path / "evil.csv"
    path.write_bytes(
        "subscriber_id,display_name,region_code,serial,mac\n"
        'eve,"Eve\u2028#EXTINF:-1,Forged",110101,,\n'
        "mal,Mal,110101,SN\x1b[2J,aa:bb:cc:00:0e:0a\n"
        "ok,Okay,110101,,\n".encode()
    )
    report = read_csv(path)
    assert report.errors == ()
    before = await world.snapshot()
    async with SubscriberClient(f"127.0.0.1:{world.port}", await world.tokens(ACME)) as client:
        summary = await import_rows(client, "acme", report.rows)
    assert [(e.row, e.field) for e in summary.errors] == [(2, "display_name"), (3, "serial")]
    assert summary.created == 1
    after = await world.snapshot()
    assert not await world.redis.exists(sub_key("acme", "eve"), sub_key("acme", "mal"))
    assert {k for k in after if k not in before} >= {sub_key("acme", "ok").encode()}


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        pytest.param(
            "subscriber_id",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve\n",
                subscriber=pb.Subscriber(display_name="Eve", region_code="110101"),
            ),
            id="id-trailing-newline",
        ),
        pytest.param(
            "region_code",
            pb.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id="eve",
                subscriber=pb.Subscriber(display_name="Eve", region_code="110101\n"),
            ),
            id="region-trailing-newline",
        ),
    ],
)
async def test_patterns_do_not_let_a_trailing_newline_through(
    world: Api, field: str, request_: Message
) -> None:
    before = await world.snapshot()
    err = await world.fails("CreateSubscriber", request_, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err).fields
    assert await world.snapshot() == before
