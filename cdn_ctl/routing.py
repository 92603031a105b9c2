"""Request routing: region hierarchy, then consistent hashing with bounded loads.

Candidates are tried in this order, and the first that accepts wins:

1. up edges of the box's village code, then its county prefix (4 digits), then
   its city/province prefix (2 digits), each level in the channel's consistent
   hash ring order, only if the edge's load after one more session stays within
   ``c`` times the capacity-weighted average load of all village edges
   (bounded-load consistent hashing, Mirrokni, Thorup and Zadimoghaddam 2018,
   with the bound rounded down), the edge has session and
   serving capacity left, and, when it does not yet carry the channel, uplink
   headroom for one more channel ladder;
2. degraded edges (uplink trouble) of the same levels, same rule;
3. the same levels without the balance bound (hard capacity only; up edges,
   then degraded ones), so a box stays near home rather than crossing to the
   mid tier (also the path at light load, when the rounded-down bound admits
   nobody);
4. the mid tier, nearest first; 5. the origin.

Down and draining edges never get new sessions. Popular channels therefore
spread over several nearby edges before any edge overloads, while unpopular
channels stay on one edge (cache affinity). Everything here is in memory and
pure: the controller feeds edges, health and session counts in.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cdn_ctl.domain import (
    REGION_LEVELS,
    Edge,
    EdgeLoad,
    Health,
    Level,
    Tier,
    region_distance,
)
from cdn_ctl.errors import InvalidEdge, NoEdgeAvailable


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Tunables of the router."""

    balance_factor: float = 1.25
    session_mbps: float = 4.0
    channel_mbps: float = 8.0
    vnodes: int = 100

    def __post_init__(self) -> None:
        if self.balance_factor < 1.0:
            raise InvalidEdge("balance_factor", "must be >= 1.0")
        if self.session_mbps <= 0 or self.channel_mbps <= 0 or self.vnodes <= 0:
            raise InvalidEdge("route_policy", "bitrates and vnodes must be > 0")


@dataclass(frozen=True, slots=True)
class Consideration:
    """Why one candidate was taken or passed over."""

    edge_id: str
    level: Level
    verdict: str


class Decision(NamedTuple):
    """The chosen edge and the explanation of the choice (a NamedTuple: built per route)."""

    edge: Edge
    level: Level
    reason: str
    considered: tuple[Consideration, ...] = ()


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring of edge ids with ``vnodes`` points each."""

    def __init__(self, edge_ids: Iterable[str], *, vnodes: int) -> None:
        points = sorted(
            (_point(f"{edge_id}#{i}"), edge_id) for edge_id in edge_ids for i in range(vnodes)
        )
        self._hashes = [p for p, _ in points]
        self._owners = [o for _, o in points]
        self._distinct = len(set(self._owners))
        self._orders: dict[str, tuple[str, ...]] = {}

    def order(self, key: str) -> tuple[str, ...]:
        """Every edge id, in clockwise order of first appearance from ``hash(key)``."""
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        seen: dict[str, None] = {}
        count = len(self._hashes)
        start = bisect.bisect(self._hashes, _point(key))
        for i in range(count):
            seen.setdefault(self._owners[(start + i) % count], None)
            if len(seen) == self._distinct:
                break
        result = tuple(seen)
        if len(self._orders) > 100_000:
            self._orders.clear()
        self._orders[key] = result
        return result


class SessionLedger:
    """Active sessions per edge and per (edge, channel), expiring unless refreshed."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, str, float]] = {}
        self.sessions: Counter[str] = Counter()
        self.channels: Counter[tuple[str, str]] = Counter()
        self.edge_channels: Counter[str] = Counter()
        self.total = 0

    def start(self, session_id: str, *, edge_id: str, channel: str, expires_at: float) -> None:
        """Count a session on an edge (moving it if it was elsewhere)."""
        self.end(session_id)
        self._sessions[session_id] = (edge_id, channel, expires_at)
        self.sessions[edge_id] += 1
        self.channels[(edge_id, channel)] += 1
        if self.channels[(edge_id, channel)] == 1:
            self.edge_channels[edge_id] += 1
        self.total += 1

    def touch(self, session_id: str, *, expires_at: float) -> str | None:
        """Extend a session; return its edge, or None if unknown or expired."""
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        self._sessions[session_id] = (entry[0], entry[1], expires_at)
        return entry[0]

    def edge_of(self, session_id: str, channel: str | None = None) -> str | None:
        """The edge a live session is on (None if unknown, or watching another channel)."""
        entry = self._sessions.get(session_id)
        if entry is None or (channel is not None and entry[1] != channel):
            return None
        return entry[0]

    def end(self, session_id: str) -> None:
        """Forget a session."""
        entry = self._sessions.pop(session_id, None)
        if entry is None:
            return
        edge_id, channel, _ = entry
        self.sessions[edge_id] -= 1
        self.channels[(edge_id, channel)] -= 1
        if self.channels[(edge_id, channel)] <= 0:
            del self.channels[(edge_id, channel)]
            self.edge_channels[edge_id] -= 1
        self.total -= 1

    def expire(self, now: float) -> int:
        """Drop sessions past their expiry; return how many."""
        gone = [sid for sid, (_, _, exp) in self._sessions.items() if exp <= now]
        for sid in gone:
            self.end(sid)
        return len(gone)

    def load(self, edge_id: str) -> EdgeLoad:
        """Sessions and distinct channels on one edge."""
        return EdgeLoad(self.sessions[edge_id], self.edge_channels[edge_id])

    def counts(self) -> dict[str, int]:
        """Sessions per edge (non-zero only)."""
        return {e: n for e, n in self.sessions.items() if n > 0}


