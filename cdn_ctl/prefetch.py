"""Edge prefetch: a sidecar beside each edge pulls watched live segments into its cache.

The first box of a village to ask for a new live segment used to wait for the edge's
uplink. The controller now marks, per edge, the live channels it routes leases of there
and the rung each lease last reloaded (the route ledger learns it from the variant
redirect, ``{rung}/{name}``), in Redis (:meth:`cdn_ctl.store.EdgeStore.mark_watched`: the
sidecar already holds the Redis credential the launcher registers edges with, so no new
endpoint is opened). The sidecar (:class:`Prefetcher`, one per edge, run by
:mod:`cdn_ctl.local` when ``EDGE_PREFETCH=1``) reads that list, polls each watched
channel's master and the watched rungs' media playlists from the edge's parent, and when
a new segment appears requests it *through its own edge* with a URL signed by the edge
keys it shares, so nginx's ``proxy_cache`` (with its cache lock) stores it and the first
box gets a hit. Rungs are taken cheapest first: the rungs thin links play come first
when the budget is short. Catch-up leases name no rung and cause no prefetch.

Bounds, so prefetch never starves live fetches nor grows without limit:

- **Uplink budget.** A token bucket on bytes refilled at ``EDGE_PREFETCH_HEADROOM`` x
  (the edge's registered ``uplink_mbps`` minus what its live fetches use now). Live use
  is the edge's own upstream byte counter (``edge_stats.js``, read with a URL signed for
  ``STATS_PATH``) minus the sidecar's own prefetches; until two readings exist the budget
  is zero. A segment whose estimated size (the rung's last segment, or its declared
  bandwidth x duration) is not in the bucket is skipped, never fetched late.
- **Idle channels stop.** A channel not seen watched for ``EDGE_PREFETCH_IDLE_SECONDS``
  is dropped with its state.
- **Hostile parents.** Playlists are read up to ``EDGE_PREFETCH_MAX_PLAYLIST_BYTES`` and
  checked by :mod:`cdn_ctl.prefetch_plan` (plain relative URIs under the channel only);
  at most :data:`MAX_RUNGS` rungs and :data:`MAX_NEW` new segments per rung and poll;
  segment bodies are streamed and discarded; every request has a timeout; at most
  ``EDGE_PREFETCH_CONCURRENCY`` requests at once.
- **Errors** are counted (``cdn_prefetch_errors_total``) and logged once per kind and
  channel until that channel is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from cdn_ctl.domain import Edge, EdgeCounters
from cdn_ctl.errors import PlaylistRefused, RegistryUnavailable
from cdn_ctl.health import HttpProber
from cdn_ctl.prefetch_plan import Rung, TokenBucket, parse_master, parse_media
from cdn_ctl.signing import KeyRing, token_prefix
from headend.ids import is_channel_id
from headend.settings import Env, env_bool, env_float, env_int

log = logging.getLogger(__name__)

# Rungs per channel and new segments per rung and poll that are prefetched (a live
# rung gains one segment per poll; more at once means the sidecar fell behind).
MAX_RUNGS = 16
MAX_NEW = 3
# How often a channel's master (its rungs) is read again.
MASTER_SECONDS = 30.0
# The estimate for a rung whose master declares no bandwidth (routing's channel_mbps).
DEFAULT_RUNG_BPS = 8_000_000
# Lifetime of the URLs the sidecar signs for its own edge.
_URL_SECONDS = 60
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class PrefetchSettings:
    """The prefetch sidecars' settings (``EDGE_PREFETCH*``)."""

    enabled: bool = False
    headroom: float = 0.5
    idle_seconds: float = 30.0
    poll_seconds: float = 0.5
    concurrency: int = 4
    timeout_seconds: float = 10.0
    max_playlist_bytes: int = 256 * 1024
    max_channels: int = 64
    burst_seconds: float = 6.0
    metrics_port: int = 9107

    @classmethod
    def from_env(cls, env: Env) -> PrefetchSettings:
        """Read ``EDGE_PREFETCH`` and ``EDGE_PREFETCH_*``; ``SettingsError`` names a bad one."""
        return cls(
            enabled=env_bool(env, "EDGE_PREFETCH", False),
            headroom=env_float(env, "EDGE_PREFETCH_HEADROOM", 0.5, low=0.01, high=1.0),
            idle_seconds=env_float(env, "EDGE_PREFETCH_IDLE_SECONDS", 30.0, low=1, high=3600),
            poll_seconds=env_float(env, "EDGE_PREFETCH_POLL_SECONDS", 0.5, low=0.05, high=60),
            concurrency=env_int(env, "EDGE_PREFETCH_CONCURRENCY", 4, low=1, high=64),
            timeout_seconds=env_float(
                env, "EDGE_PREFETCH_TIMEOUT_SECONDS", 10.0, low=0.1, high=120
            ),
            max_playlist_bytes=env_int(
                env, "EDGE_PREFETCH_MAX_PLAYLIST_BYTES", 256 * 1024, low=1024, high=16 << 20
            ),
            max_channels=env_int(env, "EDGE_PREFETCH_MAX_CHANNELS", 64, low=1, high=10_000),
            burst_seconds=env_float(env, "EDGE_PREFETCH_BURST_SECONDS", 6.0, low=0.1, high=600),
            metrics_port=env_int(env, "EDGE_PREFETCH_METRICS_PORT", 9107, low=0, high=65535),
        )


