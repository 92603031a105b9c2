"""HLS content steering manifests (RFC 8216bis §7, Apple's Content Steering spec).

The master playlist an edge serves carries ``EXT-X-CONTENT-STEERING`` and tags
its variants with ``PATHWAY-ID`` = that edge's id (the edge's ``sub_filter``
does it). The manifest clones that base pathway onto every other usable edge
(``PATHWAY-CLONES`` with ``URI-REPLACEMENT.HOST``; HOST carries ``host:port``,
as hls.js applies it to ``URL.host``) and lists pathways best first in
``PATHWAY-PRIORITY``. Down edges are left out, degraded ones come after healthy
ones, so a player moves off a failing edge at its next reload without
restarting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cdn_ctl.domain import Edge

VERSION = 1


@dataclass(frozen=True, slots=True)
class PathwayClone:
    """A pathway made from the base pathway by replacing the host of every URI."""

    base_id: str
    pathway_id: str
    host: str


@dataclass(frozen=True, slots=True)
class SteeringManifest:
    """What a player reads at every reload."""

    ttl_seconds: int
    reload_uri: str
    pathway_priority: tuple[str, ...]
    clones: tuple[PathwayClone, ...]

    def to_json(self) -> dict[str, object]:
        """The manifest as the spec spells it."""
        body: dict[str, object] = {
            "VERSION": VERSION,
            "TTL": self.ttl_seconds,
            "RELOAD-URI": self.reload_uri,
            "PATHWAY-PRIORITY": list(self.pathway_priority),
        }
        if self.clones:
            body["PATHWAY-CLONES"] = [
                {"BASE-ID": c.base_id, "ID": c.pathway_id, "URI-REPLACEMENT": {"HOST": c.host}}
                for c in self.clones
            ]
        return body

    def render(self) -> str:
        """JSON text."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def build_manifest(
    *,
    base_pathway: str,
    current: str | None,
    ranked: Sequence[Edge],
    ttl_seconds: int,
    reload_uri: str,
    max_pathways: int = 4,
) -> SteeringManifest:
    """Priority: the lease's current edge if still usable, then the router's ranking."""
    usable = {e.edge_id: e for e in ranked}
    order = [current] if current in usable else []
    order += [e.edge_id for e in ranked if e.edge_id not in order]
    order = order[:max_pathways]
    clones = tuple(
        PathwayClone(base_pathway, edge_id, usable[edge_id].address)
        for edge_id in order
        if edge_id != base_pathway
    )
    return SteeringManifest(ttl_seconds, reload_uri, tuple(order), clones)
