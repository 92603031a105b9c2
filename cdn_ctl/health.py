"""Edge health with hysteresis: k-of-n failure detection, hold-down, degraded state.

:class:`HealthTracker` is the pure state machine for one edge, driven by probe
results and an injected clock; :class:`HealthMonitor` probes every edge
concurrently (HTTP ``/healthz`` by default) and feeds the trackers.

Rules: an edge is DOWN when at least ``fall`` of the last ``window`` probes
failed; DEGRADED when any probe in the window failed or the median latency of
the good ones exceeds ``degraded_latency_ms`` (uplink trouble shows up as slow
or lossy probes before the edge dies). Worse states apply at once; a better
state applies only after ``hold_down_seconds`` since the probe window was last
judged at least as bad as the current state and, out of DOWN, after
``rise`` consecutive good probes, so a flapping edge returns to service at
most once per hold-down and an edge failing more often than that stays out.

Each probe of a cache (not the origin) also reads its traffic counters (a URL signed
for :data:`~cdn_ctl.edge_conf.STATS_PATH`, see ``edge_stats.js``); the monitor turns
two readings into the cache hit ratio and the uplink in use between them
(:func:`~cdn_ctl.domain.traffic_between`), reported with the verdict.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp

from cdn_ctl.domain import (
    UNMEASURED,
    Edge,
    EdgeCounters,
    EdgeHealth,
    EdgeTraffic,
    Health,
    Tier,
    traffic_between,
)
from cdn_ctl.edge_conf import STATS_PATH
from cdn_ctl.errors import InvalidEdge
from cdn_ctl.signing import KeyRing, token_prefix

# How long the signed counters URL of one probe stays valid.
_STATS_URL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds of the health state machine."""

    window: int = 5
    fall: int = 3
    rise: int = 2
    hold_down_seconds: float = 30.0
    degraded_latency_ms: float = 500.0
    probe_timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.fall <= self.window:
            raise InvalidEdge("health_fall", f"need 1 <= fall <= window, got {self.fall}")
        if not 1 <= self.rise <= self.window:
            raise InvalidEdge("health_rise", f"need 1 <= rise <= window, got {self.rise}")
        if self.hold_down_seconds < 0 or self.degraded_latency_ms <= 0:
            raise InvalidEdge("health_hold_down", "hold-down >= 0 and latency threshold > 0")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: did the edge answer 200, how fast, and its counters (None: not read)."""

    ok: bool
    latency_ms: float
    counters: EdgeCounters | None = None


class HealthTracker:
    """The hysteresis state machine for one edge."""

    def __init__(self, policy: HealthPolicy, *, now: float) -> None:
        self._policy = policy
        self._results: deque[ProbeResult] = deque(maxlen=policy.window)
        # A new edge starts DOWN with no hold-down: it serves after `rise` good probes.
        self._state = Health.DOWN
        self._since = now
        self._worsened_at = float("-inf")
        self._reason = "not probed yet"

    @property
    def health(self) -> EdgeHealth:
        """The current verdict and its evidence."""
        failures = sum(1 for r in self._results if not r.ok)
        return EdgeHealth(
            self._state, self._since, failures, len(self._results), self._median(), self._reason
        )

    def _median(self) -> float:
        good = [r.latency_ms for r in self._results if r.ok]
        return statistics.median(good) if good else 0.0

    def _raw(self) -> tuple[Health, str]:
        failures = sum(1 for r in self._results if not r.ok)
        policy = self._policy
        if failures >= policy.fall:
            return Health.DOWN, f"{failures} of last {len(self._results)} probes failed"
        if failures:
            return Health.DEGRADED, f"{failures} of last {len(self._results)} probes failed"
        median = self._median()
        if median > policy.degraded_latency_ms:
            return (
                Health.DEGRADED,
                f"median probe latency {median:.0f} ms > {policy.degraded_latency_ms:.0f} ms",
            )
        return Health.UP, "probes healthy"

    def _good_tail(self) -> int:
        count = 0
        for result in reversed(self._results):
            if not result.ok:
                break
            count += 1
        return count

    def observe(self, result: ProbeResult, *, now: float) -> bool:
        """Record a probe; return True when the state changed."""
        self._results.append(result)
        raw, reason = self._raw()
        if raw is not Health.UP and raw.rank >= self._state.rank:
            # Still (or again) misbehaving: the hold-down restarts from now.
            self._worsened_at = now
        if raw is self._state:
            self._reason = reason
            return False
        if raw.rank > self._state.rank:
            return self._move(raw, reason, now)
        if now - self._worsened_at < self._policy.hold_down_seconds:
            self._reason = f"{reason}; held {self._state.value} for hold-down"
            return False
        if self._state is Health.DOWN and self._good_tail() < self._policy.rise:
            return False
        return self._move(raw, reason, now)

    def _move(self, state: Health, reason: str, now: float) -> bool:
        self._state, self._since, self._reason = state, now, reason
        return True


class Prober(Protocol):
    """Probes one edge."""

    async def __call__(self, edge: Edge) -> ProbeResult: ...


class HttpProber:
    """GET ``http://{edge}/healthz``; a non-200 or timeout is a failure (for the origin
    tier, which may not serve /healthz, any answer below 500 means alive). With the
    signing ``keys``, a cache that answered is then asked for its traffic counters."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_seconds: float,
        keys: KeyRing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._keys = keys
        self._clock = clock

    async def __call__(self, edge: Edge) -> ProbeResult:
        start = time.perf_counter()
        try:
            async with self._session.get(
                f"http://{edge.address}/healthz", timeout=self._timeout
            ) as resp:
                await resp.read()
                ok = resp.status == 200 or (edge.tier is Tier.ORIGIN and resp.status < 500)
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        latency_ms = (time.perf_counter() - start) * 1000
        counters = await self.counters(edge) if ok and edge.tier is not Tier.ORIGIN else None
        return ProbeResult(ok, latency_ms, counters)

    async def counters(self, edge: Edge) -> EdgeCounters | None:
        """The edge's traffic counters, or None (no keys, refused, unreadable)."""
        if self._keys is None:
            return None
        expires_at = int(self._clock()) + _STATS_URL_SECONDS
        prefix = token_prefix(self._keys, scope=STATS_PATH, expires_at=expires_at, client_ip=None)
        try:
            async with self._session.get(
                f"http://{edge.address}{prefix}{STATS_PATH}", timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
            return EdgeCounters(
                str(body["epoch"]),
                int(body["hits"]),
                int(body["misses"]),
                int(body["upstream_bytes"]),
            )
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError, TypeError):
            return None


