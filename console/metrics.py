"""The console's own metrics: requests by route and status, and their latency.

The REST face's (``headend.rest.RestMetrics``) in shape, under the console's names; the
names are literals, as the monitoring kit's check (``tests/deploy``) reads every metric
the platform declares from its source.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ConsoleMetrics:
    """Requests and latency by route (``GET /channels/{channel}``) and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "console_http_requests_total",
            "Console requests, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "console_http_request_seconds",
            "Console request handling time (the gRPC calls included), by route.",
            ["route"],
            registry=self.registry,
        )
