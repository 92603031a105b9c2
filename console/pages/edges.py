"""Edges: every edge grouped by region (province, city, county: the edges are the
villages), with health, load, sessions, cache hit ratio and uplink use; drain and undrain.

Regions are read with :mod:`headend.regions` (the one home of the code hierarchy).
"""

from __future__ import annotations

from typing import Any

from console.upstream import PAGE_SIZE
from console.view import Data, View, last_segment
from headend import regions
from protos import cdn_pb2

_HEALTH = {
    cdn_pb2.HEALTH_STATE_UP: "up",
    cdn_pb2.HEALTH_STATE_DEGRADED: "degraded",
    cdn_pb2.HEALTH_STATE_DOWN: "down",
}


def _area(code: str, depth: regions.Level) -> str:
    """The code of the area at ``depth`` that holds ``code`` ("" when ``code`` is wider)."""
    if not regions.is_region(code) or regions.level(code) < depth:
        return ""
    return code[:depth].ljust(6, "0")


def _measured(value: float, digits: int) -> float | None:
    """A traffic figure, or None before two probes have counted it (the service's -1)."""
    return None if value < 0 else round(value, digits)


def _edge(status: cdn_pb2.EdgeStatus) -> dict[str, Any]:
    edge = status.edge
    return {
        "id": last_segment(edge.name),
        "region": edge.region,
        "host": f"{edge.host}:{edge.port}",
        "health": _HEALTH.get(status.health, "unknown"),
        "health_reason": status.health_reason,
        "load": round(status.load, 3),
        "sessions": status.active_sessions,
        "capacity_sessions": edge.capacity_sessions,
        "cache_hit_ratio": _measured(status.cache_hit_ratio, 3),
        "uplink_use": _measured(status.uplink_use, 3),
        "uplink_mbps_used": _measured(status.uplink_mbps_used, 1),
        "draining": edge.draining,
    }


async def load_edges(view: View) -> Data:
    """Every edge by region, counties sorted, edges by id."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    async for page in view.every_page(
        view.services.cdn.ListEdges,
        lambda token: cdn_pb2.ListEdgesRequest(page_size=PAGE_SIZE, page_token=token),
    ):
        for status in page.edges:
            row = _edge(status)
            code = row["region"]
            key = tuple(_area(code, depth) for depth in reversed(regions.NARROWEST_FIRST))
            groups.setdefault((key[0], key[1], key[2]), []).append(row)
    return {
        "regions": [
            {
                "province": province,
                "city": city,
                "county": county,
                "edges": sorted(rows, key=lambda r: r["id"]),
                "down": sum(r["health"] == "down" for r in rows),
            }
            for (province, city, county), rows in sorted(groups.items())
        ]
    }


async def drain(view: View) -> Data:
    """Drain an edge (``resume``: undrain it); the edge's new state."""
    edge = await view.call(
        view.services.cdn.DrainEdge,
        cdn_pb2.DrainEdgeRequest(
            name=f"edges/{view.match['edge']}", resume=view.query.get("resume") == "1"
        ),
    )
    return {"edge": last_segment(edge.name), "draining": edge.draining}
