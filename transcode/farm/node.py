"""A transcode node: claims live channels by placement, runs them under a lease, lets go.

Three tasks on the node's :class:`headend.tasks.Supervisor` (restarted with
backoff if they fail): ``farm/place`` (every ``tick_seconds``, or at once on a
``tc:farm:wake`` message) advertises the node, stops channels no longer wanted,
while draining hands one channel at a time over make-before-break
(``farm/handover/{channel}``, see ``handover.py``), warms up the channels other
nodes offer it (``farm/standby/{channel}``), and claims at most one unowned
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
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from headend.errors import InvalidArgument
from transcode.archive import RedisWrite
from transcode.domain import ChannelState, LiveChannel, NodeInfo
from transcode.errors import TranscodeError
from transcode.farm.handover import Handovers, Offer
from transcode.farm.nodes import WAKE, NodeDirectory
from transcode.farm.ownership import FarmMetrics, FencedWriter, Lease, Ownership
from transcode.farm.placement import best_node, channel_cost
from transcode.live import LiveManager, channel_key, status_from_hash
from transcode.live.standby import Standby
from transcode.live.store import CHANNELS
from transcode.settings import NodeSettings

log = logging.getLogger(__name__)

_REDIS_ERRORS = (aioredis.RedisError, OSError, TimeoutError)
# How often a handover's two sides look at each other's progress in Redis.
_HANDOVER_POLL_SECONDS = 0.05


class Node:
    """Runs the channels this node owns on a :class:`LiveManager`."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        redis: aioredis.Redis,
        manager: LiveManager,
        metrics: FarmMetrics | None = None,
        on_ended: Callable[[str, Lease], None] | None = None,
    ) -> None:
        self.settings = settings
        # Called when a channel stopped on request has ended its playlists, still under its
        # lease (the origin pusher sends them: ``Pusher.ended``).
        self._on_ended = on_ended
        self.id = settings.node_id
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self.manager = manager
        self.ownership = Ownership(redis, ttl_seconds=settings.lease_seconds, metrics=metrics)
        self.directory = NodeDirectory(redis)
        self.handovers = Handovers(redis, ttl_seconds=settings.lease_seconds)
        self.leases: dict[str, Lease] = {}
        self._costs: dict[str, int] = {}
        self._outgoing: str | None = None  # the channel being handed to another node
        self._standbys: dict[str, Standby] = {}  # channels warming up here before a handover
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
            for channel_id in list(self._standbys):
                await self.manager.tasks.cancel(f"farm/standby/{channel_id}")
            if self._outgoing is not None:
                await self.manager.tasks.cancel(f"farm/handover/{self._outgoing}")
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
        if end and self._on_ended is not None:
            self._on_ended(channel_id, lease)
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
        wanted = [
            c for c in ids if (raws[c] or {}).get(b"desired") == b"running" and b"source" in raws[c]
        ]
        if self.draining:
            if self.leases and self._outgoing is None:
                await self._offer_one(raws)
            return False
        await self._accept_offers(wanted, raws)
        owners = await self.ownership.owners(wanted)
        unowned = [
            c
            for c in wanted
            if c not in owners and c not in self.leases and c not in self._standbys
        ]
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

    # -- make-before-break handovers (handover.py) ----------------------------------------------

    def _handover_timeout(self, segment_seconds: float) -> float:
        # FFmpeg's start and a first segment in every rung, on a busy host.
        return max(10.0, 2 * self.settings.lease_seconds) + 4 * segment_seconds

    async def _offer_one(self, raws: dict[str, dict[bytes, bytes]]) -> None:
        """Draining: offer one owned channel to the best other node (none fits: keep it)."""
        nodes = [n for n in await self.directory.nodes() if n.id != self.id]
        for channel_id in sorted(self.leases):
            raw = raws.get(channel_id) or {}
            if b"source" not in raw:
                continue
            channel = status_from_hash(raw).channel
            target = best_node(nodes, group=channel.node_group, cost=self._costs.get(channel_id, 1))
            if target is None:
                continue
            lease = self.leases[channel_id]
            timeout = self._handover_timeout(channel.segment_seconds)
            await self.handovers.offer(lease, target.id, timeout_seconds=timeout)
            offer = Offer(channel_id, target.id, lease.value, ready=False)
            self._outgoing = channel_id
            log.info("channel offered", extra={"channel": channel_id, "node": self.id,
                                               "target": target.id})  # fmt: skip
            self.manager.tasks.spawn(
                f"farm/handover/{channel_id}",
                functools.partial(self._hand_over, offer, timeout, channel.segment_seconds),
            )
            await self.directory.wake(f"handover:{channel_id}")
            return

    async def _hand_over(self, offer: Offer, bound_seconds: float, segment_seconds: float) -> None:
        """The old owner's side: wait for the target to be ready, stop, hand the lease over."""
        channel_id = offer.channel
        try:
            deadline = time.monotonic() + bound_seconds
            while time.monotonic() < deadline:
                now = await self.handovers.get(channel_id)
                if now is None or now.source != offer.source or channel_id not in self.leases:
                    return  # expired, replaced, or the lease went: try again later
                if now.ready:
                    break
                await asyncio.sleep(_HANDOVER_POLL_SECONDS)
            else:
                log.warning("handover timed out; the channel stays here for now",
                            extra={"channel": channel_id, "target": offer.target})  # fmt: skip
                await self.handovers.cancel(offer)
                return
            lease = self.leases[channel_id]
            await self.manager.hand_off(
                channel_id, reason=f"handed over to node {offer.target}",
                wait_seconds=1.5 * segment_seconds,
            )  # fmt: skip
            token = await self.handovers.transfer(lease, offer.target)
            self.leases.pop(channel_id, None)
            self._costs.pop(channel_id, None)
            log.info("channel handed over", extra={"channel": channel_id, "node": self.id,
                                                   "target": offer.target,
                                                   "token": token})  # fmt: skip
            await self.directory.advertise(self.info(), ttl_seconds=self._advert_ttl)
            await self.directory.wake(f"handed-over:{channel_id}")
        except _REDIS_ERRORS as err:
            log.warning("handover failed", extra={"channel": channel_id, "error": str(err)})
        finally:
            self._outgoing = None
            self._wake.set()  # the next channel

    async def _accept_offers(self, wanted: list[str], raws: dict[str, dict[bytes, bytes]]) -> None:
        """Start a standby for every channel another node offers this one (room permitting)."""
        offers = await self.handovers.offers(wanted)
        for channel_id, offer in offers.items():
            if offer.target != self.id or channel_id in self._standbys:
                continue
            if channel_id in self.leases:
                continue
            channel = status_from_hash(raws[channel_id]).channel
            cost = channel_cost(channel.profile)
            if self.settings.capacity_units - self.load < cost:
                continue  # the offer times out; the old owner asks again
            standby = Standby()
            self._standbys[channel_id] = standby
            self._costs[channel_id] = cost
            timeout = self._handover_timeout(channel.segment_seconds)
            self.manager.tasks.spawn(
                f"farm/standby/{channel_id}",
                functools.partial(self._take_over, offer, channel, standby, timeout),
            )

    async def _take_over(
        self, offer: Offer, channel: LiveChannel, standby: Standby, bound_seconds: float
    ) -> None:
        """The target's side: warm up, say ready, wait for the lease, publish."""
        channel_id = channel.id
        # A lease this node does not hold yet: writes and files are refused until promotion.
        writer = FencedWriter(self.ownership, Lease(channel_id, self.id, 0, deadline=0.0))
        running = False
        try:
            await self.manager.run_standby(channel, writer=writer, node=self.id, standby=standby)
            running = True
            deadline = time.monotonic() + bound_seconds
            ready = asyncio.ensure_future(standby.ready.wait())
            failed = asyncio.ensure_future(standby.failed.wait())
            try:
                await asyncio.wait(
                    {ready, failed}, timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
            finally:
                ready.cancel()
                failed.cancel()
            if not standby.ready.is_set() or not await self.handovers.mark_ready(offer):
                raise _HandoverOff("no segment in time, or the offer was withdrawn")
            lease = await self._await_lease(offer, deadline)
            writer.lease = lease
            try:
                await self.manager.promote(channel_id)
            except TranscodeError:
                await self.ownership.release(lease)  # another node claims it the ordinary way
                raise
            self.leases[channel_id] = lease
            running = False
            log.info("channel taken over", extra={"channel": channel_id, "node": self.id,
                                                  "token": lease.token})  # fmt: skip
        except (_HandoverOff, InvalidArgument, TranscodeError, *_REDIS_ERRORS) as err:
            log.warning("handover called off", extra={"channel": channel_id, "node": self.id,
                                                      "reason": str(err)})  # fmt: skip
            with contextlib.suppress(*_REDIS_ERRORS):
                await self.handovers.cancel(offer)
        finally:
            self._standbys.pop(channel_id, None)
            if channel_id not in self.leases:
                self._costs.pop(channel_id, None)
                if running:
                    await self.manager.abandon(channel_id, "handover called off")
            with contextlib.suppress(*_REDIS_ERRORS):
                await self.directory.advertise(self.info(), ttl_seconds=self._advert_ttl)

    async def _await_lease(self, offer: Offer, deadline: float) -> Lease:
        """The lease once the old owner handed it over (or claimed, if it died meanwhile)."""
        channel_id = offer.channel
        while time.monotonic() < deadline:
            owner = await self.ownership.owner(channel_id)
            if owner is not None and owner[0] == self.id:
                lease = Lease(channel_id, self.id, owner[1], deadline=0.0)
                # The local deadline starts from a renewal sent now, never from the transfer.
                if await self.ownership.renew(lease):
                    return lease
                raise _HandoverOff("the handed-over lease expired before it was renewed")
            if owner is None:
                claimed = await self.ownership.claim(channel_id, self.id)
                if claimed is not None:  # the old owner died mid-way: already warm here
                    desired = await self._redis.hget(channel_key(channel_id), "desired")
                    if desired == b"running":
                        return claimed
                    await self.ownership.release(claimed)
                    raise _HandoverOff("the channel was stopped")
            elif f"{owner[0]}|{owner[1]}" != offer.source:
                raise _HandoverOff(f"node {owner[0]} owns the channel now")
            await asyncio.sleep(_HANDOVER_POLL_SECONDS)
        raise _HandoverOff("the old owner did not hand the lease over in time")

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


class _HandoverOff(Exception):
    """Raised on a handover's target side when the handover cannot complete."""


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [x for item in mapping.items() for x in item]