class Router:
    """Routing state (edges, health, loads) and the decision function."""

    def __init__(
        self, policy: RoutePolicy | None = None, *, ledger: SessionLedger | None = None
    ) -> None:
        self.policy = policy or RoutePolicy()
        self.ledger = ledger or SessionLedger()
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
        self._candidates: dict[tuple[str, str], list[tuple[Level, Edge, bool]]] = {}

    @property
    def remote_sessions(self) -> Mapping[str, int]:
        """Sessions other controller replicas hold (summed from Redis), per edge."""
        return self._remote

    @remote_sessions.setter
    def remote_sessions(self, counts: Mapping[str, int]) -> None:
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
        self.remote_sessions = self._remote

    def set_health(self, health: Mapping[str, Health]) -> None:
        """Replace the health view (edges not in it count as down)."""
        if health != self.health:
            self._candidates.clear()
            self.health = dict(health)

    def sessions_on(self, edge_id: str) -> int:
        """Sessions on an edge across all replicas."""
        return self.ledger.sessions[edge_id] + self.remote_sessions.get(edge_id, 0)

    def _pool_sessions(self) -> int:
        sessions = self.ledger.sessions
        outside = sum(sessions[e] for e in self._outside_pool) if self._outside_pool else 0
        return self.ledger.total - outside + self._remote_pool

    def _refusal(self, edge: Edge, channel: str, bounded: bool, bound_factor: float) -> int:
        """0 when ``edge`` takes one more session of ``channel``, else the _REFUSALS index."""
        edge_id = edge.edge_id
        sessions = self.ledger.sessions[edge_id] + self._remote.get(edge_id, 0) + 1
        if sessions > edge.capacity_sessions:
            return 1
        if sessions * self.policy.session_mbps > edge.capacity_mbps:
            return 2
        if (edge_id, channel) not in self.ledger.channels and (
            self.ledger.edge_channels[edge_id] + 1
        ) * self.policy.channel_mbps > edge.uplink_mbps:
            return 3
        # Mirrokni et al. with the bound rounded down, so no edge passes c x the
        # capacity-weighted average; when that allows nobody (light load) the
        # unbounded nearby pass takes the session, which is what locality wants.
        if bounded and sessions > math.floor(bound_factor * edge.capacity_sessions):
            return 4
        return 0

    def _describe(self, refusal: int, edge: Edge, bound_factor: float) -> str:
        sessions = self.sessions_on(edge.edge_id)
        if refusal == 1:
            return f"full ({sessions}/{edge.capacity_sessions} sessions)"
        if refusal == 2:
            return f"serving bandwidth full ({edge.capacity_mbps:g} Mbps)"
        if refusal == 3:
            carried = self.ledger.edge_channels[edge.edge_id]
            return (
                f"no uplink headroom for another channel "
                f"({carried} carried, uplink {edge.uplink_mbps:g} Mbps)"
            )
        allowed = math.floor(bound_factor * edge.capacity_sessions)
        return f"over balance bound ({sessions + 1} > {allowed} sessions)"

    def _levels(self, region: str) -> list[tuple[Level, list[Edge]]]:
        village = [e for e in self.edges.values() if e.tier is Tier.EDGE]
        out: list[tuple[Level, list[Edge]]] = []
        taken: set[str] = set()
        for level, digits in REGION_LEVELS:
            group = [
                e
                for e in village
                if e.edge_id not in taken and e.region[:digits] == region[:digits]
            ]
            taken.update(e.edge_id for e in group)
            out.append((level, group))
        return out

    def candidates(self, channel: str, region: str) -> list[tuple[Level, Edge, bool]]:
        """Every candidate in trial order: (level, edge, whether the balance bound applies)."""
        key = (channel, region)
        cached = self._candidates.get(key)
        if cached is None:
            if len(self._candidates) > 100_000:
                self._candidates.clear()
            cached = self._candidates[key] = self._build_candidates(channel, region)
        return cached

    def _build_candidates(self, channel: str, region: str) -> list[tuple[Level, Edge, bool]]:
        order = {edge_id: i for i, edge_id in enumerate(self._ring.order(channel))}
        levels = [
            (level, sorted(group, key=lambda e: order[e.edge_id]))
            for level, group in self._levels(region)
        ]
        out: list[tuple[Level, Edge, bool]] = []
        # Down edges ride in the first pass only so explanations can name them.
        for wanted in ((Health.UP, Health.DOWN, None), (Health.DEGRADED,)):
            out += [
                (lv, e, True)
                for lv, group in levels
                for e in group
                if self.health.get(e.edge_id) in wanted
            ]
        for state in (Health.UP, Health.DEGRADED):
            out += [
                (lv, e, False)
                for lv, group in levels
                for e in group
                if self.health.get(e.edge_id) is state
            ]
        for tier, level in ((Tier.MID, Level.MID), (Tier.ORIGIN, Level.ORIGIN)):
            group = [e for e in self.edges.values() if e.tier is tier]
            group.sort(
                key=lambda e: (
                    region_distance(region, e.region),
                    _RANK[self.health.get(e.edge_id, Health.DOWN)],
                    order[e.edge_id],
                )
            )
            out += [(level, e, False) for e in group]
        return out

    def route(self, channel: str, region: str, *, explain: bool = False) -> Decision:
        """Choose an edge for a new session of ``channel`` from a box in ``region``."""
        avg = (self._pool_sessions() + 1) / self._pool_capacity if self._pool_capacity else 1.0
        bound_factor = self.policy.balance_factor * avg
        considered: list[Consideration] = []
        skipped: set[str] = set()
        health = self.health
        for level, edge, bounded in self.candidates(channel, region):
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
        level: Level,
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
            (self.sessions_on(edge.edge_id) + 1) / capacity,
        )
        if bounded:
            text += "; bound=%.2f" % (math.floor(bound_factor * capacity) / capacity)
        elif level is not Level.MID and level is not Level.ORIGIN:
            # The unbounded nearby pass: either nothing is loaded yet (the rounded-down
            # bound admits nobody) or every nearer candidate was over it.
            light = math.floor(bound_factor * capacity) < 1
            text += "; light load, hash order" if light else "; nearby edges over bound"
        if (edge.edge_id, channel) in self.ledger.channels:
            text += "; channel cached"
        return text

    def ranked(self, channel: str, region: str) -> list[Edge]:
        """Usable edges for ``channel`` in preference order (steering pathways): no down edges."""
        out: dict[str, Edge] = {}
        for _, edge, _ in self.candidates(channel, region):
            if self.health.get(edge.edge_id, Health.DOWN) is not Health.DOWN:
                out.setdefault(edge.edge_id, edge)
        return list(out.values())


_RANK = {Health.UP: 0, Health.DEGRADED: 1, Health.DOWN: 2}
