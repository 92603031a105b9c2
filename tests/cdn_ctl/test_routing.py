"""The router: region hierarchy fallback, bounded loads, uplink headroom, draining, explanations."""

from __future__ import annotations

from collections import Counter

import pytest

from cdn_ctl.domain import Edge, Health, RouteLevel, Scope, Tier
from cdn_ctl.errors import InvalidRouteRequest, NoEdgeAvailable
from cdn_ctl.routing import (
    HashRing,
    RouteLedger,
    RoutePolicy,
    Router,
    RouteRequest,
    RoutingService,
    RoutingSettings,
)
from cdn_ctl.signing import KeyRing, SigningKey, verify_path
from headend.ids import new_lease_id

BOX = "110101"


def edge(
    edge_id: str,
    region: str,
    tier: Tier = Tier.EDGE,
    *,
    sessions: int = 100,
    uplink: float = 1000.0,
    draining: bool = False,
) -> Edge:
    return Edge(
        edge_id, region, tier, "127.0.0.1", 8100, sessions, 10_000.0, uplink, draining=draining
    )


TOPOLOGY = [
    edge("v1", "110101"),
    edge("v2", "110101"),
    edge("c1", "110102"),
    edge("p1", "110201"),
    edge("far", "320101"),
    edge("mid", "110100", Tier.MID, sessions=1000),
    edge("origin", "110000", Tier.ORIGIN, sessions=10_000),
]


def router(
    down: tuple[str, ...] = (), degraded: tuple[str, ...] = (), edges: list[Edge] | None = None
) -> Router:
    r = Router(RoutePolicy(balance_factor=1.25))
    r.set_edges(edges or TOPOLOGY)
    r.set_health(
        {
            e.edge_id: Health.DOWN
            if e.edge_id in down
            else Health.DEGRADED
            if e.edge_id in degraded
            else Health.UP
            for e in (edges or TOPOLOGY)
        }
    )
    return r


@pytest.mark.parametrize(
    ("down", "expected", "level"),
    [
        pytest.param((), {"v1", "v2"}, RouteLevel.COUNTY, id="county"),
        pytest.param(("v1", "v2"), {"c1"}, RouteLevel.CITY, id="city"),
        pytest.param(("v1", "v2", "c1"), {"p1"}, RouteLevel.PROVINCE, id="province"),
        pytest.param(
            ("v1", "v2", "c1", "p1"), {"mid"}, RouteLevel.MID, id="mid-tier-not-another-province"
        ),
        pytest.param(("v1", "v2", "c1", "p1", "mid"), {"origin"}, RouteLevel.ORIGIN, id="origin"),
    ],
)
def test_region_hierarchy_fallback_never_reaches_a_dead_edge(
    down: tuple[str, ...], expected: set[str], level: RouteLevel
) -> None:
    r = router(down)
    decisions = [r.route(f"ch{i}", BOX) for i in range(40)]
    assert {d.edge.edge_id for d in decisions} == expected
    assert {d.level for d in decisions} == {level}


def test_everything_down_is_no_edge_available() -> None:
    r = router(tuple(e.edge_id for e in TOPOLOGY))
    with pytest.raises(NoEdgeAvailable) as err:
        r.route("ch1", BOX)
    assert err.value.details == {"channel": "ch1", "region": BOX}


def test_degraded_village_edge_is_used_only_after_healthy_nearby_edges() -> None:
    r = router(degraded=("v1", "v2"))
    assert {r.route(f"ch{i}", BOX).edge.edge_id for i in range(20)} == {"c1"}
    r = router(degraded=("v1", "v2"), down=("c1", "p1"))
    assert {r.route(f"ch{i}", BOX).edge.edge_id for i in range(20)} == {"v1", "v2"}


def test_unloaded_channels_stay_cache_affine() -> None:
    r = router()
    first = {f"ch{i}": r.route(f"ch{i}", BOX).edge.edge_id for i in range(30)}
    again = {f"ch{i}": r.route(f"ch{i}", BOX).edge.edge_id for i in range(30)}
    assert first == again
    assert set(first.values()) == {"v1", "v2"}  # hashing spreads channels over the village


