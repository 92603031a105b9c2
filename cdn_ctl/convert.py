"""Proto <-> domain for ``CdnControlService``: the one place edge messages are built and
read (the servicer and its client, ``cdn_ctl.client``, both use it). Messages name an edge
``edges/{edge}``, the domain by its id."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cdn_ctl.domain import UNMEASURED, Edge, EdgeHealth, EdgeTraffic, Health, Tier, parse_tier
from cdn_ctl.service import EdgeStatus
from headend.rpc.resources import ResourceName
from protos import cdn_pb2

EDGE = ResourceName("edges/{edge}")

_TIER_TO_PB = {
    Tier.EDGE: cdn_pb2.TIER_EDGE,
    Tier.MID: cdn_pb2.TIER_MID,
    Tier.ORIGIN: cdn_pb2.TIER_ORIGIN,
}
# Keyed by wire numbers: proto enums are open, so any number can arrive.
_TIER_FROM_PB: dict[int, Tier] = {v: k for k, v in _TIER_TO_PB.items()}
_HEALTH_TO_PB = {
    Health.UP: cdn_pb2.HEALTH_STATE_UP,
    Health.DEGRADED: cdn_pb2.HEALTH_STATE_DEGRADED,
    Health.DOWN: cdn_pb2.HEALTH_STATE_DOWN,
}
_HEALTH_FROM_PB: dict[int, Health] = {v: k for k, v in _HEALTH_TO_PB.items()}
# Fields the message and the domain spell alike. The name and the tier are mapped; the
# draining flag and the version belong to the registry and are never read from a caller's
# message.
_ALIKE = (
    "region",
    "host",
    "port",
    "capacity_sessions",
    "capacity_mbps",
    "uplink_mbps",
    "parent_id",
)


def _alike(source: Any) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _ALIKE}


def _tier(value: int) -> Tier:
    tier = _TIER_FROM_PB.get(value)
    return parse_tier(str(value)) if tier is None else tier


def edge_from_pb(msg: cdn_pb2.Edge, *, edge_id: str) -> Edge:
    """Proto -> domain for the edge ``edge_id`` (validation happens in the service)."""
    return Edge(edge_id=edge_id, tier=_tier(msg.tier), **_alike(msg))


def edge_changes_from_pb(msg: cdn_pb2.Edge, paths: set[str]) -> dict[str, Any]:
    """The domain values of the fields ``paths`` names (an update mask's) in ``msg``."""
    changes = {path: getattr(msg, path) for path in paths if path != "tier"}
    if "tier" in paths:
        changes["tier"] = _tier(msg.tier)
    return changes


def registered_edge_from_pb(msg: cdn_pb2.Edge) -> Edge:
    """Proto -> domain for an edge the registry answered with: its draining flag and version
    included."""
    edge = edge_from_pb(msg, edge_id=EDGE.id(msg.name, field="edge.name"))
    return replace(edge, draining=msg.draining, version=msg.version)


def edge_to_pb(edge: Edge) -> cdn_pb2.Edge:
    """Domain -> proto."""
    return cdn_pb2.Edge(
        name=EDGE.format(edge.edge_id),
        tier=_TIER_TO_PB[edge.tier],
        draining=edge.draining,
        version=edge.version,
        **_alike(edge),
    )


def status_to_pb(status: EdgeStatus) -> cdn_pb2.EdgeStatus:
    """An edge with its health and load, as ``ListEdges`` reports it."""
    health = status.health
    traffic = UNMEASURED if health is None else health.traffic
    return cdn_pb2.EdgeStatus(
        edge=edge_to_pb(status.edge),
        health=cdn_pb2.HEALTH_STATE_UNKNOWN if health is None else _HEALTH_TO_PB[health.state],
        health_reason="" if health is None else health.reason,
        failed_probes=0 if health is None else health.failures,
        probes=0 if health is None else health.probes,
        probe_latency_ms=0.0 if health is None else health.latency_ms,
        active_sessions=status.leases,
        load=status.load,
        cache_hit_ratio=traffic.cache_hit_ratio,
        uplink_mbps_used=traffic.uplink_mbps_used,
        uplink_use=traffic.uplink_use,
    )


def status_from_pb(msg: cdn_pb2.EdgeStatus) -> EdgeStatus:
    """An edge with its health and leases, as ``ListEdges`` reported it (no health: unknown)."""
    state = _HEALTH_FROM_PB.get(msg.health)
    health = None
    if state is not None:
        # The wire does not say since when the verdict holds.
        health = EdgeHealth(
            state,
            since=0.0,
            failures=msg.failed_probes,
            probes=msg.probes,
            latency_ms=msg.probe_latency_ms,
            reason=msg.health_reason,
            traffic=EdgeTraffic(msg.cache_hit_ratio, msg.uplink_mbps_used, msg.uplink_use),
        )
    return EdgeStatus(registered_edge_from_pb(msg.edge), health, msg.active_sessions)
