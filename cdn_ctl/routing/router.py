"""Request routing: region hierarchy, then consistent hashing with bounded loads.

Candidates are tried in this order, and the first that accepts wins:

1. up edges of the box's county (the same 6-digit code), then its city (the
   same first 4 digits), then its province (the same first 2), each level in
   the channel's consistent hash ring order, only if the edge's load after one
   more lease stays within ``c`` times the capacity-weighted average load of all
   edge-tier caches (bounded-load consistent hashing, Mirrokni, Thorup and
   Zadimoghaddam 2018, with the bound rounded down), the edge has lease and
   serving capacity left, and, when it does not yet carry the channel, uplink
   headroom for one more channel ladder;
2. degraded edges (uplink trouble) of the same levels, same rule;
3. the same levels without the balance bound (hard capacity only; up edges,
   then degraded ones), so a box stays near home rather than crossing to the
   mid tier (also the path at light load, when the rounded-down bound admits
   nobody);
4. the mid tier, nearest first; 5. the origin.

Down and draining edges never get new leases. Popular channels therefore
spread over several nearby edges before any edge overloads, while unpopular
channels stay on one edge (cache affinity). Everything here is in memory and
pure: the controller feeds edges, health and other replicas' lease counts in,
and the routing service counts this replica's leases through :class:`Router`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cdn_ctl.domain import NEARBY, Edge, Health, RouteLevel, Tier
from cdn_ctl.errors import InvalidEdge, NoEdgeAvailable
from cdn_ctl.routing.ledger import RouteLedger
from cdn_ctl.routing.ring import HashRing
from headend import regions

# Candidate orders a router remembers before it starts afresh (one per channel and region).
_CANDIDATES_MAX = 100_000


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Tunables of the router."""

    balance_factor: float = 1.25
    lease_mbps: float = 4.0
    channel_mbps: float = 8.0
    vnodes: int = 100

    def __post_init__(self) -> None:
        if self.balance_factor < 1.0:
            raise InvalidEdge("balance_factor", "must be >= 1.0")
        if self.lease_mbps <= 0 or self.channel_mbps <= 0 or self.vnodes <= 0:
            raise InvalidEdge("route_policy", "bitrates and vnodes must be > 0")


@dataclass(frozen=True, slots=True)
class Consideration:
    """Why one candidate was taken or passed over."""

    edge_id: str
    level: RouteLevel
    verdict: str


class Decision(NamedTuple):
    """The chosen edge and the explanation of the choice (a NamedTuple: built per route)."""

    edge: Edge
    level: RouteLevel
    reason: str
    considered: tuple[Consideration, ...] = ()


class Candidate(NamedTuple):
    """One trial of a route: the edge, its level, and whether the balance bound applies."""

    level: RouteLevel
    edge: Edge
    bounded: bool


