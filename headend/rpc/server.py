"""Starting, serving and stopping a gRPC server on the harness, and every service's ``main()``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis

from headend import logs
from headend.auth import Authenticator
from headend.metrics import MetricsEndpoint, RpcMetrics
from headend.redisconn import RedisSettings, RedisUnreachable, connect_checked
from headend.rpc.interceptor import Interceptor
from headend.rpc.settings import RpcSettings
from headend.settings import Env, SettingsError, environ
from headend.storehealth import StoreHealth

_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
log = logging.getLogger(__name__)

# Transport bounds that need no tuning per deployment. A connection must finish
# its TLS and HTTP/2 handshakes within the handshake bound; one without calls
# for the idle bound is closed (clients reconnect on their next call); a peer
# that stops answering pings while it has calls open is dropped, so a vanished
# client does not keep its streams, and their slots, forever.
_HANDSHAKE_MS = 10_000
_CONNECTION_IDLE_MS = 300_000
_KEEPALIVE_MS = 60_000
_KEEPALIVE_TIMEOUT_MS = 20_000

# How every service process ends, whichever server it runs (each failure is one line on
# stderr): stopped by SIGTERM/SIGINT; could not start (Redis unreachable, port in use,
# TLS files unreadable); a setting missing or invalid (the line names it).
EXIT_STOPPED = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2

# Something that starts and stops with a server (live channels, HTTP faces): entered
# once the port is bound, before the server answers; exited after it has stopped.
Component = AbstractAsyncContextManager[object]


class StartupError(RuntimeError):
    """Raised when a server cannot start (port in use, bad certificate)."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One servicer to mount: its full proto name, how to add it, and its public methods."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    public_methods: frozenset[str] = frozenset()


class RpcServer:
    """A started gRPC server with its health servicer and metrics endpoint."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        names: Sequence[str],
        port: int,
        settings: RpcSettings,
        metrics: RpcMetrics,
        endpoint: MetricsEndpoint | None,
        interceptor: Interceptor,
        components: AsyncExitStack | None = None,
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.names = tuple(names)
        self.port = port
        self.settings = settings
        self.metrics = metrics
        self.metrics_endpoint = endpoint
        self.interceptor = interceptor
        self._components = components or AsyncExitStack()
        self._stopped = False

    async def report_store(self, serving: bool) -> None:
        """Every hosted service SERVING or NOT_SERVING as its store is reachable or not
        (:class:`headend.storehealth.StoreHealth`); nothing once stopping."""
        if self._stopped:
            return
        status = health_pb2.HealthCheckResponse.SERVING if serving else _NOT_SERVING
        for name in ("", *self.names):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, drain, let in-flight RPCs finish within the grace period, stop;
        then stop its components, last started first."""
        if self._stopped:
            return
        self._stopped = True
        for name in ("", *self.names):
            await self.health.set(name, _NOT_SERVING)
        if self.settings.drain_seconds and grace != 0:
            await asyncio.sleep(self.settings.drain_seconds)
        try:
            await self.server.stop(self.settings.grace_seconds if grace is None else grace)
        finally:
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.close()
            await self._components.aclose()


def _server_options(settings: RpcSettings) -> list[tuple[str, Any]]:
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        ("grpc.server_handshake_timeout_ms", _HANDSHAKE_MS),
        ("grpc.max_connection_idle_ms", _CONNECTION_IDLE_MS),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    ]


def _server_credentials(settings: RpcSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    try:
        # grpc only says "failed to bind" about a bad certificate; name the file instead.
        settings.validate()
    except SettingsError as err:
        raise StartupError(str(err)) from err
    ca = settings.tls_client_ca_file
    try:
        pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
        roots = ca.read_bytes() if ca else None
    except OSError as err:
        raise StartupError(f"cannot read TLS files: {err}") from err
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=ca is not None
    )


async def start_server(
    settings: RpcSettings,
    *,
    services: Sequence[ServiceSpec],
    authenticator: Authenticator,
    metrics: RpcMetrics | None = None,
    components: Sequence[Component] = (),
) -> tuple[RpcServer, int]:
    """Build, bind and start a server for ``services``; returns it and its bound port.

    ``components`` start after the port is bound and before the server answers, in order,
    and stop after it (``RpcServer.stop``); if one fails to start, those started stop again.
    """
    metrics = metrics or RpcMetrics()
    public = frozenset(f"/{spec.name}/{m}" for spec in services for m in spec.public_methods)
    interceptor = Interceptor(authenticator, public, metrics, settings)
    # No maximum_concurrent_rpcs here: grpc counts a call against it before any
    # interceptor runs, so callers without a key could fill it. The interceptor
    # enforces the cap after authentication instead.
    server = grpc.aio.server(interceptors=[interceptor], options=_server_options(settings))
    for spec in services:
        spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [spec.name for spec in services]
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    credentials = _server_credentials(settings)
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise StartupError(f"cannot listen on {address}: {err}") from err
    if port == 0:
        raise StartupError(f"cannot listen on {address}: address in use or unavailable")
    endpoint = None
    if settings.metrics_port is not None:
        try:
            endpoint = MetricsEndpoint(metrics.registry, settings.host, settings.metrics_port)
        except OSError as err:
            raise StartupError(
                f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {err}"
            ) from err
    try:
        stack = await _start_with(server, components)
    except BaseException:
        if endpoint is not None:
            endpoint.close()
        raise
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    tls = "off" if credentials is None else "mtls" if settings.tls_client_ca_file else "on"
    log.info(
        "grpc server listening",
        extra={"address": f"{settings.host}:{port}", "services": ",".join(names), "tls": tls},
    )
    server_ = RpcServer(
        server, health_servicer, names, port, settings, metrics, endpoint, interceptor, stack
    )
    return server_, port


