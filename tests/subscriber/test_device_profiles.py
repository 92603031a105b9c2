"""Device profiles: define, get, list, delete; who may; every bad field refused with
nothing stored; a model in one profile only; and what a box's login says it plays.

Real Redis (a 3-master cluster under ``make test-cluster``), a real gRPC server on port 0.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from headend.rpc import error_details
from protos import subscriber_pb2 as pb
from subscriber.client import SubscriberClient
from subscriber.domain import MAX_PROFILES_PER_CARRIER, PLATFORM_PROFILE, DeviceProfile
from subscriber.errors import ModelInAnotherProfile
from subscriber.store import Audit, SubscriberStore
from subscriber.store.codec import model_index_key, profiles_key
from tests.subscriber.test_cli_commands import headend
from tests.support.rest import rest_face
from tests.support.subscriber import ALICE_MAC, Api, device_name

ACME = "carrier:acme"
HLS_TS, CMAF, DASH = (
    pb.DELIVERY_FORMAT_HLS_TS,
    pb.DELIVERY_FORMAT_HLS_CMAF,
    pb.DELIVERY_FORMAT_DASH,
)
H264, HEVC = pb.VIDEO_CODEC_H264, pb.VIDEO_CODEC_HEVC


def profile(profile_id: str = "uhd", carrier: str = "acme", **fields: Any) -> pb.DeviceProfile:
    """A valid profile message; ``fields`` override its parts."""
    values: dict[str, Any] = {
        "display_name": "UHD boxes",
        "models": ["B860", "Q5"],
        "formats": [CMAF, DASH, HLS_TS],
        "codecs": [HEVC, H264],
        "max_height": 2160,
    }
    values.update(fields)
    return pb.DeviceProfile(name=f"carriers/{carrier}/deviceProfiles/{profile_id}", **values)


def define(p: pb.DeviceProfile, key: str = "") -> pb.DefineDeviceProfileRequest:
    return pb.DefineDeviceProfileRequest(device_profile=p, idempotency_key=key)


async def login(api: Api) -> pb.DeviceLoginResponse:
    return await api.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac=ALICE_MAC, device_secret=api.alice_secret)  # type: ignore[attr-defined]
    )


# --- define, get, list, delete -----------------------------------------------------------------


async def test_define_get_list_delete_round_trip(world: Api) -> None:
    made = await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    assert made.name == "carriers/acme/deviceProfiles/uhd"
    assert (list(made.models), list(made.formats), list(made.codecs), made.max_height) == (
        ["B860", "Q5"],
        [CMAF, DASH, HLS_TS],
        [HEVC, H264],
        2160,
    )
    assert made.update_time.ToDatetime(tzinfo=world.clock.now.tzinfo) == world.clock.now
    got = await world.call("GetDeviceProfile", pb.GetDeviceProfileRequest(name=made.name), as_=ACME)
    assert got == made
    await world.call(
        "DefineDeviceProfile",
        define(profile("default", models=[], formats=[HLS_TS], codecs=[H264], max_height=0)),
        as_=ACME,
    )
    listed = await world.call(
        "ListDeviceProfiles", pb.ListDeviceProfilesRequest(parent="carriers/acme"), as_=ACME
    )
    assert [p.name.rsplit("/", 1)[1] for p in listed.device_profiles] == ["default", "uhd"]
    assert listed.device_profiles[1] == made
    removed = await world.call(
        "DeleteDeviceProfile", pb.DeleteDeviceProfileRequest(name=made.name), as_=ACME
    )
    assert removed == made
    err = await world.fails("GetDeviceProfile", pb.GetDeviceProfileRequest(name=made.name))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err).reason == "DEVICE_PROFILE_NOT_FOUND"
    err = await world.fails("DeleteDeviceProfile", pb.DeleteDeviceProfileRequest(name=made.name))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_replacing_a_profile_moves_its_models_and_audits_each_change(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    world.clock.advance(60)
    replaced = await world.call(
        "DefineDeviceProfile", define(profile(models=["Q5", "Z9"], max_height=1080)), as_=ACME
    )
    assert (list(replaced.models), replaced.max_height) == (["Q5", "Z9"], 1080)
    index = await world.redis.hgetall(model_index_key("acme"))
    assert index == {b"Q5": b"uhd", b"Z9": b"uhd"}
    # The same profile again changes nothing, not even its time.
    again = await world.call(
        "DefineDeviceProfile", define(profile(models=["Q5", "Z9"], max_height=1080)), as_=ACME
    )
    assert again == replaced
    entries = await world.call("ListAudit", pb.ListAuditRequest(parent="carriers/acme"))
    mine = [e for e in entries.entries if e.subject == "device_profile/uhd"]
    assert [e.rpc for e in mine] == ["DefineDeviceProfile", "DefineDeviceProfile"]
    assert mine[0].principal == ACME
    assert '"B860"' in mine[1].before_json
    assert '"Z9"' in mine[1].after_json


async def test_list_pages_by_id(world: Api) -> None:
    for i in range(5):
        await world.call(
            "DefineDeviceProfile", define(profile(f"p{i}", models=[f"M{i}"])), as_=ACME
        )
    names, token = [], ""
    while True:
        page = await world.call(
            "ListDeviceProfiles",
            pb.ListDeviceProfilesRequest(parent="carriers/acme", page_size=2, page_token=token),
            as_=ACME,
        )
        names += [p.name.rsplit("/", 1)[1] for p in page.device_profiles]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"p{i}" for i in range(5)]


# --- bad input ---------------------------------------------------------------------------------

BAD: list[Any] = [
    pytest.param(profile("Bad_Id"), "device_profile.name", id="id-pattern"),
    pytest.param(profile("mac"), "device_profile.name", id="id-reserved"),
    pytest.param(
        pb.DeviceProfile(name="carriers/acme/profiles/x", formats=[HLS_TS], codecs=[H264]),
        "device_profile.name",
        id="name-pattern",
    ),
    pytest.param(profile(display_name="UHD\nForged"), "device_profile.display_name", id="name"),
    pytest.param(profile(display_name="x" * 201), "device_profile.display_name", id="name-long"),
    pytest.param(profile(models=[]), "device_profile.models", id="no-models"),
    pytest.param(
        profile(models=[f"M{i}" for i in range(65)]), "device_profile.models", id="65-models"
    ),
    pytest.param(profile(models=["A", "B", "A"]), "device_profile.models[2]", id="model-repeat"),
    pytest.param(profile(models=["A", ""]), "device_profile.models[1]", id="model-empty"),
    pytest.param(profile(models=["A", "x" * 65]), "device_profile.models[1]", id="model-long"),
    pytest.param(profile(models=["A", " B"]), "device_profile.models[1]", id="model-space"),
    pytest.param(profile(models=["A", "B\u2028"]), "device_profile.models[1]", id="model-ctl"),
    pytest.param(profile(models=["A", "B\u00a0"]), "device_profile.models[1]", id="model-nbsp"),
    pytest.param(
        profile("default", models=["B860"]), "device_profile.models", id="default-with-models"
    ),
    pytest.param(profile(formats=[]), "device_profile.formats", id="no-formats"),
    pytest.param(profile(formats=[DASH, DASH]), "device_profile.formats[1]", id="format-repeat"),
    pytest.param(
        profile(formats=[DASH, pb.DELIVERY_FORMAT_UNSPECIFIED]),
        "device_profile.formats[1]",
        id="format-unspecified",
    ),
    pytest.param(profile(formats=[DASH, 99]), "device_profile.formats[1]", id="format-unknown"),
    pytest.param(profile(codecs=[]), "device_profile.codecs", id="no-codecs"),
    pytest.param(profile(codecs=[H264, H264]), "device_profile.codecs[1]", id="codec-repeat"),
    pytest.param(
        profile(codecs=[pb.VIDEO_CODEC_UNSPECIFIED]),
        "device_profile.codecs[0]",
        id="codec-unspecified",
    ),
    pytest.param(profile(max_height=-1), "device_profile.max_height", id="height-negative"),
    pytest.param(profile(max_height=4321), "device_profile.max_height", id="height-too-tall"),
]


@pytest.mark.parametrize(("bad", "field"), BAD)
async def test_every_bad_field_is_refused_naming_it_and_nothing_is_stored(
    world: Api, bad: pb.DeviceProfile, field: str
) -> None:
    before = await world.snapshot()
    err = await world.fails("DefineDeviceProfile", define(bad), as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field in error_details(err).fields, error_details(err)
    assert await world.snapshot() == before


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        pytest.param(
            "GetDeviceProfile",
            pb.GetDeviceProfileRequest(name="carriers/acme/deviceProfiles"),
            "name",
            id="get-name",
        ),
        pytest.param(
            "GetDeviceProfile",
            pb.GetDeviceProfileRequest(name="carriers/acme/deviceProfiles/UHD"),
            "name",
            id="get-id",
        ),
        pytest.param(
            "DeleteDeviceProfile",
            pb.DeleteDeviceProfileRequest(name="carriers/acme/deviceProfiles/-x"),
            "name",
            id="delete-id",
        ),
        pytest.param(
            "ListDeviceProfiles", pb.ListDeviceProfilesRequest(parent="acme"), "parent", id="list"
        ),
        pytest.param(
            "ListDeviceProfiles",
            pb.ListDeviceProfilesRequest(parent="carriers/acme", page_size=-1),
            "page_size",
            id="list-page-size",
        ),
        pytest.param(
            "DeleteDeviceProfile",
            pb.DeleteDeviceProfileRequest(name="carriers/acme/deviceProfiles/a/b"),
            "name",
            id="delete-name",
        ),
        pytest.param(
            "DefineDeviceProfile", define(profile(), key="bad key"), "idempotency_key", id="key"
        ),
    ],
)
async def test_bad_names_are_refused(world: Api, method: str, request_: Any, field: str) -> None:
    before = await world.snapshot()
    err = await world.fails(method, request_, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field in error_details(err).fields, error_details(err)
    assert await world.snapshot() == before


async def test_a_model_in_another_profile_is_refused_naming_it(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    before = await world.snapshot()
    err = await world.fails(
        "DefineDeviceProfile", define(profile("hd", models=["X1", "Q5"])), as_=ACME
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details(err)
    assert info.reason == "MODEL_IN_ANOTHER_PROFILE"
    assert (info.metadata["model"], info.metadata["profile"]) == ("Q5", "uhd")
    assert "device_profile.models[1]" in err.details()
    assert await world.snapshot() == before
    # The refusal is on the carrier's helpdesk record, like every provisioning refusal.
    record = await world.call(
        "ListProvisioningErrors",
        pb.ListProvisioningErrorsRequest(parent="carriers/acme"),
        as_=ACME,
    )
    assert [(e.rpc, e.subject, e.reason) for e in record.errors][:1] == [
        ("DefineDeviceProfile", "device_profile/hd", "MODEL_IN_ANOTHER_PROFILE")
    ]
    # The same model in another carrier's profile is that carrier's business.
    await world.call(
        "DefineDeviceProfile", define(profile("hd", "beta", models=["Q5"])), as_="carrier:beta"
    )


async def test_deleting_a_profile_frees_its_models(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    await world.call(
        "DeleteDeviceProfile",
        pb.DeleteDeviceProfileRequest(name="carriers/acme/deviceProfiles/uhd"),
        as_=ACME,
    )
    assert await world.redis.hgetall(model_index_key("acme")) == {}
    made = await world.call("DefineDeviceProfile", define(profile("hd", models=["Q5"])), as_=ACME)
    assert list(made.models) == ["Q5"]


async def test_concurrent_defines_never_share_a_model(world: Api) -> None:
    requests = [define(profile(f"p{i}", models=["SHARED", f"OWN{i}"])) for i in range(6)]
    results = await asyncio.gather(
        *(world.call("DefineDeviceProfile", r, as_=ACME) for r in requests),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, pb.DeviceProfile)]
    lost = [r for r in results if not isinstance(r, pb.DeviceProfile)]
    assert len(won) == 1
    assert all(
        isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.FAILED_PRECONDITION
        for e in lost
    )
    owner = won[0].name.rsplit("/", 1)[1]
    assert await world.redis.hgetall(model_index_key("acme")) == {
        b"SHARED": owner.encode(),
        f"OWN{owner[1:]}".encode(): owner.encode(),
    }
    assert await world.redis.hkeys(profiles_key("acme")) == [owner.encode()]


async def test_a_carrier_has_a_bounded_number_of_profiles(world: Api) -> None:
    # Filled in the store directly: 256 defines would only slow the suite down.
    await world.redis.hset(
        profiles_key("acme"),
        mapping={f"p{i}": '{"n":"","f":["hls-ts"],"c":["h264"],"h":0,"u":""}'
                 for i in range(MAX_PROFILES_PER_CARRIER)},
    )  # fmt: skip
    before = await world.snapshot()
    err = await world.fails("DefineDeviceProfile", define(profile("one-more")), as_=ACME)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_details(err).reason == "TOO_MANY_DEVICE_PROFILES"
    assert await world.snapshot() == before
    # Replacing one of them is no new profile.
    await world.call("DefineDeviceProfile", define(profile("p7")), as_=ACME)


# --- who may -----------------------------------------------------------------------------------


async def test_another_carrier_is_refused_and_sees_nothing(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    before = await world.snapshot()
    name = "carriers/acme/deviceProfiles/uhd"
    for method, request_ in (
        ("DefineDeviceProfile", define(profile(models=["Evil"]))),
        ("GetDeviceProfile", pb.GetDeviceProfileRequest(name=name)),
        ("ListDeviceProfiles", pb.ListDeviceProfilesRequest(parent="carriers/acme")),
        ("DeleteDeviceProfile", pb.DeleteDeviceProfileRequest(name=name)),
    ):
        err = await world.fails(method, request_, as_="carrier:beta")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, method
    # beta's own list holds none of acme's.
    mine = await world.call(
        "ListDeviceProfiles",
        pb.ListDeviceProfilesRequest(parent="carriers/beta"),
        as_="carrier:beta",
    )
    assert list(mine.device_profiles) == []
    assert await world.snapshot() == before


async def test_the_playback_role_is_denied_every_profile_rpc(world: Api) -> None:
    name = "carriers/acme/deviceProfiles/uhd"
    await world.tokens("playback")  # its key is stored before the snapshot
    before = await world.snapshot("*")
    for method, request_ in (
        ("DefineDeviceProfile", define(profile())),
        ("GetDeviceProfile", pb.GetDeviceProfileRequest(name=name)),
        ("ListDeviceProfiles", pb.ListDeviceProfilesRequest(parent="carriers/acme")),
        ("DeleteDeviceProfile", pb.DeleteDeviceProfileRequest(name=name)),
    ):
        err = await world.fails(method, request_, as_="playback")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, method
    assert await world.snapshot("*") == before


async def test_a_suspended_carrier_may_read_but_not_change(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    await world.call(
        "SetCarrierStatus",
        pb.SetCarrierStatusRequest(name="carriers/acme", status=pb.CARRIER_STATUS_SUSPENDED),
    )
    before = await world.snapshot()
    err = await world.fails("DefineDeviceProfile", define(profile("hd", models=["H1"])), as_=ACME)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await world.snapshot() == before
    name = "carriers/acme/deviceProfiles/uhd"
    assert (
        await world.call("GetDeviceProfile", pb.GetDeviceProfileRequest(name=name), as_=ACME)
    ).name == name
    err = await world.fails("DefineDeviceProfile", define(profile(carrier="nobody")))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- idempotency -------------------------------------------------------------------------------


async def test_a_retry_returns_the_first_answer_and_changes_nothing(world: Api) -> None:
    request = define(profile(), key="dp-1")
    first = await world.call("DefineDeviceProfile", request, as_=ACME)
    after_first = await world.snapshot()
    world.clock.advance(30)
    assert await world.call("DefineDeviceProfile", request, as_=ACME) == first
    assert await world.snapshot() == after_first
    changed = define(profile(max_height=720), key="dp-1")
    err = await world.fails("DefineDeviceProfile", changed, as_=ACME)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in error_details(err).fields
    delete = pb.DeleteDeviceProfileRequest(name=first.name, idempotency_key="dp-2")
    removed = await world.call("DeleteDeviceProfile", delete, as_=ACME)
    assert await world.call("DeleteDeviceProfile", delete, as_=ACME) == removed


# --- what a box's login says it plays ----------------------------------------------------------


async def test_login_gives_the_models_profile_then_the_default_then_the_platforms(
    world: Api,
) -> None:
    # Alice's box is a B860.
    platform = (await login(world)).device_profile
    assert (platform.name, list(platform.formats), list(platform.codecs)) == (
        "",
        [HLS_TS],
        [H264],
    )
    assert platform.max_height == 0
    await world.call(
        "DefineDeviceProfile",
        define(profile("default", display_name="Old", models=[], formats=[HLS_TS],
                       codecs=[H264], max_height=720)),
        as_=ACME,
    )  # fmt: skip
    fallback = (await login(world)).device_profile
    assert (fallback.name, fallback.max_height) == ("carriers/acme/deviceProfiles/default", 720)
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    mine = (await login(world)).device_profile
    assert mine.name == "carriers/acme/deviceProfiles/uhd"
    assert (list(mine.formats), list(mine.codecs), mine.max_height) == (
        [CMAF, DASH, HLS_TS],
        [HEVC, H264],
        2160,
    )
    assert mine.display_name == "UHD boxes"
    # Which other models share the profile is not the box's business.
    assert list(mine.models) == []
    await world.call(
        "DeleteDeviceProfile",
        pb.DeleteDeviceProfileRequest(name="carriers/acme/deviceProfiles/uhd"),
        as_=ACME,
    )
    assert (await login(world)).device_profile.name == "carriers/acme/deviceProfiles/default"


async def test_a_box_bound_without_a_model_gets_the_default(world: Api) -> None:
    await world.call("DefineDeviceProfile", define(profile("default", models=[])), as_=ACME)
    await world.call(
        "ReplaceDevice",
        pb.ReplaceDeviceRequest(name=device_name("acme", ALICE_MAC), new_mac="aa:bb:cc:00:00:09"),
        as_=ACME,
    )
    reply = await world.call(
        "ActivateDevice", pb.ActivateDeviceRequest(name=device_name("acme", "aa:bb:cc:00:00:09")),
        as_=ACME,
    )  # fmt: skip
    answer = await world.stub.DeviceLogin(
        pb.DeviceLoginRequest(mac="aa:bb:cc:00:00:09", device_secret=reply.device_secret)
    )
    assert answer.device_profile.name == "carriers/acme/deviceProfiles/default"


async def test_client_round_trip_in_domain_values(world: Api) -> None:
    async with SubscriberClient(f"127.0.0.1:{world.port}", await world.tokens(ACME)) as client:
        wanted = DeviceProfile(
            "acme", "uhd", "UHD", ("B860",), ("hls-cmaf", "hls-ts"), ("hevc", "h264"), 2160
        )
        made = await client.define_device_profile(wanted, idempotency_key="c-1")
        assert made.updated_at == world.clock.now
        assert made == DeviceProfile(**{**_fields(wanted), "updated_at": world.clock.now})
        assert await client.get_device_profile("acme", "uhd") == made
        assert await client.list_device_profiles("acme") == [made]
        with pytest.raises(ModelInAnotherProfile):
            await client.define_device_profile(
                DeviceProfile("acme", "hd", "", ("B860",), ("hls-ts",), ("h264",))
            )
        result = await client.device_login(ALICE_MAC, world.alice_secret)  # type: ignore[attr-defined]
        assert result.device_profile.profile_id == "uhd"
        assert result.device_profile.formats == ("hls-cmaf", "hls-ts")
        assert await client.delete_device_profile("acme", "uhd") == made
        result = await client.device_login(ALICE_MAC, world.alice_secret)  # type: ignore[attr-defined]
        assert result.device_profile == PLATFORM_PROFILE


def _fields(p: DeviceProfile) -> dict[str, Any]:
    return {name: getattr(p, name) for name in DeviceProfile.__dataclass_fields__}


# --- the store's guards (deterministic: the competing change lands between read and write) ----


async def test_a_write_decided_on_a_stale_read_writes_nothing(world: Api) -> None:
    store = SubscriberStore(world.redis)
    audit = Audit("carrier:acme", "DefineDeviceProfile")
    now = world.clock.now
    wanted = DeviceProfile("acme", "hd", "", ("Q5",), ("hls-ts",), ("h264",), 0, now)
    stale = await store.read_profile("acme", "hd", wanted.models)
    assert (stale.before, stale.count, stale.owners) == (None, 0, {"Q5": ""})
    # Another profile takes the model after the read.
    await world.call("DefineDeviceProfile", define(profile()), as_=ACME)
    before = await world.snapshot()
    assert not await store.put_profile(wanted, stale, audit, "", "{}", now)
    assert await world.snapshot() == before
    # A new profile decided on a stale count (one was added since) is not written either.
    other = DeviceProfile("acme", "sd", "", ("S1",), ("hls-ts",), ("h264",), 0, now)
    counted = await store.read_profile("acme", "sd", other.models)
    await world.call("DefineDeviceProfile", define(profile("x", models=["X"])), as_=ACME)
    before = await world.snapshot()
    assert not await store.put_profile(other, counted, audit, "", "{}", now)
    assert await world.snapshot() == before
    # A delete decided before a replace is not written.
    read = await store.read_profile("acme", "uhd", ())
    world.clock.advance(1)
    await world.call("DefineDeviceProfile", define(profile(max_height=720)), as_=ACME)
    before = await world.snapshot()
    assert not await store.delete_profile("acme", "uhd", read, audit, "{}", now)
    assert await world.snapshot() == before


# --- over REST (the gateway maps the proto's http rules) ---------------------------------------


async def test_the_rest_paths_define_get_list_and_delete(world: Api) -> None:
    acme = await world.tokens(ACME)
    path = "/v1/carriers/acme/deviceProfiles/uhd"
    body = {
        "displayName": "UHD",
        "models": ["B860"],
        "formats": ["DELIVERY_FORMAT_HLS_CMAF", "DELIVERY_FORMAT_HLS_TS"],
        "codecs": ["VIDEO_CODEC_HEVC", "VIDEO_CODEC_H264"],
        "maxHeight": 2160,
    }
    async with rest_face({"SUBSCRIBER_TARGET": f"127.0.0.1:{world.port}"}) as api:
        put = await api.request(
            "PUT", path, token=acme, body=body, headers={"Idempotency-Key": "rest-1"}
        )
        assert put.status == 200, put.text
        assert put.json["name"] == "carriers/acme/deviceProfiles/uhd"
        assert put.json["formats"] == body["formats"]
        assert put.json["maxHeight"] == 2160
        got = await api.request("GET", path, token=acme)
        assert got.json == put.json
        listed = await api.request("GET", "/v1/carriers/acme/deviceProfiles", token=acme)
        assert listed.json["deviceProfiles"] == [put.json]
        bad = await api.request("PUT", "/v1/carriers/acme/deviceProfiles/hd", token=acme, body=body)
        assert bad.status == 409, bad.text  # FAILED_PRECONDITION
        assert bad.problem["reason"] == "MODEL_IN_ANOTHER_PROFILE"
        beta = await api.request("GET", path, token=await world.tokens("carrier:beta"))
        assert beta.status == 403, beta.text
        gone = await api.request("DELETE", path, token=acme)
        assert gone.json == put.json
        missing = await api.request("GET", path, token=acme)
        assert missing.status == 404
        assert missing.problem["reason"] == "DEVICE_PROFILE_NOT_FOUND"


# --- the CLI -------------------------------------------------------------------------------------


async def test_cli_define_get_list_delete(world: Api) -> None:
    code, out, err = await headend(
        world, "device-profile", "define", "uhd", "--name", "UHD", "--model", "B860",
        "--model", "Q5", "--format", "hls-cmaf,dash,hls-ts", "--codec", "hevc,h264",
        "--max-height", "2160", "--idempotency-key", "cli-1", "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    [made] = json.loads(out)
    assert (made["profile_id"], made["models"], made["formats"], made["max_height"]) == (
        "uhd",
        ["B860", "Q5"],
        ["hls-cmaf", "dash", "hls-ts"],
        2160,
    )
    # --carrier before the action is kept; an admin key must name the carrier.
    code, out, err = await headend(
        world, "device-profile", "--carrier", "acme", "get", "uhd", "-o", "json", as_="admin"
    )
    assert code == 0, err
    assert json.loads(out) == [made]
    code, out, err = await headend(world, "device-profile", "list", "-o", "json")
    assert (code, [p["profile_id"] for p in json.loads(out)]) == (0, ["uhd"]), err
    code, out, err = await headend(
        world, "device-profile", "define", "hd", "--model", "Q5", "--format", "hls-ts",
        "--codec", "h264",
    )  # fmt: skip
    assert code != 0
    assert "device profile uhd" in err
    code, out, err = await headend(world, "device-profile", "delete", "uhd", "-o", "json")
    assert (code, json.loads(out)) == (0, [made]), err
    code, out, err = await headend(world, "device-profile", "get", "uhd")
    assert code != 0
    assert "no device profile uhd" in err


async def test_cli_refuses_an_unknown_format_before_calling(world: Api) -> None:
    before = await world.snapshot()
    code, _, err = await headend(
        world, "device-profile", "define", "uhd", "--model", "B860", "--format", "hls-ts,mp4",
        "--codec", "h264",
    )  # fmt: skip
    assert code != 0
    assert "--format: 'mp4'" in err
    assert await world.snapshot() == before