class Router:
    """Routing state (edges, health, lease counts) and the decision function."""

    def __init__(self, policy: RoutePolicy | None = None) -> None:
        self.policy = policy or RoutePolicy()
        self._ledger = RouteLedger()
        self.edges: dict[str, Edge] = {}
        self.health: dict[str, Health] = {}
        self._remote: Mapping[str, int] = {}
        self._remote_pool = 0
        self._ring = HashRing((), vnodes=self.policy.vnodes)
        self._pool: list[str] = []
        self._pool_ids: frozenset[str] = frozenset()
        self._outside_pool: list[str] = []
        self._pool_capacity = 0
        # Candidate orders per (channel, region); valid until edges or health change.
        self._candidates: dict[tuple[str, str], list[Candidate]] = {}

    # ---- the state the controller feeds in

    @property
    def remote_leases(self) -> Mapping[str, int]:
        """Leases other controller replicas hold (summed from Redis), per edge."""
        return self._remote

    @remote_leases.setter
    def remote_leases(self, counts: Mapping[str, int]) -> None:
        self._remote = dict(counts)
        self._remote_pool = sum(n for e, n in self._remote.items() if e in self._pool_ids)

    def set_edges(self, edges: Iterable[Edge]) -> None:
        """Replace the registry view; rebuild the ring only if the set of ids changed."""
        new = {e.edge_id: e for e in edges}
        if set(new) != set(self.edges):
            self._ring = HashRing(new, vnodes=self.policy.vnodes)
        if new != self.edges:
            self._candidates.clear()
        self.edges = new
        self._pool = [e.edge_id for e in new.values() if e.tier is Tier.EDGE]
        self._pool_ids = frozenset(self._pool)
        self._outside_pool = [e for e in new if e not in self._pool_ids]
        self._pool_capacity = sum(new[e].capacity_sessions for e in self._pool)
        self.remote_leases = self._remote

    def set_health(self, health: Mapping[str, Health]) -> None:
        """Replace the health view (edges not in it count as down)."""
        if health != self.health:
            self._candidates.clear()
            self.health = dict(health)

    # ---- this replica's leases (the route ledger)

    def hold(
        self, lease_id: str, *, edge_id: str, channel: str, expires_at: float, rung: str = ""
    ) -> None:
        """Count a lease of ``channel`` (playing ``rung``, if known) on an edge until
        ``expires_at`` (moving it if needed)."""
        self._ledger.start(
            lease_id, edge_id=edge_id, channel=channel, expires_at=expires_at, rung=rung
        )

    def touch(self, lease_id: str, *, expires_at: float, rung: str = "") -> str | None:
        """Extend a counted lease (now playing ``rung``, if given); its edge, or None if
        it is not counted."""
        return self._ledger.touch(lease_id, expires_at=expires_at, rung=rung)

    def edge_of(self, lease_id: str, channel: str | None = None) -> str | None:
        """The edge a counted lease is on (None if unknown, or for another channel)."""
        return self._ledger.edge_of(lease_id, channel)

    def release(self, lease_id: str) -> None:
        """Stop counting a lease."""
        self._ledger.end(lease_id)

    def expire(self, now: float) -> int:
        """Stop counting leases past their expiry; return how many."""
        return self._ledger.expire(now)

    def counts(self) -> dict[str, int]:
        """This replica's leases per edge (non-zero only), as it publishes them."""
        return self._ledger.counts()

    @property
    def held(self) -> int:
        """How many leases this replica counts, on every edge."""
        return self._ledger.total

    def carries(self, edge_id: str, channel: str) -> bool:
        """Does this replica count a lease of ``channel`` on the edge?"""
        return (edge_id, channel) in self._ledger.channels

    def watched(self) -> dict[str, set[str]]:
        """Per edge, the ``channel/rung`` this replica's live leases play (what the edges'
        prefetch sidecars pull ahead)."""
        return self._ledger.watched()

    def leases_on(self, edge_id: str) -> int:
        """Leases on an edge across all replicas."""
        return self._ledger.leases[edge_id] + self._remote.get(edge_id, 0)

    # ---- decisions

    def _pool_leases(self) -> int:
        leases = self._ledger.leases
        outside = sum(leases[e] for e in self._outside_pool) if self._outside_pool else 0
        return self._ledger.total - outside + self._remote_pool

    def _refusal(self, edge: Edge, channel: str, bounded: bool, bound_factor: float) -> int:
        """0 when ``edge`` takes one more lease of ``channel``, else why not (see _describe)."""
        edge_id = edge.edge_id
        leases = self.leases_on(edge_id) + 1
        if leases > edge.capacity_sessions:
            return 1
        if leases * self.policy.lease_mbps > edge.capacity_mbps:
            return 2
        if (
            not self.carries(edge_id, channel)
            and (self._ledger.edge_channels[edge_id] + 1) * self.policy.channel_mbps
            > edge.uplink_mbps
        ):
            return 3
        # Mirrokni et al. with the bound rounded down, so no edge passes c x the
        # capacity-weighted average; when that allows nobody (light load) the
        # unbounded nearby pass takes the lease, which is what locality wants.
        if bounded and leases > math.floor(bound_factor * edge.capacity_sessions):
            return 4
        return 0

    def _describe(self, refusal: int, edge: Edge, bound_factor: float) -> str:
        leases = self.leases_on(edge.edge_id)
        if refusal == 1:
            return f"full ({leases}/{edge.capacity_sessions} leases)"
        if refusal == 2:
            return f"serving bandwidth full ({edge.capacity_mbps:g} Mbps)"
        if refusal == 3:
            carried = self._ledger.edge_channels[edge.edge_id]
            return (
                f"no uplink headroom for another channel "
                f"({carried} carried, uplink {edge.uplink_mbps:g} Mbps)"
            )
        allowed = math.floor(bound_factor * edge.capacity_sessions)
        return f"over balance bound ({leases + 1} > {allowed} leases)"

    def _levels(self, region: str) -> list[tuple[RouteLevel, list[Edge]]]:
        groups: list[list[Edge]] = [[] for _ in NEARBY]
        for e in self.edges.values():
            if e.tier is Tier.EDGE:
                distance = regions.distance(region, e.region)
                if distance < len(NEARBY):
                    groups[distance].append(e)
        return list(zip(NEARBY, groups, strict=True))

    def _trials(self, channel: str, region: str) -> list[Candidate]:
        """Every candidate in trial order (cached until edges or health change)."""
        key = (channel, region)
        cached = self._candidates.get(key)
        if cached is None:
            if len(self._candidates) > _CANDIDATES_MAX:
                self._candidates.clear()
            cached = self._candidates[key] = self._build_trials(channel, region)
        return cached

    def _build_trials(self, channel: str, region: str) -> list[Candidate]:
        order = {edge_id: i for i, edge_id in enumerate(self._ring.order(channel))}
        levels = [
            (level, sorted(group, key=lambda e: order[e.edge_id]))
            for level, group in self._levels(region)
        ]
        out: list[Candidate] = []
        # Down edges ride in the first pass only so explanations can name them.
        for wanted in ((Health.UP, Health.DOWN, None), (Health.DEGRADED,)):
            out += [
                Candidate(lv, e, True)
                for lv, group in levels
                for e in group
                if self.health.get(e.edge_id) in wanted
            ]
        for state in (Health.UP, Health.DEGRADED):
            out += [
                Candidate(lv, e, False)
                for lv, group in levels
                for e in group
                if self.health.get(e.edge_id) is state
            ]
        for tier, level in ((Tier.MID, RouteLevel.MID), (Tier.ORIGIN, RouteLevel.ORIGIN)):
            group = [e for e in self.edges.values() if e.tier is tier]
            group.sort(
                key=lambda e: (
                    regions.distance(region, e.region),
                    self.health.get(e.edge_id, Health.DOWN).rank,
                    order[e.edge_id],
                )
            )
            out += [Candidate(level, e, False) for e in group]
        return out

    def route(self, channel: str, region: str, *, explain: bool = False) -> Decision:
        """Choose an edge for a new lease of ``channel`` from a box in ``region``."""
        avg = (self._pool_leases() + 1) / self._pool_capacity if self._pool_capacity else 1.0
        bound_factor = self.policy.balance_factor * avg
        considered: list[Consideration] = []
        skipped: set[str] = set()
        health = self.health
        for level, edge, bounded in self._trials(channel, region):
            state = health.get(edge.edge_id, Health.DOWN)
            if state is Health.DOWN or edge.draining:
                if explain and edge.edge_id not in skipped:
                    skipped.add(edge.edge_id)
                    considered.append(
                        Consideration(edge.edge_id, level, "draining" if edge.draining else "down")
                    )
                continue
            refusal = self._refusal(edge, channel, bounded, bound_factor)
            if refusal:
                if explain:
                    text = self._describe(refusal, edge, bound_factor)
                    considered.append(Consideration(edge.edge_id, level, text))
                continue
            reason = self._reason(edge, level, state, bounded, bound_factor, channel)
            if explain:
                considered.append(Consideration(edge.edge_id, level, "chosen"))
            return Decision(edge, level, reason, tuple(considered))
        raise NoEdgeAvailable(
            f"no edge can serve channel {channel} for region {region}",
            details={"channel": channel, "region": region},
        )

    def _reason(
        self,
        edge: Edge,
        level: RouteLevel,
        state: Health,
        bounded: bool,
        bound_factor: float,
        channel: str,
    ) -> str:
        capacity = edge.capacity_sessions
        text = "%s %s %s; %s; load=%.2f" % (  # noqa: UP031 - the hot path; %-format is fastest
            level,
            edge.tier,
            edge.edge_id,
            state,
            (self.leases_on(edge.edge_id) + 1) / capacity,
        )
        if bounded:
            text += "; bound=%.2f" % (math.floor(bound_factor * capacity) / capacity)
        elif level is not RouteLevel.MID and level is not RouteLevel.ORIGIN:
            # The unbounded nearby pass: either nothing is loaded yet (the rounded-down
            # bound admits nobody) or every nearer candidate was over it.
            light = math.floor(bound_factor * capacity) < 1
            text += "; light load, hash order" if light else "; nearby edges over bound"
        if self.carries(edge.edge_id, channel):
            text += "; channel cached"
        return text

    def ranked(self, channel: str, region: str) -> list[Edge]:
        """Usable edges for ``channel`` in preference order (steering pathways): no down edges."""
        out: dict[str, Edge] = {}
        for _, edge, _ in self._trials(channel, region):
            if self.health.get(edge.edge_id, Health.DOWN) is not Health.DOWN:
                out.setdefault(edge.edge_id, edge)
        return list(out.values())
