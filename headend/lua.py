"""Lua scripts for Redis, kept as ``.lua`` files shipped as package data, and how a store
runs one script over many key groups in one round trip, on one Redis or a Cluster."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

T = TypeVar("T")
Call = tuple[Sequence[str], Sequence[Any]]  # a script call's KEYS and ARGV


@functools.cache
def script(package: str, name: str) -> str:
    """The source of ``<package>/<name>.lua`` (read once per process)."""
    return resources.files(package).joinpath(f"{name}.lua").read_text("utf-8")


def by_slot(redis: Any, items: Sequence[T], key: Callable[[T], str]) -> list[list[T]]:
    """``items`` grouped so that one script call may take each group: one group on one
    Redis; on a Cluster one per hash slot of ``key(item)``. Groups keep the items' order."""
    if not isinstance(redis, RedisCluster):
        return [list(items)] if items else []
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key_slot(key(item).encode()), []).append(item)
    return list(groups.values())


async def run_many(redis: Any, run: Any, calls: Sequence[Call]) -> list[Any]:
    """One call of the registered script ``run`` per (keys, args), in one round trip: a
    pipeline of ``EVALSHA`` (which a Cluster client splits per node). A server that has
    not seen the script yet (new, restarted, failed over) ran none of its calls: the
    script is loaded and those run again. Replies in the calls' order; the first error
    is raised."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await run(keys=list(keys), args=list(args), client=redis)]
    replies = await _pipelined(redis, run.sha, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await redis.script_load(run.script)
        again = await _pipelined(redis, run.sha, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipelined(redis: Any, sha: str, calls: Sequence[Call]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            # Not pipe.evalsha: redis-py refuses it in a Cluster pipeline; the command it routes.
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
