"""The nodes of the farm as they advertise themselves in Redis, and drain requests.

Keys: ``tc:node:<id>`` (hash: group, capacity, load, draining, channels,
heartbeat; expires unless the node refreshes it), ``tc:nodes`` (set of ids,
pruned of nodes whose hash expired) and ``tc:drain`` (set of ids an operator
asked to drain; a drained node stays drained, even across restarts, until
resumed). ``tc:farm:wake`` is the channel nodes listen on for changes.

Each key sits in a slot of its own on Redis Cluster, so no step writes two: a node
writes its advert first and lists itself in ``tc:nodes`` after, and withdraws in the
reverse order. Cut short in between, ``tc:nodes`` holds an id without an advert,
which is what an expired advert leaves too: readers skip it and prune it.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from headend.clock import utc_now
from transcode.domain import NodeInfo
from transcode.errors import NodeNotFound

NODES = "tc:nodes"
DRAIN = "tc:drain"
WAKE = "tc:farm:wake"


def node_key(node_id: str) -> str:
    """The hash a node advertises itself in (no hash tag: no step writes it with another key)."""
    return f"tc:node:{node_id}"


def _info(node_id: str, raw: dict[bytes, bytes]) -> NodeInfo:
    d = {k.decode(): v.decode() for k, v in raw.items()}
    return NodeInfo(
        id=node_id,
        group=d.get("group", ""),
        capacity=int(d.get("capacity", "0")),
        load=int(d.get("load", "0")),
        draining=d.get("draining", "0") == "1",
        channels=tuple(c for c in d.get("channels", "").split(",") if c),
    )


class NodeDirectory:
    """Reads and writes the node adverts and drain requests."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)

    async def advertise(self, info: NodeInfo, *, ttl_seconds: float) -> None:
        """Publish (and keep alive for ``ttl_seconds``) what a node is and carries."""
        async with self._redis.pipeline(transaction=True) as pipe:  # one key: the advert
            pipe.hset(
                node_key(info.id),
                mapping={
                    "group": info.group,
                    "capacity": str(info.capacity),
                    "load": str(info.load),
                    "draining": "1" if info.draining else "0",
                    "channels": ",".join(info.channels),
                    "heartbeat": utc_now().isoformat(),
                },
            )
            pipe.pexpire(node_key(info.id), max(1, int(ttl_seconds * 1000)))
            await pipe.execute()
        await self._redis.sadd(NODES, info.id)

    async def withdraw(self, node_id: str) -> None:
        """A node stopping removes its advert (then its id from ``tc:nodes``)."""
        await self._redis.delete(node_key(node_id))
        await self._redis.srem(NODES, node_id)

    async def nodes(self) -> list[NodeInfo]:
        """Every live node, by id (ids whose advert expired are pruned)."""
        ids = sorted(m.decode() for m in await self._redis.smembers(NODES))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(node_key(node_id))
            raws = await pipe.execute()
        out, gone = [], []
        for node_id, raw in zip(ids, raws, strict=True):
            if raw:
                out.append(_info(node_id, raw))
            else:
                gone.append(node_id)
        if gone:
            await self._redis.srem(NODES, *gone)
        return out

    async def get(self, node_id: str) -> NodeInfo:
        """One live node; ``NodeNotFound`` if none advertises that id."""
        raw = await self._redis.hgetall(node_key(node_id))
        if not raw:
            raise NodeNotFound(f"no live node {node_id}", details={"node": node_id})
        return _info(node_id, raw)

    async def drain(self, node_id: str, *, resume: bool = False) -> NodeInfo:
        """Ask a live node to hand its channels over and take no more (``resume``: undo)."""
        info = await self.get(node_id)
        if resume:
            await self._redis.srem(DRAIN, node_id)
        else:
            await self._redis.sadd(DRAIN, node_id)
        await self._redis.publish(WAKE, f"drain:{node_id}")
        return info

    async def draining(self, node_id: str) -> bool:
        """True while an operator wants ``node_id`` drained."""
        return bool(await self._redis.sismember(DRAIN, node_id))

    async def wake(self, why: str) -> None:
        """Tell every node to run placement now."""
        await self._redis.publish(WAKE, why)
