"""A deterministic routing simulation: this router against the usual alternatives.

Topology: 16 edge-tier caches in 2 provinces x 2 cities x 2 counties x 2
edges (region codes 410101 ...), one mid tier per province and an origin.
Boxes live in the 8 edge counties with uneven populations. Viewings arrive
(Poisson), pick a channel by Zipf popularity, watch live (70%) or a catch-up
programme (30%, itself picked from a few per channel) for a geometric number
of 6-second ticks, and fetch one segment per tick; each holds a lease (a
fresh id, :func:`headend.ids.new_lease_id`) while it plays. Each edge has a
segment LRU cache and a limited uplink.

Routers compared (all skip an edge at its lease capacity):

- ``this router``: :class:`cdn_ctl.routing.Router` itself (region hierarchy,
  bounded-load consistent hashing with c = 1.25, uplink headroom);
- ``round-robin``: every edge in turn, no region, no content affinity;
- ``consistent hash``: the box's county edges, channel -> edge on a ring,
  no load bound (then the city, province, any edge when full);
- ``tc nearest-point``: Traffic Control style: the box's cache group (county),
  channel -> the weighted hash point nearest to the channel's hash;
- ``bounded-load, no region``: one ring over all 16 edges with the same
  bounded-load rule, ignoring where the box is.

Figures: request hit ratio at the edges; max/mean edge load (leases over
capacity across the 16 edges, averaged over ticks after warm-up); backhaul
bytes = cache fills from the parent tier plus bytes served to a box from an
edge outside its county; share of viewings served away from home; share of
edge-ticks whose cache-fill traffic exceeded the uplink.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdn_ctl.domain import NEARBY, Edge, Health, Tier
from cdn_ctl.routing import HashRing, RoutePolicy, Router
from headend import regions
from headend.ids import new_lease_id

SEGMENT_SECONDS = 6


@dataclass(frozen=True, slots=True)
class Scenario:
    """Workload and topology knobs (seeded: the same scenario gives the same table)."""

    alpha: float = 1.0
    channels: int = 100
    ticks: int = 600
    warmup_ticks: int = 100
    arrivals_per_tick: float = 24.0
    mean_viewing_ticks: float = 50.0
    catchup_share: float = 0.3
    programmes_per_channel: int = 4
    cache_segments: int = 1500
    segment_mbit: float = 24.0
    edge_leases: int = 120
    uplink_mbps: float = 200.0
    balance_factor: float = 1.25
    seed: int = 7


COUNTIES = ("410101", "410102", "410201", "410202", "420101", "420102", "420201", "420202")
COUNTY_WEIGHTS = (3.0, 1.0, 1.5, 0.7, 2.0, 1.0, 0.8, 1.2)


def topology(scenario: Scenario) -> list[Edge]:
    """16 edge-tier caches (2 per county), 2 mid tiers and the origin."""
    edges = [
        Edge(
            f"e{i * 2 + j:02d}",
            county,
            Tier.EDGE,
            "127.0.0.1",
            8100 + i * 2 + j,
            scenario.edge_leases,
            scenario.edge_leases * 8.0,
            scenario.uplink_mbps,
        )
        for i, county in enumerate(COUNTIES)
        for j in range(2)
    ]
    edges += [
        Edge("mid41", "410100", Tier.MID, "127.0.0.1", 8201, 2000, 20_000.0, 10_000.0),
        Edge("mid42", "420100", Tier.MID, "127.0.0.1", 8202, 2000, 20_000.0, 10_000.0),
        Edge("origin", "410000", Tier.ORIGIN, "127.0.0.1", 8080, 100_000, 1e6, 1e6),
    ]
    return edges


class Policy(Protocol):
    """A routing policy under simulation."""

    name: str

    def choose(self, channel: str, region: str) -> Edge: ...
    def started(self, lease_id: str, edge: Edge, channel: str) -> None: ...
    def ended(self, lease_id: str) -> None: ...


class ThisRouter:
    """The production router, fed the same lease starts and ends."""

    name = "this router"

    def __init__(self, edges: Sequence[Edge], scenario: Scenario) -> None:
        self.router = Router(
            RoutePolicy(balance_factor=scenario.balance_factor, lease_mbps=4.0, channel_mbps=8.0)
        )
        self.router.set_edges(edges)
        self.router.set_health({e.edge_id: Health.UP for e in edges})

    def choose(self, channel: str, region: str) -> Edge:
        return self.router.route(channel, region).edge

    def started(self, lease_id: str, edge: Edge, channel: str) -> None:
        self.router.hold(lease_id, edge_id=edge.edge_id, channel=channel, expires_at=math.inf)

    def ended(self, lease_id: str) -> None:
        self.router.release(lease_id)


class _Counting:
    """Shared lease bookkeeping and hierarchy fallback for the baselines."""

    name = ""

    def __init__(self, edges: Sequence[Edge]) -> None:
        self.edges = [e for e in edges if e.tier is Tier.EDGE]
        self.mids = [e for e in edges if e.tier is Tier.MID]
        self.leases: Counter[str] = Counter()
        self._where: dict[str, str] = {}

    def started(self, lease_id: str, edge: Edge, channel: str) -> None:
        self.leases[edge.edge_id] += 1
        self._where[lease_id] = edge.edge_id

    def ended(self, lease_id: str) -> None:
        self.leases[self._where.pop(lease_id)] -= 1

    def has_room(self, edge: Edge) -> bool:
        return self.leases[edge.edge_id] < edge.capacity_sessions

    def groups(self, region: str) -> list[list[Edge]]:
        """The edges of the box's county, city and province, then every other edge."""
        out: list[list[Edge]] = [[] for _ in range(len(NEARBY) + 1)]
        for e in self.edges:
            out[regions.distance(region, e.region)].append(e)
        return out

    def overflow(self, region: str) -> Edge:
        return next(m for m in self.mids if m.region[:2] == region[:2])


