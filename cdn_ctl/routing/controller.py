"""The controller loop: keeps a router fed from Redis (edges, other replicas' leases)
and from the health monitor's probes, and tells each edge's prefetch sidecar which live
rungs its leases there play (:meth:`EdgeStore.mark_watched`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cdn_ctl.errors import RegistryUnavailable
from cdn_ctl.health import HealthMonitor
from cdn_ctl.routing.router import Router
from cdn_ctl.store import EdgeStore

log = logging.getLogger(__name__)


@dataclass
class ControllerStatus:
    """Freshness of the routing state, for ``/healthz``."""

    stale_since: float | None = None
    last_refresh: float | None = None
    last_error: str = ""

    @property
    def stale(self) -> bool:
        """True while Redis could not be read at the last refresh."""
        return self.stale_since is not None


async def _every(seconds: float, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` every ``seconds`` until cancelled (under a ``Supervisor``)."""
    while True:
        await step()
        await asyncio.sleep(seconds)


class Controller:
    """Feeds the router from Redis (edges, other replicas' leases) and from probes.

    When Redis is unreachable the router keeps its last known edges and keeps
    probing them; ``status`` says the state is stale until a refresh succeeds.
    """

    def __init__(
        self,
        *,
        store: EdgeStore,
        router: Router,
        monitor: HealthMonitor,
        replica_id: str,
        lease_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.router = router
        self.monitor = monitor
        self.replica_id = replica_id
        self.status = ControllerStatus()
        self._lease_ttl = lease_ttl_seconds
        self._clock = clock

    async def refresh(self) -> bool:
        """Reload edges and remote lease counts; publish ours. False if Redis failed."""
        now = self._clock()
        self.router.expire(now)
        try:
            edges = await self.store.all()
            remote = await self.store.publish_leases(
                self.replica_id, self.router.counts(), now=now, ttl_seconds=self._lease_ttl
            )
            await self.store.mark_watched(
                self.router.watched(), now=now, ttl_seconds=self._lease_ttl
            )
        except RegistryUnavailable as err:
            if self.status.stale_since is None:
                self.status.stale_since = now
                log.warning(
                    "redis unreachable: routing on last known state",
                    extra={"error": str(err.__cause__)},
                )
            self.status.last_error = str(err.__cause__ or err)
            return False
        self.router.set_edges(edges)
        self.router.remote_leases = remote
        self.router.set_health(self.monitor.states())
        if self.status.stale_since is not None:
            log.info("redis reachable again: routing state fresh")
        self.status = ControllerStatus(None, now, "")
        return True

    async def probe(self) -> list[str]:
        """One probe round over the known edges; publish verdicts (best effort)."""
        changed = await self.monitor.probe_round(list(self.router.edges.values()))
        self.router.set_health(self.monitor.states())
        for edge_id in changed:
            h = self.monitor.health()[edge_id]
            log.info(
                "edge health changed",
                extra={"edge_id": edge_id, "state": h.state.value, "reason": h.reason},
            )
        with contextlib.suppress(RegistryUnavailable):
            await self.store.put_health(self.monitor.health())
        return changed

    async def refresh_forever(self, seconds: float) -> None:
        """Refresh every ``seconds`` until cancelled (an unreachable Redis is not a failure
        here: the state is only marked stale)."""
        await _every(seconds, self.refresh)

    async def probe_forever(self, seconds: float) -> None:
        """Probe the known edges every ``seconds`` until cancelled."""
        await _every(seconds, self.probe)
