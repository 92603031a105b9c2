"""Prometheus metrics: one registry per process face, exposed over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# grpc_type, as go-grpc-prometheus names the four kinds of call.
UNARY = "unary"
CLIENT_STREAM = "client_stream"
SERVER_STREAM = "server_stream"
BIDI_STREAM = "bidi_stream"


@dataclass
class RpcMetrics:
    """Calls started, handled (by status code) and their latency for one gRPC server, under
    go-grpc-prometheus's names and labels, so the usual dashboards and alerts read them:
    ``grpc_service`` (``headend.epg.v1.EpgService``), ``grpc_method`` (``NowNext``),
    ``grpc_type`` (unary, client_stream, server_stream, bidi_stream) and ``grpc_code``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            registry=self.registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status, in seconds.",
            ["grpc_type", "grpc_service", "grpc_method"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "grpc_server_calls_in_flight",
            "Calls holding a slot of the concurrency cap, by pool (authenticated, public).",
            ["pool"],
            registry=self.registry,
        )
        # Label lookups cost more than the increments: each child is looked up once.
        self._started: dict[str, Any] = {}
        self._observers: dict[tuple[str, str, str], Callable[[float], None]] = {}

    def start(self, method: str, kind: str) -> None:
        """Count one RPC of the full ``method`` (``/package.Service/Method``) starting."""
        counter = self._started.get(method)
        if counter is None:
            counter = self._started[method] = self.started.labels(kind, *_split(method))
        counter.inc()

    def observe(self, method: str, kind: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        key = (method, kind, code)
        observer = self._observers.get(key)
        if observer is None:
            service, name = _split(method)
            counter = self.handled.labels(kind, service, name, code)
            histogram = self.latency.labels(kind, service, name)

            def observer(value: float, _c: Any = counter, _h: Any = histogram) -> None:
                _c.inc()
                _h.observe(value)

            self._observers[key] = observer
        observer(seconds)


def _split(method: str) -> tuple[str, str]:
    """``/package.Service/Method`` as (``package.Service``, ``Method``)."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format (for an aiohttp ``/metrics`` route)."""
    return generate_latest(registry)


class MetricsEndpoint:
    """A background HTTP server exposing one registry at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = _start(registry, host, port)
        self.port: int = self._server.server_port

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _start(registry: CollectorRegistry, host: str, port: int) -> tuple[Any, Thread]:
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread
