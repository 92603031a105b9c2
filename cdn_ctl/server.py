"""``CdnControlService`` over gRPC (proto <-> domain only), and the process entry point
that runs it together with the HTTP routing face and the controller loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiohttp import web

from cdn_ctl.convert import EDGE, edge_changes_from_pb, edge_from_pb, edge_to_pb, status_to_pb
from cdn_ctl.domain import validate_edge_id
from cdn_ctl.errors import InvalidEdge
from cdn_ctl.frontdoor.app import TASK_BACKOFF, FrontDoor, Guards, create_box_app
from cdn_ctl.frontdoor.guard import (
    AddressWatch,
    ConnectionLimits,
    FetchLimiter,
    LoginGuard,
    raise_fd_limit,
)
from cdn_ctl.frontdoor.keys import KEY_LIMITER, KeyDelivery
from cdn_ctl.frontdoor.policy import RedactedAccessLogger
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.health import HealthMonitor, HttpProber
from cdn_ctl.http import RoutingFace, create_app
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.playerlinks import PlayerLinks
from cdn_ctl.routing import Controller, Router, RoutingService
from cdn_ctl.service import UPDATABLE, CdnService
from cdn_ctl.settings import CdnSettings
from cdn_ctl.store import EdgeStore
from headend import logs, rpc
from headend.auth import Authenticator, KeyStore
from headend.contentkeys import ContentKeyStore
from headend.ratelimit import RateLimiter
from headend.redisconn import RedisUnreachable, connect_checked
from headend.rpc.resources import page, update_paths
from headend.rpc.server import Component, stop_event
from headend.settings import SettingsError
from headend.tasks import Supervisor, SupervisorMetrics
from protos import cdn_pb2, cdn_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = cdn_pb2.DESCRIPTOR.services_by_name["CdnControlService"].full_name
# The login lockouts' limiter names (``headend ratelimit clear login-box <mac>``).
LOGIN_PER_BOX = "login-box"
LOGIN_PER_ADDRESS = "login-address"
_SPARE_FILES = 512


def _edge_id(name: str, *, field: str) -> str:
    """The id in an edge's name; ``InvalidEdge`` on ``field`` for a bad name or id."""
    try:
        return validate_edge_id(EDGE.id(name, field=field))
    except InvalidEdge as err:
        raise InvalidEdge(field, err.reason) from err


class CdnControlServicer(cdn_pb2_grpc.CdnControlServiceServicer):
    """Proto <-> domain (resource names <-> ids) for the registry use cases."""

    def __init__(self, service: CdnService) -> None:
        self._service = service

    async def RegisterEdge(
        self, request: cdn_pb2.RegisterEdgeRequest, context: grpc.aio.ServicerContext
    ) -> cdn_pb2.Edge:
        """Add an edge."""
        if not request.HasField("edge"):
            raise InvalidEdge("edge", "required")
        edge = edge_from_pb(request.edge, edge_id=request.edge_id)
        return edge_to_pb(await self._service.register(rpc.principal(), edge))

    async def UpdateEdge(
        self, request: cdn_pb2.UpdateEdgeRequest, context: grpc.aio.ServicerContext
    ) -> cdn_pb2.Edge:
        """Change the masked fields of an edge."""
        if not request.HasField("edge"):
            raise InvalidEdge("edge", "required")
        edge_id = _edge_id(request.edge.name, field="edge.name")
        paths = update_paths(request.edge, request.update_mask, UPDATABLE)
        edge = await self._service.update(
            rpc.principal(),
            edge_id,
            edge_changes_from_pb(request.edge, paths),
            expected_version=request.expected_version,
        )
        return edge_to_pb(edge)

    async def DrainEdge(
        self, request: cdn_pb2.DrainEdgeRequest, context: grpc.aio.ServicerContext
    ) -> cdn_pb2.Edge:
        """Drain or resume an edge."""
        edge = await self._service.drain(
            rpc.principal(), _edge_id(request.name, field="name"), draining=not request.resume
        )
        return edge_to_pb(edge)

    async def ListEdges(
        self, request: cdn_pb2.ListEdgesRequest, context: grpc.aio.ServicerContext
    ) -> cdn_pb2.ListEdgesResponse:
        """A page of edges, by id, with health and load."""
        statuses, token = page(
            await self._service.list(rpc.principal()),
            key=lambda s: s.edge.edge_id,
            size=request.page_size,
            token=request.page_token,
        )
        return cdn_pb2.ListEdgesResponse(
            edges=[status_to_pb(s) for s in statuses], next_page_token=token
        )


