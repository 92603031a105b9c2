"""Prometheus metrics of the job queue, as the control service sees it in Redis.

Workers count what they do (``transcode_worker_*``); how much waits, runs and is dead
is the queue's own state, read by the control service every ``REFRESH_SECONDS`` into
gauges on its registry (one reading for the farm, whatever the number of workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge

from transcode.queue.jobs import JobQueue

log = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0


class QueueMetrics:
    """Jobs queued and running, and dead letters, in the farm's queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge(
            "transcode_queue_jobs",
            "VOD jobs in the queue, by state (queued: waiting or backing off; running).",
            ["state"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "transcode_queue_dead_letters",
            "Entries in the dead-letter stream (jobs that failed for good, not yet retried).",
            registry=registry,
        )

    async def refresh(self, queue: JobQueue) -> None:
        """Read the queue's depth into the gauges (Redis being away leaves them as they are)."""
        try:
            depth = await queue.depth()
        except (aioredis.RedisError, OSError) as err:
            log.warning("queue metrics not refreshed", extra={"error": str(err)})
            return
        self.jobs.labels("queued").set(depth.queued)
        self.jobs.labels("running").set(depth.running)
        self.dead_letters.set(depth.dead_letters)

    async def run(
        self, queue: JobQueue, *, stop: asyncio.Event, interval_seconds: float = REFRESH_SECONDS
    ) -> None:
        """Refresh every ``interval_seconds`` until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_seconds):
                    await stop.wait()
            await self.refresh(queue)
