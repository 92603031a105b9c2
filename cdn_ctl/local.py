"""Local nginx edges for ``headend up``: ``python -m cdn_ctl.local``.

Starts one nginx per edge on loopback ports in front of the origin, registers
them in the registry (create, or update if already there) so the controller
probes and routes to them, and stops them all on SIGTERM/SIGINT. An nginx that
dies is restarted after a backoff (and registered again if its record is gone);
one restarted ``CDN_EDGE_RESTART_LIMIT`` times within
``CDN_EDGE_RESTART_WINDOW_SECONDS`` makes the process exit, so that whatever
supervises it (``headend up``) starts the whole set afresh.

Environment:

- ``CDN_LOCAL_EDGES``: ``id:region:port[,...]`` (default
  ``edge-a:110101:8101,edge-b:110101:8102,edge-c:110102:8103``);
- ``CDN_EDGE_HOST``: the address every edge listens on (default ``127.0.0.1``);
- ``CDN_EDGE_PUBLIC_HOST``: the address registered for the edges, which boxes are sent
  to and the controller probes (default ``CDN_EDGE_HOST``);
- ``CDN_ORIGIN_ADDRESS``: the origin's ``host:port`` (default ``127.0.0.1:8080``);
- ``CDN_PUBLIC_URL``: the routing face as boxes reach it, for the steering tag
  edges add to master playlists (default ``http://127.0.0.1:8000``);
- ``CDN_SIGNING_KEYS`` / ``CDN_SIGNING_ACTIVE_KID``: the same keys the
  controller signs with (required);
- ``CDN_EDGE_DIR``: where each edge's prefix lives (default ``var/edges``);
- ``CDN_EDGE_SESSIONS`` / ``CDN_EDGE_MBPS`` / ``CDN_EDGE_UPLINK_MBPS``: the
  capacities registered (default 200 leases, 1000 Mbps, 200 Mbps);
- ``CDN_EDGE_WORKERS``: nginx worker processes per edge, a number or ``auto``
  (one per CPU, the default);
- ``CDN_EDGE_CLIENT_REQUESTS`` / ``CDN_EDGE_CLIENT_RATE`` / ``CDN_EDGE_CLIENT_BURST``:
  per client address, concurrent requests and signed requests per second with
  their burst, over which an edge answers 429 (default 256, 100/s, 200);
- ``CDN_EDGE_LIMIT_EXEMPT``: networks those limits do not apply to,
  ``cidr[,...]`` or ``none`` (default ``127.0.0.1/32,::1/128``: every local box
  connects from loopback; see ``cdn_ctl/edge_conf.py``);
- ``CDN_EDGE_RESTART_LIMIT`` / ``CDN_EDGE_RESTART_WINDOW_SECONDS``: restarts of
  one edge's nginx allowed within the window before giving up (default 5 in 60 s);
- ``EDGE_PREFETCH`` and ``EDGE_PREFETCH_*``: a prefetch sidecar beside each edge
  (:mod:`cdn_ctl.prefetch`, off by default) with its metrics on
  ``CDN_EDGE_HOST:EDGE_PREFETCH_METRICS_PORT``;
- ``REDIS_URL`` (required).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cdn_ctl.domain import Edge, Tier, validate_edge_id, validate_region
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.edge_conf import (
    DEFAULT_CLIENT_BURST,
    DEFAULT_CLIENT_RATE_PER_SECOND,
    DEFAULT_CLIENT_REQUESTS_MAX,
    DEFAULT_LIMIT_EXEMPT,
)
from cdn_ctl.errors import CdnError, EdgeExists, EdgeStartError
from cdn_ctl.prefetch import PrefetchMetrics, PrefetchSettings, run_sidecars
from cdn_ctl.service import UPDATABLE, CdnService
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend import logs
from headend.auth import ADMIN
from headend.metrics import MetricsEndpoint
from headend.procs import exited, kill_group
from headend.redisconn import RedisSettings, connect
from headend.settings import (
    SettingsError,
    env_float,
    env_int,
    env_redis_url,
    env_secret,
    env_str,
    environ,
    split_list,
)
from headend.tasks import Backoff

log = logging.getLogger(__name__)

DEFAULT_EDGES = "edge-a:110101:8101,edge-b:110101:8102,edge-c:110102:8103"


@dataclass(frozen=True, slots=True)
class LocalEdge:
    """One local edge: id, region code, loopback port."""

    edge_id: str
    region: str
    port: int


def parse_edges(text: str) -> list[LocalEdge]:
    """Read ``id:region:port[,...]``."""
    out = []
    for item in split_list(text):
        parts = item.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise SettingsError("CDN_LOCAL_EDGES", f"expected id:region:port, got {item!r}")
        try:
            out.append(
                LocalEdge(validate_edge_id(parts[0]), validate_region(parts[1]), int(parts[2]))
            )
        except CdnError as err:
            raise SettingsError("CDN_LOCAL_EDGES", err.message) from err
    if not out:
        raise SettingsError("CDN_LOCAL_EDGES", "no edges")
    return out


def parse_workers(text: str) -> int | Literal["auto"]:
    """``auto`` or a number of nginx worker processes (``CDN_EDGE_WORKERS``)."""
    if text == "auto":
        return "auto"
    if not text.isdigit() or not 0 < int(text) <= 256:
        raise SettingsError("CDN_EDGE_WORKERS", f"expected auto or 1-256, got {text!r}")
    return int(text)


def parse_networks(text: str) -> tuple[str, ...]:
    """``cidr[,...]`` or ``none`` (``CDN_EDGE_LIMIT_EXEMPT``), each made canonical."""
    if text.strip() == "none":
        return ()
    try:
        return tuple(str(ipaddress.ip_network(item, strict=False)) for item in split_list(text))
    except ValueError as err:
        raise SettingsError("CDN_EDGE_LIMIT_EXEMPT", str(err)) from err


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Everything ``python -m cdn_ctl.local`` needs."""

    edges: tuple[LocalEdge, ...]
    origin: str
    public_url: str
    keys: KeyRing
    edge_dir: Path
    redis_url: str
    capacity_sessions: int
    capacity_mbps: float
    uplink_mbps: float
    host: str = "127.0.0.1"
    public_host: str = "127.0.0.1"
    workers: int | Literal["auto"] = "auto"
    client_requests_max: int = DEFAULT_CLIENT_REQUESTS_MAX
    client_rate_per_second: int = DEFAULT_CLIENT_RATE_PER_SECOND
    client_burst: int = DEFAULT_CLIENT_BURST
    limit_exempt: tuple[str, ...] = DEFAULT_LIMIT_EXEMPT
    restart_limit: int = 5
    restart_window_seconds: float = 60.0
    prefetch: PrefetchSettings = field(default_factory=PrefetchSettings)

    @classmethod
    def from_env(cls, env: Any) -> LocalSettings:
        """Read the variables listed in the module docstring."""
        raw_keys = env_secret(env, "CDN_SIGNING_KEYS")
        if raw_keys is None:
            raise SettingsError("CDN_SIGNING_KEYS", "required (the controller's signing keys)")
        try:
            keys = KeyRing.parse(raw_keys, env_str(env, "CDN_SIGNING_ACTIVE_KID", ""))
        except CdnError as err:
            raise SettingsError("CDN_SIGNING_KEYS", err.message) from err
        redis_url = env_redis_url(env)
        if redis_url is None:
            raise SettingsError("REDIS_URL", "required to register the local edges")
        host = env_str(env, "CDN_EDGE_HOST", "127.0.0.1")
        return cls(
            edges=tuple(parse_edges(env_str(env, "CDN_LOCAL_EDGES", DEFAULT_EDGES))),
            host=host,
            public_host=env_str(env, "CDN_EDGE_PUBLIC_HOST", host),
            origin=env_str(env, "CDN_ORIGIN_ADDRESS", "127.0.0.1:8080"),
            public_url=env_str(env, "CDN_PUBLIC_URL", "http://127.0.0.1:8000"),
            keys=keys,
            edge_dir=Path(env_str(env, "CDN_EDGE_DIR", "var/edges")).resolve(),
            redis_url=redis_url,
            capacity_sessions=env_int(env, "CDN_EDGE_SESSIONS", 200, low=1, high=10_000_000),
            capacity_mbps=env_float(env, "CDN_EDGE_MBPS", 1000.0, low=0.001, high=1e9),
            uplink_mbps=env_float(env, "CDN_EDGE_UPLINK_MBPS", 200.0, low=0.001, high=1e9),
            workers=parse_workers(env_str(env, "CDN_EDGE_WORKERS", "auto")),
            client_requests_max=env_int(
                env, "CDN_EDGE_CLIENT_REQUESTS", DEFAULT_CLIENT_REQUESTS_MAX, low=1, high=1_000_000
            ),
            client_rate_per_second=env_int(
                env, "CDN_EDGE_CLIENT_RATE", DEFAULT_CLIENT_RATE_PER_SECOND, low=1, high=1_000_000
            ),
            client_burst=env_int(
                env, "CDN_EDGE_CLIENT_BURST", DEFAULT_CLIENT_BURST, low=1, high=1_000_000
            ),
            limit_exempt=parse_networks(
                env_str(env, "CDN_EDGE_LIMIT_EXEMPT", ",".join(DEFAULT_LIMIT_EXEMPT))
            ),
            restart_limit=env_int(env, "CDN_EDGE_RESTART_LIMIT", 5, low=0, high=1000),
            restart_window_seconds=env_float(
                env, "CDN_EDGE_RESTART_WINDOW_SECONDS", 60.0, low=1, high=86_400
            ),
            prefetch=PrefetchSettings.from_env(env),
        )


