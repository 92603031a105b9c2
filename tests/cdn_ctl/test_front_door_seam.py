"""The seam the front door plugs into: middlewares that set BoxContext and raise domain
errors in front of the unchanged routing handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cdn_ctl.domain import Edge, Health, Tier
from cdn_ctl.http import BOX_CONTEXT, BoxContext, Handler, RoutingFace, create_app
from cdn_ctl.routing import Router
from cdn_ctl.service import RoutingService
from cdn_ctl.settings import RoutingSettings
from cdn_ctl.signing import KeyRing, verify_path
from headend.errors import Unauthenticated


@web.middleware
async def fake_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stands in for the front door's session check (a test double, named as such)."""
    if request.headers.get("Authorization") != "Bearer good":
        raise Unauthenticated("bad or expired session")
    request[BOX_CONTEXT] = BoxContext(region="110102", client_ip="10.1.2.3", session_id="lease7")
    return await handler(request)


@pytest.fixture
async def url(ring: KeyRing) -> AsyncIterator[str]:
    router = Router()
    edges = [
        Edge("v1", "110101", Tier.EDGE, "127.0.0.1", 8101, 100, 1000.0, 1000.0),
        Edge("v2", "110102", Tier.EDGE, "127.0.0.1", 8102, 100, 1000.0, 1000.0),
    ]
    router.set_edges(edges)
    router.set_health({"v1": Health.UP, "v2": Health.UP})
    face = RoutingFace(routing=RoutingService(router=router, keys=ring, settings=RoutingSettings()))
    server = TestServer(create_app(face, middlewares=[fake_login]), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


async def test_box_context_from_the_front_door_drives_routing_and_signing(
    url: str, ring: KeyRing
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}route/live/ch1/master.m3u8?region=110101",
            headers={"Authorization": "Bearer good"},
            allow_redirects=False,
        ) as resp,
    ):
        assert resp.status == 302
        location = resp.headers["Location"]
    # The session's region (110102), not the query's, chose the edge; the URL is bound
    # to the address the front door saw.
    assert resp.headers["X-Route-Edge"] == "v2"
    assert location.endswith("/live/ch1/master.m3u8?session=lease7&region=110102")
    path = location.removeprefix("http://127.0.0.1:8102").split("?")[0]
    grant = verify_path(ring, path, client_ip="10.1.2.3", now=0)
    assert (grant.scope, grant.client_ip) == ("live/ch1/", "10.1.2.3")


async def test_front_door_errors_are_mapped_in_the_same_place(url: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}route/live/ch1/master.m3u8?region=110101", allow_redirects=False) as resp,
    ):
        body = await resp.json()
    assert resp.status == 401
    assert body == {"error": "Unauthenticated", "message": "bad or expired session"}