class RoundRobin(_Counting):
    """Every edge in turn, skipping full ones."""

    name = "round-robin"

    def __init__(self, edges: Sequence[Edge]) -> None:
        super().__init__(edges)
        self._next = 0

    def choose(self, channel: str, region: str) -> Edge:
        for _ in range(len(self.edges)):
            edge = self.edges[self._next % len(self.edges)]
            self._next += 1
            if self.has_room(edge):
                return edge
        return self.overflow(region)


class ConsistentHash(_Counting):
    """The box's county group, then wider groups; channel -> first ring edge with room."""

    name = "consistent hash"

    def __init__(self, edges: Sequence[Edge]) -> None:
        super().__init__(edges)
        self.ring = HashRing([e.edge_id for e in self.edges], vnodes=100)

    def choose(self, channel: str, region: str) -> Edge:
        order = {edge_id: i for i, edge_id in enumerate(self.ring.order(channel))}
        for group in self.groups(region):
            for edge in sorted(group, key=lambda e: order[e.edge_id]):
                if self.has_room(edge):
                    return edge
        return self.overflow(region)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:8], "big")


class TrafficControl(_Counting):
    """Traffic Router style: cache group by coverage zone, then the nearest hash point
    (in either direction) among the group's caches' weighted points."""

    name = "tc nearest-point"

    def __init__(self, edges: Sequence[Edge], *, points_per_cache: int = 1000) -> None:
        super().__init__(edges)
        self.points: dict[str, list[int]] = {
            e.edge_id: sorted(_hash(f"{e.edge_id}-{i}") for i in range(points_per_cache))
            for e in self.edges
        }

    def _distance(self, edge: Edge, key: int) -> int:
        points = self.points[edge.edge_id]
        i = bisect.bisect(points, key)
        candidates = [points[i % len(points)], points[i - 1]]
        return min(abs(p - key) for p in candidates)

    def choose(self, channel: str, region: str) -> Edge:
        key = _hash(channel)
        for group in self.groups(region):
            for edge in sorted(group, key=lambda e: self._distance(e, key)):
                if self.has_room(edge):
                    return edge
        return self.overflow(region)


class BoundedGlobal(_Counting):
    """Bounded-load consistent hashing over all edges, ignoring the box's region."""

    name = "bounded-load, no region"

    def __init__(self, edges: Sequence[Edge], *, balance_factor: float) -> None:
        super().__init__(edges)
        self.ring = HashRing([e.edge_id for e in self.edges], vnodes=100)
        self.c = balance_factor
        self.capacity = sum(e.capacity_sessions for e in self.edges)
        self.by_id = {e.edge_id: e for e in self.edges}

    def choose(self, channel: str, region: str) -> Edge:
        total = sum(self.leases.values())
        order = self.ring.order(channel)
        for edge_id in order:
            edge = self.by_id[edge_id]
            allowed = math.floor(self.c * (total + 1) * edge.capacity_sessions / self.capacity)
            if self.has_room(edge) and self.leases[edge_id] + 1 <= allowed:
                return edge
        # The same rule as this router: when the bound admits nobody, the first with room.
        return next(
            (self.by_id[e] for e in order if self.has_room(self.by_id[e])), self.overflow(region)
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One router's figures for one scenario."""

    name: str
    alpha: float
    hit_ratio: float
    max_mean_load: float
    backhaul_gbit: float
    away_share: float
    uplink_overload_share: float


@dataclass(slots=True)
class _Viewing:
    channel: str
    region: str
    edge: Edge
    ends: int
    programme: int
    offset: int


def _poisson(rng: random.Random, lam: float) -> int:
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


class _Lru:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[tuple[str, int, int], None] = OrderedDict()

    def hit(self, key: tuple[str, int, int]) -> bool:
        if key in self.items:
            self.items.move_to_end(key)
            return True
        self.items[key] = None
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)
        return False


