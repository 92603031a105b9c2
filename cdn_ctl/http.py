"""The admin listener (aiohttp): routing decisions, steering, explanations, health, metrics.

URLs (every one but ``/healthz`` needs ``Authorization: Bearer <admin API key>``)::

    GET /route/live/{channel}/{path}?region=RRRRRR[&lease_id=LEASE]
    GET /route/catchup/{channel}/w/{from}/{to}/{path}?region=RRRRRR[&lease_id=LEASE]
        302 Location: http://{edge}/t/{exp}/{kid}/{ip}/{sig}/{kind}/{channel}/{path}...
        X-Route-Reason: county edge e1; up; load=0.12; bound=0.31
        (without a lease nothing is reserved: this is the operator's "where would it go")
    GET /steering/{channel}.json?base=EDGE&region=RRRRRR[&lease_id=LEASE]  steering manifest
    GET /debug/route?channel=CH&region=RRRRRR                          every candidate's verdict
    GET /healthz   200 {"status": "ok" | "stale state", "edges": {...}, "tasks": {...}}
    GET /metrics   Prometheus text

``lease_id`` was called ``session`` before; that name is still accepted for one
release. Boxes never reach this listener: their only face is the front door
(:mod:`cdn_ctl.frontdoor`), which calls :meth:`RoutingService.redirect`
itself. Domain errors become HTTP statuses only in :mod:`cdn_ctl.web`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from cdn_ctl.domain import Health, lease_param
from cdn_ctl.errors import NoEdgeAvailable
from cdn_ctl.routing import Controller, RouteRequest, RoutingService, steering_reload_uri
from cdn_ctl.web import Handler, error_middleware, mapped, redirect_response
from headend import errors
from headend.auth import Authenticator
from headend.metrics import CONTENT_TYPE, render
from headend.tasks import Supervisor


class RoutingFace:
    """Handlers for routing, steering, debug, health and metrics."""

    def __init__(
        self,
        *,
        routing: RoutingService,
        controller: Controller | None = None,
        registry: CollectorRegistry | None = None,
        tasks: Supervisor | None = None,
    ) -> None:
        self.routing = routing
        self.controller = controller
        # The process's background tasks (their liveness is on /healthz, restarts on /metrics).
        self.tasks = tasks
        self.registry = registry or CollectorRegistry()
        self._routes = Counter(
            "cdn_routes_total",
            "Redirects issued, by hierarchy level.",
            ["level"],
            registry=self.registry,
        )
        self._failures = Counter(
            "cdn_route_failures_total",
            "Routing requests refused, by error.",
            ["error"],
            registry=self.registry,
        )
        self._edge_state = Gauge(
            "cdn_edge_state",
            "1 for the edge's current health state.",
            ["edge", "state"],
            registry=self.registry,
        )
        self._stale = Gauge(
            "cdn_routing_state_stale", "1 while Redis is unreachable.", registry=self.registry
        )
        self._leases = Gauge(
            "cdn_edge_leases",
            "Active leases counted by this replica.",
            ["edge"],
            registry=self.registry,
        )
        self._level_counters: dict[str, Callable[[], None]] = {}

    def _count_route(self, level: str) -> None:
        inc = self._level_counters.get(level)
        if inc is None:
            inc = self._level_counters[level] = self._routes.labels(level).inc
        inc()

    async def route(self, request: web.Request) -> web.Response:
        """``GET /route/{kind}/{channel}/{path}`` -> 302 to an edge."""
        info = request.match_info
        query = request.query
        region, client_ip = query.get("region", ""), request.remote
        req = RouteRequest(
            info["kind"],
            info["channel"],
            info["path"],
            region,
            client_ip,
            lease_param(query) or None,
        )
        try:
            redirect = self.routing.route(req)
        except errors.HeadendError as err:
            self._failures.labels(type(err).__name__).inc()
            raise
        self._count_route(redirect.level.value)
        return redirect_response(redirect)

    async def steering(self, request: web.Request) -> web.Response:
        """``GET /steering/{channel}.json`` -> the content steering manifest."""
        channel = request.match_info["channel"]
        query = request.query
        region = query.get("region", "")
        lease_id = lease_param(query) or None
        base = query.get("base", "")
        manifest = self.routing.steering(
            channel=channel,
            region=region,
            base=base,
            lease_id=lease_id,
            reload_uri=steering_reload_uri(channel, base=base, region=region, lease_id=lease_id),
        )
        return web.Response(
            text=manifest.render(),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def debug(self, request: web.Request) -> web.Response:
        """``GET /debug/route?channel=&region=`` -> the decision and every candidate's verdict."""
        query = request.query
        channel, region = query.get("channel", ""), query.get("region", "")
        try:
            decision = self.routing.explain(channel, region)
            chosen: dict[str, object] = {
                "edge": decision.edge.edge_id,
                "address": decision.edge.address,
                "level": decision.level.value,
                "reason": decision.reason,
            }
            considered = decision.considered
        except NoEdgeAvailable as err:
            chosen = {"error": type(err).__name__, "message": err.message}
            considered = ()
        body = {
            "channel": channel,
            "region": region,
            "decision": chosen,
            "considered": [
                {"edge": c.edge_id, "level": c.level.value, "verdict": c.verdict}
                for c in considered
            ],
            "edges": {
                r.edge.edge_id: {
                    "region": r.edge.region,
                    "tier": r.edge.tier.value,
                    "health": r.health.value,
                    "draining": r.edge.draining,
                    "leases": r.leases,
                    "capacity_sessions": r.edge.capacity_sessions,
                }
                for r in self.routing.snapshot()
            },
            "state": self._state(),
        }
        return web.json_response(body)

    def _state(self) -> dict[str, object]:
        if self.controller is None:
            return {"status": "ok"}
        status = self.controller.status
        if status.stale_since is None:
            return {"status": "ok", "last_refresh": status.last_refresh}
        return {
            "status": "stale state",
            "stale_seconds": round(time.time() - status.stale_since, 1),
            "error": status.last_error,
        }

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while routing; says ``stale state`` when Redis is unreachable."""
        snapshot = self.routing.snapshot()
        body: dict[str, object] = {
            **self._state(),
            "edges": {s.value: sum(1 for r in snapshot if r.health is s) for s in Health},
        }
        if self.tasks is not None:
            body["tasks"] = {t.name: t.state for t in self.tasks.statuses()}
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text."""
        for r in self.routing.snapshot():
            edge_id = r.edge.edge_id
            for state in Health:
                self._edge_state.labels(edge_id, state.value).set(1 if state is r.health else 0)
            self._leases.labels(edge_id).set(r.held_here)
        self._stale.set(1 if self.controller is not None and self.controller.status.stale else 0)
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    def add_routes(self, app: web.Application) -> None:
        """Mount the handlers on ``app``."""
        app.router.add_get(r"/route/{kind:live|catchup}/{channel}/{path:.+}", mapped(self.route))
        app.router.add_get(r"/steering/{channel}.json", mapped(self.steering))
        app.router.add_get("/debug/route", mapped(self.debug))
        app.router.add_get("/healthz", mapped(self.healthz))
        app.router.add_get("/metrics", mapped(self.metrics))


@web.middleware
async def _no_store(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def admin_auth(authenticator: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware admitting only ``Authorization: Bearer <admin key>`` (``/healthz`` open)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("an admin API key is required (Authorization: Bearer)")
        try:
            principal = await authenticator.authenticate(token.strip())
        except (RedisError, OSError) as err:
            # The key store is down: an outage to wait out (503), not a server bug (500).
            raise errors.Unavailable("the API key store is unavailable; retry shortly") from err
        if not principal.is_admin:
            raise errors.PermissionDenied(f"{principal} may not use the admin listener")
        return await handler(request)

    return middleware


def create_app(face: RoutingFace, *, authenticator: Authenticator) -> web.Application:
    """The admin app: every route but ``/healthz`` behind an admin API key."""
    app = web.Application(
        middlewares=[error_middleware, admin_auth(authenticator), _no_store],
        client_max_size=4096,
    )
    face.add_routes(app)
    return app
