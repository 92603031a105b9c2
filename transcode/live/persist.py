"""The ``live/store`` task: every channel's queued Redis writes, made in the background.

Encoding never waits for Redis: each channel's :class:`~transcode.live.store.ChannelStore`
queues its archive entries and status, and this one task writes them: a channel that
queued something is written as soon as it wakes the task (:meth:`StoreLoop.waker`), and
every channel every ``store_retry_seconds`` (``_IDLE_TICK_SECONDS`` while every
channel's writes succeed), so a node's cost per segment does not grow with the number
of channels it runs. Redis being away is an expected
state (the channel reported DEGRADED with its backlog), not a task failure; after a
Redis restart every channel writes its recent entries again. The restart check (an
``INFO`` round trip) is made at most every ``_SERVER_CHECK_SECONDS``, not per segment:
entries a restart lost are still in the replay window (``store._REPLAY_SECONDS``) when
it is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from headend.tasks import Supervisor
from transcode.live.metrics import LiveMetrics
from transcode.live.store import ChannelStore
from transcode.live.supervisor import ChannelSupervisor, Phase, PhaseObserver
from transcode.settings import LiveSettings

log = logging.getLogger(__name__)

STORE_TASK = "live/store"
# The tick while every store is up and idle (half the status heartbeat: a channel that
# queued something wakes the task at once, so the tick only keeps the heartbeat).
_IDLE_TICK_SECONDS = 5.0
# Well inside the store's replay window (``store._REPLAY_SECONDS``).
_SERVER_CHECK_SECONDS = 5.0

# Called with a channel id and the sequence numbers just written to the archive index.
IndexObserver = Callable[[str, list[int]], None]


class StoreLoop:
    """Writes the queues of a manager's channels (``stores``) to Redis, one task for all."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        stores: dict[str, ChannelStore],
        running: dict[str, ChannelSupervisor],
        metrics: LiveMetrics,
        settings: LiveSettings,
        tasks: Supervisor,
        on_phase: PhaseObserver | None,
        on_indexed: IndexObserver | None,
    ) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self._stores = stores
        self._running = running
        self._metrics = metrics
        self._settings = settings
        self._tasks = tasks
        self._on_phase = on_phase
        self._on_indexed = on_indexed
        self.wake = asyncio.Event()
        self._dirty: set[str] = set()  # channels that queued something since their last sync
        self._swept_at = -math.inf  # monotonic time of the last sync of every channel
        self._spawned = False
        # The Redis server's run_id as last seen (None: not yet; "": INFO is not allowed).
        self._server_id: str | None = None
        self._checked_at = -math.inf  # monotonic time of the last restart check

    def waker(self, channel_id: str) -> Callable[[], None]:
        """What ``channel_id``'s store calls when it has something to write."""

        def wake() -> None:
            self._dirty.add(channel_id)
            self.wake.set()

        return wake

    def ensure(self) -> None:
        """Start the task if it is not running."""
        if not self._spawned:
            self._tasks.spawn(STORE_TASK, self.run)
            self._spawned = True

    async def cancel(self) -> None:
        """Stop the task (a later ``ensure`` starts it again)."""
        await self._tasks.cancel(STORE_TASK)
        self._spawned = False

    async def run(self) -> None:
        """Write every channel's queue to Redis; an outage is retried, never fatal."""
        while True:
            self.wake.clear()
            await self._check_server()
            stores = self._stores
            if any(s.down for s in stores.values()) or (
                time.monotonic() - self._swept_at >= _IDLE_TICK_SECONDS
            ):
                self._swept_at = time.monotonic()
                chosen = list(stores.items())
            else:
                chosen = [(c, stores[c]) for c in self._dirty if c in stores]
            self._dirty.clear()
            await asyncio.gather(*(self._sync(s) for _, s in chosen))
            for channel_id, store in chosen:
                supervisor = self._running.get(channel_id)
                if supervisor is not None:
                    self._metrics.set_state(channel_id, supervisor.status().state)
                elif store.final and store.idle():
                    del self._stores[channel_id]  # stopped and saved
            # Every change wakes this task (a queued entry, a status change), so while Redis
            # answers the tick only keeps the heartbeat: no need to spin at the retry rate.
            tick = self._settings.store_retry_seconds
            if not any(s.down for s in self._stores.values()):
                tick = max(tick, _IDLE_TICK_SECONDS)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self.wake.wait()

    async def _check_server(self) -> None:
        """After a Redis restart or failover, have every channel write its recent entries again."""
        # A restarted Redis may have lost the last writes it acknowledged (AOF everysec).
        if self._server_id == "" or not self._stores:
            return
        now = time.monotonic()
        if now - self._checked_at < _SERVER_CHECK_SECONDS:
            return  # a restart is still seen well inside the replay window
        try:
            async with asyncio.timeout(self._settings.store_timeout_seconds):
                info = await self._redis.info("server")
        except aioredis.ResponseError as err:  # INFO refused (ACL, renamed): not checked
            log.warning("cannot tell a Redis restart (INFO refused)", extra={"error": str(err)})
            self._server_id = ""
            return
        except (aioredis.RedisError, OSError, TimeoutError):
            return  # the flushes below see the outage too
        self._checked_at = now
        run_id = str(info.get("run_id", ""))
        if self._server_id is not None and run_id != self._server_id:
            log.warning("Redis restarted: live channels write their recent index entries again")
            for store in self._stores.values():
                store.replay()
        self._server_id = run_id or ""

    async def _sync(self, store: ChannelStore) -> None:
        channel_id = store.channel.id
        try:
            async with asyncio.timeout(self._settings.store_timeout_seconds):
                flushed = await store.flush()
        except (aioredis.RedisError, OSError, TimeoutError) as err:
            self._metrics.store_failures.labels(channel_id).inc()
            self._metrics.backlog.labels(channel_id).set(store.backlog)
            if store.failed(err):
                log.warning(
                    "Redis unreachable: the live channel keeps encoding and catches up later",
                    extra={"channel": channel_id, "error": store.error},
                )
                self._phase(channel_id, Phase.STORE_DOWN)
            return
        self._metrics.backlog.labels(channel_id).set(store.backlog)
        if flushed.recovered:
            log.info(
                "Redis reachable again: the live channel's index caught up",
                extra={"channel": channel_id, "segments": flushed.caught_up},
            )
            self._phase(channel_id, Phase.STORE_UP)
        if flushed.sequences and self._on_indexed is not None:
            self._on_indexed(channel_id, flushed.sequences)

    def _phase(self, channel_id: str, phase: Phase) -> None:
        supervisor = self._running.get(channel_id)
        if supervisor is not None:
            self._metrics.set_state(channel_id, supervisor.status().state)
        if self._on_phase is not None:
            self._on_phase(channel_id, phase)
