"""KeyService over REST with a plain HTTP client: the whole key lifecycle, and every refusal
as an RFC 9457 problem with the reason a gRPC caller reads."""

from __future__ import annotations

import pytest

from headend.auth import KeyStore
from tests.support.rest import RestClient
from tests.support.tokens import Tokens


async def test_create_list_in_pages_whoami_and_revoke(api: RestClient, tokens: Tokens) -> None:
    admin = await tokens("admin")
    made = []
    for n in range(3):
        reply = await api.request(
            "POST", "/v1/keys", token=admin, body={"principal": f"carrier:c{n}"}
        )
        assert reply.status == 200, reply.text
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.headers["Cache-Control"] == "no-store"
        key = reply.json
        # The standard JSON mapping: lowerCamelCase names, Timestamp as RFC 3339.
        assert key["key"]["name"].startswith("keys/")
        assert key["key"]["principal"] == f"carrier:c{n}"
        assert key["key"]["createTime"].endswith("Z")
        made.append(key)
    seen: list[str] = []
    page_token = ""
    pages = 0
    while True:
        query = {"pageSize": "2"} | ({"page_token": page_token} if page_token else {})
        reply = await api.request("GET", "/v1/keys", token=admin, params=query)
        assert reply.status == 200, reply.text
        seen += [k["name"] for k in reply.json["keys"]]
        pages += 1
        page_token = reply.json.get("nextPageToken", "")
        if not page_token:
            break
    assert pages == 2
    assert {k["key"]["name"] for k in made} <= set(seen)

    who = await api.request("GET", "/v1/whoami", token=made[0]["token"])
    assert (who.status, who.json) == (200, {"principal": "carrier:c0"})
    name = made[0]["key"]["name"]
    revoked = await api.request("POST", f"/v1/{name}:revoke", token=admin)
    assert (revoked.status, revoked.json) == (200, {})
    # (Servers drop a revoked key from their cache within seconds: the list shows it now.)
    listed = await api.request("GET", "/v1/keys", token=admin, params={"pageSize": "1000"})
    assert name not in {k["name"] for k in listed.json["keys"]}
    again = await api.request("POST", f"/v1/{name}:revoke", token=admin)
    assert again.status == 404
    assert again.problem["reason"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer hk_0000000000000000_" + "x" * 43}, id="unknown"),
        pytest.param({"Authorization": "Basic YWRtaW46YWRtaW4="}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer caf\u00e9"}, id="not-ascii"),
    ],
)
async def test_a_missing_or_invalid_key_is_401(
    api: RestClient, keys: KeyStore, headers: dict[str, str]
) -> None:
    before = await keys.list_keys()
    reply = await api.request("POST", "/v1/keys", headers=headers, body={"principal": "admin"})
    assert reply.status == 401
    problem = reply.problem
    assert problem["reason"] in {"UNAUTHENTICATED", "BAD_AUTHORIZATION"}
    assert problem["domain"] == "headend"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert await keys.list_keys() == before


async def test_a_key_outside_its_role_is_403(api: RestClient, tokens: Tokens) -> None:
    reply = await api.request(
        "POST", "/v1/keys", token=await tokens("carrier:acme"), body={"principal": "admin"}
    )
    assert reply.status == 403
    assert reply.problem["reason"] == "PERMISSION_DENIED"


