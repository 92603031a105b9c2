"""The admin listener (aiohttp): routing decisions, steering, explanations, health, metrics.

URLs (every one but ``/healthz`` needs ``Authorization: Bearer <admin API key>``)::

    GET /route/live/{channel}/{path}?region=RRRRRR[&lease_id=LEASE]
    GET /route/catchup/{channel}/w/{from}/{to}/{path}?region=RRRRRR[&lease_id=LEASE]
        302 Location: http://{edge}/t/{exp}/{kid}/{ip}/{sig}/{kind}/{channel}/{path}...
        X-Route-Reason: county edge e1; up; load=0.12; bound=0.31
        (without a lease nothing is reserved: this is the operator's "where would it go")
    GET /steering/{channel}.json?base=EDGE&region=RRRRRR[&lease_id=LEASE]  steering manifest
    GET /debug/route?channel=CH&region=RRRRRR                          every candidate's verdict
    GET /multicast  the front door's multicast directory: each channel's group, port,
                    protocol, regions and running flag, and when it was read
    GET /healthz   200 {"status": "ok" | "stale state", "edges": {...}, "tasks": {...}}
    GET /metrics   Prometheus text (every worker's, labelled ``worker``, when there are
                   several: :mod:`cdn_ctl.workers`)

``lease_id`` was called ``session`` before; that name is still accepted for one
release. Boxes never reach this listener: their only face is the front door
(:mod:`cdn_ctl.frontdoor`), which calls :meth:`RoutingService.redirect`
itself. Domain errors become HTTP statuses only in :mod:`cdn_ctl.web`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from redis.exceptions import RedisError

from cdn_ctl.domain import Health, lease_param
from cdn_ctl.errors import NoEdgeAvailable
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.routing import Controller, RouteRequest, RoutingService, steering_reload_uri
from cdn_ctl.upstream.outputs import LiveDirectory
from cdn_ctl.web import Handler, error_middleware, mapped, redirect_response
from cdn_ctl.workers import WorkerMetrics
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
        metrics: CdnMetrics | None = None,
        tasks: Supervisor | None = None,
        worker: tuple[Path, int] | None = None,
        outputs: LiveDirectory | None = None,
    ) -> None:
        """``worker``: this run's directory of worker sockets and this worker's index, when
        the HTTP faces run in several processes (see :mod:`cdn_ctl.workers`); ``outputs``:
        the front door's live directory (None: no front door, or no transcode target)."""
        self.routing = routing
        self.outputs = outputs
        self.controller = controller
        # The process's background tasks (their liveness is on /healthz, restarts on /metrics).
        self.tasks = tasks
        # The routing service counts its own decisions into the same metrics (server.py).
        self._metrics = metrics or CdnMetrics()
        # With several worker processes: /metrics answers for all of them.
        self.workers = None if worker is None else WorkerMetrics(*worker, own=self._own_metrics)

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
        return redirect_response(self.routing.route(req))

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

    async def multicast_view(self, request: web.Request) -> web.Response:
        """``GET /multicast`` -> the multicast groups this process gives boxes, per channel."""
        directory = self.outputs
        if directory is None:
            return web.json_response({"enabled": False, "outputs": []})
        read_at = directory.read_at
        body = {
            "enabled": True,
            "read_at": None if read_at is None else read_at.isoformat(),
            "last_error": directory.last_error,
            "outputs": [
                {
                    "channel": o.channel,
                    "group": m.group,
                    "port": m.port,
                    "protocol": m.protocol.value,
                    "url": m.url,
                    "regions": list(m.regions),
                    "running": o.running,
                }
                for o in directory.outputs()
                if (m := o.multicast) is not None
            ],
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
        workers = self.workers
        body = self._own_metrics() if workers is None else await workers.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    def _own_metrics(self) -> bytes:
        """This process's metrics, its per-edge gauges set to its view now."""
        controller = self.controller
        self._metrics.set_edges(
            self.routing.snapshot(),
            {} if controller is None else controller.monitor.health(),
            stale=controller is not None and controller.status.stale,
        )
        return render(self._metrics.registry)

    def add_routes(self, app: web.Application) -> None:
        """Mount the handlers on ``app``."""
        app.router.add_get(r"/route/{kind:live|catchup}/{channel}/{path:.+}", mapped(self.route))
        app.router.add_get(r"/steering/{channel}.json", mapped(self.steering))
        app.router.add_get("/debug/route", mapped(self.debug))
        app.router.add_get("/multicast", mapped(self.multicast_view))
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
