"""Cut view scopes: their spelling, parsing, and signing: a cut is reached only by a grant that
names it, in Python and in the njs edge verifier (through a real nginx edge)."""

from __future__ import annotations

import time

import aiohttp
import pytest

from cdn_ctl.domain import Cut, Edge, Health, Scope, Tier, parse_target
from cdn_ctl.errors import InvalidRouteRequest, TokenInvalid
from cdn_ctl.routing import RoutePolicy, Router, RouteRequest, RoutingService, RoutingSettings
from cdn_ctl.signing import KeyRing, SigningKey, scope_candidates, sign_path, verify_path
from tests.cdn_ctl.vectors import vector_path
from tests.support.cdn import EdgeFactory, FakeOrigin

NOW = 1_800_000_000
LIVE_CUT = "live/ch1/x/alert.cn/1700000000-0/"
CATCHUP_CUT = "catchup/ch1/w/1700000000/1700003600/x/alert.cn/1700000600-1700001200/"


def test_scope_paths() -> None:
    assert Scope("live", "ch1", cut=Cut("alert.cn", 1700000000)).path == LIVE_CUT
    window = Scope(
        "catchup", "ch1", 1700000000, 1700003600, Cut("alert.cn", 1700000600, 1700001200)
    )
    assert window.path == CATCHUP_CUT
    assert Scope("live", "ch1").path == "live/ch1/"


@pytest.mark.parametrize(
    ("kind", "path", "scope", "rest"),
    [
        pytest.param("live", "x/alert.cn/1700000000-0/180p/index.m3u8", LIVE_CUT,
                     "180p/index.m3u8", id="live"),
        pytest.param("catchup", CATCHUP_CUT.removeprefix("catchup/ch1/") + "master.m3u8",
                     CATCHUP_CUT, "master.m3u8", id="catchup"),
        pytest.param("live", "x/alert.cn/1700000000-0/180p/feed/360p/0000000007.ts", LIVE_CUT,
                     "180p/feed/360p/0000000007.ts", id="feed-segment"),
        # A rung may be called x: without a cut's shape it is an ordinary path.
        pytest.param("live", "x/index.m3u8", "live/ch1/", "x/index.m3u8", id="rung-x"),
    ],
)  # fmt: skip
def test_parse_target(kind: str, path: str, scope: str, rest: str) -> None:
    parsed, below = parse_target(kind, "ch1", path)
    assert (parsed.path, below) == (scope, rest)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("x/alert/1700000100-1700000000/a/index.m3u8", "cut.end", id="reversed"),
        pytest.param("x/alert/1700000000-1700000000/a/index.m3u8", "cut.end", id="empty"),
        pytest.param("x/alert/0-0/a/index.m3u8", "cut.start", id="zero-start"),
        pytest.param("x/alert/../1-0/a", "scope", id="dot-dot"),
        pytest.param("x/alert!/1-0/a", "scope", id="bad-char"),
        pytest.param(f"x/{'a' * 129}/1700000000-0/a/index.m3u8", "channel", id="overlong-feed"),
        pytest.param("x/ch1/1700000000-0/a/index.m3u8", "cut.feed", id="the-channel-itself"),
    ],
)
def test_parse_target_refuses(path: str, field: str) -> None:
    with pytest.raises(InvalidRouteRequest) as caught:
        parse_target("live", "ch1", path)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(("bad feed", 1, 0), id="feed"),
        pytest.param(("alert", 0, 0), id="start"),
        pytest.param(("alert", 10, 5), id="reversed"),
    ],
)
def test_cut_refuses(cut: tuple[str, int, int]) -> None:
    with pytest.raises(InvalidRouteRequest):
        Cut(*cut)