async def create_server(
    settings: CdnSettings, *, redis: Any, keys: KeyStore, components: Sequence[Component] = ()
) -> tuple[rpc.RpcServer, int]:
    """Start ``CdnControlService`` on ``settings.rpc`` (``components`` start and stop with it);
    returns the server and its port."""
    service = CdnService(
        store=EdgeStore(redis), lease_ttl_seconds=settings.routing.lease_ttl_seconds
    )
    servicer = CdnControlServicer(service)
    return await rpc.start_server(
        settings.rpc,
        services=[
            rpc.ServiceSpec(
                name=SERVICE_NAME,
                register=functools.partial(
                    cdn_pb2_grpc.add_CdnControlServiceServicer_to_server, servicer
                ),
            )
        ],
        authenticator=keys,
        components=components,
    )


class RoutingProcess:
    """The HTTP faces with their own controller loop (one per worker process): the public
    set-top box front door (when configured) and the admin listener."""

    def __init__(
        self,
        settings: CdnSettings,
        *,
        redis: Any,
        http: aiohttp.ClientSession,
        keys: Authenticator | None = None,
        access_log: bool = True,
        worker: tuple[Path, int] | None = None,
    ) -> None:
        """``worker``: see :class:`RoutingFace`."""
        self._access_log = access_log
        self.router = Router(settings.route_policy)
        self.monitor = HealthMonitor(
            settings.health,
            probe=HttpProber(
                http, timeout_seconds=settings.health.probe_timeout_seconds, keys=settings.keys
            ),
        )
        self.controller = Controller(
            store=EdgeStore(redis),
            router=self.router,
            monitor=self.monitor,
            replica_id=settings.replica_id,
            lease_ttl_seconds=settings.routing.lease_ttl_seconds,
        )
        # The process's one registry: routing, edges, the front door, background tasks.
        self.metrics = CdnMetrics()
        self.routing = RoutingService(
            router=self.router, keys=settings.keys, settings=settings.routing, counter=self.metrics
        )
        # Every background loop of this process (the controller's, the front door's):
        # awaited, logged, counted on /metrics, listed on /healthz, restarted with backoff.
        self.supervisor = Supervisor(
            backoff=TASK_BACKOFF, metrics=SupervisorMetrics(self.metrics.registry)
        )
        door = settings.frontdoor
        self.frontdoor = (
            FrontDoor.connect(
                door,
                routing=self.routing,
                http=http,
                guards=guards(door, redis),
                links=PlayerLinks(redis),
                keys=key_delivery(settings, redis),
                supervisor=self.supervisor,
                metrics=self.metrics,
            )
            if door is not None
            else None
        )
        self.face = RoutingFace(
            routing=self.routing,
            controller=self.controller,
            metrics=self.metrics,
            tasks=self.supervisor,
            worker=worker,
            outputs=None if self.frontdoor is None else self.frontdoor.outputs,
        )
        self.admin_app = create_app(self.face, authenticator=keys or KeyStore(redis))
        self.limits = None
        if door is not None:
            # Room for the caches, gRPC channels, edges and Redis beside the boxes.
            files = raise_fd_limit(door.max_connections + _SPARE_FILES)
            if files < door.max_connections + _SPARE_FILES:
                log.warning(
                    "open-file limit below the connection cap: lowering the cap",
                    extra={"limit": files, "max_connections": door.max_connections},
                )
            self.limits = ConnectionLimits(
                max_total=max(1, min(door.max_connections, files - _SPARE_FILES)),
                max_per_address=door.max_connections_per_address,
            )
        self._settings = settings
        self._runners: list[web.AppRunner] = []
        self.port = 0
        self.admin_port = 0

    async def _site(self, runner: web.AppRunner, host: str, port: int, *, reuse_port: bool) -> int:
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as err:
            raise rpc.StartupError(
                f"cannot listen on {host}:{port}: {err.strerror or err}"
            ) from err
        return int(runner.addresses[-1][1])

    async def start(self, *, reuse_port: bool = False) -> int:
        """First refresh and probe, then the loop and the listeners; returns the public
        port (the admin port when there is no front door)."""
        await self.controller.refresh()
        await self.controller.probe()
        settings = self._settings
        self.supervisor.spawn(
            "controller-refresh",
            functools.partial(self.controller.refresh_forever, settings.refresh_seconds),
        )
        self.supervisor.spawn(
            "controller-probes",
            functools.partial(self.controller.probe_forever, settings.probe_interval_seconds),
        )
        if self.face.workers is not None:
            await self.face.workers.start()
        self.admin_port = await self._site(
            web.AppRunner(self.admin_app, access_log=None),
            settings.admin_host,
            settings.admin_port,
            reuse_port=reuse_port,
        )
        if self.frontdoor is None or settings.frontdoor is None:
            self.port = self.admin_port
            return self.port
        await self.frontdoor.start()
        runner = web.AppRunner(
            create_box_app(self.frontdoor, metrics=self.metrics),
            # Paths only: tokens travel in query strings and headers and never reach the log.
            access_log=logging.getLogger("cdn_ctl.access") if self._access_log else None,
            access_log_class=RedactedAccessLogger,
            # Also closes connections that never finish sending a request head.
            keepalive_timeout=settings.frontdoor.idle_timeout_seconds,
            max_line_size=4096,
            max_field_size=4096,
            max_headers=32,
        )
        self.port = await self._site(
            runner, settings.http_host, settings.http_port, reuse_port=reuse_port
        )
        if self.limits is not None and runner.server is not None:
            self.limits.install(runner.server)
        return self.port

    async def stop(self) -> None:
        """Stop serving and every background task."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []
        if self.face.workers is not None:
            await self.face.workers.stop()
        if self.frontdoor is not None:
            await self.frontdoor.stop()
        await self.supervisor.close()


def guards(settings: FrontDoorSettings, redis: Any) -> Guards:
    """The front door's Redis-backed defences for ``settings``."""

    def lockout(name: str, failures: int) -> RateLimiter:
        return RateLimiter(
            redis,
            name=name,
            limit=failures,
            window_seconds=settings.login_window_seconds,
            lockout_after=failures,
            lockout_seconds=settings.login_lockout_seconds,
        )

    return Guards(
        login=LoginGuard(
            per_box=lockout(LOGIN_PER_BOX, settings.login_failures_per_mac),
            per_address=lockout(LOGIN_PER_ADDRESS, settings.login_failures_per_address),
        ),
        addresses=AddressWatch(
            redis,
            max_addresses=settings.max_addresses_per_token,
            window_seconds=settings.address_window_seconds,
        ),
        fetches=FetchLimiter(redis, per_minute=settings.fetches_per_minute),
    )


