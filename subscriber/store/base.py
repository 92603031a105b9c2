"""The store's plumbing: Redis errors, the Lua scripts, guarded writes and lookup coalescing."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.lua import script
from headend.redisconn import ON_MASTER, Durability
from subscriber.errors import StoreUnavailable
from subscriber.store.codec import audit_key, ms, text

# The Lua scripts, shipped as package data beside this module.
SCRIPTS = ("guarded", "load_playback", "authorize", "import", "start_lease", "touch_lease")
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K")
R = TypeVar("R")


def redis_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn a lost Redis connection into ``StoreUnavailable`` (UNAVAILABLE: retry later)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as err:
            raise StoreUnavailable("the subscriber store (Redis) is unavailable") from err

    return wrapper


@dataclass(frozen=True, slots=True)
class Audit:
    """Who made a change and through which RPC (the rest of an audit entry is the change)."""

    principal: str
    rpc: str


@dataclass
class Tx:
    """Guards and writes for the guarded-write script; guard labels say which one failed."""

    keys: list[str] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    writes: list[list[Any]] = field(default_factory=list)

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 1

    def hfield(self, key: str, name: str, expected: str, label: str) -> None:
        """Require hash field ``name`` to equal ``expected`` ('' = absent)."""
        self.guards.append(["h", self._index(key), name, expected])
        self.labels.append(label)

    def value(self, key: str, expected: str, label: str) -> None:
        """Require string ``key`` to equal ``expected`` ('' = absent)."""
        self.guards.append(["g", self._index(key), "", expected])
        self.labels.append(label)

    def write(self, command: str, key: str, *args: str | int) -> None:
        """Queue one write command on ``key``."""
        self.writes.append([command, self._index(key), *(str(a) for a in args)])


class Coalescer(Generic[K, R]):
    """Coalesces concurrent lookups: one script call in flight at a time carries every
    lookup that arrived meanwhile, so a busy server makes fewer, larger round trips."""

    def __init__(self, run: Callable[[list[K]], Awaitable[list[R]]]) -> None:
        self._run = run
        self._waiting: list[tuple[K, asyncio.Future[R]]] = []
        self._inflight: asyncio.Task[None] | None = None

    async def __call__(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._waiting.append((key, waiter))
        if self._inflight is None and len(self._waiting) == 1:
            loop.call_soon(self._dispatch)
        return await waiter

    def _dispatch(self) -> None:
        if self._inflight is not None or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        self._inflight = asyncio.get_running_loop().create_task(self._serve(batch))
        self._inflight.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        self._dispatch()  # lookups that queued up meanwhile

    async def _serve(self, batch: list[tuple[K, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._run([key for key, _ in batch])
            except _UNREACHABLE as err:
                raise StoreUnavailable("the subscriber store (Redis) is unavailable") from err
        except Exception as err:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(err)
            return
        for (_, waiter), result in zip(batch, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)


class StoreBase:
    """What every part of the store shares: the client, the scripts and guarded writes."""

    def __init__(
        self, redis: Redis, *, audit_maxlen: int = 1_000_000, durability: Durability = ON_MASTER
    ) -> None:
        # redis-py types replies as ``bytes | str`` (decode_responses); ours are always bytes.
        self._redis: Any = redis
        self._audit_maxlen = audit_maxlen
        # Provisioning writes (guarded writes, imports) are acknowledged only once this durable.
        self._durability = durability
        self._scripts = {
            name: redis.register_script(script("subscriber.store", name)) for name in SCRIPTS
        }

    async def _script(self, name: str, *, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def _durable_script(self, name: str, *, keys: list[str], args: list[Any]) -> Any:
        """A provisioning write: :meth:`_script`, acknowledged as ``durability`` says."""
        run = self._scripts[name]
        return await self._durability.write(
            self._redis, lambda client: run(keys=keys, args=args, client=client)
        )

    async def _run(self, tx: Tx) -> tuple[str, str] | None:
        """Run guarded writes; returns (failed guard label, current value) or None."""
        spec = json.dumps({"g": tx.guards, "w": tx.writes})
        index, current = await self._durable_script("guarded", keys=tx.keys, args=[spec])
        if int(index) == 0:
            return None
        return tx.labels[int(index) - 1], text(current)

    def _audit(
        self,
        tx: Tx,
        carrier: str,
        audit: Audit,
        subject: str,
        before: str,
        after: str,
        now: datetime,
    ) -> None:
        tx.write(
            "XADD", audit_key(carrier), "MAXLEN", "~", self._audit_maxlen, "*",
            "p", audit.principal, "r", audit.rpc, "t", ms(now), "s", subject,
            "b", before, "a", after,
        )  # fmt: skip
