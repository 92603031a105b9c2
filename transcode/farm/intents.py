"""What the control service does with live channels on a farm: it records intent only.

``StartChannel`` lists the channel in ``tc:channels``, then writes the configuration
and ``desired: running`` into ``tc:channel:{cctv1}`` and wakes the nodes (``PUBLISH
tc:farm:wake``; nodes also poll every tick); the node placement picks claims it. The
two keys sit in two Cluster slots, so two steps, the index first: a start cut short in
between leaves a listed id without a channel, which readers skip and a start again
completes (the other order would leave a running intent no node sees, and a start
again refused as already running). ``StopChannel`` writes
``desired: stopped`` and waits (bounded) for the owner to stop and release it.
The control service never runs FFmpeg here: two control replicas at once only
write the same intent, and the lease decides the one node that runs it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis

from headend.clock import utc_now
from transcode.domain import ChannelState, ChannelStatus, LiveChannel
from transcode.errors import ChannelNotFound, ChannelRunning
from transcode.farm.nodes import NodeDirectory
from transcode.farm.ownership import owner_key, parse_owner
from transcode.live.status import config_mapping, saved_status
from transcode.live.store import CHANNELS, channel_key, every_channel
from transcode.profiles import resolve_profile

_POLL_SECONDS = 0.1


class ChannelIntents:
    """Live channels as the control service sees them on a farm (``service.Channels``)."""

    def __init__(self, redis: aioredis.Redis, *, stop_wait_seconds: float = 10.0) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self._nodes = NodeDirectory(redis)
        self._stop_wait = stop_wait_seconds

    async def start(self, channel: LiveChannel) -> ChannelStatus:
        """Record that the channel should run, and wake the nodes (starting a running channel
        again with the same configuration changes nothing; with another, ``ChannelRunning``)."""
        channel.validate()
        resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        key = channel_key(channel.id)
        if await self._redis.hget(key, "desired") == b"running":
            running = await self.get(channel.id)
            if running.channel == channel:
                return running  # the same start again: a retried call, or another replica's
            raise ChannelRunning(f"channel {channel.id} is already running")
        owned = await self._redis.exists(owner_key(channel.id))
        mapping = {**config_mapping(channel), "desired": "running", "reason": ""}
        if not owned:  # an owner still stopping reports its own state
            mapping.update(state=ChannelState.STARTING.value, updated_at=utc_now().isoformat())
        await self._redis.sadd(CHANNELS, channel.id)
        await self._redis.hset(key, mapping=mapping)
        await self._nodes.wake(f"start:{channel.id}")
        return await self.get(channel.id)

    async def stop(self, channel_id: str) -> ChannelStatus:
        """Record that the channel should stop; wait (bounded) until its owner released it."""
        if not await self._redis.sismember(CHANNELS, channel_id):
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        await self._redis.hset(channel_key(channel_id), "desired", "stopped")
        await self._nodes.wake(f"stop:{channel_id}")
        deadline = time.monotonic() + self._stop_wait
        # Owners stop within a tick; polled, as a node answers by letting its lease go.
        while time.monotonic() < deadline:
            if not await self._redis.exists(owner_key(channel_id)):
                break
            await asyncio.sleep(_POLL_SECONDS)
        if not await self._redis.exists(owner_key(channel_id)):
            state = await self._redis.hget(channel_key(channel_id), "state")
            if state != ChannelState.STOPPED.value.encode():
                # No node ran it (none fits, or it never started): nothing else will say so.
                await self._redis.hset(
                    channel_key(channel_id),
                    mapping={
                        "state": ChannelState.STOPPED.value,
                        "reason": "stopped on request",
                        "updated_at": utc_now().isoformat(),
                    },
                )
        return await self.get(channel_id)

    async def get(self, channel_id: str) -> ChannelStatus:
        """A channel's status as its owner last saved it, with the owner and its token."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(channel_key(channel_id))
            pipe.get(owner_key(channel_id))
            raw, owner_raw = await pipe.execute()
        status = saved_status(channel_id, raw)
        owner = parse_owner(owner_raw)
        if owner is None:
            return status
        node, token = owner
        return replace(status, node=node, token=token)

    async def list_channels(self) -> list[ChannelStatus]:
        """Every channel, by id."""
        return await every_channel(self._redis, self.get)