async def test_a_service_refusal_keeps_its_reason_and_field(
    api: RestClient, tokens: Tokens
) -> None:
    admin = await tokens("admin")
    bad = await api.request("POST", "/v1/keys", token=admin, body={"principal": "nobody:x"})
    assert bad.status == 400
    problem = bad.problem
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert [p["name"] for p in problem["invalid_params"]] == ["principal"]
    # A page token of another query is the service's refusal, named for its field.
    other = await api.request("GET", "/v1/keys", token=admin, params={"pageToken": "garbage"})
    assert other.status == 400
    assert other.problem["invalid_params"][0]["name"] == "page_token"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "reason", "field"),
    [
        pytest.param(b"{not json", "application/json", 400, "INVALID_JSON", "body", id="bad-json"),
        pytest.param(b"\xff\xfe", "application/json", 400, "INVALID_JSON", "body", id="not-utf8"),
        pytest.param(b"[1]", "application/json", 400, "INVALID_JSON", "body", id="not-object"),
        pytest.param(b'{"principal": NaN}', "application/json", 400, "INVALID_JSON", "body",
                     id="nan"),
        pytest.param(b'{"principal": "admin", "colour": "red"}', "application/json", 400,
                     "INVALID_REQUEST", "colour", id="unknown-field"),
        pytest.param(b'{"principal": 7}', "application/json", 400, "INVALID_REQUEST",
                     "principal", id="wrong-type"),
        pytest.param(b"[" * 2000 + b"]" * 2000, "application/json", 400, "INVALID_JSON",
                     "body", id="deep-nesting"),
        pytest.param(b"principal=admin", "application/x-www-form-urlencoded", 415,
                     "UNSUPPORTED_MEDIA_TYPE", "Content-Type", id="form"),
        pytest.param(b'{"principal": "admin"}', "application/json; charset=latin-1", 415,
                     "UNSUPPORTED_MEDIA_TYPE", "Content-Type", id="charset"),
    ],
)  # fmt: skip
async def test_bad_bodies_are_refused_before_the_service(
    api: RestClient,
    tokens: Tokens,
    keys: KeyStore,
    data: bytes,
    content_type: str,
    status: int,
    reason: str,
    field: str,
) -> None:
    admin = await tokens("admin")
    before = await keys.list_keys()
    reply = await api.request(
        "POST", "/v1/keys", token=admin, data=data, headers={"Content-Type": content_type}
    )
    assert reply.status == status, reply.text
    problem = reply.problem
    assert problem["reason"] == reason
    assert problem["invalid_params"][0]["name"] == field
    assert await keys.list_keys() == before
    assert api.server.metrics.requests.labels("POST /v1/keys", str(status))._value.get() == 1


async def test_a_body_past_the_bound_is_413(api: RestClient, tokens: Tokens) -> None:
    body = {"principal": "admin", "pad": "x" * 5000}
    reply = await api.request("POST", "/v1/keys", token=await tokens("admin"), body=body)
    assert reply.status == 413
    assert reply.problem["reason"] == "BODY_TOO_LARGE"


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        pytest.param("GET", "/v1/nothing", 404, "ROUTE_NOT_FOUND", id="unknown-route"),
        pytest.param("GET", "/", 404, "ROUTE_NOT_FOUND", id="root"),
        pytest.param("DELETE", "/v1/keys", 405, "METHOD_NOT_ALLOWED", id="wrong-method"),
        pytest.param("POST", "/v1/keys/abc:frobnicate", 404, "ROUTE_NOT_FOUND", id="other-verb"),
        pytest.param("GET", "/v1/" + "a" * 5000, 414, "URI_TOO_LONG", id="long-path"),
    ],
)
async def test_unknown_routes(
    api: RestClient, tokens: Tokens, method: str, path: str, status: int, reason: str
) -> None:
    reply = await api.request(method, path, token=await tokens("admin"))
    assert reply.status == status
    assert reply.problem["reason"] == reason
    if status == 405:
        assert set(reply.headers["Allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"colour": "red"}, "colour", id="unknown"),
        pytest.param({"pageSize": "ten"}, "pageSize", id="wrong-type"),
        pytest.param([("pageSize", "1"), ("pageSize", "2")], "pageSize", id="twice"),
    ],
)
async def test_bad_query_parameters_are_400(
    api: RestClient, tokens: Tokens, params: object, field: str
) -> None:
    reply = await api.request("GET", "/v1/keys", token=await tokens("admin"), params=params)
    assert reply.status == 400
    problem = reply.problem
    assert problem["reason"] == "INVALID_REQUEST"
    assert problem["invalid_params"][0]["name"] == field


async def test_a_body_where_the_method_takes_none_is_400(api: RestClient, tokens: Tokens) -> None:
    reply = await api.request("GET", "/v1/whoami", token=await tokens("admin"), body={"a": 1})
    assert reply.status == 400
    assert reply.problem["invalid_params"][0]["name"] == "body"


async def test_an_unreachable_service_is_503(api: RestClient, tokens: Tokens) -> None:
    reply = await api.request("GET", "/v1/channels", token=await tokens("admin"))
    assert reply.status == 503
    assert reply.problem["detail"]


async def test_health_and_openapi_need_no_key(api: RestClient) -> None:
    health = await api.request("GET", "/healthz")
    assert (health.status, health.json) == (200, {"status": "ok"})
    document = await api.request("GET", "/openapi.json")
    assert document.status == 200
    assert document.json["openapi"].startswith("3.1")
