"""The routing use cases: choose an edge, keep a lease on it, sign the redirect, steer.

:class:`RoutingService` is the one door into routing: the set-top box front
door uses :meth:`~RoutingService.candidates`, :meth:`~RoutingService.sign`,
:meth:`~RoutingService.redirect` and :meth:`~RoutingService.end` (its
``Routing`` protocol); the admin face also routes raw paths, explains, steers
and reads :meth:`~RoutingService.snapshot`. The route ledger and the signing
keys stay behind it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol
from urllib.parse import quote

from cdn_ctl.domain import (
    LEASE_PARAM,
    Edge,
    Health,
    Redirect,
    RouteDecision,
    RouteLevel,
    Scope,
    level_of,
    parse_target,
    validate_box_region,
    validate_channel,
    validate_edge_id,
    validate_lease_id,
)
from cdn_ctl.errors import CdnError
from cdn_ctl.routing.router import Decision, Router
from cdn_ctl.routing.settings import RoutingSettings
from cdn_ctl.signing import KeyRing, token_prefix
from cdn_ctl.steering import SteeringManifest, build_manifest
from headend.errors import HeadendError


class RouteRequest(NamedTuple):
    """A raw routing request: ``/{kind}/{channel}/{path}`` for a box in ``region``
    (a NamedTuple: built on every admin-face redirect)."""

    kind: str
    channel: str
    path: str
    region: str
    client_ip: str | None
    lease_id: str | None = None


class RouteCounter(Protocol):
    """Counts routing decisions and refusals (:class:`cdn_ctl.metrics.CdnMetrics`)."""

    def routed(self, level: RouteLevel, decision: RouteDecision) -> None:
        """One redirect issued (or lease moved)."""

    def refused(self, err: HeadendError) -> None:
        """One routing request refused."""


class Affinity(NamedTuple):
    """Where a kept lease's edge sits for its box: the redirect's level and reason, and
    the edge's URL base."""

    edge: Edge
    level: RouteLevel
    reason: str
    base: str


# Bound on the remembered (edge, region) affinities: edges x the regions they serve.
AFFINITY_MAX = 65_536
# Enum members read on every redirect, as globals: on Python 3.11 a member looked up on
# its class costs about ten times a global's lookup.
_DOWN, _KEPT = Health.DOWN, RouteDecision.LEASE_KEPT


@dataclass(frozen=True, slots=True)
class RoutedEdge:
    """An edge as this replica routes to it: health and the leases counted on it."""

    edge: Edge
    health: Health
    leases: int
    held_here: int


