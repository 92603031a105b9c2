"""A transcode node: claims live channels by placement, runs them under a lease, lets go.

Three tasks on the node's :class:`headend.tasks.Supervisor` (restarted with
backoff if they fail): ``farm/place`` (every ``tick_seconds``, or at once on a
``tc:farm:wake`` message) advertises the node, stops channels no longer wanted,
hands one channel over per tick while draining, and claims at most one unowned
channel per pass when this node is the best fit (``placement.best_node``);
``farm/renew`` renews every lease three times per TTL and stops a channel at
once when its renewal is refused or cannot be made before the lease would
expire; ``farm/wake`` listens for wake messages.

A new owner continues the channel's numbering after the highest number used
(saved status, archive index, files) and starts with a discontinuity in every
rung: the restart path of ``LiveManager``. A node that comes back never takes
channels back: it only claims channels nobody owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import Any

import redis.asyncio as aioredis

from headend import logs
from headend.errors import InvalidArgument
from headend.metrics import MetricsEndpoint
from headend.redisconn import RedisUnreachable, connect_checked
from headend.rpc.server import EXIT_FAILED, load_settings, stop_event
from headend.tasks import Supervisor, SupervisorMetrics
from transcode.archive import ArchiveIndex, RedisWrite
from transcode.domain import ChannelState, NodeInfo
from transcode.farm.nodes import WAKE, NodeDirectory
from transcode.farm.ownership import FarmMetrics, FencedWriter, Lease, Ownership
from transcode.farm.placement import best_node, channel_cost
from transcode.live import LiveManager, channel_key, status_from_hash
from transcode.live.store import CHANNELS
from transcode.settings import NodeProcessSettings, NodeSettings
from transcode.sources import SourceGuard

log = logging.getLogger(__name__)

_NAME = "transcode-node"
_REDIS_ERRORS = (aioredis.RedisError, OSError, TimeoutError)


class Node:
    """Runs the channels this node owns on a :class:`LiveManager`."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        redis: aioredis.Redis,
        manager: LiveManager,
        metrics: FarmMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.id = settings.node_id
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self.manager = manager
        self.ownership = Ownership(redis, ttl_seconds=settings.lease_seconds, metrics=metrics)
        self.directory = NodeDirectory(redis)
        self.leases: dict[str, Lease] = {}
        self._costs: dict[str, int] = {}
        self.draining = False
        self._wake = asyncio.Event()
        self._started = False

    @property
    def load(self) -> int:
        """Capacity units the owned channels take."""
        return sum(self._costs.values())

    def info(self) -> NodeInfo:
        """This node as it advertises itself."""
        return NodeInfo(
            id=self.id,
            group=self.settings.group,
            capacity=self.settings.capacity_units,
            load=self.load,
            draining=self.draining,
            channels=tuple(sorted(self.leases)),
        )

    def start(self) -> None:
        """Start placement, renewal and the wake listener on the manager's task owner."""
        tasks = self.manager.tasks
        tasks.spawn("farm/renew", self._renew_loop)
        tasks.spawn("farm/place", self._place_loop)
        tasks.spawn("farm/wake", self._wake_loop)
        self._started = True

    async def close(self) -> None:
        """Stop placement, hand every channel back (released for another node), withdraw."""
        if self._started:
            for name in ("farm/place", "farm/wake", "farm/renew"):
                await self.manager.tasks.cancel(name)
        for channel_id in list(self.leases):
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._let_go(channel_id, reason="node stopped; another node takes it")
        with contextlib.suppress(*_REDIS_ERRORS):
            await self.directory.withdraw(self.id)
        await self.manager.close()

    # -- leases ---------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.gather(*(self._renew(c, lease) for c, lease in list(self.leases.items())))
            await asyncio.sleep(self.settings.renew_seconds)

    async def _renew(self, channel_id: str, lease: Lease) -> None:
        left = lease.deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.01, left)):
                renewed = await self.ownership.renew(lease)
        except _REDIS_ERRORS:
            renewed = lease.valid()
            if not renewed:
                self.ownership.lose(lease, "Redis unreachable until the lease expired")
        if not renewed or not lease.valid():
            self.ownership.lose(lease, "lease expired before it was renewed")
            await self._lost(channel_id, lease)

    async def _lost(self, channel_id: str, lease: Lease) -> None:
        if self.leases.get(channel_id) is not lease:
            return
        del self.leases[channel_id]
        self._costs.pop(channel_id, None)
        await self.manager.abandon(channel_id, "lease lost: another node may own the channel")

    async def _let_go(self, channel_id: str, *, reason: str, end: bool = False) -> None:
        """Stop the channel here, save its last status under the lease, then release it."""
        lease = self.leases.pop(channel_id)
        self._costs.pop(channel_id, None)
        await self.manager.release(channel_id, reason=reason, end=end)
        await self.ownership.release(lease)
        log.info("channel released", extra={"channel": channel_id, "node": self.id,
                                            "reason": reason})  # fmt: skip

    # -- placement ------------------------------------------------------------------------------

    async def _wake_loop(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(WAKE)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._wake.set()
        finally:
            with contextlib.suppress(*_REDIS_ERRORS):
                await pubsub.aclose()

    async def _place_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                again = await self.place_once()
            except _REDIS_ERRORS as err:
                log.warning("placement skipped: Redis unreachable", extra={"error": str(err)})
                again = False
            if again:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tick_seconds):
                    await self._wake.wait()

    async def place_once(self) -> bool:
        """One placement pass; True when it claimed or released a channel (pass again soon)."""
        self.draining = await self.directory.draining(self.id)
        ids = sorted(m.decode() for m in await self._redis.smembers(CHANNELS))
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel_id in ids:
                pipe.hgetall(channel_key(channel_id))
            raws = dict(zip(ids, await pipe.execute(), strict=True))
        for channel_id in list(self.leases):
            raw = raws.get(channel_id) or {}
            if raw.get(b"desired") != b"running":
                await self._let_go(channel_id, reason="stopped on request", end=True)
        await self.directory.advertise(self.info(), ttl_seconds=self._advert_ttl)
        if self.draining:
            if self.leases:
                await self._let_go(min(self.leases), reason=f"node {self.id} draining")
                await self.directory.advertise(self.info(), ttl_seconds=self._advert_ttl)
                await self.directory.wake(f"released-by:{self.id}")
                return True
            return False
        wanted = [
            c for c in ids if (raws[c] or {}).get(b"desired") == b"running" and b"source" in raws[c]
        ]
        owners = await self.ownership.owners(wanted)
        unowned = [c for c in wanted if c not in owners and c not in self.leases]
        if not unowned:
            return False
        nodes = [n for n in await self.directory.nodes() if n.id != self.id] + [self.info()]
        for channel_id in unowned:
            status = status_from_hash(raws[channel_id])
            cost = channel_cost(status.channel.profile)
            best = best_node(nodes, group=status.channel.node_group, cost=cost)
            if best is None or best.id != self.id:
                continue
            if await self._claim(channel_id, cost):
                return True
        return False

    @property
    def _advert_ttl(self) -> float:
        return max(self.settings.lease_seconds, 3 * self.settings.tick_seconds)

    async def _claim(self, channel_id: str, cost: int) -> bool:
        lease = await self.ownership.claim(channel_id, self.id)
        if lease is None:
            return False
        # Read again under the lease: the configuration the control service wrote last.
        raw = await self._redis.hgetall(channel_key(channel_id))
        if raw.get(b"desired") != b"running":
            await self.ownership.release(lease)
            return False
        channel = status_from_hash(raw).channel
        self.leases[channel_id] = lease
        self._costs[channel_id] = cost
        writer = FencedWriter(self.ownership, lease)
        log.info("channel claimed", extra={"channel": channel_id, "node": self.id,
                                           "token": lease.token})  # fmt: skip
        try:
            await self.manager.run_owned(channel, writer=writer, node=self.id)
        except InvalidArgument as err:  # a source the allow-lists refuse: it runs nowhere
            log.warning("channel refused", extra={"channel": channel_id, "reason": err.message})
            fields = {
                "desired": "stopped",
                "state": ChannelState.STOPPED.value,
                "reason": f"refused: {err.message}",
            }
            await writer.write(
                [RedisWrite("HSET", channel_key(channel_id), tuple(_flatten(fields)))]
            )
            await self._let_go(channel_id, reason="refused")
        await self.directory.advertise(self.info(), ttl_seconds=self._advert_ttl)
        return True


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [x for item in mapping.items() for x in item]


