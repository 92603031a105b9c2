"""Every metric of a CDN routing process, declared once on the process's one registry.

The admin listener serves them on ``/metrics`` (:mod:`cdn_ctl.http`); the box front door
counts logins, refusals and content key requests through :meth:`CdnMetrics.box_answer`
(the one place it sees every answer, refusals included: :func:`cdn_ctl.web.error_response`
marks each with its reason); :class:`~cdn_ctl.routing.RoutingService` counts its decisions
through the :class:`~cdn_ctl.routing.RouteCounter` protocol, so a redirect is counted once
whichever face asked for it. The per-edge gauges are this replica's view, set at each scrape
from the routing snapshot and the health monitor; an edge no longer registered loses its
series rather than reporting its last state forever.
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from cdn_ctl.domain import UNMEASURED, EdgeHealth, Health, RouteDecision, RouteLevel
from cdn_ctl.routing import RoutedEdge
from cdn_ctl.web import REFUSAL
from headend.errors import HeadendError

LOGIN_PATH = "/api/login"
KEYS_PREFIX = "/keys/"
OK = "ok"


class RouteCounts(Collector):
    """``cdn_routes_total``: every redirect issued (and lease steering moved), by level and
    decision. Counted in a plain tally rather than a prometheus_client counter, whose every
    increment takes a lock: this is once per variant reload, and the event loop's thread
    is its only writer."""

    def __init__(self) -> None:
        self.tally: Tally[tuple[RouteLevel, RouteDecision]] = Tally()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "cdn_routes_total",
            "Redirects issued (and leases steering moved), by hierarchy level and decision.",
            labels=["level", "decision"],
        )
        for (level, decision), count in sorted(self.tally.items()):
            family.add_metric([level.value, decision.value], count)
        yield family


class CdnMetrics:
    """The routing process's metrics: routing, edges, and the box front door."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.routes = RouteCounts()
        self.registry.register(self.routes)
        self.route_failures = Counter(
            "cdn_route_failures_total",
            "Routing requests refused, by error.",
            ["error"],
            registry=self.registry,
        )
        self.edge_state = Gauge(
            "cdn_edge_state",
            "1 for the edge's current health state.",
            ["edge", "state"],
            registry=self.registry,
        )
        self.stale = Gauge(
            "cdn_routing_state_stale", "1 while Redis is unreachable.", registry=self.registry
        )
        self.leases = Gauge(
            "cdn_edge_leases",
            "Active leases counted by this replica.",
            ["edge"],
            registry=self.registry,
        )
        self.hit_ratio = Gauge(
            "cdn_edge_cache_hit_ratio",
            "Share of the edge's answers served from its cache between the last two probes.",
            ["edge"],
            registry=self.registry,
        )
        self.uplink_mbps = Gauge(
            "cdn_edge_uplink_mbps",
            "Megabits per second the edge fetched from its parent between the last two probes.",
            ["edge"],
            registry=self.registry,
        )
        self.uplink_use = Gauge(
            "cdn_edge_uplink_use",
            "cdn_edge_uplink_mbps over the edge's registered uplink_mbps.",
            ["edge"],
            registry=self.registry,
        )
        self.logins = Counter(
            "cdn_box_logins_total",
            "Box logins (POST /api/login), by outcome: ok or the refusal's reason.",
            ["outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "cdn_box_refusals_total",
            "Box requests the front door refused (logins included), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.key_requests = Counter(
            "cdn_key_requests_total",
            "Content key requests from boxes, by outcome: ok or the refusal's reason.",
            ["outcome"],
            registry=self.registry,
        )
        self.picture_switches = Counter(
            "cdn_picture_switches_total",
            "Live variant reloads and catch-up grants switched to another picture, by cause:"
            " alert (an emergency alert in force for the box) or blackout (the slate).",
            ["cause"],
            registry=self.registry,
        )
        self.directory_reads = Counter(
            "cdn_live_directory_reads_total",
            "Reads of the live channels' outputs (multicast groups, packagings) from the"
            " transcode service, by outcome:"
            " ok, or failed (the last good copy stays in use).",
            ["outcome"],
            registry=self.registry,
        )
        self.directory_outputs = Gauge(
            "cdn_live_directory_outputs",
            "Live channels in this replica's directory (what each box's delivery is chosen from).",
            registry=self.registry,
        )
        self.profile_fallbacks = Counter(
            "cdn_profile_fallbacks_total",
            "Live masters served as HLS-TS to boxes whose device profile lists no format the"
            " channel offers, by reason ({format}_not_offered, the profile's first format).",
            ["reason"],
            registry=self.registry,
        )
        self.profile_masters = Counter(
            "cdn_profile_masters_total",
            "Masters a box's device profile changed, by kind (live, catchup) and change:"
            " filtered (rungs left out) or lowest_only (none fitted: the lowest kept).",
            ["kind", "change"],
            registry=self.registry,
        )
        self._edges: set[str] = set()

    # ---- routing (RouteCounter)

    def routed(self, level: RouteLevel, decision: RouteDecision) -> None:
        """One redirect issued (the hot path: one tally increment)."""
        self.routes.tally[level, decision] += 1

    def refused(self, err: HeadendError) -> None:
        """One routing request refused."""
        self.route_failures.labels(type(err).__name__).inc()

    # ---- the box front door

    def box_answer(self, route: str, response: web.StreamResponse) -> None:
        """One answer of the box face on ``route`` (its path template): every refusal
        counted by reason, and logins and key requests by outcome."""
        # Only error answers carry a refusal (a mapping miss raises and catches a KeyError:
        # the 302s of the hot path skip it).
        refusal = response.get(REFUSAL) if response.status >= 400 else None
        if refusal is not None:
            self.refusals.labels(refusal).inc()
        if route == LOGIN_PATH:
            self.logins.labels(refusal or OK).inc()
        elif route.startswith(KEYS_PREFIX):
            self.key_requests.labels(refusal or OK).inc()

    # ---- the live directory (DirectoryMetrics)

    def directory_read(self, *, ok: bool, outputs: int) -> None:
        """One read of the live directory, and how many channels it holds after it."""
        self.directory_reads.labels(OK if ok else "failed").inc()
        self.directory_outputs.set(outputs)

    # ---- edges

    def set_edges(
        self, routed: Iterable[RoutedEdge], health: Mapping[str, EdgeHealth], *, stale: bool
    ) -> None:
        """This replica's view of every edge; the series of edges gone are removed, and a
        traffic figure not measured is absent rather than -1."""
        seen: set[str] = set()
        for r in routed:
            edge_id = r.edge.edge_id
            seen.add(edge_id)
            for state in Health:
                self.edge_state.labels(edge_id, state.value).set(1 if state is r.health else 0)
            self.leases.labels(edge_id).set(r.held_here)
            verdict = health.get(edge_id)
            traffic = UNMEASURED if verdict is None else verdict.traffic
            _measured(self.hit_ratio, edge_id, traffic.cache_hit_ratio)
            _measured(self.uplink_mbps, edge_id, traffic.uplink_mbps_used)
            _measured(self.uplink_use, edge_id, traffic.uplink_use)
        for gone in self._edges - seen:
            for state in Health:
                _remove(self.edge_state, gone, state.value)
            for gauge in (self.leases, self.hit_ratio, self.uplink_mbps, self.uplink_use):
                _remove(gauge, gone)
        self._edges = seen
        self.stale.set(1 if stale else 0)


def _measured(gauge: Gauge, edge_id: str, value: float) -> None:
    if value < 0:
        _remove(gauge, edge_id)
    else:
        gauge.labels(edge_id).set(value)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        gauge.remove(*labels)
