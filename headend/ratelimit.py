"""A rate limiter and login lockout kept in Redis, so every replica enforces the same limits.

``hit(key)`` counts an attempt in a sliding window of ``window_seconds`` and
refuses it past ``limit`` (refused attempts are not counted, so
``retry_after_seconds`` is exact). With ``lockout_after``, ``fail(key)``
counts failures in the same window and, at the ``lockout_after``-th, locks
the key for ``lockout_seconds``: ``check``, ``hit`` and ``fail`` then refuse
it until the lock ends or an operator clears it (``clear``, or
``headend ratelimit clear <name> <key>``). ``succeed(key)`` forgets failures.

Each call is one Lua script (``ratelimit.lua``) on three keys
``rl:{<name>:<key>}:hits|fails|lock`` sharing one hash tag, so it is atomic
and runs on Redis Cluster. Time is Redis's own (``TIME``) unless a clock is
given, so replicas with skewed clocks agree. When Redis cannot be reached,
every call raises :class:`RateLimitUnavailable` (``Unavailable``) once the
client's own retry policy gives up: the caller decides whether to fail open
or closed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.errors import HeadendError, InvalidArgument, Unavailable
from headend.lua import script

Clock = Callable[[], float]
KEY_MAX_CHARS = 512
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_PREFIX = "rl:"
_LOCK_SUFFIX = ":lock"
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RateLimitError(HeadendError):
    """Raised for any rate-limiter failure; never raised directly."""


class InvalidLimit(RateLimitError, InvalidArgument):
    """Raised when a limiter's settings, name or key are malformed or out of range."""


class RateLimitUnavailable(RateLimitError, Unavailable):
    """Raised when Redis cannot be reached; the caller decides to fail open or closed."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one key: may it go ahead, when to retry, how much is left.

    ``remaining`` counts attempts left in the window (``hit``, ``check``) or
    failures left before the lockout (``fail``); ``locked`` says a lockout
    is what refused it.
    """

    allowed: bool
    retry_after_seconds: float
    remaining: int
    locked: bool = False


@dataclass(frozen=True, slots=True)
class Lockout:
    """A locked key and how long until its lock ends."""

    name: str
    key: str
    retry_after_seconds: float


def validate_name(name: str) -> str:
    """A limiter name: lower-case ``[a-z0-9_-]``, at most 63 characters."""
    if not _NAME.fullmatch(name):
        raise InvalidLimit("name", "must match [a-z0-9][a-z0-9_-]{0,62}")
    return name


def keys_for(name: str, key: str) -> tuple[str, str, str]:
    """The hits, fails and lock keys of ``key``: one hash tag; braces and globs escaped."""
    validate_name(name)
    if not 0 < len(key) <= KEY_MAX_CHARS:
        raise InvalidLimit("key", f"must be 1-{KEY_MAX_CHARS} characters")
    tag = f"{_PREFIX}{{{name}:{quote(key, safe=':@')}}}"
    return f"{tag}:hits", f"{tag}:fails", f"{tag}{_LOCK_SUFFIX}"


async def _now_seconds(redis: Redis, clock: Clock | None) -> float:
    if clock is not None:
        return clock()
    seconds, micros = await redis.time()
    return seconds + micros / 1e6


async def lockouts(
    redis: Redis, *, name: str | None = None, clock: Clock | None = None
) -> list[Lockout]:
    """Every locked key (of limiter ``name``, or of all), soonest unlock first."""
    pattern = f"{_PREFIX}{{{validate_name(name)}:*}}{_LOCK_SUFFIX}" if name else None
    try:
        now_ms = await _now_seconds(redis, clock) * 1000
        found = []
        async for raw in redis.scan_iter(match=pattern or f"{_PREFIX}{{*}}{_LOCK_SUFFIX}"):
            lock = raw.decode() if isinstance(raw, bytes) else raw
            until = await redis.get(lock)
            if until is None or float(until) <= now_ms:
                continue
            tag = lock[len(_PREFIX) + 1 : -len(_LOCK_SUFFIX) - 1]
            limiter, _, key = tag.partition(":")
            found.append(Lockout(limiter, unquote(key), (float(until) - now_ms) / 1000))
    except _UNREACHABLE as err:
        raise RateLimitUnavailable("the rate limiter's Redis is unavailable") from err
    return sorted(found, key=lambda lock: (lock.retry_after_seconds, lock.name, lock.key))


async def clear_lockout(redis: Redis, name: str, key: str) -> bool:
    """The operator's unlock of limiter ``name``'s ``key``; True if it was locked."""
    return await RateLimiter(redis, name=name, limit=1, window_seconds=1).clear(key)


class RateLimiter:
    """Attempts per key in a sliding window, and an optional lockout after failures."""

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        limit: int,
        window_seconds: float,
        lockout_after: int | None = None,
        lockout_seconds: float = 900.0,
        clock: Clock | None = None,
    ) -> None:
        self.name = validate_name(name)
        if limit < 1:
            raise InvalidLimit("limit", "must be at least 1")
        if not 0.001 <= window_seconds <= 30 * 86_400:
            raise InvalidLimit("window_seconds", "must be between 0.001 and 2592000")
        if lockout_after is not None and lockout_after < 1:
            raise InvalidLimit("lockout_after", "must be at least 1 (or None: no lockout)")
        if not 0.001 <= lockout_seconds <= 30 * 86_400:
            raise InvalidLimit("lockout_seconds", "must be between 0.001 and 2592000")
        self.limit = limit
        self.window_seconds = window_seconds
        self.lockout_after = lockout_after
        self.lockout_seconds = lockout_seconds
        self._redis = redis
        self._clock = clock
        self._script = redis.register_script(script("headend", "ratelimit"))

    def keys(self, key: str) -> tuple[str, str, str]:
        """The Redis keys one call on ``key`` touches (they share one hash tag)."""
        return keys_for(self.name, key)

    async def _call(self, op: str, key: str) -> Decision:
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        args: list[Any] = [
            op,
            now,
            max(1, int(self.window_seconds * 1000)),
            self.limit,
            self.lockout_after or 0,
            max(1, int(self.lockout_seconds * 1000)),
            secrets.token_hex(8),
        ]
        try:
            allowed, retry_ms, remaining, locked = await self._script(
                keys=list(self.keys(key)), args=args
            )
        except _UNREACHABLE as err:
            raise RateLimitUnavailable("the rate limiter's Redis is unavailable") from err
        return Decision(bool(allowed), int(retry_ms) / 1000, int(remaining), bool(locked))

    async def hit(self, key: str) -> Decision:
        """Count one attempt; refused past ``limit`` in the window or while locked."""
        return await self._call("hit", key)

    async def check(self, key: str) -> Decision:
        """Would an attempt go ahead now? Counts nothing; says whether the key is locked."""
        return await self._call("check", key)

    async def fail(self, key: str) -> Decision:
        """Count one failure; the ``lockout_after``-th in the window locks the key."""
        if self.lockout_after is None:
            raise InvalidLimit("lockout_after", f"limiter {self.name} has no lockout")
        return await self._call("fail", key)

    async def succeed(self, key: str) -> None:
        """Forget the key's failures (a lock stays until it ends or is cleared)."""
        await self._call("succeed", key)

    async def clear(self, key: str) -> bool:
        """The operator's unlock: forget lock, failures and attempts; True if it was locked."""
        return (await self._call("clear", key)).locked

    async def locked(self) -> list[Lockout]:
        """This limiter's locked keys with the time left, soonest unlock first."""
        return await lockouts(self._redis, name=self.name, clock=self._clock)
