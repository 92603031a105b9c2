"""The gRPC server harness every service runs on.

It adds, in one place: standard health checking (NOT_SERVING before
shutdown) and reflection; bearer API-key authentication; the mapping of
``headend.errors`` categories to status codes with rich details
(``google.rpc.Status`` carrying ``ErrorInfo`` and ``BadRequest``); a cap on
concurrent RPCs; Prometheus metrics; TLS and mTLS; graceful shutdown.

Servicers are plain ``grpc.aio`` servicers: they read the caller with
:func:`principal`, raise ``headend.errors`` exceptions, and write
server-streaming methods as async generators.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis
from redis.exceptions import RedisError

from headend import errors, logs
from headend.auth import Authenticator, Principal
from headend.metrics import MetricsEndpoint, RpcMetrics
from headend.settings import (
    Env,
    SettingsError,
    env_file,
    env_float,
    env_int,
    env_optional,
    env_str,
    environ,
)

log = logging.getLogger(__name__)

_STATUS = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
)
_DETAILS_KEY = "grpc-status-details-bin"
_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


class StartupError(RuntimeError):
    """Raised when a server cannot start (port in use, bad certificate)."""


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """Where and how a gRPC server listens."""

    host: str = "127.0.0.1"
    port: int = 0
    max_concurrent_rpcs: int = 1000
    grace_seconds: float = 5.0
    # NOT_SERVING is announced this long before the listener closes, so load
    # balancers and health watchers move traffic away first.
    drain_seconds: float = 0.0
    metrics_port: int | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    @classmethod
    def from_env(cls, env: Env, prefix: str, *, default_port: int) -> RpcSettings:
        """Read ``<PREFIX>_GRPC_HOST``/``_GRPC_PORT``/``_MAX_CONCURRENT_RPCS``/
        ``_GRACE_SECONDS``/``_DRAIN_SECONDS``/``_METRICS_PORT`` and the shared ``TLS_*`` files."""
        metrics = env_optional(env, f"{prefix}_METRICS_PORT")
        settings = cls(
            host=env_str(env, f"{prefix}_GRPC_HOST", "127.0.0.1"),
            port=env_int(env, f"{prefix}_GRPC_PORT", default_port, low=0, high=65535),
            max_concurrent_rpcs=env_int(
                env, f"{prefix}_MAX_CONCURRENT_RPCS", 1000, low=1, high=100_000
            ),
            grace_seconds=env_float(env, f"{prefix}_GRACE_SECONDS", 5.0, low=0, high=600),
            drain_seconds=env_float(env, f"{prefix}_DRAIN_SECONDS", 1.0, low=0, high=600),
            metrics_port=None
            if metrics is None
            else env_int(env, f"{prefix}_METRICS_PORT", 0, low=0, high=65535),
            tls_cert_file=env_file(env, "TLS_CERT_FILE"),
            tls_key_file=env_file(env, "TLS_KEY_FILE"),
            tls_client_ca_file=env_file(env, "TLS_CLIENT_CA_FILE"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse half-configured TLS."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise SettingsError("TLS_CLIENT_CA_FILE", "mTLS needs TLS_CERT_FILE and TLS_KEY_FILE")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One servicer to mount: its full proto name, how to add it, and its public methods."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    public_methods: frozenset[str] = frozenset()


def principal() -> Principal:
    """The authenticated caller of the current RPC."""
    try:
        return _PRINCIPAL.get()
    except LookupError as err:
        raise errors.Unauthenticated("no authenticated principal") from err


def status_code(err: errors.HeadendError) -> grpc.StatusCode:
    """The gRPC status for a domain error category."""
    for kind, code in _STATUS:
        if isinstance(err, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def _status_details(err: errors.HeadendError, code: grpc.StatusCode) -> bytes:
    info = error_details_pb2.ErrorInfo(
        reason=type(err).__name__, domain="headend", metadata=err.details
    )
    packed = [any_pb2.Any()]
    packed[0].Pack(info)
    if isinstance(err, errors.InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.reason)
            ]
        )
        packed.append(any_pb2.Any())
        packed[-1].Pack(bad)
    status = status_pb2.Status(code=code.value[0], message=err.message, details=packed)
    return status.SerializeToString()


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """What a client can read back from a failed call's rich status."""

    reason: str
    metadata: dict[str, str]
    fields: dict[str, str]


