"""An emergency agency's key on the REST face: every route outside ``AlertService`` (and
``WhoAmI``) is refused 403 by the gRPC harness behind it, changing nothing; its own routes
work. (The gRPC side of the same rule, method by method: ``test_grpc_methods``.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.auth import CONFINED, KeyStore
from headend.rest import PUBLIC_RPCS, Route, route_table
from headend.rest.routes import Variable
from tests.support.rest import RestClient, every_service, rest_face
from tests.support.tokens import Tokens

AGENCY = "emergency:gd-eb"
ROUTES = [pytest.param(r, id=r.name) for r in route_table().routes]


@pytest.fixture
async def api(redis: aioredis.Redis, keys: KeyStore, tmp_path: Path) -> AsyncIterator[RestClient]:
    """The face in front of every service of the platform."""
    async with every_service(redis, keys, tmp_path) as targets:
        async with rest_face(targets) as client:
            yield client


def _path(route: Route) -> str:
    parts: list[str] = []
    for segment in route.segments:
        pieces = segment.segments if isinstance(segment, Variable) else (segment,)
        parts += ["x1" if p in ("*", "**") else p for p in pieces]
    return "/" + "/".join(parts) + (f":{route.verb}" if route.verb else "")


async def _snapshot(redis: aioredis.Redis) -> dict[Any, Any]:
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


@pytest.mark.parametrize("route", ROUTES)
async def test_an_emergency_key_reaches_only_its_routes(
    api: RestClient, redis: aioredis.Redis, tokens: Tokens, route: Route
) -> None:
    if route.rpc in PUBLIC_RPCS:
        pytest.skip("public by design: the device secret is in the request")
    token = await tokens(AGENCY)
    before = await _snapshot(redis)
    reply = await api.request(
        route.http_method, _path(route), token=token, body={} if route.body else None
    )
    if route.rpc in CONFINED["emergency"]:
        assert reply.status in (200, 400, 404), (route.name, reply.text)
    else:
        assert reply.status == 403, (route.name, reply.text)
        assert reply.problem["reason"] == "PERMISSION_DENIED"
    assert await _snapshot(redis) == before


async def test_an_emergency_key_issues_over_rest(api: RestClient, tokens: Tokens) -> None:
    body = {
        "severity": "SEVERITY_MINOR",
        "headline": "Drill",
        "regions": ["440000"],
        "content": {"card": {"text": "This is a drill"}},
        "drill": True,
    }
    reply = await api.request("POST", "/v1/alerts", token=await tokens(AGENCY), body=body)
    assert reply.status == 200, reply.text
    assert reply.json["state"] == "ALERT_STATE_CONFIRMED"
    me = await api.request("GET", "/v1/whoami", token=await tokens(AGENCY))
    assert me.json["principal"] == AGENCY