def create_node(
    settings: NodeSettings,
    *,
    redis: aioredis.Redis,
    manager: LiveManager,
    metrics: FarmMetrics | None = None,
) -> Node:
    """A node over ``manager`` (not started)."""
    return Node(settings, redis=redis, manager=manager, metrics=metrics)


async def run_node(settings: NodeProcessSettings, *, stop: asyncio.Event) -> None:
    """Run a standalone node until ``stop``; ``RedisUnreachable`` if Redis does not answer."""
    client = await connect_checked(settings.redis_url, settings.redis, name=_NAME)
    supervisor_metrics = SupervisorMetrics()
    registry = supervisor_metrics.registry
    tasks = Supervisor(
        backoff=settings.live.restart_backoff,
        metrics=supervisor_metrics,
        stop_seconds=settings.live.stop_seconds,
    )
    manager = LiveManager(
        redis=client,
        archive=ArchiveIndex(client),
        origin_root=settings.origin_root,
        sources=SourceGuard(settings.sources),
        settings=settings.live,
        tasks=tasks,
        registry=registry,
    )
    node = Node(settings.node, redis=client, manager=manager, metrics=FarmMetrics(registry))
    endpoint = None
    if settings.node.metrics_port is not None:
        endpoint = MetricsEndpoint(registry, settings.node.metrics_host, settings.node.metrics_port)
    node.start()
    log.info("transcode node ready", extra={"node": node.id, "group": settings.node.group,
                                            "capacity": settings.node.capacity_units})  # fmt: skip
    try:
        await stop.wait()
    finally:
        await node.close()
        await tasks.close()
        if endpoint is not None:
            endpoint.close()
        await client.aclose()


async def _serve(settings: NodeProcessSettings) -> None:
    await run_node(settings, stop=stop_event())


def main() -> None:
    """``python -m transcode node``: a transcode node until SIGTERM/SIGINT, with the exit
    codes of every service (``headend.rpc.server``)."""
    settings = load_settings(_NAME, NodeProcessSettings.from_env)
    logs.configure(_NAME, settings.log_level)
    try:
        asyncio.run(_serve(settings))
    except RedisUnreachable as err:
        print(f"{_NAME}: {err}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from err