class PrefetchMetrics:
    """The sidecars' metrics, labelled by edge, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.segments = Counter(
            "cdn_prefetch_segments_total",
            "New segments requested through the edge ahead of its boxes, by result "
            "(fetched: the edge went to its parent; cached: a box got there first).",
            ["edge", "result"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "cdn_prefetch_bytes_total",
            "Bytes the edge fetched from its parent for prefetched segments.",
            ["edge"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "cdn_prefetch_skipped_total",
            "New segments not prefetched, by reason (headroom: not in the uplink budget; "
            "behind: more new segments in one poll than MAX_NEW).",
            ["edge", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "cdn_prefetch_errors_total",
            "Failures by kind (watch, stats, playlist, refused, segment).",
            ["edge", "kind"],
            registry=self.registry,
        )
        self.channels = Gauge(
            "cdn_prefetch_channels",
            "Live channels the sidecar polls (watched within EDGE_PREFETCH_IDLE_SECONDS).",
            ["edge"],
            registry=self.registry,
        )
        self.budget_mbps = Gauge(
            "cdn_prefetch_budget_mbps",
            "The uplink prefetch may use now: EDGE_PREFETCH_HEADROOM x (uplink - live).",
            ["edge"],
            registry=self.registry,
        )
        self.live_mbps = Gauge(
            "cdn_prefetch_live_uplink_mbps",
            "The edge's uplink used by live fetches (its upstream bytes minus prefetch).",
            ["edge"],
            registry=self.registry,
        )


class WatchSource(Protocol):
    """Which live channels are watched through an edge (:class:`cdn_ctl.store.EdgeStore`)."""

    async def watched(self, edge_id: str, *, since: float, limit: int) -> dict[str, set[str]]:
        """Channels seen watched at or after ``since`` with their rungs, most recent first."""


@dataclass(slots=True)
class _Channel:
    seen_at: float
    watched: frozenset[str] = frozenset()
    rungs: list[Rung] = field(default_factory=list)
    master_at: float = float("-inf")
    # Per rung: the segment paths of its last playlist (None: not read yet) and the size
    # of its last prefetched segment.
    known: dict[str, frozenset[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


class Prefetcher:
    """One edge's prefetch sidecar: call :meth:`step` per poll, or :meth:`run` forever."""

    def __init__(
        self,
        edge: Edge,
        *,
        parent: str,
        keys: KeyRing,
        watch: WatchSource,
        http: aiohttp.ClientSession,
        settings: PrefetchSettings,
        metrics: PrefetchMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.edge = edge
        self._parent = f"http://{parent}"
        self._keys = keys
        self._watch = watch
        self._http = http
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._prober = HttpProber(http, timeout_seconds=settings.timeout_seconds, keys=keys)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.bucket = TokenBucket(burst_seconds=settings.burst_seconds, clock=monotonic)
        self.channels: dict[str, _Channel] = {}
        # The edge's last counters, when they were read, and our prefetched bytes then.
        self._reading: tuple[EdgeCounters, float, int] | None = None
        self.prefetched_bytes = 0
        self._logged: set[tuple[str, str]] = set()
        edge_id = edge.edge_id
        self._segments = metrics.segments
        self._bytes = metrics.bytes.labels(edge_id)
        self._skipped = metrics.skipped
        self._errors = metrics.errors
        self._channels_gauge = metrics.channels.labels(edge_id)
        self._budget = metrics.budget_mbps.labels(edge_id)
        self._live = metrics.live_mbps.labels(edge_id)

    async def run(self) -> None:
        """Poll every ``poll_seconds`` until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(self.settings.poll_seconds)

    async def step(self) -> None:
        """One poll: measure the uplink, refresh the watched channels, prefetch."""
        await self._measure()
        await self._refresh_watched()
        await asyncio.gather(*(self._poll(name, ch) for name, ch in list(self.channels.items())))

    def _fail(self, kind: str, channel: str, err: BaseException | str) -> None:
        self._errors.labels(self.edge.edge_id, kind).inc()
        if (kind, channel) not in self._logged and len(self._logged) < 4096:
            self._logged.add((kind, channel))
            log.warning(
                "prefetch failed",
                extra={"edge_id": self.edge.edge_id, "kind": kind, "channel": channel,
                       "error": str(err)[:200]},
            )  # fmt: skip

    async def _measure(self) -> None:
        """Set the bucket's rate from the edge's counters: headroom x (uplink - live)."""
        counters = await self._prober.counters(self.edge)
        now = self._monotonic()
        previous, self._reading = self._reading, None
        if counters is None:
            self._fail("stats", "", "edge traffic counters unreadable")
            self.bucket.set_rate(0.0)
        else:
            self._reading = (counters, now, self.prefetched_bytes)
        if counters is None or previous is None:
            return
        before, then, own_before = previous
        if counters.epoch != before.epoch or counters.upstream_bytes < before.upstream_bytes:
            return  # the edge restarted: the next reading measures again
        seconds = max(now - then, 1e-3)
        own = self.prefetched_bytes - own_before
        live_bps = max(0, counters.upstream_bytes - before.upstream_bytes - own) * 8 / seconds
        uplink_bps = self.edge.uplink_mbps * 1e6
        budget_bps = self.settings.headroom * max(0.0, uplink_bps - live_bps)
        self.bucket.set_rate(budget_bps / 8)
        self._live.set(live_bps / 1e6)
        self._budget.set(budget_bps / 1e6)

    async def _refresh_watched(self) -> None:
        now = self._clock()
        try:
            names = await self._watch.watched(
                self.edge.edge_id,
                since=now - self.settings.idle_seconds,
                limit=self.settings.max_channels,
            )
        except RegistryUnavailable as err:
            self._fail("watch", "", err)  # keep polling what was watched until it idles
            idle_since = now - self.settings.idle_seconds
            gone = [n for n, ch in self.channels.items() if ch.seen_at < idle_since]
        else:
            # The listing already leaves out channels idle for idle_seconds.
            gone = [n for n in self.channels if n not in names]
            for name, rungs in names.items():
                if is_channel_id(name):
                    channel = self.channels.setdefault(name, _Channel(now))
                    channel.seen_at, channel.watched = now, frozenset(rungs)
        for name in gone:
            del self.channels[name]
            self._logged = {k for k in self._logged if k[1] != name}
            log.info("prefetch stopped", extra={"edge_id": self.edge.edge_id, "channel": name})
        self._channels_gauge.set(len(self.channels))

    async def _text(self, path: str) -> str:
        """A playlist from the parent, at most ``max_playlist_bytes`` (charged to the budget)."""
        limit = self.settings.max_playlist_bytes
        async with self._slots, self._http.get(self._parent + path, timeout=self._timeout) as resp:
            if resp.status != 200:
                raise PlaylistRefused(f"parent answered {resp.status} for {path}")
            if (resp.content_length or 0) > limit:
                raise PlaylistRefused(f"playlist over {limit} bytes")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise PlaylistRefused(f"playlist over {limit} bytes")
        self.bucket.charge(len(body))
        try:
            return body.decode()
        except UnicodeDecodeError as err:
            raise PlaylistRefused("playlist not UTF-8") from err

    async def _poll(self, name: str, channel: _Channel) -> None:
        base = f"/live/{name}/"
        try:
            if self._monotonic() - channel.master_at >= MASTER_SECONDS:
                master = parse_master(await self._text(base + "master.m3u8"), base_dir=base)
                channel.rungs, channel.master_at = master[:MAX_RUNGS], self._monotonic()
        except PlaylistRefused as err:
            self._fail("refused", name, err)
            return
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self._fail("playlist", name, err)
            return
        played = [
            r for r in channel.rungs if r.path[len(base) :].split("/", 1)[0] in channel.watched
        ]
        for path in channel.known.keys() - {r.path for r in played}:
            del channel.known[path]  # a rung nobody plays: read afresh if it comes back
        await asyncio.gather(*(self._rung(name, channel, rung) for rung in played))

    async def _rung(self, name: str, channel: _Channel, rung: Rung) -> None:
        base = rung.path.rsplit("/", 1)[0] + "/"
        try:
            segments = parse_media(await self._text(rung.path), base_dir=base)
        except PlaylistRefused as err:
            self._fail("refused", name, err)
            return
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self._fail("playlist", name, err)
            return
        known = channel.known.get(rung.path)
        channel.known[rung.path] = frozenset(s.path for s in segments)
        if known is None:
            return  # the first read: what is there already is not new
        new = [s for s in segments if s.path not in known]
        if len(new) > MAX_NEW:
            self._skipped.labels(self.edge.edge_id, "behind").inc(len(new) - MAX_NEW)
            new = new[-MAX_NEW:]
        for segment in new:
            bps = rung.bandwidth_bps or DEFAULT_RUNG_BPS
            estimate = max(channel.sizes.get(rung.path, 0), int(bps * segment.seconds / 8))
            if not self.bucket.take(estimate):
                self._skipped.labels(self.edge.edge_id, "headroom").inc()
                continue
            used = await self._fetch(name, segment.path)
            self.bucket.charge(used - estimate)
            if used:
                channel.sizes[rung.path] = used

    async def _fetch(self, name: str, path: str) -> int:
        """GET ``path`` through the edge, body discarded; the bytes its parent sent."""
        prefix = token_prefix(
            self._keys,
            scope=f"live/{name}/",
            expires_at=int(self._clock()) + _URL_SECONDS,
            client_ip=None,
        )
        url = f"http://{self.edge.address}{prefix}{path.lstrip('/')}"
        size = 0
        try:
            async with self._slots, self._http.get(url, timeout=self._timeout) as resp:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                status, cache = resp.status, resp.headers.get("X-Cache", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self._fail("segment", name, err)
            return 0
        if status != 200:
            self._fail("segment", name, f"edge answered {status}")
            return 0
        if cache in {"HIT", "STALE", "UPDATING", "REVALIDATED"}:
            self._segments.labels(self.edge.edge_id, "cached").inc()
            return 0
        self._segments.labels(self.edge.edge_id, "fetched").inc()
        self._bytes.inc(size)
        self.prefetched_bytes += size
        return size


async def run_sidecars(
    edges: Sequence[Edge],
    *,
    parent: str,
    keys: KeyRing,
    watch: WatchSource,
    settings: PrefetchSettings,
    metrics: PrefetchMetrics,
) -> None:
    """One :class:`Prefetcher` per edge until cancelled (the launcher's hook)."""
    async with aiohttp.ClientSession() as http:
        sidecars = [
            Prefetcher(
                edge,
                parent=parent,
                keys=keys,
                watch=watch,
                http=http,
                settings=settings,
                metrics=metrics,
            )
            for edge in edges
        ]
        await asyncio.gather(*(s.run() for s in sidecars))
