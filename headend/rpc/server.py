"""Starting, serving and stopping a gRPC server on the harness."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
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
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.names = tuple(names)
        self.port = port
        self.settings = settings
        self.metrics = metrics
        self.metrics_endpoint = endpoint
        self.interceptor = interceptor
        self._stopped = False

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, drain, let in-flight RPCs finish within the grace period, stop."""
        if self._stopped:
            return
        self._stopped = True
        for name in ("", *self.names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.drain_seconds and grace != 0:
            await asyncio.sleep(self.settings.drain_seconds)
        await self.server.stop(self.settings.grace_seconds if grace is None else grace)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()


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
) -> tuple[RpcServer, int]:
    """Build, bind and start a server for ``services``; returns it and its bound port."""
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
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    tls = "off" if credentials is None else "mtls" if settings.tls_client_ca_file else "on"
    log.info(
        "grpc server listening",
        extra={"address": f"{settings.host}:{port}", "services": ",".join(names), "tls": tls},
    )
    server_ = RpcServer(
        server, health_servicer, names, port, settings, metrics, endpoint, interceptor
    )
    return server_, port


async def serve(server: RpcServer) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": server.settings.grace_seconds})
    await server.stop()


class ServiceSettings(Protocol):
    """What :func:`run_service` reads from a service's settings object."""

    @property
    def redis_url(self) -> str | None: ...
    @property
    def redis(self) -> RedisSettings: ...
    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=ServiceSettings)


def run_service(
    name: str,
    load: Callable[[Env], S],
    create: Callable[[S, Redis], Awaitable[tuple[RpcServer, int]]],
) -> NoReturn:
    """A gRPC service's ``main()``: settings from the environment (exit 2 naming a bad
    or missing one), Redis reachable (exit 1 otherwise), serve until SIGTERM/SIGINT."""
    try:
        settings = load(environ())
    except SettingsError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    if settings.redis_url is None:
        print(f"{name}: REDIS_URL is required (e.g. redis://127.0.0.1:6379/0)", file=sys.stderr)
        raise SystemExit(2)
    logs.configure(name, settings.log_level)
    raise SystemExit(asyncio.run(_serve_with_redis(name, settings, settings.redis_url, create)))


async def _serve_with_redis(
    name: str,
    settings: S,
    url: str,
    create: Callable[[S, Redis], Awaitable[tuple[RpcServer, int]]],
) -> int:
    try:
        redis = await connect_checked(url, settings.redis, name=name)
    except RedisUnreachable as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 1
    try:
        server, port = await create(settings, redis)
        log.info(f"{name} service ready", extra={"port": port})
        await serve(server)
    finally:
        await redis.aclose()
    return 0
