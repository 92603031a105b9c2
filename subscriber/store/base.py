"""The store's plumbing: Redis errors, the Lua scripts, guarded writes, the MAC index
steps around them and lookup coalescing.

A guarded write runs in one carrier's slot (every key it names carries that carrier's
hash tag). A box binding also changes the platform-wide MAC index, a key of its own,
so :meth:`StoreBase._run` orders the steps: claim the MAC (a pending entry that
expires), write the carrier's keys, then keep the claim; an unbinding writes the
carrier's keys, then drops the entry. A crash between steps leaves a pending claim
that expires by itself, a bound box whose entry expired (it plays nowhere; retrying
the bind repairs it), or an entry naming no bound box, which readers ignore and the
next bind of that MAC replaces.

Within an idempotent request (:meth:`StoreBase.applying`) each guarded write also marks
itself applied in the request's claim, in the same script, when the claim shares its
slot (a carrier's own requests): the claim then tells whether the change reached the
master that has it, which is what recording the response needs after a failover
(``records.py``), and a guarded write sent again after a lost reply is not run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.lua import by_slot, run_many, script
from headend.redisconn import ON_MASTER, Durability
from subscriber.errors import StoreUnavailable
from subscriber.store.codec import audit_key, dev_key, mac_key, ms, parse_holder, text

# The Lua scripts, shipped as package data beside this module.
SCRIPTS = (
    "guarded",
    "mac_index",
    "load_playback",
    "authorize",
    "import",
    "start_lease",
    "touch_lease",
    "idem_finish",
    "idem_release",
    "record_errors",
    "recount",
)
# How long a MAC claim waits for its binding to be written before it lapses.
CLAIM_MS = 60_000
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
    """Guards and writes for the guarded-write script (keys of one hash tag), and the MAC
    index steps around them; guard labels say which one failed."""

    keys: list[str] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    writes: list[list[Any]] = field(default_factory=list)
    # MAC index steps around the writes: (mac, new entry) and (mac, carrier, subscriber).
    claims: list[tuple[str, str]] = field(default_factory=list)
    releases: list[tuple[str, str, str]] = field(default_factory=list)

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 1

    def hfield(self, key: str, name: str, expected: str, label: str) -> None:
        """Require hash field ``name`` to equal ``expected`` ('' = absent)."""
        self.guards.append([self._index(key), name, expected])
        self.labels.append(label)

    def hlen(self, key: str, expected: int, label: str) -> None:
        """Require hash ``key`` to hold exactly ``expected`` fields (a bound on a
        collection: a concurrent add changes the count, so the guard fails)."""
        self.guards.append([self._index(key), "", str(expected), "len"])
        self.labels.append(label)

    def write(self, command: str, key: str, *args: str | int) -> None:
        """Queue one write command on ``key``."""
        self.writes.append([command, self._index(key), *(str(a) for a in args)])

    def claim(self, mac: str, entry: str) -> None:
        """Bind ``mac``: claim its index entry before the writes, keep it after them."""
        self.claims.append((mac, entry))

    def release(self, mac: str, carrier: str, subscriber_id: str) -> None:
        """Unbind ``mac``: drop its index entry (if it names this holder) after the writes."""
        self.releases.append((mac, carrier, subscriber_id))


@dataclass(slots=True)
class Claim:
    """An idempotent request's hold on its key: the record's name, this attempt's token,
    and how many of its guarded writes were marked applied in the record."""

    name: str
    token: str
    steps: int = 0


_APPLYING: ContextVar[Claim | None] = ContextVar("subscriber_store_applying", default=None)


class Coalescer(Generic[K, R]):
    """Coalesces concurrent lookups: one batch in flight at a time carries every lookup
    that arrived meanwhile, so a busy server makes fewer, larger round trips."""

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

    async def _many(
        self, name: str, calls: list[tuple[list[str], list[Any]]], *, durable: bool = False
    ) -> list[Any]:
        """One call of script ``name`` per (keys, args), in one round trip
        (:func:`headend.lua.run_many`). Replies in order."""
        run = self._scripts[name]
        if durable:
            return await self._durability.write(
                self._redis, lambda client: run_many(client, run, calls)
            )
        return await run_many(self._redis, run, calls)

    def _slot_groups(self, keys: list[str]) -> list[list[int]]:
        """Positions of ``keys`` grouped so one command may take each group (``by_slot``)."""
        return by_slot(self._redis, range(len(keys)), keys.__getitem__)

    async def _get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of ``keys`` (any slots) in one round trip: one MGET on one Redis,
        a pipeline of GETs that redis-py splits per node on a cluster."""
        if not isinstance(self._redis, RedisCluster):
            return list(await self._redis.mget(keys))
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            return list(await pipe.execute())

    async def _index(self, steps: list[tuple[str, str, str, str]]) -> list[tuple[bool, bytes]]:
        """(op, mac, entry, stale) steps on MAC index entries (``mac_index.lua``), as
        durable as provisioning writes; (done, entry found) for each."""
        if not steps:
            return []
        keys = [mac_key(mac) for _, mac, _, _ in steps]
        groups = self._slot_groups(keys)
        calls: list[tuple[list[str], list[Any]]] = [
            (
                [keys[i] for i in group],
                [CLAIM_MS, json.dumps([[steps[i][0], steps[i][2], steps[i][3]] for i in group])],
            )
            for group in groups
        ]
        found: list[tuple[bool, bytes]] = [(False, b"")] * len(steps)
        replies = await self._many("mac_index", calls, durable=True)
        for group, reply in zip(groups, replies, strict=True):
            for i, result in zip(group, reply, strict=True):
                found[i] = (True, b"") if result == 1 else (False, result)
        return found

    async def _run(self, tx: Tx) -> tuple[str, str] | None:
        """Run guarded writes with their MAC index steps (see the module docstring);
        returns (failed guard label, current value) or None. A MAC held elsewhere fails
        as label ``mac``."""
        claimed: list[tuple[str, str]] = []
        for mac, entry in tx.claims:
            if not await self._claim(mac, entry):
                await self._index([("drop", m, e, "") for m, e in claimed])
                return "mac", ""
            claimed.append((mac, entry))
        steps = [("keep", mac, entry, "") for mac, entry in claimed]
        for mac, carrier, subscriber_id in tx.releases:
            raw = await self._redis.get(mac_key(mac))
            if raw is not None and parse_holder(raw) == (carrier, subscriber_id):
                steps.append(("drop", mac, raw.decode(), ""))
        claim = _APPLYING.get()
        keys, spec = self._marked(tx, claim)
        index, current = await self._durable_script("guarded", keys=keys, args=[json.dumps(spec)])
        if int(index) != 0:
            await self._index([("drop", m, e, "") for m, e in claimed])
            return tx.labels[int(index) - 1], text(current)
        if "i" in spec and claim is not None:
            claim.steps += 1  # marked applied in the claim
        await self._index(steps)
        return None

    @staticmethod
    @contextlib.contextmanager
    def applying(claim: Claim) -> Iterator[None]:
        """Within it, guarded writes mark themselves applied in ``claim`` (see the module)."""
        token = _APPLYING.set(claim)
        try:
            yield
        finally:
            _APPLYING.reset(token)

    @staticmethod
    def _marked(tx: Tx, claim: Claim | None) -> tuple[list[str], dict[str, Any]]:
        """The guarded script's keys and spec, with the applied mark when it can be set
        (``claim`` in the writes' slot); the mark is the claim's next step."""
        spec: dict[str, Any] = {"g": tx.guards, "w": tx.writes}
        if claim is None or key_slot(claim.name.encode()) != key_slot(tx.keys[0].encode()):
            return tx.keys, spec
        spec["i"] = [len(tx.keys) + 1, claim.token, claim.steps + 1]
        return [*tx.keys, claim.name], spec

    async def _claim(self, mac: str, entry: str) -> bool:
        """Claim ``mac``'s index entry; an entry naming no bound box is replaced."""
        [(won, current)] = await self._index([("claim", mac, entry, "")])
        if not won and await self._left_over(mac, current):
            [(won, _)] = await self._index([("claim", mac, entry, current.decode())])
        return won

    async def _left_over(self, mac: str, entry: bytes) -> bool:
        """True when index ``entry`` names a holder whose box ``mac`` is not bound to it
        (an unbinding stopped between its steps, or a claim still pending)."""
        carrier, subscriber_id = parse_holder(entry)
        status, holder = await self._redis.hmget(dev_key(carrier, mac), "st", "sub")
        return status in (None, b"unbound") or holder != subscriber_id.encode()

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
