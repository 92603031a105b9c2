"""Whether this process can reach its Redis, with a grace: what health checks report.

A load balancer or an orchestrator should stop sending work to a replica that has
lost its store (a partitioned host), but not to every replica at the first
hiccup of a failover, which Sentinel finishes in a few seconds and the clients
ride out with retries. :class:`StoreHealth` PINGs Redis every
``probe_seconds``; the process is *serving* while Redis answers, and for
``grace_seconds`` after it stopped answering; past the grace it is not, until a
PING succeeds again. ``on_change`` hears every flip (the gRPC harness sets
NOT_SERVING/SERVING for every service it hosts, see :func:`headend.rpc.run_service`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

OnChange = Callable[[bool], Awaitable[None]]


class StoreHealth:
    """Serving or not, from periodic PINGs of ``redis`` and a grace (see the module)."""

    def __init__(
        self,
        redis: Any,
        *,
        grace_seconds: float,
        probe_seconds: float = 1.0,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self.grace_seconds = grace_seconds
        self._probe_seconds = probe_seconds
        self._on_change = on_change
        self._clock = clock
        self._unreachable_since: float | None = None
        self.serving = True

    async def probe(self) -> bool:
        """One PING (bounded by the probe period); returns whether the process is serving."""
        try:
            async with asyncio.timeout(max(self._probe_seconds, 0.5)):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as err:
            now = self._clock()
            if self._unreachable_since is None:
                self._unreachable_since = now
                log.warning("redis unreachable", extra={"error": str(err)})
            serving = now - self._unreachable_since < self.grace_seconds
        else:
            self._unreachable_since = None
            serving = True
        if serving != self.serving:
            self.serving = serving
            log.warning(
                "store health changed",
                extra={"serving": serving, "grace_seconds": self.grace_seconds},
            )
            if self._on_change is not None:
                await self._on_change(serving)
        return serving

    async def run(self) -> None:
        """Probe for ever (cancel to stop)."""
        while True:
            await self.probe()
            await asyncio.sleep(self._probe_seconds)