def test_popular_channel_spreads_within_the_bound() -> None:
    """One channel watched by 300 boxes: the village edges fill to c x average, then spill
    to the county and city, and no edge goes over 1.25 x the mean load."""
    village = [
        edge(f"e{i}", region) for i, region in enumerate(["110101", "110101", "110102", "110201"])
    ]
    r = router(edges=village)
    for n in range(300):
        d = r.route("hit", BOX)
        r.hold(f"s{n}", edge_id=d.edge.edge_id, channel="hit", expires_at=1e12)
    loads = Counter({e.edge_id: r.leases_on(e.edge_id) for e in village})
    mean = sum(loads.values()) / len(loads)
    assert max(loads.values()) / mean <= 1.25
    assert min(loads.values()) > 0


def test_bound_prefers_home_over_the_mid_tier_when_only_far_edges_have_room() -> None:
    village = [edge("home", "110101"), edge("far", "320101"), edge("mid", "110100", Tier.MID)]
    r = router(edges=village)
    for n in range(150):
        d = r.route("ch1", BOX)
        r.hold(f"s{n}", edge_id=d.edge.edge_id, channel="ch1", expires_at=1e12)
    assert r.leases_on("home") == 100  # full, not pushed across the province
    assert r.leases_on("far") == 0
    assert r.leases_on("mid") == 50


def test_uplink_headroom_limits_new_channels_not_new_viewers() -> None:
    small = [edge("v1", "110101", uplink=16.0), edge("v2", "110101")]
    r = router(edges=small)
    placed = []
    for n, channel in enumerate(["a", "b", "c", "d", "e", "f"]):
        d = r.route(channel, BOX)
        r.hold(f"s{n}", edge_id=d.edge.edge_id, channel=channel, expires_at=1e12)
        placed.append(d.edge.edge_id)
    # 16 Mbps / 8 Mbps per channel ladder
    assert sum(r.carries("v1", c) for c in "abcdef") <= 2
    carried = next(c for c in "abcdef" if r.carries("v1", c))
    assert r.route(carried, BOX).edge.edge_id == "v1"


def test_draining_edge_gets_no_new_leases() -> None:
    edges = [edge("v1", "110101", draining=True), edge("v2", "110101")]
    r = router(edges=edges)
    assert {r.route(f"ch{i}", BOX).edge.edge_id for i in range(20)} == {"v2"}


def test_explanation_lists_every_passed_candidate() -> None:
    r = router(down=("v1",), degraded=())
    r.set_edges([e if e.edge_id != "v2" else edge("v2", "110101", sessions=1) for e in TOPOLOGY])
    r.hold("x", edge_id="v2", channel="other", expires_at=1e12)
    d = r.route("ch1", BOX, explain=True)
    verdicts = {(c.edge_id, c.verdict.split(" ")[0]) for c in d.considered}
    assert ("v1", "down") in verdicts
    assert ("v2", "full") in verdicts
    assert d.edge.edge_id == "c1"
    assert d.level is RouteLevel.CITY
    assert d.reason.startswith("city edge c1; up; load=")


def test_ring_moves_few_channels_when_an_edge_joins() -> None:
    before = HashRing([f"e{i}" for i in range(8)], vnodes=100)
    after = HashRing([f"e{i}" for i in range(9)], vnodes=100)
    moved = sum(before.order(f"ch{i}")[0] != after.order(f"ch{i}")[0] for i in range(2000))
    assert moved < 2000 * 0.2  # ~1/9 expected
    assert all(
        after.order(f"ch{i}")[0] == "e8"
        for i in range(2000)
        if before.order(f"ch{i}")[0] != after.order(f"ch{i}")[0]
    )


def test_route_ledger_expiry_and_moves() -> None:
    ledger = RouteLedger()
    ledger.start("s1", edge_id="v1", channel="a", expires_at=10)
    ledger.start("s2", edge_id="v1", channel="a", expires_at=20)
    ledger.start("s2", edge_id="v2", channel="a", expires_at=20)
    assert ledger.counts() == {"v1": 1, "v2": 1}
    assert ledger.expire(15) == 1
    assert ledger.counts() == {"v2": 1}
    assert ledger.edge_channels["v1"] == 0
    assert ledger.total == 1


