"""Use cases: the edge registry (admin only), routing with signed redirects, steering,
and the controller loop that keeps the in-memory routing state fed from Redis and probes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple
from urllib.parse import quote

from cdn_ctl.domain import (
    Edge,
    EdgeHealth,
    Health,
    Level,
    Tier,
    level_of,
    validate_box_region,
    validate_channel,
    validate_edge,
    validate_edge_id,
)
from cdn_ctl.errors import (
    CdnError,
    EdgeConflict,
    InvalidRouteRequest,
    NotAdmin,
    RegistryUnavailable,
)
from cdn_ctl.health import HealthMonitor
from cdn_ctl.routing import Decision, Router
from cdn_ctl.settings import RoutingSettings
from cdn_ctl.signing import KeyRing, token_prefix, validate_scope
from cdn_ctl.steering import SteeringManifest, build_manifest
from cdn_ctl.store import EdgeStore
from headend.auth import Principal

log = logging.getLogger(__name__)

KINDS = ("live", "catchup")
_WINDOW = re.compile(r"^w/([0-9]{1,12})/([0-9]{1,12})/")


@dataclass(frozen=True, slots=True)
class EdgeStatus:
    """An edge as ``ListEdges`` reports it: registry record, health and load."""

    edge: Edge
    health: EdgeHealth | None
    sessions: int

    @property
    def load(self) -> float:
        """Active sessions over session capacity."""
        return self.sessions / self.edge.capacity_sessions


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise NotAdmin("the CDN control plane is admin only", details={"principal": str(principal)})


class CdnService:
    """Registry use cases for ``CdnControl``."""

    def __init__(self, *, store: EdgeStore, session_ttl_seconds: int = 60) -> None:
        self._store = store
        self._session_ttl = session_ttl_seconds

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

    async def update(self, principal: Principal, edge: Edge, *, expected_version: int = 0) -> Edge:
        """Replace an edge's fields (keeping its draining flag), optionally version-checked."""
        _require_admin(principal)
        validate_edge(edge)
        current = await self._store.get(edge.edge_id)
        await self._check_parent(edge)
        updated = replace(edge, draining=current.draining, version=current.version + 1)
        return await self._store.replace(updated, expected_version=expected_version)

    async def drain(self, principal: Principal, edge_id: str, *, draining: bool = True) -> Edge:
        """Stop (or resume) new sessions on an edge; existing sessions finish."""
        _require_admin(principal)
        validate_edge_id(edge_id)
        current = await self._store.get(edge_id)
        return await self._store.replace(
            current.drained(draining), expected_version=current.version
        )

    async def list(self, principal: Principal) -> list[EdgeStatus]:
        """Every edge with its health verdict and active sessions (all replicas)."""
        _require_admin(principal)
        edges = await self._store.all()
        health = await self._store.health()
        sessions = await self._store.sessions(now=time.time(), ttl_seconds=self._session_ttl)
        return [EdgeStatus(e, health.get(e.edge_id), sessions.get(e.edge_id, 0)) for e in edges]


class RouteRequest(NamedTuple):
    """A box asking for a playlist: ``/{kind}/{channel}/{path}`` from ``region``.

    (NamedTuples here and below: built on every redirect, and cheaper than frozen
    dataclasses on that path.)"""

    kind: str
    channel: str
    path: str
    region: str
    client_ip: str | None
    session_id: str | None = None


class Redirect(NamedTuple):
    """Where to send the box, why, and under which session."""

    location: str
    edge: Edge
    level: Level
    reason: str
    session_id: str


@functools.lru_cache(maxsize=8192)
def _target(kind: str, channel: str, path: str, region: str) -> tuple[str, int]:
    """The signed scope of a request and, for catch-up, its window length in seconds.

    Live URLs are scoped to the channel's live directory; catch-up URLs to exactly one
    window (``catchup/{ch}/w/{from}/{to}/``), so a grant can never reach another part
    of the archive: the origin serves under a window path only the segments inside it.
    Pure checks of what boxes ask for over and over: cached, errors are not.
    """
    if kind not in KINDS:
        raise InvalidRouteRequest("kind", f"must be one of {', '.join(KINDS)}")
    validate_channel(channel)
    validate_box_region(region)
    validate_scope(f"{kind}/{channel}/{path}")
    if kind == "live":
        return f"live/{channel}/", 0
    match = _WINDOW.match(path)
    if match is None:
        raise InvalidRouteRequest("path", "catch-up paths are w/{from}/{to}/... (epoch seconds)")
    first, last = int(match[1]), int(match[2])
    if last <= first:
        raise InvalidRouteRequest("path", "the window must end after it starts")
    return f"catchup/{channel}/w/{first}/{last}/", last - first