def simulate(scenario: Scenario, policy: Policy, edges: Sequence[Edge]) -> Result:
    """Run one policy through the scenario's (seeded, identical) workload."""
    rng = random.Random(scenario.seed)
    weights = [1.0 / (k + 1) ** scenario.alpha for k in range(scenario.channels)]
    channel_cum = list(_cumulative(weights))
    county_cum = list(_cumulative(COUNTY_WEIGHTS))
    caches = {e.edge_id: _Lru(scenario.cache_segments) for e in edges}
    edge_tier = [e for e in edges if e.tier is Tier.EDGE]
    viewings: dict[str, _Viewing] = {}
    requests = hits = 0
    backhaul = 0.0
    away = started = 0
    overloads = edge_ticks = 0
    ratios: list[float] = []
    uplink_mbit_per_tick = scenario.uplink_mbps * SEGMENT_SECONDS
    for tick in range(scenario.ticks):
        for lease_id in [lease_id for lease_id, v in viewings.items() if v.ends <= tick]:
            policy.ended(lease_id)
            del viewings[lease_id]
        for _ in range(_poisson(rng, scenario.arrivals_per_tick)):
            channel = f"ch{bisect.bisect(channel_cum, rng.random() * channel_cum[-1])}"
            region = COUNTIES[bisect.bisect(county_cum, rng.random() * county_cum[-1])]
            length = 1 + int(rng.expovariate(1.0 / scenario.mean_viewing_ticks))
            catchup = rng.random() < scenario.catchup_share
            programme = 1 + int(rng.random() * scenario.programmes_per_channel) if catchup else 0
            edge = policy.choose(channel, region)
            lease_id = new_lease_id()
            policy.started(lease_id, edge, channel)
            viewings[lease_id] = _Viewing(channel, region, edge, tick + length, programme, tick)
            started += 1
            away += edge.region != region
        wanted: Counter[tuple[str, tuple[str, int, int]]] = Counter()
        for v in viewings.values():
            segment = tick if v.programme == 0 else tick - v.offset
            wanted[(v.edge.edge_id, (v.channel, v.programme, segment))] += 1
            if v.edge.region != v.region:
                backhaul += scenario.segment_mbit
        fills: Counter[str] = Counter()
        for (edge_id, key), count in wanted.items():
            requests += count
            if caches[edge_id].hit(key):
                hits += count
            else:
                hits += count - 1
                fills[edge_id] += 1
                backhaul += scenario.segment_mbit
        if tick >= scenario.warmup_ticks:
            loads = _loads(viewings.values(), edge_tier)
            mean = sum(loads) / len(loads)
            if mean > 0:
                ratios.append(max(loads) / mean)
            for e in edge_tier:
                edge_ticks += 1
                overloads += fills[e.edge_id] * scenario.segment_mbit > uplink_mbit_per_tick
    return Result(
        policy.name,
        scenario.alpha,
        hits / requests if requests else 0.0,
        sum(ratios) / len(ratios) if ratios else 0.0,
        backhaul / 1000.0,
        away / started if started else 0.0,
        overloads / edge_ticks if edge_ticks else 0.0,
    )


def _loads(viewings: Iterable[_Viewing], edges: Sequence[Edge]) -> list[float]:
    counts: Counter[str] = Counter(v.edge.edge_id for v in viewings)
    return [counts[e.edge_id] / e.capacity_sessions for e in edges]


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def policies(scenario: Scenario, edges: Sequence[Edge]) -> list[Policy]:
    """Fresh instances of every compared router."""
    return [
        ThisRouter(edges, scenario),
        RoundRobin(edges),
        ConsistentHash(edges),
        TrafficControl(edges),
        BoundedGlobal(edges, balance_factor=scenario.balance_factor),
    ]


def run(scenario: Scenario) -> list[Result]:
    """Every router through the same workload."""
    edges = topology(scenario)
    return [simulate(scenario, policy, edges) for policy in policies(scenario, edges)]


def table(results: Sequence[Result]) -> str:
    """A fixed-width table of the figures."""
    head = (
        f"{'alpha':>5}  {'router':<24} {'hit %':>6} {'max/mean':>8} {'backhaul Gbit':>13} "
        f"{'away %':>6} {'uplink over %':>13}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.alpha:>5.1f}  {r.name:<24} {100 * r.hit_ratio:>6.1f} {r.max_mean_load:>8.3f} "
            f"{r.backhaul_gbit:>13,.0f} {100 * r.away_share:>6.1f} "
            f"{100 * r.uplink_overload_share:>13.1f}"
        )
    return "\n".join(rows)