async def _start_with(server: grpc.aio.Server, components: Sequence[Component]) -> AsyncExitStack:
    """Start ``components`` in order, then ``server``; if any fails, undo the others."""
    stack = AsyncExitStack()
    try:
        for component in components:
            await stack.enter_async_context(component)
    except BaseException:
        await stack.aclose()
        # grpc releases a bound port only once the server has started: start it and stop
        # it at once (nobody has been told the port yet).
        await server.start()
        await server.stop(0)
        raise
    try:
        await server.start()
    except BaseException:
        await stack.aclose()
        raise
    return stack


class Stoppable(Protocol):
    """A started server as :func:`serve` stops it (an ``RpcServer``, an HTTP origin)."""

    async def stop(self) -> None: ...


def stop_event() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set, on the running loop: how a process is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(server: Stoppable, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or ``stop`` is set), then shut down gracefully."""
    await (stop or stop_event()).wait()
    log.info("shutting down")
    await server.stop()


class ServiceSettings(Protocol):
    """What :func:`run_service` reads from a service's settings object."""

    @property
    def redis_url(self) -> str | None: ...
    @property
    def redis(self) -> RedisSettings: ...
    @property
    def log_level(self) -> str: ...


class FaceSettings(Protocol):
    """What :func:`run_face` reads from a face's settings object."""

    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=ServiceSettings)
F = TypeVar("F", bound=FaceSettings)
T = TypeVar("T")
Create = Callable[[S, Redis], Awaitable[tuple[Stoppable, int]]]


def load_settings(name: str, load: Callable[[Env], T]) -> T:
    """A process's settings from the environment, or exit ``EXIT_SETTINGS`` naming the bad one."""
    try:
        return load(environ())
    except SettingsError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS) from err


def run_service(
    name: str, load: Callable[[Env], S], create: Create[S], *, store_health: bool = True
) -> NoReturn:
    """A server process's ``main()``: settings, Redis, ``create``, serve until SIGTERM/SIGINT.

    Exits ``EXIT_STOPPED`` (0) once stopped by a signal (at any point of start-up too),
    ``EXIT_FAILED`` (1) when it cannot start (Redis unreachable, port in use) and
    ``EXIT_SETTINGS`` (2) on a bad or missing setting; a failure is one line on stderr.
    ``create`` gets the settings and a checked Redis client (closed after the server
    stopped) and returns the started server and its port. With ``store_health`` a gRPC
    server's health says NOT_SERVING once Redis has been unreachable for
    ``REDIS_UNREACHABLE_GRACE_SECONDS`` (:mod:`headend.storehealth`), SERVING again when
    it answers: a load balancer stops sending work to a replica cut off from its store.
    """
    settings = load_settings(name, load)
    if settings.redis_url is None:
        print(f"{name}: REDIS_URL is required (e.g. redis://127.0.0.1:6379/0)", file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS)
    logs.configure(name, settings.log_level)
    raise SystemExit(
        asyncio.run(_run(name, settings, settings.redis_url, create, store_health=store_health))
    )


async def _run(
    name: str, settings: S, url: str, create: Create[S], *, store_health: bool = True
) -> int:
    stop = stop_event()
    async with AsyncExitStack() as stack:
        try:
            started = await _unless_stopped(stop, _start(name, settings, url, create, stack))
        except (RedisUnreachable, StartupError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            return EXIT_FAILED
        if started is None:
            log.info("stopped while starting")
            return EXIT_STOPPED
        server, port, redis = started
        if store_health and isinstance(server, RpcServer):
            watch = StoreHealth(
                redis,
                grace_seconds=settings.redis.unreachable_grace_seconds,
                on_change=server.report_store,
            )
            task = asyncio.create_task(watch.run(), name="store-health")
            stack.callback(task.cancel)
        log.info(f"{name} service ready", extra={"port": port})
        await serve(server, stop=stop)
    return EXIT_STOPPED


async def _start(
    name: str, settings: S, url: str, create: Create[S], stack: AsyncExitStack
) -> tuple[Stoppable, int, Redis]:
    redis = await connect_checked(url, settings.redis, name=name)
    stack.push_async_callback(redis.aclose)
    server, port = await create(settings, redis)
    return server, port, redis


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None (``work`` cancelled and unwound) if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return None if task.cancelled() else task.result()


def run_face(
    name: str, load: Callable[[Env], F], start: Callable[[F], Awaitable[tuple[Stoppable, int]]]
) -> NoReturn:
    """The ``main()`` of a face that needs no Redis and calls the services (the REST face,
    the console): settings, ``start``, serve until SIGTERM/SIGINT, with
    :func:`run_service`'s exit codes (``start`` raises ``StartupError`` when it cannot
    listen)."""
    settings = load_settings(name, load)
    logs.configure(name, settings.log_level)
    raise SystemExit(asyncio.run(_run_face(name, settings, start)))


async def _run_face(
    name: str, settings: F, start: Callable[[F], Awaitable[tuple[Stoppable, int]]]
) -> int:
    stop = stop_event()
    try:
        server, _ = await start(settings)
    except StartupError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return EXIT_FAILED
    await serve(server, stop=stop)
    return EXIT_STOPPED
