"""Which node owns a live channel: a Redis lease with a fencing token.

Keys (``{cctv1}`` is the channel's hash tag, ``transcode.archive.channel_tag``):
``tc:owner:{cctv1}`` holds ``node|token`` with a PX TTL (the lease);
``tc:fence:{cctv1}`` is the counter the token comes from (``INCR``: it only
grows, so a later owner always holds a higher token). Claiming succeeds only
when no node owns the channel, renewing and releasing only while the lease is
still the caller's (one Lua script each, ``*.lua`` beside this module).

Every write to a channel's own keys goes through :meth:`Ownership.write`, which
checks the lease in the same script that writes (``fenced_write.lua``): a node
paused past its lease (SIGSTOP, a partition) and then resumed has its late
writes refused, counted in ``tc_fenced_writes_total``. The lease and every key it
fences share the channel's tag, so the script runs unchanged on Redis Cluster; a
write to a key outside the tag is refused before it is sent. The global indexes a
channel is listed in (``tc:channels``, ``tc:archived``) are added to after a fenced
write succeeds, unfenced: adding an id again changes nothing. Files cannot carry a
token, so they are fenced by the node's own deadline (:meth:`Lease.valid`, the
last successful renewal's send time plus the TTL), checked right before each
segment rename and playlist write.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio.cluster import RedisCluster

from headend.lua import script
from transcode.archive import RedisWrite, channel_tag, written_channel
from transcode.errors import LeaseLost

log = logging.getLogger(__name__)


def owner_key(channel: str) -> str:
    """The key holding a channel's lease (``node|token``)."""
    return f"tc:owner:{channel_tag(channel)}"


def fence_key(channel: str) -> str:
    """The counter a channel's fencing tokens come from."""
    return f"tc:fence:{channel_tag(channel)}"


def parse_owner(raw: bytes | str | None) -> tuple[str, int] | None:
    """(node, token) from an owner value, or None."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    node, _, token = text.rpartition("|")
    return (node, int(token)) if node and token.isdigit() else None


class Lease:
    """One node's hold on one channel; ``valid()`` is the local deadline that fences files."""

    def __init__(self, channel: str, node: str, token: int, *, deadline: float) -> None:
        self.channel = channel
        self.node = node
        self.token = token
        self.deadline = deadline  # time.monotonic() after which the lease may be someone else's
        self.lost = False

    @property
    def value(self) -> str:
        """What the channel's owner key holds while this lease lasts."""
        return f"{self.node}|{self.token}"

    def valid(self) -> bool:
        """True while no other node can hold the channel (renewed, deadline not passed)."""
        return not self.lost and time.monotonic() < self.deadline


class FarmMetrics:
    """The farm's counters, on the process's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.fenced = Counter(
            "tc_fenced_writes_total",
            "Writes of a live channel refused because the node's lease on it was stale",
            ["channel"],
            registry=self.registry,
        )
        self.leases_lost = Counter(
            "tc_leases_lost_total",
            "Channel leases a node lost (renewal refused or not made in time)",
            ["channel"],
            registry=self.registry,
        )


class Ownership:
    """Claims, renews and releases channel leases and makes a lease holder's writes."""

    def __init__(
        self, redis: aioredis.Redis, *, ttl_seconds: float, metrics: FarmMetrics | None = None
    ) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self.ttl_seconds = ttl_seconds
        self.metrics = metrics or FarmMetrics()
        self._claim = redis.register_script(script("transcode.farm", "claim"))
        self._renew = redis.register_script(script("transcode.farm", "renew"))
        self._release = redis.register_script(script("transcode.farm", "release"))
        self._write = redis.register_script(script("transcode.farm", "fenced_write"))

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    async def claim(self, channel: str, node: str) -> Lease | None:
        """Take the channel when no node owns it (a new, higher token); None when owned."""
        sent = time.monotonic()
        token = await self._claim(keys=[owner_key(channel), fence_key(channel)],
                                  args=[node, self._ttl_ms])  # fmt: skip
        if token is None:
            return None
        return Lease(channel, node, int(token), deadline=sent + self.ttl_seconds)

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease from the moment this was sent; False (and lost) if it is gone."""
        sent = time.monotonic()
        if await self._renew(keys=[owner_key(lease.channel)], args=[lease.value, self._ttl_ms]):
            if not lease.lost:
                lease.deadline = sent + self.ttl_seconds
            return not lease.lost
        self._lose(lease, "renewal refused")
        return False

    async def release(self, lease: Lease) -> bool:
        """Give the channel up (only if the lease is still ours)."""
        lease.lost = True
        return bool(await self._release(keys=[owner_key(lease.channel)], args=[lease.value]))

    def lose(self, lease: Lease, why: str) -> None:
        """Mark the lease lost locally (its deadline passed without a renewal)."""
        self._lose(lease, why)

    def _lose(self, lease: Lease, why: str) -> None:
        if not lease.lost:
            lease.lost = True
            self.metrics.leases_lost.labels(lease.channel).inc()
            log.warning(
                "channel lease lost", extra={"channel": lease.channel, "node": lease.node,
                                             "token": lease.token, "reason": why},
            )  # fmt: skip

    async def owner(self, channel: str) -> tuple[str, int] | None:
        """(node, token) of the channel's owner, or None."""
        return parse_owner(await self._redis.get(owner_key(channel)))

    async def owners(self, channels: Sequence[str]) -> dict[str, tuple[str, int]]:
        """The owned ones among ``channels``: channel -> (node, token)."""
        if not channels:
            return {}
        keys = [owner_key(c) for c in channels]
        # One MGET on one Redis; on a Cluster one MGET per slot, pipelined per node (a
        # pipeline of GETs costs the client 8x the CPU of an MGET of 300 keys).
        if isinstance(self._redis, RedisCluster):
            raw = await self._redis.mget_nonatomic(keys)
        else:
            raw = await self._redis.mget(keys)
        out = {}
        for channel, value in zip(channels, raw, strict=True):
            owner = parse_owner(value)
            if owner is not None:
                out[channel] = owner
        return out

    async def write(self, lease: Lease, writes: Sequence[RedisWrite]) -> None:
        """Make ``writes`` only while ``lease`` holds, in one step; ``LeaseLost`` otherwise.

        ``ValueError`` when a write is to a key outside the channel's hash tag."""
        if not writes:
            return
        if written_channel(writes) != lease.channel:
            raise ValueError(f"fenced writes of channel {lease.channel} must carry its tag")
        if lease.valid():
            keys = [owner_key(lease.channel)]
            index: dict[str, int] = {}
            encoded = []
            for w in writes:
                if w.key not in index:
                    keys.append(w.key)
                    index[w.key] = len(keys)
                encoded.append([w.command, index[w.key], *w.args])
            if await self._write(keys=keys, args=[lease.value, json.dumps(encoded)]):
                return
            self._lose(lease, "a write was fenced: another node holds the channel")
        self.metrics.fenced.labels(lease.channel).inc(len(writes))
        raise LeaseLost(
            f"channel {lease.channel}: node {lease.node}'s lease (token {lease.token}) is stale",
            details={"channel_id": lease.channel},
        )


class FencedWriter:
    """A channel store's writer while a node holds the channel's lease."""

    def __init__(self, ownership: Ownership, lease: Lease) -> None:
        self._ownership = ownership
        self.lease = lease

    async def write(self, writes: Sequence[RedisWrite]) -> None:
        """Make ``writes`` fenced by the lease (``LeaseLost`` when stale)."""
        await self._ownership.write(self.lease, writes)

    def valid(self) -> bool:
        """True while files may still be published (the lease's local deadline)."""
        return self.lease.valid()
