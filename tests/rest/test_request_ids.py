"""Request ids through the REST face: the caller's ``X-Request-Id`` (or a new one) reaches
the service as ``x-request-id``, tags the lines logged while it is handled, and comes back."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from headend import logs
from headend.auth import KeyStore
from headend.keys_service import SERVICE_NAME
from headend.rpc import RpcSettings, ServiceSpec, principal, start_server
from protos import keys_pb2
from tests.support.rest import Reply, RestClient, rest_face
from tests.support.tokens import Tokens

log = logging.getLogger("tests.rest.whoami")


def _rid(reply: Reply) -> str:
    """The reply's request id (aiohttp spells the header X-Request-ID)."""
    [value] = [v for k, v in reply.headers.items() if k.lower() == "x-request-id"]
    return value


async def _whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """A KeyService whose WhoAmI logs one line, so the test can see the id the service got."""
    log.warning("whoami answered")
    return keys_pb2.WhoAmIResponse(principal=str(principal())).SerializeToString()


@pytest.fixture
async def logging_api(keys: KeyStore) -> AsyncIterator[tuple[RestClient, io.StringIO]]:
    """The face in front of a real gRPC server (the platform's harness) mounting a WhoAmI
    that logs; and the JSON lines that server logs."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"WhoAmI": grpc.unary_unary_rpc_method_handler(_whoami)}
    )
    spec = ServiceSpec(SERVICE_NAME, lambda server: server.add_generic_rpc_handlers((handler,)))
    server, port = await start_server(RpcSettings(port=0), services=[spec], authenticator=keys)
    out = io.StringIO()
    lines = logging.StreamHandler(out)
    lines.setFormatter(logs.JsonFormatter("test"))
    log.addHandler(lines)
    try:
        async with rest_face({"SUBSCRIBER_TARGET": f"127.0.0.1:{port}"}) as client:
            yield client, out
    finally:
        log.removeHandler(lines)
        await server.stop(0)


async def test_the_callers_request_id_reaches_the_service_and_comes_back(
    logging_api: tuple[RestClient, io.StringIO], tokens: Tokens
) -> None:
    api, out = logging_api
    reply = await api.request(
        "GET", "/v1/whoami", token=await tokens(), headers={"X-Request-Id": "bill-2026.11_30"}
    )
    assert (reply.status, reply.json) == (200, {"principal": "admin"})
    assert _rid(reply) == "bill-2026.11_30"
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert (line["msg"], line["request_id"]) == ("whoami answered", "bill-2026.11_30")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"X-Request-Id": "a b"}, id="space"),
        pytest.param({"X-Request-Id": "r" * 65}, id="too-long"),
        pytest.param({"X-Request-Id": "<script>"}, id="markup"),
    ],
)
async def test_a_missing_or_bad_request_id_is_replaced_by_one_the_service_also_uses(
    logging_api: tuple[RestClient, io.StringIO], tokens: Tokens, headers: dict[str, str]
) -> None:
    api, out = logging_api
    reply = await api.request("GET", "/v1/whoami", token=await tokens(), headers=headers)
    assert reply.status == 200
    rid = _rid(reply)
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    assert rid != headers.get("X-Request-Id")
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["request_id"] == rid


async def test_a_refusal_and_the_faces_own_routes_carry_the_request_id(api: RestClient) -> None:
    refused = await api.request("GET", "/v1/whoami", headers={"X-Request-Id": "no-key-1"})
    assert refused.status == 401
    assert _rid(refused) == "no-key-1"
    unknown = await api.request("GET", "/v1/nothing", headers={"X-Request-Id": "no-route"})
    assert unknown.status == 404
    assert _rid(unknown) == "no-route"
    health = await api.request("GET", "/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", _rid(health))
