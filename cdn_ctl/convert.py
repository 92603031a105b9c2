"""Proto <-> domain for ``CdnControl``: the one place edge messages are built and read
(the servicer and its client, ``cdn_ctl.client``, both use it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cdn_ctl.domain import Edge, EdgeHealth, Health, Tier, parse_tier
from cdn_ctl.service import EdgeStatus
from protos import cdn_pb2

_TIER_TO_PB = {
    Tier.EDGE: cdn_pb2.TIER_EDGE,
    Tier.MID: cdn_pb2.TIER_MID,
    Tier.ORIGIN: cdn_pb2.TIER_ORIGIN,
}
_TIER_FROM_PB = {v: k for k, v in _TIER_TO_PB.items()}
_HEALTH_TO_PB = {
    Health.UP: cdn_pb2.HEALTH_UP,
    Health.DEGRADED: cdn_pb2.HEALTH_DEGRADED,
    Health.DOWN: cdn_pb2.HEALTH_DOWN,
}
_HEALTH_FROM_PB = {v: k for k, v in _HEALTH_TO_PB.items()}
# Fields the message and the domain spell alike. The tier is mapped; the draining flag
# and the version belong to the registry and are never read from a caller's message.
_ALIKE = (
    "edge_id",
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


def edge_from_pb(msg: cdn_pb2.Edge) -> Edge:
    """Proto -> domain (validation happens in the service)."""
    tier = _TIER_FROM_PB.get(msg.tier)
    if tier is None:
        tier = parse_tier(str(msg.tier))
    return Edge(tier=tier, **_alike(msg))


def registered_edge_from_pb(msg: cdn_pb2.Edge) -> Edge:
    """Proto -> domain for an edge the registry answered with: its draining flag and version
    included."""
    return replace(edge_from_pb(msg), draining=msg.draining, version=msg.version)


def edge_to_pb(edge: Edge) -> cdn_pb2.Edge:
    """Domain -> proto."""
    return cdn_pb2.Edge(
        tier=_TIER_TO_PB[edge.tier], draining=edge.draining, version=edge.version, **_alike(edge)
    )


def status_to_pb(status: EdgeStatus) -> cdn_pb2.EdgeStatus:
    """An edge with its health and load, as ``ListEdges`` reports it."""
    health = status.health
    return cdn_pb2.EdgeStatus(
        edge=edge_to_pb(status.edge),
        health=cdn_pb2.HEALTH_UNKNOWN if health is None else _HEALTH_TO_PB[health.state],
        health_reason="" if health is None else health.reason,
        failed_probes=0 if health is None else health.failures,
        probes=0 if health is None else health.probes,
        probe_latency_ms=0.0 if health is None else health.latency_ms,
        active_sessions=status.leases,
        load=status.load,
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
        )
    return EdgeStatus(registered_edge_from_pb(msg.edge), health, msg.active_sessions)
