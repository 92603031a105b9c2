"""The OpenAPI document: valid OpenAPI 3.1 (checked by openapi-spec-validator), one operation
per route of the table, and schemas in the proto3 JSON mapping the face speaks."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from headend.rest import PUBLIC_RPCS, openapi_document, route_table
from tests.support.rest import RestClient

_VERBS = ("get", "put", "post", "delete", "patch")


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in document["paths"].values()
        for verb, op in item.items()
        if verb in _VERBS
    }


async def test_the_served_document_is_valid_and_lists_every_route(api: RestClient) -> None:
    reply = await api.request("GET", "/openapi.json")
    assert reply.status == 200
    document = reply.json
    validate(document)
    table = route_table()
    assert document == openapi_document(table.routes, public=PUBLIC_RPCS)
    operations = _operations(document)
    assert len(operations) == len(table.routes)
    summaries = {op["summary"] for op in operations.values()}
    assert {r.rpc[1:].replace("/", ".") for r in table.routes} == summaries


def test_paths_spell_out_resource_names() -> None:
    document = openapi_document(route_table().routes, public=PUBLIC_RPCS)
    revoke = document["paths"]["/v1/keys/{key}:revoke"]["post"]
    assert [(p["name"], p["in"]) for p in revoke["parameters"]] == [("key", "path")]
    patch = document["paths"]["/v1/carriers/{carrier}/subscribers/{subscriber}"]["patch"]
    params = {p["name"]: p for p in patch["parameters"]}
    assert params["carrier"]["in"] == params["subscriber"]["in"] == "path"
    assert params["updateMask"]["schema"]["type"] == "string"
    assert params["expectedVersion"]["schema"] == {"type": "string", "format": "uint64"}
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/headend.subscriber.v1.Subscriber"}
    listing = document["paths"]["/v1/keys"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"pageSize", "pageToken"}


def test_schemas_follow_the_proto3_json_mapping() -> None:
    document = openapi_document(route_table().routes, public=PUBLIC_RPCS)
    schemas = document["components"]["schemas"]
    subscriber = schemas["headend.subscriber.v1.Subscriber"]["properties"]
    assert subscriber["version"] == {"type": "string", "format": "uint64"}
    assert subscriber["createTime"] == {"type": "string", "format": "date-time"}
    assert subscriber["status"] == {
        "$ref": "#/components/schemas/headend.subscriber.v1.SubscriberStatus"
    }
    status = schemas["headend.subscriber.v1.SubscriberStatus"]
    assert status["type"] == "string"
    assert "SUBSCRIBER_STATUS_ACTIVE" in status["enum"]
    package = schemas["headend.subscriber.v1.Package"]["properties"]
    assert package["channelIds"] == {"type": "array", "items": {"type": "string"}}
    assert set(schemas["Problem"]["properties"]) >= {"type", "title", "status", "reason"}


def test_security_is_bearer_but_for_public_methods() -> None:
    document = openapi_document(route_table().routes, public=PUBLIC_RPCS)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    operations = _operations(document)
    public = {k for k, op in operations.items() if op.get("security") == []}
    assert public == {"SubscriberService.DeviceLogin"}
    error = operations["KeyService.CreateKey"]["responses"]["401"]
    assert error == {"$ref": "#/components/responses/401"}
    content = document["components"]["responses"]["401"]["content"]
    assert list(content) == ["application/problem+json"]