class HealthMonitor:
    """Trackers for every registered edge, fed by concurrent probe rounds."""

    def __init__(
        self,
        policy: HealthPolicy,
        *,
        probe: Prober,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._probe = probe
        self._clock = clock
        self._trackers: dict[str, HealthTracker] = {}
        # Per edge: its last counters and when they were read, and the traffic between the
        # last two readings.
        self._readings: dict[str, tuple[EdgeCounters, float]] = {}
        self._traffic: dict[str, EdgeTraffic] = {}

    def states(self) -> dict[str, Health]:
        """Each known edge's state."""
        return {edge_id: t.health.state for edge_id, t in self._trackers.items()}

    def health(self) -> Mapping[str, EdgeHealth]:
        """Each known edge's verdict with evidence and traffic."""
        return {
            edge_id: replace(t.health, traffic=self._traffic.get(edge_id, UNMEASURED))
            for edge_id, t in self._trackers.items()
        }

    def observe(self, edge: Edge, result: ProbeResult) -> bool:
        """Feed one result (used by probe rounds and by tests with scripted results)."""
        edge_id = edge.edge_id
        tracker = self._trackers.get(edge_id)
        now = self._clock()
        if tracker is None:
            tracker = self._trackers[edge_id] = HealthTracker(self.policy, now=now)
        self._count(edge, result.counters, now)
        return tracker.observe(result, now=now)

    def _count(self, edge: Edge, counters: EdgeCounters | None, now: float) -> None:
        """The traffic since the previous reading; unmeasured without two in a row."""
        previous = self._readings.pop(edge.edge_id, None)
        if counters is None:
            self._traffic.pop(edge.edge_id, None)
            return
        self._readings[edge.edge_id] = (counters, now)
        if previous is not None:
            before, then = previous
            self._traffic[edge.edge_id] = traffic_between(
                before, counters, seconds=now - then, uplink_mbps=edge.uplink_mbps
            )

    async def probe_round(self, edges: Sequence[Edge]) -> list[str]:
        """Probe every edge once, concurrently; return the ids whose state changed."""
        known = {e.edge_id for e in edges}
        for gone in set(self._trackers) - known:
            del self._trackers[gone]
            self._readings.pop(gone, None)
            self._traffic.pop(gone, None)
        results = await asyncio.gather(*(self._probe(e) for e in edges))
        return [e.edge_id for e, r in zip(edges, results, strict=True) if self.observe(e, r)]
