"""What a carrier's billing system does, over REST with a plain HTTP client: carriers,
subscribers, boxes, entitlements, pages, partial updates, blocking; and each refusal with
the reason a gRPC caller of the same method gets."""

from __future__ import annotations

import grpc
import pytest

from headend.rpc import bearer, client_channel, error_details
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from tests.support.rest import RestClient
from tests.support.tokens import Tokens

ACME = "/v1/carriers/acme"


async def _platform(api: RestClient, tokens: Tokens) -> str:
    """Carriers acme and beta and the basic package (the admin's part); acme's key."""
    admin = await tokens("admin")
    for carrier in ("acme", "beta"):
        reply = await api.request(
            "POST",
            "/v1/carriers",
            token=admin,
            params={"carrierId": carrier},
            body={"displayName": carrier.title(), "networkType": "NETWORK_TYPE_TELECOM"},
        )
        assert reply.status == 200, reply.text
        assert reply.json["name"] == f"carriers/{carrier}"
        assert reply.json["status"] == "CARRIER_STATUS_ACTIVE"
    package = await api.request(
        "PUT",
        "/v1/packages/basic",
        token=admin,
        body={"displayName": "Basic", "channelIds": ["cctv1", "cctv2"]},
    )
    assert package.status == 200, package.text
    assert package.json == {
        "name": "packages/basic",
        "displayName": "Basic",
        "channelIds": ["cctv1", "cctv2"],
    }
    key = await api.request("POST", "/v1/keys", token=admin, body={"principal": "carrier:acme"})
    token: str = key.json["token"]
    return token


async def _subscriber(api: RestClient, token: str, sid: str, **fields: str) -> dict[str, object]:
    reply = await api.request(
        "POST",
        f"{ACME}/subscribers",
        token=token,
        params={"subscriber_id": sid},
        body={"displayName": sid.title(), "regionCode": "440305", **fields},
        headers={"Idempotency-Key": f"create-{sid}"},
    )
    assert reply.status == 200, reply.text
    created: dict[str, object] = reply.json
    return created


async def test_a_billing_system_provisions_a_subscriber(api: RestClient, tokens: Tokens) -> None:
    acme = await _platform(api, tokens)
    alice = await _subscriber(api, acme, "alice", contactEmail="alice@example.net")
    assert alice["name"] == "carriers/acme/subscribers/alice"
    assert alice["status"] == "SUBSCRIBER_STATUS_ACTIVE"
    assert isinstance(alice["version"], str)  # uint64: a string in proto3 JSON
    # The same Idempotency-Key: the first answer again, nothing created twice.
    assert await _subscriber(api, acme, "alice", contactEmail="alice@example.net") == alice

    box = await api.request(
        "POST",
        f"{ACME}/subscribers/alice:bindDevice",
        token=acme,
        body={"mac": "AA-BB-CC-00-00-01", "serial": "SN1", "model": "X1"},
    )
    assert box.status == 200, box.text
    assert box.json["name"] == "carriers/acme/devices/aabbcc000001"
    assert box.json["subscriber"] == alice["name"]
    entitled = await api.request(
        "POST",
        f"{ACME}/subscribers/alice:entitle",
        token=acme,
        body={"packageId": "basic", "validUntil": "2099-01-01T00:00:00+08:00"},
    )
    assert entitled.status == 200, entitled.text
    held = await api.request("GET", f"{ACME}/subscribers/alice/entitlements", token=acme)
    assert held.status == 200, held.text
    [entitlement] = next(iter(v for k, v in held.json.items() if isinstance(v, list)))
    assert "basic" in str(entitlement)

    blocked = await api.request(
        "POST", "/v1/carriers/acme/devices/aabbcc000001:block", token=acme, body={"blocked": True}
    )
    assert blocked.status == 200, blocked.text
    assert blocked.json["status"] == "DEVICE_STATUS_BLOCKED"
    got = await api.request("GET", "/v1/carriers/acme/devices/aabbcc000001", token=acme)
    assert got.json["status"] == "DEVICE_STATUS_BLOCKED"


