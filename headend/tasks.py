"""Long-running background tasks that cannot die silently.

Every loop a service runs in the background (a live channel's publisher, a
health prober, a change-feed reader, a heartbeat batcher, a worker loop) is
started through a :class:`Supervisor`: it is awaited, its failure is logged
with its name and the exception, counted in metrics, reflected in
:meth:`Supervisor.status`, and it is restarted after an exponential backoff
(reset once it has run well for a while). A task that returns normally is
done and is not restarted. Closing the supervisor cancels every task and waits
for them, within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: ``first * factor**n`` up to ``cap``, with +-``jitter`` spread."""

    first_seconds: float = 0.5
    factor: float = 2.0
    cap_seconds: float = 30.0
    jitter: float = 0.2
    # A run that lasted this long was healthy: the next failure starts from ``first``.
    healthy_after_seconds: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait before restart number ``failures`` (1-based)."""
        base = min(self.cap_seconds, self.first_seconds * self.factor ** max(0, failures - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


@dataclass
class TaskStatus:
    """What one supervised task is doing."""

    name: str
    state: str = "starting"  # running | backing_off | done | stopped
    restarts: int = 0
    failures: int = 0
    last_error: str = ""
    started_at: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> bool:
        """True while the task's coroutine is running."""
        return self.state == "running"


class SupervisorMetrics:
    """Restarts and liveness of supervised tasks."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter(
            "headend_task_restarts_total",
            "Background tasks restarted after a failure, by task.",
            ["task"],
            registry=self.registry,
        )
        self.up = Gauge(
            "headend_task_up", "1 while a background task runs, by task.", ["task"],
            registry=self.registry,
        )  # fmt: skip


class Supervisor:
    """Owns named background tasks: awaits them, logs failures, restarts them."""

    def __init__(
        self,
        *,
        backoff: Backoff | None = None,
        metrics: SupervisorMetrics | None = None,
        stop_seconds: float = 10.0,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.metrics = metrics or SupervisorMetrics()
        self.stop_seconds = stop_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._status: dict[str, TaskStatus] = {}

    def spawn(self, name: str, factory: Factory, *, backoff: Backoff | None = None) -> None:
        """Run ``factory()`` as ``name`` until it returns, restarting it when it fails."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a task named {name!r} is already running")
        status = self._status[name] = TaskStatus(name)
        self._tasks[name] = asyncio.create_task(
            self._keep(name, factory, backoff or self.backoff, status), name=name
        )

    async def _keep(
        self, name: str, factory: Factory, backoff: Backoff, status: TaskStatus
    ) -> None:
        up = self.metrics.up.labels(name)
        try:
            while True:
                status.state, status.started_at = "running", time.monotonic()
                up.set(1)
                try:
                    await factory()
                except Exception as err:  # the point: any failure is logged and survived
                    up.set(0)
                    delay = self._failed(name, backoff, status, err)
                    await asyncio.sleep(delay)
                    continue
                status.state = "done"
                up.set(0)
                return
        except asyncio.CancelledError:
            status.state = "stopped"
            up.set(0)
            raise

    def _failed(self, name: str, backoff: Backoff, status: TaskStatus, err: Exception) -> float:
        if time.monotonic() - status.started_at >= backoff.healthy_after_seconds:
            status.failures = 0
        status.failures += 1
        status.restarts += 1
        status.last_error = f"{type(err).__name__}: {err}"[:500]
        status.state = "backing_off"
        delay = backoff.delay(status.failures)
        log.error(
            "background task failed; restarting",
            exc_info=err,
            extra={"task": name, "error": status.last_error, "retry_in": round(delay, 2)},
        )
        self.metrics.restarts.labels(name).inc()
        return delay

    def status(self, name: str) -> TaskStatus | None:
        """The named task's status (None if never spawned)."""
        return self._status.get(name)

    def statuses(self) -> list[TaskStatus]:
        """Every task's status, by name."""
        return [self._status[n] for n in sorted(self._status)]

    async def cancel(self, name: str) -> None:
        """Stop one task and wait for it (within ``stop_seconds``)."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.stop_seconds)
        if not task.done():
            log.error("background task did not stop in time", extra={"task": name})

    async def close(self) -> None:
        """Stop every task and wait for them."""
        for name in list(self._tasks):
            await self.cancel(name)