@pytest.mark.parametrize(
    ("index", "rest"),
    [
        pytest.param(4, LIVE_CUT + "180p/index.m3u8", id="live-cut"),
        pytest.param(5, CATCHUP_CUT + "180p/feed/360p/0000000007.ts", id="catchup-cut-deepest"),
    ],
)
def test_cut_vectors_verify(ring: KeyRing, index: int, rest: str) -> None:
    grant = verify_path(ring, vector_path(index, rest), client_ip="127.0.0.1", now=NOW)
    assert grant.scope == rest[: len(LIVE_CUT if index == 4 else CATCHUP_CUT)]


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        pytest.param("live/ch1/", LIVE_CUT + "180p/index.m3u8", id="live-grant"),
        pytest.param("catchup/ch1/w/1700000000/1700003600/", CATCHUP_CUT + "master.m3u8",
                     id="window-grant"),
        pytest.param("live/", LIVE_CUT + "180p/index.m3u8", id="broad-grant"),
        pytest.param(LIVE_CUT, LIVE_CUT + "180p/x/other/1-0/index.m3u8", id="cut-below-cut"),
    ],
)  # fmt: skip
def test_a_grant_never_covers_a_cut_below_it(ring: KeyRing, scope: str, path: str) -> None:
    """A cut shows another channel: a channel's grant must not reach it."""
    forged = sign_path(ring, scope=scope, path=path, expires_at=NOW + 60)
    with pytest.raises(TokenInvalid):
        verify_path(ring, forged, client_ip="127.0.0.1", now=NOW)


def test_candidates_stop_short_of_the_last_cut() -> None:
    assert scope_candidates(LIVE_CUT + "180p/index.m3u8")[0] == "live/ch1/x/"
    assert "live/ch1/" in scope_candidates("live/ch1/x/0000000001.ts")


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as resp:
        return resp.status


@pytest.mark.slow
async def test_the_edge_verifies_cut_scopes_as_python_does(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    accepted = [
        vector_path(4, LIVE_CUT + "180p/index.m3u8"),
        vector_path(4, LIVE_CUT + "180p/feed/360p/0000000007.ts"),
        vector_path(5, CATCHUP_CUT + "180p/feed/360p/0000000007.ts"),
        vector_path(5, CATCHUP_CUT + "master.m3u8"),
    ]
    for path in accepted:
        assert await _status(edge.url + path) == 200, path
        assert origin.hits["/" + path.split("/", 6)[6]] == 1
    expires = int(time.time()) + 60
    refused = [
        sign_path(ring, scope="live/ch1/", path=LIVE_CUT + "180p/index.m3u8", expires_at=expires),
        sign_path(ring, scope="catchup/ch1/w/1700000000/1700003600/",
                  path=CATCHUP_CUT + "180p/index.m3u8", expires_at=expires),
        # The cut's grant does not reach the channel itself.
        vector_path(4, LIVE_CUT).removesuffix(LIVE_CUT) + "live/ch1/180p/index.m3u8",
    ]  # fmt: skip
    for path in refused:
        assert await _status(edge.url + path) == 403, path
    assert sum(origin.hits.values()) == len(accepted)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        pytest.param("live", LIVE_CUT.removeprefix("live/ch1/") + "180p/index.m3u8", id="live"),
        pytest.param("catchup", CATCHUP_CUT.removeprefix("catchup/ch1/") + "master.m3u8",
                     id="catchup"),
    ],
)  # fmt: skip
def test_routing_signs_a_cut_for_exactly_the_cut(kind: str, path: str) -> None:
    router = Router(RoutePolicy())
    router.set_edges([Edge("v1", "110101", Tier.EDGE, "127.0.0.1", 8080, 100, 1000.0, 1000.0)])
    router.set_health({"v1": Health.UP})
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    service = RoutingService(router=router, keys=ring, settings=RoutingSettings())
    redirect = service.route(RouteRequest(kind, "ch1", path, "110101", "10.0.0.1"))
    signed = "/" + redirect.location.split("/", 3)[3]
    grant = verify_path(ring, signed, client_ip="10.0.0.1", now=0)
    assert grant.scope == (LIVE_CUT if kind == "live" else CATCHUP_CUT)
    assert grant.rest == f"{kind}/ch1/{path}"
