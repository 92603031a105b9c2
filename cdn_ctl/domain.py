"""Edges, tiers, reach, scopes and health: the CDN controller's values and rules (pure).

Region codes follow the one rule of :mod:`headend.regions`; how far an edge is
from a box (:class:`RouteLevel`) is that hierarchy's level the two have in
common, or the tier beyond it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

from cdn_ctl.errors import InvalidEdge, InvalidRouteRequest
from cdn_ctl.signing import validate_scope
from headend import regions
from headend.ids import CHANNEL_ID_MAX, CHANNEL_ID_RULE, LEASE_ID_RULE, is_channel_id, is_lease_id

_EDGE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_WINDOW = re.compile(r"^w/([0-9]{1,12})/([0-9]{1,12})/")
# A cut view's part of a scope: ``x/{feed}/{start}-{end}/`` (see :class:`Cut`).
_CUT = re.compile(r"^x/([^/]+)/([0-9]{1,12})-([0-9]{1,12})/")
# What a box may ask routing for: a channel's live stream or a catch-up window of it.
KINDS = ("live", "catchup")
# The query parameter a lease id travels in (box -> front door -> edge -> steering), and
# the name it had before, still accepted for one release (until 2.0).
LEASE_PARAM = "lease_id"
LEASE_PARAM_ALIAS = "session"


class Tier(StrEnum):
    """Where an edge sits: a cache near the boxes, a mid tier, or the origin."""

    EDGE = "edge"
    MID = "mid"
    ORIGIN = "origin"


class Health(StrEnum):
    """An edge's health as the monitor judges it (with hysteresis)."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def rank(self) -> int:
        """How bad: 0 up, 1 degraded, 2 down."""
        return _HEALTH_RANK[self]


_HEALTH_RANK = {Health.UP: 0, Health.DEGRADED: 1, Health.DOWN: 2}


class RouteLevel(StrEnum):
    """How far from the box the chosen edge is: the narrowest region level the two share
    (same county code, same city, same province), else the mid tier or the origin."""

    COUNTY = "county"
    CITY = "city"
    PROVINCE = "province"
    MID = "mid"
    ORIGIN = "origin"


class RouteDecision(StrEnum):
    """How a redirect's edge was chosen: the lease stays on the edge it has, a lease is
    placed (its first request, or its edge is down), none is kept (an operator's "where
    would it go"), or steering moved a playing lease off a down edge."""

    LEASE_KEPT = "lease_kept"
    LEASE_PLACED = "lease_placed"
    NO_LEASE = "no_lease"
    STEERED = "steered"


# The levels an edge-tier cache can be at, indexed by :func:`headend.regions.distance`.
NEARBY: tuple[RouteLevel, ...] = tuple(
    RouteLevel(level.name.lower()) for level in regions.NARROWEST_FIRST
)


@dataclass(frozen=True, slots=True)
class Edge:
    """A registered cache: identity, place in the hierarchy, capacities and address."""

    edge_id: str
    region: str
    tier: Tier
    host: str
    port: int
    capacity_sessions: int
    capacity_mbps: float
    uplink_mbps: float
    parent_id: str = ""
    draining: bool = False
    version: int = 1

    @property
    def address(self) -> str:
        """``host:port`` as a box or a probe reaches it."""
        return f"{self.host}:{self.port}"

    def drained(self, draining: bool) -> Edge:
        """A copy with the draining flag set or cleared (version bumped)."""
        return replace(self, draining=draining, version=self.version + 1)


@dataclass(frozen=True, slots=True)
class EdgeCounters:
    """An edge's cumulative traffic as it reports it: requests answered from its cache
    and from its parent, and the bytes its parent sent, since ``epoch`` (one start)."""

    epoch: str
    hits: int
    misses: int
    upstream_bytes: int


@dataclass(frozen=True, slots=True)
class EdgeTraffic:
    """What an edge did between two probes: the share of its answers served from its
    cache, and the megabits per second it fetched from its parent, alone and over its
    uplink. -1 where not measured (fewer than two readings, or no request to judge by)."""

    cache_hit_ratio: float = -1.0
    uplink_mbps_used: float = -1.0
    uplink_use: float = -1.0


UNMEASURED = EdgeTraffic()