class LocalEdges:
    """Start, register and stop a set of local nginx edges."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.processes = [
            EdgeProcess(
                EdgeConfig(
                    edge_id=e.edge_id,
                    listen_port=e.port,
                    upstream=settings.origin,
                    listen_host=settings.host,
                    steering_base_url=settings.public_url,
                    workers=settings.workers,
                    client_requests_max=settings.client_requests_max,
                    client_rate_per_second=settings.client_rate_per_second,
                    client_burst=settings.client_burst,
                    limit_exempt=settings.limit_exempt,
                ),
                prefix=settings.edge_dir / e.edge_id,
                keys=settings.keys,
            )
            for e in settings.edges
        ]

    def records(self) -> list[Edge]:
        """The registry records of these edges."""
        s = self.settings
        return [
            Edge(
                e.edge_id,
                e.region,
                Tier.EDGE,
                s.public_host,
                e.port,
                s.capacity_sessions,
                s.capacity_mbps,
                s.uplink_mbps,
            )
            for e in s.edges
        ]

    async def start(self) -> None:
        """Start every edge (stopping those already started if one fails)."""
        try:
            for proc in self.processes:
                await proc.start()
        except CdnError:
            await self.stop()
            raise

    async def register(self, redis: Any) -> None:
        """Create each edge in the registry, or update it when it is already there."""
        service = CdnService(store=EdgeStore(redis))
        for edge in self.records():
            try:
                await service.register(ADMIN, edge)
            except EdgeExists:
                changes = {name: getattr(edge, name) for name in UPDATABLE}
                await service.update(ADMIN, edge.edge_id, changes)

    async def stop(self) -> None:
        """Stop every edge."""
        for proc in self.processes:
            await proc.stop()

    async def keep_alive(self, redis: Any) -> None:
        """Restart any edge whose nginx dies, forever (until cancelled).

        Raises ``EdgeStartError`` when one edge is past its restart limit.
        """
        keepers = [asyncio.create_task(self._keep(proc, redis)) for proc in self.processes]
        try:
            await asyncio.gather(*keepers)
        finally:
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)

    async def _keep(self, proc: EdgeProcess, redis: Any) -> None:
        edge_id = proc.config.edge_id
        limit, window = self.settings.restart_limit, self.settings.restart_window_seconds
        backoff = Backoff(healthy_after_seconds=window)
        restarts: deque[float] = deque()
        failures = 0
        started = time.monotonic()
        failed_start = ""
        while True:
            what = failed_start or await _until_exit(proc)
            now = time.monotonic()
            while restarts and restarts[0] <= now - window:
                restarts.popleft()
            if len(restarts) >= limit:
                raise EdgeStartError(
                    f"edge {edge_id}'s nginx keeps exiting ({what}): restarted "
                    f"{len(restarts)} times in the last {window:g}s (CDN_EDGE_RESTART_LIMIT="
                    f"{limit}, CDN_EDGE_RESTART_WINDOW_SECONDS={window:g})",
                    details={"edge_id": edge_id},
                )
            failures = 1 if now - started >= backoff.healthy_after_seconds else failures + 1
            delay = backoff.delay(failures)
            restarts.append(now)
            log.warning(
                "edge nginx exited; restarting",
                extra={"edge_id": edge_id, "exit": what, "restarts": len(restarts),
                       "restart_limit": limit, "next_delay_s": round(delay, 2)},
            )  # fmt: skip
            await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                await proc.start()
            except EdgeStartError as err:
                failed_start = f"failed to start: {err}"
                continue
            failed_start = ""
            await self._register_if_gone(proc, redis)
            log.info("edge restarted", extra={"edge_id": edge_id, "pid": proc.pid})

    async def _register_if_gone(self, proc: EdgeProcess, redis: Any) -> None:
        """Put the edge's record back if it went missing (the registry is what routes)."""
        store = EdgeStore(redis)
        record = next(r for r in self.records() if r.edge_id == proc.config.edge_id)
        try:
            if await store.get_or_none(record.edge_id) is None:
                await CdnService(store=store).register(ADMIN, record)
                log.info("edge registered again", extra={"edge_id": record.edge_id})
        except CdnError as err:  # the prober still sees the edge; registering can wait
            log.warning(
                "edge not registered again", extra={"edge_id": record.edge_id, "error": str(err)}
            )


