"""The admin listener (aiohttp): routing decisions, steering, explanations, health, metrics.

URLs (every one but ``/healthz`` needs ``Authorization: Bearer <admin API key>``)::

    GET /route/live/{channel}/{path}?region=RRRRRR[&session=LEASE]
    GET /route/catchup/{channel}/w/{from}/{to}/{path}?region=RRRRRR[&session=LEASE]
        302 Location: http://{edge}/t/{exp}/{kid}/{ip}/{sig}/{kind}/{channel}/{path}...
        X-Route-Reason: village edge e1; up; load=0.12; bound=0.31
        (without a lease nothing is reserved: this is the operator's "where would it go")
    GET /steering/{channel}.json?base=EDGE&region=RRRRRR[&session=LEASE]  steering manifest
    GET /debug/route?channel=CH&region=RRRRRR                          every candidate's verdict
    GET /healthz   200 {"status": "ok" | "stale state", "edges": {...}, "tasks": {...}}
    GET /metrics   Prometheus text

Boxes never reach this listener: their only face is the front door
(:mod:`cdn_ctl.frontdoor`), which calls :meth:`RoutingService.redirect`
itself. Domain errors become HTTP statuses only in :func:`http_status` /
:func:`error_middleware`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from cdn_ctl.domain import Health
from cdn_ctl.errors import NoEdgeAvailable, TokenExpired
from cdn_ctl.service import Controller, Redirect, RouteRequest, RoutingService, steering_reload_uri
from headend import errors
from headend.auth import Authenticator
from headend.httperrors import error_body
from headend.httperrors import http_status as category_status
from headend.metrics import CONTENT_TYPE, render
from headend.tasks import Supervisor

RETRY_AFTER_SECONDS = 5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# This face's own statuses, ahead of the platform's category mapping.
_OVERRIDES = ((TokenExpired, 410),)


def http_status(err: errors.HeadendError) -> int:
    """The one mapping from error categories to HTTP statuses on this face."""
    return category_status(err, _OVERRIDES)


def error_response(err: errors.HeadendError) -> web.Response:
    """A short machine-readable JSON error a box can act on."""
    status = http_status(err)
    body = error_body(err)
    # The short machine-readable reason a box acts on (front door errors carry one).
    reason = err.details.get("reason")
    if reason:
        body["reason"] = reason
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = err.details.get("retry_after") or str(RETRY_AFTER_SECONDS)
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors raised by any handler behind it into HTTP responses."""
    try:
        return await handler(request)
    except errors.HeadendError as err:
        return error_response(err)


def mapped(handler: Handler) -> Handler:
    """Wrap one handler so domain errors become responses via :func:`error_response`
    (what :func:`error_middleware` does, without a middleware on the hot path)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.HeadendError as err:
            return error_response(err)

    return wrapper


def redirect_response(redirect: Redirect) -> web.Response:
    """The 302 a box follows, with the explanation header."""
    return web.Response(
        status=302,
        headers={
            "Location": redirect.location,
            "X-Route-Reason": redirect.reason,
            "X-Route-Edge": redirect.edge.edge_id,
            # No Cache-Control: a 302 without explicit freshness is never stored (RFC 9111).
        },
    )


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
        self._sessions = Gauge(
            "cdn_edge_sessions",
            "Active sessions counted by this replica.",
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
        session_id = query.get("session") or None
        req = RouteRequest(
            info["kind"], info["channel"], info["path"], region, client_ip, session_id
        )
        try:
            redirect = self.routing.redirect(req)
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
        session = query.get("session") or None
        base = query.get("base", "")
        manifest = self.routing.steering(
            channel=channel,
            region=region,
            base=base,
            session_id=session,
            reload_uri=steering_reload_uri(channel, base=base, region=region, session_id=session),
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
        router = self.routing.router
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
                edge_id: {
                    "region": e.region,
                    "tier": e.tier.value,
                    "health": router.health.get(edge_id, Health.DOWN).value,
                    "draining": e.draining,
                    "sessions": router.sessions_on(edge_id),
                    "capacity_sessions": e.capacity_sessions,
                }
                for edge_id, e in sorted(router.edges.items())
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
        router = self.routing.router
        counts: Mapping[Health, int] = {
            state: sum(1 for e in router.edges if router.health.get(e, Health.DOWN) is state)
            for state in Health
        }
        body: dict[str, object] = {
            **self._state(),
            "edges": {s.value: n for s, n in counts.items()},
        }
        if self.tasks is not None:
            body["tasks"] = {t.name: t.state for t in self.tasks.statuses()}
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text."""
        router = self.routing.router
        for edge_id in router.edges:
            current = router.health.get(edge_id, Health.DOWN)
            for state in Health:
                self._edge_state.labels(edge_id, state.value).set(1 if state is current else 0)
            self._sessions.labels(edge_id).set(router.ledger.sessions[edge_id])
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
