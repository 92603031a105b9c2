"""The REST face under attack: every route of its table (read from the descriptors, so a
method annotated later is in this suite too) refuses callers without a valid key, changing
nothing; hostile input (huge paths, bad or deeply nested JSON, oversized bodies, odd bytes)
is refused cleanly as a problem, and the face keeps answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore, Principal
from headend.rest import PUBLIC_RPCS, Route, route_table
from headend.rest.routes import Variable
from tests.support.rest import RestClient, every_service, rest_face
from tests.support.tokens import Tokens

ROUTES = [pytest.param(r, id=r.name) for r in route_table().routes]
WRITES = [
    pytest.param(r, id=r.name)
    for r in route_table().routes
    if r.http_method in ("POST", "PUT", "PATCH", "DELETE")
]


@pytest.fixture
async def api(redis: aioredis.Redis, keys: KeyStore, tmp_path: Path) -> AsyncIterator[RestClient]:
    """The face in front of every service of the platform, bodies bounded at 64 KiB."""
    async with every_service(redis, keys, tmp_path) as targets:
        async with rest_face(targets, max_body_bytes=65536) as client:
            yield client


def concrete(route: Route, value: str = "x1") -> str:
    """A path of ``route`` with every wildcard filled in."""
    parts: list[str] = []
    for segment in route.segments:
        pieces = segment.segments if isinstance(segment, Variable) else (segment,)
        parts += [value if p in ("*", "**") else p for p in pieces]
    return "/" + "/".join(parts) + (f":{route.verb}" if route.verb else "")


async def _snapshot(redis: aioredis.Redis) -> dict[Any, Any]:
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


@pytest.mark.parametrize("route", ROUTES)
async def test_every_route_wants_a_valid_key(
    api: RestClient, redis: aioredis.Redis, keys: KeyStore, route: Route
) -> None:
    info, revoked = await keys.create(Principal("carrier", "acme"))
    await keys.revoke(info.key_id)
    before = await _snapshot(redis)
    body: dict[str, Any] | None = {} if route.body else None
    for headers in (
        {},
        {"Authorization": "Bearer hk_0000000000000000_" + "x" * 43},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": f"Bearer {revoked}"},
    ):
        reply = await api.request(route.http_method, concrete(route), body=body, headers=headers)
        if route.rpc in PUBLIC_RPCS:
            # Public by design (the device secret is in the request): refused for its input.
            assert 400 <= reply.status < 500, reply.text
            assert reply.problem["reason"]
        else:
            assert reply.status == 401, (route.name, reply.text)
            assert reply.problem["reason"] == "UNAUTHENTICATED"
    assert await _snapshot(redis) == before


@pytest.mark.parametrize("route", WRITES)
async def test_bad_json_is_refused_before_any_service(
    api: RestClient, redis: aioredis.Redis, tokens: Tokens, route: Route
) -> None:
    admin = await tokens("admin")
    before = await _snapshot(redis)
    for data in (b"{", b'{"a": [1, 2', b"[" * 3000 + b"]" * 3000, b"\xc3\x28", b"NaN"):
        reply = await api.request(
            route.http_method,
            concrete(route),
            token=admin,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 400, (route.name, reply.text)
        # No body at all where the method takes none; else not JSON.
        expected = "INVALID_JSON" if route.body else "INVALID_REQUEST"
        assert reply.problem["reason"] == expected
    assert await _snapshot(redis) == before


async def test_hostile_paths_and_bodies_are_refused_cleanly(
    api: RestClient, redis: aioredis.Redis, tokens: Tokens
) -> None:
    admin = await tokens("admin")
    before = await _snapshot(redis)
    for path in (
        "/v1/carriers/" + "a" * 3000 + "/subscribers",  # a name the service refuses
        "/v1/carriers/" + "a" * 6000 + "/subscribers",  # past the face's bound
        "/v1/carriers/%00%ff/subscribers/%2e%2e",  # NUL, a byte that is not UTF-8, dots
        "/v1/carriers/acme/subscribers/../../keys",
        "/v1/" + "/".join(["x"] * 1000),
    ):
        reply = await api.request("GET", path, token=admin)
        assert reply.status in (400, 404, 414), (path[:80], reply.text[:200])
        assert reply.problem["reason"]
    huge = await api.request(
        "POST", "/v1/keys", token=admin, data=b'{"principal": "' + b"a" * 100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert huge.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the bound
        yield b'{"principal": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'"}'

    async with api.session.post(
        f"{api.base}/v1/keys",
        data=chunks(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    ) as chunked:
        assert chunked.status == 413
        assert (await chunked.json(content_type=None))["reason"] == "BODY_TOO_LARGE"
    # A path past aiohttp's own request-line bound: its 400, and the face goes on.
    too_long = await api.request("GET", "/v1/" + "b" * 20_000, token=admin)
    assert too_long.status in (400, 414)
    assert await _snapshot(redis) == before
    alive = await api.request("GET", "/v1/whoami", token=admin)
    assert (alive.status, alive.json) == (200, {"principal": "admin"})
