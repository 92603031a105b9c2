"""The REST face's aiohttp application, its one error-handling place, and its process.

Each request is matched against the route table, turned into the method's request
message, and sent to the service as a unary gRPC call over the platform's own
channels, with the caller's ``Authorization`` header as the call's metadata: the
service authenticates the key, checks the principal's role and tenant, validates and
deduplicates exactly as for a gRPC caller. An ``Idempotency-Key`` header fills the
request's ``idempotency_key`` when the body leaves it empty. An ``X-Request-Id`` header
(or a new id when it is missing or not a sane token) goes to the service as the call's
``x-request-id``, tags the face's own log lines and comes back in the response.
``GET /openapi.json`` and ``GET /healthz`` need no key.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import NoReturn

import grpc
from aiohttp import web
from google.protobuf import message_factory
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Counter, Histogram

from headend import logs
from headend.metrics import MetricsEndpoint
from headend.rest.messages import build_request, check_route, to_json
from headend.rest.openapi import openapi_document
from headend.rest.problems import (
    NO_STORE,
    BadAuthorization,
    BodyTooLarge,
    Problem,
    RestError,
    UnsupportedMediaType,
    UriTooLong,
    from_error,
    from_rpc_error,
)
from headend.rest.routes import RouteTable
from headend.rest.settings import RestSettings
from headend.rpc import StartupError, client_channel
from headend.rpc.server import run_face
from protos import (
    alerts_pb2,
    cdn_pb2,
    cues_pb2,
    epg_pb2,
    keys_pb2,
    reports_pb2,
    subscriber_pb2,
    transcode_pb2,
)

log = logging.getLogger(__name__)

# Each proto file's services and the address setting of the server hosting them
# (KeyService is mounted by the subscriber server).
UPSTREAMS = (
    (epg_pb2, "EPG_TARGET"),
    (alerts_pb2, "EPG_TARGET"),
    (cues_pb2, "EPG_TARGET"),
    (subscriber_pb2, "SUBSCRIBER_TARGET"),
    (keys_pb2, "SUBSCRIBER_TARGET"),
    (reports_pb2, "SUBSCRIBER_TARGET"),
    (transcode_pb2, "TRANSCODE_TARGET"),
    (cdn_pb2, "CDN_TARGET"),
)
# Methods the services answer without a key (subscriber.server.PUBLIC_METHODS: a box
# proves its device secret in the request). Only the OpenAPI document reads this; the
# services decide. tests/rest checks it against the servers' own lists.
PUBLIC_RPCS = frozenset({"/headend.subscriber.v1.SubscriberService/DeviceLogin"})
OPENAPI_PATH = "/openapi.json"
HEALTH_PATH = "/healthz"
# The longest path and query read; longer is 414 (aiohttp refuses a request line past 8 KiB).
MAX_TARGET_CHARS = 4096
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The route a request matched, as logs and metrics name it.
_ROUTE = web.RequestKey("route", str)
# The request's id (``headend.logs``), sent to the service and back to the caller.
_REQUEST_ID = web.RequestKey("request_id", str)


class RestMetrics:
    """Requests and latency by route (``POST /v1/{name=keys/*}:revoke``) and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "api_http_requests_total",
            "REST requests, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "api_http_request_seconds",
            "REST request handling time (the gRPC call included), by route.",
            ["route"],
            registry=self.registry,
        )


def route_table() -> RouteTable:
    """Every annotated method of the platform's protos, each annotation checked."""
    table = RouteTable.from_modules(UPSTREAMS)
    for route in table.routes:
        check_route(route)
    for kept, dropped in table.conflicts:
        log.error(
            "two methods annotated with one route: the second is not served",
            extra={"route": kept.name, "served": kept.rpc, "not_served": dropped.rpc},
        )
    return table


def _is_json(request: web.Request) -> bool:
    kind = request.content_type
    json_type = kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
    return json_type and (request.charset or "utf-8").lower() == "utf-8"


def _metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    traced = ((logs.REQUEST_ID_HEADER, request[_REQUEST_ID]),)
    value = request.headers.get("Authorization")
    if value is None:
        return traced
    if not (value.isascii() and value.isprintable()):
        raise BadAuthorization("the Authorization header must be printable ASCII")
    return (("authorization", value), *traced)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Gateway:
    """Request handlers over the route table and one gRPC channel per service address."""

    def __init__(
        self, settings: RestSettings, table: RouteTable, channels: Mapping[str, grpc.aio.Channel]
    ) -> None:
        self._settings = settings
        self._table = table
        # One callable per served method, made once: its channel, request and answer types.
        self._calls = {
            route.rpc: (
                message_factory.GetMessageClass(route.method.input_type),
                channels[route.upstream].unary_unary(
                    route.rpc,
                    request_serializer=_serialize,
                    response_deserializer=message_factory.GetMessageClass(
                        route.method.output_type
                    ).FromString,
                ),
            )
            for route in table.routes
        }
        self.metrics = RestMetrics()
        document = openapi_document(table.routes, public=PUBLIC_RPCS)
        self._openapi = web.json_response(document).body

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        """The OpenAPI 3.1 document (no key needed)."""
        request[_ROUTE] = f"GET {OPENAPI_PATH}"
        return web.Response(body=self._openapi, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """200 while the face runs (each call says whether its service answers)."""
        request[_ROUTE] = f"GET {HEALTH_PATH}"
        return web.json_response({"status": "ok"}, headers=NO_STORE)

    async def _body(self, request: web.Request) -> bytes:
        bound = self._settings.max_body_bytes
        length = request.content_length
        if length is not None and length > bound:
            raise BodyTooLarge(f"the body is longer than {bound} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as err:
            raise BodyTooLarge(f"the body is longer than {bound} bytes") from err
        if raw and not _is_json(request):
            raise UnsupportedMediaType("Content-Type", "send the body as application/json")
        return raw

    async def call(self, request: web.Request) -> web.StreamResponse:
        """One API request: match, build the request message, call the service."""
        target = request.rel_url.raw_path_qs
        if len(target) > MAX_TARGET_CHARS:
            raise UriTooLong("path", f"longer than {MAX_TARGET_CHARS} characters")
        route, path = self._table.match(request.method, request.rel_url.raw_path)
        request[_ROUTE] = route.name
        metadata = _metadata(request)
        body = await self._body(request)
        input_type, rpc = self._calls[route.rpc]
        message = build_request(
            route,
            input_type(),
            path=path,
            query=request.rel_url.query.items(),
            body=body,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        try:
            response = await rpc(message, metadata=metadata, timeout=self._settings.timeout_seconds)
        except grpc.aio.AioRpcError as err:
            problem = from_rpc_error(err)
            if problem.status >= 500:
                log.warning(
                    "service call failed",
                    extra={"route": route.name, "code": err.code().name, "error": problem.detail},
                )
            return problem.response()
        return web.json_response(to_json(response), headers=NO_STORE)


_METRICS = web.AppKey("metrics", RestMetrics)  # the app's, read by the middleware


@web.middleware
async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place the face's own refusals, and its bugs, become problems; metrics; and
    the request id."""
    start = time.perf_counter()
    request[_REQUEST_ID] = rid = logs.bind_request_id(request.headers.get("X-Request-Id"))
    try:
        response = await handler(request)
    except RestError as err:
        response = from_error(err).response()
    except web.HTTPException as err:
        err.headers["X-Request-Id"] = rid
        raise
    except Exception:
        error_id = secrets.token_hex(6)
        log.exception("request failed", extra={"error_id": error_id})
        response = Problem(500, f"internal error (error id {error_id})", "INTERNAL").response()
    metrics = request.app[_METRICS]
    route = request.get(_ROUTE, "unmatched")
    metrics.requests.labels(route, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - start)
    response.headers["X-Request-Id"] = rid
    return response


def create_app(
    settings: RestSettings, channels: Mapping[str, grpc.aio.Channel], *, table: RouteTable
) -> web.Application:
    """The REST face's application over ``channels`` (address setting -> channel)."""
    gateway = Gateway(settings, table, channels)
    app = web.Application(middlewares=[_problems], client_max_size=settings.max_body_bytes)
    app[_METRICS] = gateway.metrics
    app.router.add_get(OPENAPI_PATH, gateway.openapi)
    app.router.add_get(HEALTH_PATH, gateway.healthz)
    app.router.add_route("*", "/{tail:.*}", gateway.call)
    return app


class ApiServer:
    """The started REST face: its listener, channels and metrics endpoint."""

    def __init__(self, opened: AsyncExitStack, app: web.Application, port: int) -> None:
        self._opened = opened
        self.app = app
        self.port = port

    @property
    def metrics(self) -> RestMetrics:
        """Its request metrics."""
        return self.app[_METRICS]

    async def stop(self) -> None:
        """Stop answering, then close the channels."""
        await self._opened.aclose()


async def listen(
    app: web.Application,
    opened: AsyncExitStack,
    *,
    host: str,
    port: int,
    registry: CollectorRegistry,
    metrics_port: int | None,
) -> int:
    """Serve a face's ``app`` on ``host:port`` (0: any free port) and, unless
    ``metrics_port`` is None, ``registry`` on a listener of its own; both close with
    ``opened``. Returns the port; ``StartupError`` when the address cannot be listened on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    opened.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as err:
        raise StartupError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    if metrics_port is not None:
        opened.callback(MetricsEndpoint(registry, host, metrics_port).close)
    return int(runner.addresses[0][1])


async def start_api(settings: RestSettings) -> tuple[ApiServer, int]:
    """Serve on ``settings.host:port`` (port 0 picks one); returns the server and its port.

    Raises ``StartupError`` when the address cannot be listened on."""
    table = route_table()
    opened = AsyncExitStack()
    try:
        channels: dict[str, grpc.aio.Channel] = {}
        for _, variable in UPSTREAMS:
            if variable not in channels:
                channel = client_channel(settings.target(variable), tls=settings.grpc_tls)
                opened.push_async_callback(channel.close)
                channels[variable] = channel
        app = create_app(settings, channels, table=table)
        port = await listen(
            app,
            opened,
            host=settings.host,
            port=settings.port,
            registry=app[_METRICS].registry,
            metrics_port=settings.metrics_port,
        )
    except BaseException:
        await opened.aclose()
        raise
    log.info(
        "api listening",
        extra={"address": f"{settings.host}:{port}", "routes": len(table.routes)},
    )
    return ApiServer(opened, app, port), port


def main() -> NoReturn:
    """``python -m headend.rest``: the REST face on ``API_HOST:API_PORT`` (needs no Redis)."""
    run_face("api", RestSettings.from_env, start_api)