def traffic_between(
    before: EdgeCounters, after: EdgeCounters, *, seconds: float, uplink_mbps: float
) -> EdgeTraffic:
    """The traffic between two readings ``seconds`` apart. After a restart (a new epoch,
    or a counter that went down) the new counts are all since the restart: they are the
    deltas, never a negative difference."""
    if seconds <= 0:
        return UNMEASURED
    restarted = after.epoch != before.epoch or (
        after.hits < before.hits
        or after.misses < before.misses
        or after.upstream_bytes < before.upstream_bytes
    )
    base = EdgeCounters(after.epoch, 0, 0, 0) if restarted else before
    hits, misses = after.hits - base.hits, after.misses - base.misses
    mbps = (after.upstream_bytes - base.upstream_bytes) * 8 / 1e6 / seconds
    ratio = hits / (hits + misses) if hits + misses else -1.0
    return EdgeTraffic(ratio, mbps, mbps / uplink_mbps)


@dataclass(frozen=True, slots=True)
class EdgeHealth:
    """The monitor's current verdict on one edge, with its evidence and its traffic."""

    state: Health
    since: float
    failures: int
    probes: int
    latency_ms: float
    reason: str
    traffic: EdgeTraffic = UNMEASURED


class Redirect(NamedTuple):
    """Where to send the box, why, and under which lease (empty: none); a NamedTuple:
    built on every variant reload."""

    location: str
    edge: Edge
    level: RouteLevel
    reason: str
    lease_id: str


def validate_edge_id(edge_id: str) -> str:
    """An edge id: lower-case letters, digits and dashes, at most 63 characters."""
    if not _EDGE_ID.match(edge_id):
        raise InvalidEdge("edge_id", "must be 1-63 of [a-z0-9-], starting with a letter or digit")
    return edge_id


def validate_region(region: str, *, field: str = "region") -> str:
    """An edge's region: a code of :mod:`headend.regions` with a real province prefix."""
    problem = regions.problem(region)
    if problem is not None:
        raise InvalidEdge(field, f"{problem}, got {region!r}")
    return region


def validate_box_region(region: str) -> str:
    """The region of a requesting box (same rule, a routing-request error)."""
    problem = regions.problem(region)
    if problem is not None:
        raise InvalidRouteRequest("region", f"{problem}, got {region!r}")
    return region


def lease_param(query: Mapping[str, str]) -> str:
    """The lease id a request carries (``lease_id``, or the older ``session``), or ``""``."""
    return query.get(LEASE_PARAM) or query.get(LEASE_PARAM_ALIAS) or ""


def validate_lease_id(lease_id: str) -> str:
    """A lease id as a box sends it back (the format of :mod:`headend.ids`)."""
    if not is_lease_id(lease_id):
        raise InvalidRouteRequest("lease_id", f"must be {LEASE_ID_RULE}")
    return lease_id


def validate_channel(channel: str) -> str:
    """A channel id as it appears in paths."""
    if not is_channel_id(channel):
        raise InvalidRouteRequest(
            "channel", f"must be {CHANNEL_ID_RULE}, <= {CHANNEL_ID_MAX} chars"
        )
    return channel


def validate_edge(edge: Edge) -> Edge:
    """Check every field of an edge; raise ``InvalidEdge`` naming the first bad one."""
    validate_edge_id(edge.edge_id)
    validate_region(edge.region)
    if not _HOST.match(edge.host):
        raise InvalidEdge("host", f"not a host name or address: {edge.host!r}")
    if not 1 <= edge.port <= 65535:
        raise InvalidEdge("port", f"must be 1-65535, got {edge.port}")
    if edge.capacity_sessions <= 0:
        raise InvalidEdge("capacity_sessions", f"must be > 0, got {edge.capacity_sessions}")
    if edge.capacity_mbps <= 0:
        raise InvalidEdge("capacity_mbps", f"must be > 0, got {edge.capacity_mbps}")
    if edge.uplink_mbps <= 0:
        raise InvalidEdge("uplink_mbps", f"must be > 0, got {edge.uplink_mbps}")
    if edge.parent_id:
        validate_edge_id(edge.parent_id)
        if edge.parent_id == edge.edge_id:
            raise InvalidEdge("parent_id", "an edge cannot be its own parent")
    if edge.tier is Tier.ORIGIN and edge.parent_id:
        raise InvalidEdge("parent_id", "the origin has no parent")
    return edge