def test_cached_target_checks_still_reject_every_bad_request() -> None:
    router = Router(RoutePolicy())
    edge = Edge("v1", "110101", Tier.EDGE, "127.0.0.1", 8080, 100, 1000.0, 1000.0)
    router.set_edges([edge])
    router.set_health({"v1": Health.UP})
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    service = RoutingService(router=router, keys=ring, settings=RoutingSettings())
    good = RouteRequest("live", "ch1", "master.m3u8", "110101", "10.0.0.1")
    service.route(good)
    service.route(good)  # served from the cache of checked targets
    for bad, field in (
        (good._replace(kind="vod"), "kind"),
        (good._replace(channel="bad/ch"), "channel"),
        (good._replace(region="11010"), "region"),
        (good._replace(path="../x"), "scope"),
        (good._replace(lease_id="bad id"), "lease_id"),
    ):
        for _ in range(2):
            with pytest.raises(InvalidRouteRequest) as err:
                service.route(bad)
            assert err.value.field == field
    # Redirects without a lease reserve nothing (only a box's lease takes capacity).
    assert router.held == 0


def test_catchup_redirect_is_signed_once_for_exactly_its_window() -> None:
    signed: list[str] = []

    class Counting(RoutingService):
        def sign(self, scope: Scope, *, lifetime_seconds: int, client_ip: str | None) -> str:
            signed.append(scope.path)
            return super().sign(scope, lifetime_seconds=lifetime_seconds, client_ip=client_ip)

    r = router()
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    service = Counting(router=r, keys=ring, settings=RoutingSettings())
    lease = new_lease_id()
    scope = Scope("catchup", "ch1", 1000, 4600)
    redirect = service.redirect(
        scope, "master.m3u8", region=BOX, client_ip="10.0.0.1", lease_id=lease
    )
    assert signed == ["catchup/ch1/w/1000/4600/"]
    path = "/" + redirect.location.split("/", 3)[3].split("?")[0]
    assert verify_path(ring, path, client_ip="10.0.0.1", now=0).scope == scope.path
    assert path.endswith("/catchup/ch1/w/1000/4600/master.m3u8")
    assert redirect.location.endswith(f"?lease_id={lease}&region={BOX}")
    assert r.edge_of(lease, "ch1") == redirect.edge.edge_id


def test_kept_lease_reason_follows_the_edge_and_still_checks_the_region() -> None:
    r = router(edges=[edge("v1", "110101")])
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    service = RoutingService(router=r, keys=ring, settings=RoutingSettings())
    lease, scope = new_lease_id(), Scope("live", "ch1")
    placed = service.redirect(scope, "low/index.m3u8", region=BOX, client_ip=None, lease_id=lease)
    assert placed.edge.edge_id == "v1"
    kept = service.redirect(scope, "low/index.m3u8", region=BOX, client_ip=None, lease_id=lease)
    assert (kept.level, kept.reason) == (RouteLevel.COUNTY, "lease affinity: county edge v1")
    # Another box region on the same kept lease: its own level, and a bad region is refused
    # every time, remembered answers or not.
    other = service.redirect(
        scope, "low/index.m3u8", region="110102", client_ip=None, lease_id=lease
    )
    assert (other.level, other.reason) == (RouteLevel.CITY, "lease affinity: city edge v1")
    for _ in range(2):
        with pytest.raises(InvalidRouteRequest) as err:
            service.redirect(
                scope, "low/index.m3u8", region="11010", client_ip=None, lease_id=lease
            )
        assert err.value.field == "region"
    # The edge re-registered in another county: the kept lease's level and reason follow it.
    r.set_edges([edge("v1", "110102")])
    moved = service.redirect(scope, "low/index.m3u8", region=BOX, client_ip=None, lease_id=lease)
    assert (moved.edge.region, moved.level) == ("110102", RouteLevel.CITY)
    assert moved.reason == "lease affinity: city edge v1"