async def test_subscribers_come_in_pages(api: RestClient, tokens: Tokens) -> None:
    acme = await _platform(api, tokens)
    for sid in ("s1", "s2", "s3"):
        await _subscriber(api, acme, sid)
    first = await api.request("GET", f"{ACME}/subscribers", token=acme, params={"pageSize": "2"})
    assert first.status == 200, first.text
    assert [s["name"].rsplit("/", 1)[1] for s in first.json["subscribers"]] == ["s1", "s2"]
    assert first.json["totalSize"] == 3
    rest = await api.request(
        "GET",
        f"{ACME}/subscribers",
        token=acme,
        params={"pageSize": "2", "pageToken": first.json["nextPageToken"]},
    )
    assert [s["name"].rsplit("/", 1)[1] for s in rest.json["subscribers"]] == ["s3"]
    assert "nextPageToken" not in rest.json
    # A token from another parent is the service's refusal.
    admin = await tokens("admin")
    other = await api.request(
        "GET",
        "/v1/carriers/beta/subscribers",
        token=admin,
        params={"pageToken": first.json["nextPageToken"]},
    )
    assert other.status == 400
    assert other.problem["invalid_params"][0]["name"] == "page_token"


@pytest.mark.parametrize("mask", ["displayName", "display_name"])
async def test_patch_changes_only_the_masked_fields(
    api: RestClient, tokens: Tokens, mask: str
) -> None:
    acme = await _platform(api, tokens)
    alice = await _subscriber(api, acme, "alice")
    patched = await api.request(
        "PATCH",
        f"{ACME}/subscribers/alice",
        token=acme,
        params={"updateMask": mask, "expectedVersion": str(alice["version"])},
        body={"displayName": "Alice B", "regionCode": "110101"},
    )
    assert patched.status == 200, patched.text
    assert patched.json["displayName"] == "Alice B"
    assert patched.json["regionCode"] == "440305"
    assert int(patched.json["version"]) > int(str(alice["version"]))
    stale = await api.request(
        "PATCH",
        f"{ACME}/subscribers/alice",
        token=acme,
        params={"updateMask": mask, "expectedVersion": str(alice["version"])},
        body={"displayName": "Alice C"},
    )
    assert stale.status == 409
    assert stale.problem["reason"]


async def test_a_bad_mask_path_is_the_services_refusal(api: RestClient, tokens: Tokens) -> None:
    acme = await _platform(api, tokens)
    await _subscriber(api, acme, "alice")
    reply = await api.request(
        "PATCH",
        f"{ACME}/subscribers/alice",
        token=acme,
        params={"updateMask": "createTime"},
        body={"displayName": "X"},
    )
    assert reply.status == 400
    assert reply.problem["invalid_params"][0]["name"] == "update_mask"


async def test_errors_carry_the_grpc_reason(
    api: RestClient, tokens: Tokens, subscriber_target: str
) -> None:
    acme = await _platform(api, tokens)
    reply = await api.request("GET", f"{ACME}/subscribers/nobody", token=acme)
    assert reply.status == 404
    problem = reply.problem
    async with client_channel(subscriber_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.SubscriberServiceStub(channel).GetSubscriber(
                pb.GetSubscriberRequest(name="carriers/acme/subscribers/nobody"),
                metadata=bearer(acme),
            )
    details = error_details(info.value)
    assert problem["reason"] == details.reason == "SUBSCRIBER_NOT_FOUND"
    assert problem.get("metadata", {}) == details.metadata
    assert problem["detail"] == info.value.details()


async def test_another_carriers_key_is_refused(api: RestClient, tokens: Tokens) -> None:
    acme = await _platform(api, tokens)
    await _subscriber(api, acme, "alice")
    beta = await tokens("carrier:beta")
    for method, path, body in (
        ("GET", f"{ACME}/subscribers/alice", None),
        ("GET", f"{ACME}/subscribers", None),
        ("POST", f"{ACME}/subscribers/alice:entitle", {"packageId": "basic"}),
    ):
        reply = await api.request(method, path, token=beta, body=body)
        assert reply.status in (403, 404), (path, reply.text)
        assert reply.problem["reason"]


async def test_a_bad_name_in_the_path_names_the_field(api: RestClient, tokens: Tokens) -> None:
    admin = await tokens("admin")
    reply = await api.request("GET", "/v1/carriers/ACME%20INC/subscribers/x", token=admin)
    assert reply.status == 400
    assert reply.problem["invalid_params"][0]["name"] == "name"