def _validate(req: RouteRequest) -> tuple[str, int]:
    """Check a request (kind, channel, region, path, lease, in that order)."""
    target = _target(req.kind, req.channel, req.path, req.region)
    if req.session_id is not None and not session_id_ok(req.session_id):
        raise InvalidRouteRequest("session", "must be 1-64 of [A-Za-z0-9_-]")
    return target


def session_id_ok(text: str) -> bool:
    """A session id as it travels in query strings: 1-64 of [A-Za-z0-9_-]."""
    return 0 < len(text) <= 64 and all(c.isalnum() or c in "-_" for c in text) and text.isascii()


class RoutingService:
    """The hot path: choose an edge, keep the lease's edge, sign the redirect."""

    def __init__(
        self,
        *,
        router: Router,
        keys: KeyRing,
        settings: RoutingSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.keys = keys
        self.settings = settings
        self._clock = clock

    def _usable(self, edge_id: str | None) -> Edge | None:
        if edge_id is None:
            return None
        edge = self.router.edges.get(edge_id)
        if edge is None or self.router.health.get(edge_id, Health.DOWN) is Health.DOWN:
            return None
        return edge

    def lifetime(self, window_seconds: int) -> int:
        """How long a signed URL lives: live URLs are re-issued at every playlist reload,
        so they are short; a catch-up URL covers its window's playback plus a grace."""
        if window_seconds <= 0:
            return self.settings.url_ttl_seconds
        return window_seconds + self.settings.catchup_url_grace_seconds

    def sign(self, scope: str, *, lifetime_seconds: int, client_ip: str | None) -> str:
        """The token prefix for ``scope`` (bound to ``client_ip`` when binding is on)."""
        return token_prefix(
            self.keys,
            scope=scope,
            expires_at=int(self._clock()) + lifetime_seconds,
            client_ip=client_ip if self.settings.bind_client_ip else None,
        )

    def redirect(self, req: RouteRequest) -> Redirect:
        """Route and sign. A request with a lease (``session_id``) is counted on its edge and
        stays there while the edge is up; one without a lease reserves no capacity."""
        scope, window = _validate(req)
        now = self._clock()
        ledger = self.router.ledger
        lease = req.session_id
        # A lease that asks again for the same channel stays on its edge unless it is down.
        sticky = self._usable(ledger.edge_of(lease, req.channel)) if lease else None
        if sticky is not None:
            ledger.touch(lease or "", expires_at=now + self.settings.session_ttl_seconds)
            edge, level = sticky, level_of(sticky, req.region)
            reason = f"session affinity: {level} {sticky.tier} {sticky.edge_id}"
        else:
            decision = self.router.route(req.channel, req.region)
            edge, level, reason = decision.edge, decision.level, decision.reason
            if lease:
                ledger.start(
                    lease,
                    edge_id=edge.edge_id,
                    channel=req.channel,
                    expires_at=now + self.settings.session_ttl_seconds,
                )
        prefix = self.sign(scope, lifetime_seconds=self.lifetime(window), client_ip=req.client_ip)
        location = f"http://{edge.address}{prefix}{req.kind}/{req.channel}/{req.path}"
        if lease:
            location += f"?session={lease}&region={req.region}"
        return Redirect(location, edge, level, reason, lease or "")

    def candidates(self, channel: str, region: str) -> list[Edge]:
        """Edges that may serve ``channel`` to ``region`` now, in preference order."""
        return [e for e in self.router.ranked(channel, region) if not e.draining]

    def end(self, lease: str) -> None:
        """The box stopped: its lease no longer counts on any edge."""
        self.router.ledger.end(lease)

    def explain(self, channel: str, region: str) -> Decision:
        """What a new session would get, with every candidate's verdict; changes nothing."""
        validate_channel(channel)
        validate_box_region(region)
        return self.router.route(channel, region, explain=True)

    def steering(
        self, *, channel: str, region: str, base: str, session_id: str | None, reload_uri: str
    ) -> SteeringManifest:
        """The pathway order for a playing session; moves the session off a down edge."""
        validate_channel(channel)
        validate_box_region(region)
        validate_edge_id(base)
        now = self._clock()
        ledger = self.router.ledger
        # Only a lease the ledger already counts can be moved: steering reserves nothing.
        known = (
            ledger.touch(session_id, expires_at=now + self.settings.session_ttl_seconds)
            if session_id
            else None
        )
        current = known or base
        ranked = [
            e for e in self.router.ranked(channel, region) if not e.draining or e.edge_id == current
        ]
        if self._usable(current) is None and session_id and known is not None:
            # The session's edge is down: give it a fresh route and count it there.
            with contextlib.suppress(CdnError):
                decision = self.router.route(channel, region)
                ledger.start(
                    session_id,
                    edge_id=decision.edge.edge_id,
                    channel=channel,
                    expires_at=now + self.settings.session_ttl_seconds,
                )
                current = decision.edge.edge_id
        return build_manifest(
            base_pathway=base,
            current=current,
            ranked=ranked,
            ttl_seconds=self.settings.steering_ttl_seconds,
            reload_uri=reload_uri,
        )


def steering_reload_uri(channel: str, *, base: str, region: str, session_id: str | None) -> str:
    """The RELOAD-URI (relative to the manifest) a player uses for its next reload."""
    query = f"base={quote(base)}&region={quote(region)}"
    if session_id:
        query += f"&session={quote(session_id)}"
    return f"/steering/{quote(channel)}.json?{query}"


@dataclass
class ControllerStatus:
    """Freshness of the routing state, for ``/healthz``."""

    stale_since: float | None = None
    last_refresh: float | None = None
    last_error: str = ""

    @property
    def stale(self) -> bool:
        """True while Redis could not be read at the last refresh."""
        return self.stale_since is not None


class Controller:
    """Feeds the router from Redis (edges, other replicas' sessions) and from probes.

    When Redis is unreachable the router keeps its last known edges and keeps
    probing them; ``status`` says the state is stale until a refresh succeeds.
    """

    def __init__(
        self,
        *,
        store: EdgeStore,
        router: Router,
        monitor: HealthMonitor,
        replica_id: str,
        session_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.router = router
        self.monitor = monitor
        self.replica_id = replica_id
        self.status = ControllerStatus()
        self._session_ttl = session_ttl_seconds
        self._clock = clock

    async def refresh(self) -> bool:
        """Reload edges and remote session counts; publish ours. False if Redis failed."""
        now = self._clock()
        self.router.ledger.expire(now)
        try:
            edges = await self.store.all()
            remote = await self.store.publish_sessions(
                self.replica_id,
                self.router.ledger.counts(),
                now=now,
                ttl_seconds=self._session_ttl,
            )
        except RegistryUnavailable as err:
            if self.status.stale_since is None:
                self.status.stale_since = now
                log.warning(
                    "redis unreachable: routing on last known state",
                    extra={"error": str(err.__cause__)},
                )
            self.status.last_error = str(err.__cause__ or err)
            return False
        self.router.set_edges(edges)
        self.router.remote_sessions = remote
        self.router.set_health(self.monitor.states())
        if self.status.stale_since is not None:
            log.info("redis reachable again: routing state fresh")
        self.status = ControllerStatus(None, now, "")
        return True

    async def probe(self) -> list[str]:
        """One probe round over the known edges; publish verdicts (best effort)."""
        changed = await self.monitor.probe_round(list(self.router.edges.values()))
        self.router.set_health(self.monitor.states())
        for edge_id in changed:
            h = self.monitor.health()[edge_id]
            log.info(
                "edge health changed",
                extra={"edge_id": edge_id, "state": h.state.value, "reason": h.reason},
            )
        with contextlib.suppress(RegistryUnavailable):
            await self.store.put_health(self.monitor.health())
        return changed

    async def refresh_forever(self, seconds: float) -> None:
        """Refresh every ``seconds`` until cancelled (run under a ``Supervisor``; an
        unreachable Redis is not a failure here: the state is only marked stale)."""
        while True:
            await self.refresh()
            await asyncio.sleep(seconds)

    async def probe_forever(self, seconds: float) -> None:
        """Probe the known edges every ``seconds`` until cancelled (run under a ``Supervisor``)."""
        while True:
            await self.probe()
            await asyncio.sleep(seconds)
