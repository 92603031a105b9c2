"""Use cases of the edge registry (admin only): register, update, drain and list edges.

Routing itself (choosing, counting and signing) is :mod:`cdn_ctl.routing`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cdn_ctl.domain import Edge, EdgeHealth, Tier, validate_edge, validate_edge_id
from cdn_ctl.errors import EdgeConflict, NotAdmin
from cdn_ctl.store import EdgeStore
from headend.auth import Principal


@dataclass(frozen=True, slots=True)
class EdgeStatus:
    """An edge as ``ListEdges`` reports it: registry record, health and load."""

    edge: Edge
    health: EdgeHealth | None
    leases: int

    @property
    def load(self) -> float:
        """Active leases over lease capacity."""
        return self.leases / self.edge.capacity_sessions


# The fields an update may change; the id, draining flag and version are the registry's.
UPDATABLE = (
    "region", "tier", "host", "port", "capacity_sessions", "capacity_mbps", "uplink_mbps",
    "parent_id",
)  # fmt: skip


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise NotAdmin("the CDN control plane is admin only", details={"principal": str(principal)})


class CdnService:
    """Registry use cases for ``CdnControlService``."""

    def __init__(self, *, store: EdgeStore, lease_ttl_seconds: int = 60) -> None:
        self._store = store
        self._lease_ttl = lease_ttl_seconds

    async def _check_parent(self, edge: Edge) -> None:
        if not edge.parent_id:
            return
        parent = await self._store.get_or_none(edge.parent_id)
        if parent is None:
            raise EdgeConflict(
                f"parent {edge.parent_id} is not registered", details={"parent_id": edge.parent_id}
            )
        if parent.tier is Tier.EDGE:
            raise EdgeConflict(
                "a parent must be a mid tier or the origin", details={"parent_id": edge.parent_id}
            )

    async def register(self, principal: Principal, edge: Edge) -> Edge:
        """Add an edge (validated; its parent must exist)."""
        _require_admin(principal)
        edge = validate_edge(replace(edge, version=1, draining=False))
        await self._check_parent(edge)
        return await self._store.create(edge)

    async def update(
        self,
        principal: Principal,
        edge_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int = 0,
    ) -> Edge:
        """Set some of an edge's fields (``changes``: field of ``UPDATABLE`` -> value),
        optionally version-checked. The write is checked against the version it read,
        so a concurrent change (a drain, another update) is ``Aborted``, never undone."""
        _require_admin(principal)
        current = await self._store.get(validate_edge_id(edge_id))
        edge = validate_edge(replace(current, **changes))
        await self._check_parent(edge)
        updated = replace(edge, version=current.version + 1)
        return await self._store.replace(
            updated, expected_version=expected_version or current.version
        )

    async def drain(self, principal: Principal, edge_id: str, *, draining: bool = True) -> Edge:
        """Stop (or resume) new leases on an edge; existing leases finish."""
        _require_admin(principal)
        validate_edge_id(edge_id)
        current = await self._store.get(edge_id)
        return await self._store.replace(
            current.drained(draining), expected_version=current.version
        )

    async def list(self, principal: Principal) -> list[EdgeStatus]:
        """Every edge with its health verdict and active leases (all replicas)."""
        _require_admin(principal)
        edges = await self._store.all()
        health = await self._store.health()
        leases = await self._store.leases(now=time.time(), ttl_seconds=self._lease_ttl)
        return [EdgeStatus(e, health.get(e.edge_id), leases.get(e.edge_id, 0)) for e in edges]