def parse_tier(text: str) -> Tier:
    """``edge``, ``mid`` or ``origin``."""
    try:
        return Tier(text)
    except ValueError as err:
        raise InvalidEdge("tier", f"must be edge, mid or origin, got {text!r}") from err


def level_of(edge: Edge, box_region: str) -> RouteLevel:
    """Where ``edge`` sits relative to a box: the region level they share, or its tier."""
    if edge.tier is Tier.MID:
        return RouteLevel.MID
    if edge.tier is Tier.ORIGIN:
        return RouteLevel.ORIGIN
    distance = regions.distance(box_region, edge.region)
    return NEARBY[distance] if distance < len(NEARBY) else RouteLevel.MID


@dataclass(frozen=True, slots=True)
class Cut:
    """A channel's picture switched to another live channel, the ``feed`` (an emergency
    feed, a blackout slate), from ``start`` until ``end`` (epoch seconds; 0: open-ended).
    The origin renders the view (``transcode.cuts``): the channel's own sequence numbers,
    the feed's segments in between, a discontinuity at both joins."""

    feed: str
    start: int
    end: int = 0

    def __post_init__(self) -> None:
        validate_channel(self.feed)
        if self.start <= 0:
            raise InvalidRouteRequest("cut.start", "must be epoch seconds > 0")
        if self.end != 0 and self.end <= self.start:
            raise InvalidRouteRequest("cut.end", "must be 0 (open) or after the start")

    @property
    def path(self) -> str:
        """Its part of a signed path: ``x/{feed}/{start}-{end}/``."""
        return f"x/{self.feed}/{self.start}-{self.end}/"


@dataclass(frozen=True, slots=True)
class Scope:
    """What one signed URL may reach: a channel's live directory, or exactly one catch-up
    window of it (``first`` .. ``last``, epoch seconds), so a grant never reaches another
    part of the archive (the origin serves under a window path only what is inside it);
    with a ``cut``, that channel's cut view (:class:`Cut`) and nothing else."""

    kind: str
    channel: str
    first: int = 0
    last: int = 0
    cut: Cut | None = None
    # The signed path prefix: ``live/{ch}/`` or ``catchup/{ch}/w/{first}/{last}/``,
    # followed by ``x/{feed}/{start}-{end}/`` for a cut view (built once: every redirect
    # signs and names it).
    path: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRouteRequest("kind", f"must be one of {', '.join(KINDS)}")
        validate_channel(self.channel)
        if self.kind == "catchup" and self.last <= self.first:
            raise InvalidRouteRequest("path", "the window must end after it starts")
        if self.cut is not None and self.cut.feed == self.channel:
            raise InvalidRouteRequest("cut.feed", "must be another channel")
        if self.kind == "live":
            own = f"live/{self.channel}/"
        else:
            own = f"catchup/{self.channel}/w/{self.first}/{self.last}/"
        object.__setattr__(self, "path", own if self.cut is None else own + self.cut.path)

    @property
    def window_seconds(self) -> int:
        """The catch-up window's length (0 for live)."""
        return self.last - self.first


@functools.lru_cache(maxsize=8192)
def parse_target(kind: str, channel: str, path: str) -> tuple[Scope, str]:
    """The scope of ``{kind}/{channel}/{path}`` and the rest of the path below it.

    Pure checks of what is asked over and over: cached (errors are not).
    """
    if kind not in KINDS:
        raise InvalidRouteRequest("kind", f"must be one of {', '.join(KINDS)}")
    validate_channel(channel)
    validate_scope(f"{kind}/{channel}/{path}")
    first = last = 0
    if kind == "catchup":
        match = _WINDOW.match(path)
        if match is None:
            raise InvalidRouteRequest(
                "path", "catch-up paths are w/{from}/{to}/... (epoch seconds)"
            )
        first, last, path = int(match[1]), int(match[2]), path[match.end() :]
    # Only a directory below the channel can be a cut (a rung may be named "x", but it has
    # no directories), so a path that does not match is an ordinary one.
    match = _CUT.match(path)
    if match is None:
        return Scope(kind, channel, first, last), path
    cut = Cut(match[1], int(match[2]), int(match[3]))
    return Scope(kind, channel, first, last, cut), path[match.end() :]