def error_details(err: grpc.aio.AioRpcError | grpc.RpcError) -> ErrorDetails:
    """Decode the ``ErrorInfo`` and ``BadRequest`` a server attached to an error."""
    trailing = err.trailing_metadata() or ()
    raw = next((v for k, v in trailing if k == _DETAILS_KEY), None)
    if raw is None:
        return ErrorDetails("", {}, {})
    status = status_pb2.Status.FromString(raw)
    reason, metadata, fields = "", {}, {}
    for item in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if item.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif item.Unpack(bad):
            fields = {v.field: v.description for v in bad.field_violations}
    return ErrorDetails(reason, metadata, fields)


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            raise errors.Unauthenticated("authorization metadata must be 'Bearer <key>'")
    raise errors.Unauthenticated("missing authorization metadata")


class _Interceptor(grpc.aio.ServerInterceptor):
    """Authenticates, maps domain errors to status codes and records metrics."""

    def __init__(
        self, authenticator: Authenticator, public: frozenset[str], metrics: RpcMetrics
    ) -> None:
        self._auth = authenticator
        self._public = public
        self._metrics = metrics
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(_EXEMPT_PREFIXES):
            return handler
        wrapped = self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped

    async def _enter(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if method in self._public:
            return
        token = _bearer(context.invocation_metadata())
        _PRINCIPAL.set(await self._auth.authenticate(token))

    async def _fail(
        self, context: grpc.aio.ServicerContext, err: errors.HeadendError
    ) -> grpc.StatusCode:
        code = status_code(err)
        await context.abort(
            code, err.message, trailing_metadata=((_DETAILS_KEY, _status_details(err, code)),)
        )
        return code  # not reached: abort raises

    def _record(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        start: float,
        failed: BaseException | None,
    ) -> None:
        if failed is None:
            code = "OK"
        elif isinstance(failed, asyncio.CancelledError):
            code = "CANCELLED"
        else:
            current = context.code()
            code = current.name if isinstance(current, grpc.StatusCode) else "UNKNOWN"
        self._metrics.observe(method, code, time.perf_counter() - start)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start, failed = time.perf_counter(), cast(BaseException | None, None)
                try:
                    await self._enter(method, context)
                    return await inner(request, context)
                except errors.HeadendError as err:
                    failed = err
                    await self._fail(context, err)
                except BaseException as err:
                    failed = err
                    if not isinstance(err, asyncio.CancelledError | grpc.aio.AbortError):
                        log.exception("rpc failed", extra={"rpc": method})
                    raise
                finally:
                    self._record(method, context, start, failed)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(call, **kwargs)

        inner_stream = handler.unary_stream or handler.stream_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start, failed = time.perf_counter(), cast(BaseException | None, None)
            try:
                await self._enter(method, context)
                async for item in inner_stream(request, context):
                    yield item
            except errors.HeadendError as err:
                failed = err
                await self._fail(context, err)
            except BaseException as err:
                failed = err
                if not isinstance(
                    err, asyncio.CancelledError | grpc.aio.AbortError | GeneratorExit
                ):
                    log.exception("rpc failed", extra={"rpc": method})
                raise
            finally:
                self._record(method, context, start, failed)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(stream, **kwargs)


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
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.names = tuple(names)
        self.port = port
        self.settings = settings
        self.metrics = metrics
        self.metrics_endpoint = endpoint
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
    server = grpc.aio.server(
        interceptors=[_Interceptor(authenticator, public, metrics)],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 0)],
    )
    for spec in services:
        spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [spec.name for spec in services]
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            ca = settings.tls_client_ca_file
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
                root_certificates=ca.read_bytes() if ca else None,
                require_client_auth=ca is not None,
            )
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
    log.info(
        "grpc server listening",
        extra={"address": f"{settings.host}:{port}", "services": ",".join(names)},
    )
    return RpcServer(server, health_servicer, names, port, settings, metrics, endpoint), port


async def serve(server: RpcServer) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": server.settings.grace_seconds})
    await server.stop()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key."""
    return (("authorization", f"Bearer {token}"),)


def client_channel(
    target: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> grpc.aio.Channel:
    """An aio channel to ``target``; TLS when ``ca_file`` is given, mTLS with a client pair."""
    if ca_file is None:
        return grpc.aio.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=key_file.read_bytes() if key_file else None,
        certificate_chain=cert_file.read_bytes() if cert_file else None,
    )
    return grpc.aio.secure_channel(target, credentials)


class ServiceSettings(Protocol):
    """What :func:`run_service` reads from a service's settings object."""

    @property
    def redis_url(self) -> str | None: ...
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
    redis = Redis.from_url(url)
    try:
        try:
            await redis.ping()
        except (RedisError, OSError) as err:
            print(f"{name}: cannot reach Redis at REDIS_URL ({err})", file=sys.stderr)
            return 1
        server, port = await create(settings, redis)
        log.info(f"{name} service ready", extra={"port": port})
        await serve(server)
    finally:
        await redis.aclose()
    return 0