class RoutingService:
    """The hot path: choose an edge, keep the lease's edge, sign the redirect."""

    def __init__(
        self,
        *,
        router: Router,
        keys: KeyRing,
        settings: RoutingSettings,
        clock: Callable[[], float] = time.time,
        counter: RouteCounter | None = None,
    ) -> None:
        self._router = router
        self._keys = keys
        self.settings = settings
        self._clock = clock
        self._counter = counter
        self._affinities: dict[tuple[str, str], Affinity] = {}

    def _usable(self, edge_id: str | None) -> Edge | None:
        if edge_id is None:
            return None
        edge = self._router.edges.get(edge_id)
        if edge is None or self._router.health.get(edge_id, _DOWN) is _DOWN:
            return None
        return edge

    def _lifetime(self, scope: Scope) -> int:
        """Live URLs are re-issued at every playlist reload, so they are short; a catch-up
        URL covers its window's playback plus a grace."""
        if scope.window_seconds <= 0:
            return self.settings.url_ttl_seconds
        return scope.window_seconds + self.settings.catchup_url_grace_seconds

    def _affinity(self, edge: Edge, region: str) -> Affinity:
        """The level and reason of a lease kept on ``edge`` for a box in ``region``, worked
        out once per edge version and region (the variant reload's hot path)."""
        key = (edge.edge_id, region)
        known = self._affinities.get(key)
        if known is not None and known.edge is edge:
            return known
        validate_box_region(region)
        level = level_of(edge, region)
        reason = f"lease affinity: {level} {edge.tier} {edge.edge_id}"
        known = Affinity(edge, level, reason, f"http://{edge.address}")
        if len(self._affinities) >= AFFINITY_MAX:
            self._affinities.clear()
        self._affinities[key] = known
        return known

    def _expiry(self) -> float:
        return self._clock() + self.settings.lease_ttl_seconds

    def sign(self, scope: Scope, *, lifetime_seconds: int, client_ip: str | None) -> str:
        """The token prefix for ``scope`` (bound to ``client_ip`` when binding is on)."""
        return token_prefix(
            self._keys,
            scope=scope.path,
            expires_at=int(self._clock()) + lifetime_seconds,
            client_ip=client_ip if self.settings.bind_client_ip else None,
        )

    def redirect(
        self,
        scope: Scope,
        rest: str,
        *,
        region: str,
        client_ip: str | None,
        lease_id: str | None = None,
    ) -> Redirect:
        """Route and sign ``{scope}{rest}`` once. A request with a lease is counted on its
        edge and stays there while the edge is up; one without reserves no capacity."""
        try:
            redirect, decision = self._redirect(scope, rest, region, client_ip, lease_id)
        except HeadendError as err:
            if self._counter is not None:
                self._counter.refused(err)
            raise
        if self._counter is not None:
            self._counter.routed(redirect.level, decision)
        return redirect

    def _redirect(
        self, scope: Scope, rest: str, region: str, client_ip: str | None, lease_id: str | None
    ) -> tuple[Redirect, RouteDecision]:
        router = self._router
        # A live variant reload ({rung}/{name}) names the rung the lease plays, which the
        # edge's prefetch sidecar pulls ahead; a catch-up redirect names none.
        slash = rest.find("/") if scope.kind == "live" else -1
        rung = rest[:slash] if slash > 0 else ""
        # A lease that asks again for the same channel stays on its edge unless it is down
        # (a counted lease id was checked when it was placed).
        sticky = self._usable(router.edge_of(lease_id, scope.channel)) if lease_id else None
        if lease_id and sticky is not None:
            router.touch(lease_id, expires_at=self._expiry(), rung=rung)
            edge, level, reason, base = self._affinity(sticky, region)
            how = _KEPT
        else:
            validate_box_region(region)
            if lease_id is not None:
                validate_lease_id(lease_id)
            decision = router.route(scope.channel, region)
            edge, level, reason = decision.edge, decision.level, decision.reason
            base = f"http://{edge.address}"
            how = RouteDecision.LEASE_PLACED if lease_id else RouteDecision.NO_LEASE
            if lease_id:
                router.hold(
                    lease_id,
                    edge_id=edge.edge_id,
                    channel=scope.channel,
                    expires_at=self._expiry(),
                    rung=rung,
                )
        prefix = self.sign(scope, lifetime_seconds=self._lifetime(scope), client_ip=client_ip)
        location = f"{base}{prefix}{scope.path}{rest}"
        if lease_id:
            location += f"?{LEASE_PARAM}={lease_id}&region={region}"
        return Redirect(location, edge, level, reason, lease_id or ""), how

    def route(self, req: RouteRequest) -> Redirect:
        """:meth:`redirect` for a raw path (checked: kind, channel, region, path, lease)."""
        try:
            scope, rest = parse_target(req.kind, req.channel, req.path)
        except HeadendError as err:
            if self._counter is not None:
                self._counter.refused(err)
            raise
        return self.redirect(
            scope, rest, region=req.region, client_ip=req.client_ip, lease_id=req.lease_id
        )

    def candidates(self, channel: str, region: str) -> list[Edge]:
        """Edges that may serve ``channel`` to ``region`` now, in preference order."""
        return [e for e in self._router.ranked(channel, region) if not e.draining]

    def end(self, lease_id: str) -> None:
        """The box stopped: its lease no longer counts on any edge."""
        self._router.release(lease_id)

    def explain(self, channel: str, region: str) -> Decision:
        """What a new lease would get, with every candidate's verdict; changes nothing."""
        validate_channel(channel)
        validate_box_region(region)
        return self._router.route(channel, region, explain=True)

    def snapshot(self) -> list[RoutedEdge]:
        """Every known edge by id, with its health and lease counts (debug and metrics)."""
        router = self._router
        held = router.counts()
        return [
            RoutedEdge(
                edge,
                router.health.get(edge_id, Health.DOWN),
                router.leases_on(edge_id),
                held.get(edge_id, 0),
            )
            for edge_id, edge in sorted(router.edges.items())
        ]

    def steering(
        self, *, channel: str, region: str, base: str, lease_id: str | None, reload_uri: str
    ) -> SteeringManifest:
        """The pathway order for a playing lease; moves the lease off a down edge."""
        validate_channel(channel)
        validate_box_region(region)
        validate_edge_id(base)
        if lease_id is not None:
            validate_lease_id(lease_id)
        router = self._router
        # Only a lease the ledger already counts can be moved: steering reserves nothing.
        known = router.touch(lease_id, expires_at=self._expiry()) if lease_id else None
        current = known or base
        ranked = [
            e for e in router.ranked(channel, region) if not e.draining or e.edge_id == current
        ]
        if lease_id and known is not None and self._usable(current) is None:
            # The lease's edge is down: give it a fresh route and count it there.
            with contextlib.suppress(CdnError):
                decision = router.route(channel, region)
                router.hold(
                    lease_id,
                    edge_id=decision.edge.edge_id,
                    channel=channel,
                    expires_at=self._expiry(),
                )
                current = decision.edge.edge_id
                if self._counter is not None:
                    self._counter.routed(decision.level, RouteDecision.STEERED)
        return build_manifest(
            base_pathway=base,
            current=current,
            ranked=ranked,
            ttl_seconds=self.settings.steering_ttl_seconds,
            reload_uri=reload_uri,
        )


def steering_reload_uri(channel: str, *, base: str, region: str, lease_id: str | None) -> str:
    """The RELOAD-URI (relative to the manifest) a player uses for its next reload."""
    query = f"base={quote(base)}&region={quote(region)}"
    if lease_id:
        query += f"&{LEASE_PARAM}={quote(lease_id)}"
    return f"/steering/{quote(channel)}.json?{query}"