async def _until_exit(proc: EdgeProcess) -> str:
    """Wait (on a pidfd, no polling) until the edge's nginx exits; clean up; say how."""
    pid = proc.pid
    if pid is None:
        return "exited"  # and already reaped: nothing more to learn
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await gone
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    status = exited(pid)
    if status is not None and (status.code is not None or status.signal is not None):
        # The master is not reaped yet, so its group id is still its own: a killed master
        # leaves its workers running and holding the port, so they go with it.
        kill_group(pid)
    await proc.stop()  # reaps the master
    return str(status) if status is not None else "exited"


async def _run(settings: LocalSettings) -> None:
    redis = connect(settings.redis_url, RedisSettings.from_env(environ()), name="cdn-edges")
    edges = LocalEdges(settings)
    try:
        await edges.start()
        await edges.register(redis)
        for proc in edges.processes:
            log.info("edge up", extra={"edge_id": proc.config.edge_id, "url": proc.url})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        keeper = asyncio.create_task(edges.keep_alive(redis))
        stopping = asyncio.create_task(stop.wait())
        tasks = [keeper, stopping]
        if settings.prefetch.enabled:
            tasks.append(asyncio.create_task(run_prefetch(settings, edges, redis)))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper  # re-raises EdgeStartError when an edge gave up
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[-1]  # re-raises a sidecar's failure
    finally:
        await edges.stop()
        await redis.aclose()


async def run_prefetch(settings: LocalSettings, edges: LocalEdges, redis: Any) -> None:
    """The edges' prefetch sidecars, with their metrics on the edge host."""
    metrics = PrefetchMetrics()
    endpoint = MetricsEndpoint(metrics.registry, settings.host, settings.prefetch.metrics_port)
    log.info("edge prefetch on", extra={"metrics_port": endpoint.port})
    try:
        await run_sidecars(
            edges.records(),
            parent=settings.origin,
            keys=settings.keys,
            watch=EdgeStore(redis),
            settings=settings.prefetch,
            metrics=metrics,
        )
    finally:
        endpoint.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run local edges until SIGTERM."""
    try:
        settings = LocalSettings.from_env(environ())
        logs.configure("cdn_edges", env_str(environ(), "LOG_LEVEL", "info"))
        asyncio.run(_run(settings))
    except (SettingsError, CdnError) as err:
        print(f"cdn_ctl.local: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
