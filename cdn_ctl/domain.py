"""Edges, tiers, regions and health: the CDN controller's values and rules (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from cdn_ctl.errors import InvalidEdge, InvalidRouteRequest
from headend.ids import CHANNEL_ID_MAX, CHANNEL_ID_RULE, is_channel_id

_EDGE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_REGION = re.compile(r"^[1-9][0-9]{5}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


class Tier(StrEnum):
    """Where an edge sits: a village cache, a county mid tier, or the origin."""

    EDGE = "edge"
    MID = "mid"
    ORIGIN = "origin"


class Health(StrEnum):
    """An edge's health as the monitor judges it (with hysteresis)."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class Level(StrEnum):
    """How far from the box the chosen edge is, in the region code hierarchy."""

    VILLAGE = "village"
    COUNTY = "county"
    CITY = "city"
    MID = "mid"
    ORIGIN = "origin"


REGION_LEVELS: tuple[tuple[Level, int], ...] = (
    (Level.VILLAGE, 6),
    (Level.COUNTY, 4),
    (Level.CITY, 2),
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
class EdgeHealth:
    """The monitor's current verdict on one edge, with its evidence."""

    state: Health
    since: float
    failures: int
    probes: int
    latency_ms: float
    reason: str


@dataclass(frozen=True, slots=True)
class EdgeLoad:
    """Live load on an edge: active sessions and the channels it currently carries."""

    sessions: int = 0
    channels: int = 0


def validate_edge_id(edge_id: str) -> str:
    """An edge id: lower-case letters, digits and dashes, at most 63 characters."""
    if not _EDGE_ID.match(edge_id):
        raise InvalidEdge("edge_id", "must be 1-63 of [a-z0-9-], starting with a letter or digit")
    return edge_id


def validate_region(region: str, *, field: str = "region") -> str:
    """A 6-digit administrative division code (province 2, city/county 4, village 6)."""
    if not _REGION.match(region):
        raise InvalidEdge(field, f"must be a 6-digit administrative division code, got {region!r}")
    return region


def validate_box_region(region: str) -> str:
    """The region of a requesting box (same rule, a routing-request error)."""
    if not _REGION.match(region):
        raise InvalidRouteRequest(
            "region", f"must be a 6-digit administrative division code, got {region!r}"
        )
    return region


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


def region_distance(box_region: str, edge_region: str) -> int:
    """0 same village code, 1 same county prefix, 2 same city prefix, 3 elsewhere."""
    for distance, (_, digits) in enumerate(REGION_LEVELS):
        if box_region[:digits] == edge_region[:digits]:
            return distance
    return len(REGION_LEVELS)


def level_of(edge: Edge, box_region: str) -> Level:
    """Where ``edge`` sits relative to a box: its region level, or its tier beyond the city."""
    if edge.tier is Tier.MID:
        return Level.MID
    if edge.tier is Tier.ORIGIN:
        return Level.ORIGIN
    distance = region_distance(box_region, edge.region)
    return REGION_LEVELS[distance][0] if distance < len(REGION_LEVELS) else Level.MID
