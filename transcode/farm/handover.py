"""Make-before-break handovers: a draining node moves a channel to another node without a gap.

Keys: ``tc:handover:{cctv1}`` (hash: ``target`` node, ``source`` = the old owner's
``node|token``, ``ready`` once the target has a segment in every rung; it expires
after ``timeout_seconds`` so an abandoned handover clears itself).

The steps, with the old owner publishing throughout until step 3:

1. The old owner (draining) picks the target (``placement.best_node``), writes the
   record (:meth:`Handovers.offer`) and wakes the nodes.
2. The target starts the channel's FFmpeg in its own work directory, publishing
   nothing and writing nothing (a *standby*); once every rung has a segment it
   marks the record ready (:meth:`Handovers.mark_ready`).
3. The old owner waits for its next published segment, stops the channel (its FFmpeg
   killed, its status saved under its lease) and hands the lease over in one step
   (``transfer.lua``: only while the lease is still ``old|token``; the target's token
   is a new ``INCR`` of the fence, so the old token is stale from then on).
4. The target sees itself in ``tc:owner:{cctv1}``, renews (its local deadline starts
   from that renewal), numbers its segments after the highest used (saved status,
   archive index, files) and publishes, its first segment a discontinuity.

The old owner stops before the target publishes, so the two never write the same
number or playlist. If the old owner dies mid-way its lease expires and the target,
already warm, claims the channel the ordinary way; if the target fails or the
record expires, the old owner keeps the channel and tries again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import redis.asyncio as aioredis

from headend.lua import script
from transcode.archive import channel_tag
from transcode.farm.ownership import Lease, fence_key, owner_key


def handover_key(channel: str) -> str:
    """The hash recording a channel's handover under way (the lease's tag: ``transfer.lua``
    deletes it with the lease it moves)."""
    return f"tc:handover:{channel_tag(channel)}"


class Offer(NamedTuple):
    """A handover under way: who takes the channel from which lease, and whether it is ready."""

    channel: str
    target: str
    source: str  # the old owner's "node|token"
    ready: bool


class Handovers:
    """Reads and writes handover records and hands leases over (``transfer.lua``)."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: float) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self.ttl_seconds = ttl_seconds
        self._transfer = redis.register_script(script("transcode.farm", "transfer"))

    async def offer(self, lease: Lease, target: str, *, timeout_seconds: float) -> None:
        """Ask ``target`` to take ``lease``'s channel over (replacing any earlier offer)."""
        key = handover_key(lease.channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"target": target, "source": lease.value, "ready": "0"})
            pipe.pexpire(key, max(1, int(timeout_seconds * 1000)))
            await pipe.execute()

    async def get(self, channel: str) -> Offer | None:
        """The channel's handover under way, or None."""
        raw = await self._redis.hgetall(handover_key(channel))
        return _offer(channel, raw)

    async def offers(self, channels: list[str]) -> dict[str, Offer]:
        """The handovers under way among ``channels``."""
        if not channels:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hgetall(handover_key(channel))
            raws = await pipe.execute()
        out = {}
        for channel, raw in zip(channels, raws, strict=True):
            offer = _offer(channel, raw)
            if offer is not None:
                out[channel] = offer
        return out

    async def mark_ready(self, offer: Offer) -> bool:
        """The target has a segment in every rung; False when the offer is gone or changed."""
        now = await self.get(offer.channel)
        if now is None or now.target != offer.target or now.source != offer.source:
            return False
        await self._redis.hset(handover_key(offer.channel), "ready", "1")
        return True

    async def cancel(self, offer: Offer) -> None:
        """Withdraw an offer (only the same one: a newer offer stays)."""
        now = await self.get(offer.channel)
        if now is not None and now.source == offer.source and now.target == offer.target:
            await self._redis.delete(handover_key(offer.channel))

    async def transfer(self, lease: Lease, target: str) -> int | None:
        """Give ``lease``'s channel to ``target`` in one step: its new token, or None when the
        lease was no longer ours (then nobody got it from us)."""
        lease.lost = True  # whatever happens, this node writes nothing more for the channel
        token = await self._transfer(
            keys=[owner_key(lease.channel), fence_key(lease.channel), handover_key(lease.channel)],
            args=[lease.value, target, max(1, int(self.ttl_seconds * 1000))],
        )
        return None if token is None else int(token)


def _offer(channel: str, raw: dict[bytes, bytes]) -> Offer | None:
    if not raw or b"target" not in raw or b"source" not in raw:
        return None
    return Offer(
        channel=channel,
        target=raw[b"target"].decode(),
        source=raw[b"source"].decode(),
        ready=raw.get(b"ready") == b"1",
    )