def key_delivery(settings: CdnSettings, redis: Any) -> KeyDelivery | None:
    """The front door's content key delivery (None: no ``CONTENT_KEKS``, no keys served)."""
    door, keks = settings.frontdoor, settings.content_keys.keks
    if door is None or keks is None:
        return None
    return KeyDelivery(
        ContentKeyStore(redis, keks),
        redis,
        limiter=FetchLimiter(redis, per_minute=door.key_requests_per_minute, name=KEY_LIMITER),
        cache_seconds=door.key_cache_seconds,
        live_window_seconds=door.live_key_window_seconds,
        grace_seconds=settings.routing.catchup_url_grace_seconds,
    )


async def _connect(settings: CdnSettings, name: str) -> Any:
    try:
        return await connect_checked(settings.redis_url or "", settings.redis, name=name)
    except RedisUnreachable as err:
        raise SettingsError("REDIS_URL", err.message) from err


async def _run_http_worker(settings: CdnSettings, index: int, run_dir: Path) -> None:
    redis = await _connect(settings, f"cdn_ctl-w{index}")
    settings = replace(settings, replica_id=f"{settings.replica_id}-w{index}")
    async with aiohttp.ClientSession() as http:
        process = RoutingProcess(settings, redis=redis, http=http, worker=(run_dir, index))
        await process.start(reuse_port=True)
        await rpc.serve(process, stop=stop_event())
    await redis.aclose()


def _http_worker_main(settings: CdnSettings, index: int, run_dir: Path) -> None:
    logs.configure("cdn_ctl", settings.log_level)
    asyncio.run(_run_http_worker(settings, index, run_dir))


@contextlib.asynccontextmanager
async def _routing(settings: CdnSettings, redis: Any) -> AsyncIterator[None]:
    """The HTTP faces, and the worker processes that share their ports, beside gRPC."""
    # This run's worker sockets (several workers only); private to this user.
    run_dir = Path(tempfile.mkdtemp(prefix="cdn-workers-")) if settings.http_workers > 1 else None
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=_http_worker_main, args=(settings, i, run_dir), daemon=True
        )
        for i in range(1, settings.http_workers)
    ]
    for worker in workers:
        worker.start()
    try:
        async with aiohttp.ClientSession() as http:
            process = RoutingProcess(
                settings, redis=redis, http=http, worker=None if run_dir is None else (run_dir, 0)
            )
            try:
                port = await process.start(reuse_port=settings.http_workers > 1)
                log.info(
                    "cdn routing up",
                    extra={
                        "http_port": port,
                        "admin_port": process.admin_port,
                        "http_workers": settings.http_workers,
                    },
                )
                yield
            finally:
                await process.stop()
    finally:
        for worker in workers:
            worker.terminate()
            worker.join(10)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)


async def _create(settings: CdnSettings, redis: Any) -> tuple[rpc.RpcServer, int]:
    return await create_server(
        settings, redis=redis, keys=KeyStore(redis), components=[_routing(settings, redis)]
    )


def main() -> None:
    """``python -m cdn_ctl``: gRPC CdnControlService + HTTP routing face + health monitor."""
    # The front door rides out a Redis outage from its caches (playing boxes keep playing):
    # its health does not follow the store's.
    rpc.run_service("cdn_ctl", CdnSettings.from_env, _create, store_health=False)
