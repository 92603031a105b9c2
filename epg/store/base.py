"""What every part of the EPG store shares: key names, the Lua scripts, the client slice."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol

from epg.domain import Channel, Programme
from headend.lua import script
from headend.redisconn import ON_MASTER, Durability

CHANNELS = "epg:channels"
PROGRAMMES = "epg:prog"
VERSION = "epg:version"
CHANGES = "epg:changes"
KEEP_RIGHTS = ""  # a write that leaves stored rights alone (XMLTV has no rights)
DECODED_MAX = 50_000  # memoised decodes; cleared wholesale when full
# Write scripts start with the shared helpers of ``common.lua``.
_WITH_COMMON = frozenset({"write", "delete", "channel"})


def idx_key(ch: str) -> str:
    """The channel's programme ids scored by start."""
    return f"epg:ch:{ch}:idx"


def data_key(ch: str) -> str:
    """The channel's programmes: id -> ``start|stop|json``."""
    return f"epg:ch:{ch}:p"


def rights_key(ch: str) -> str:
    """The channel's programme rights: id -> JSON (absent = defaults)."""
    return f"epg:ch:{ch}:r"


def channel_keys(ch: str) -> list[str]:
    """The KEYS of the write scripts for channel ``ch``."""
    return [CHANNELS, idx_key(ch), data_key(ch), rights_key(ch), PROGRAMMES, VERSION, CHANGES]


@functools.cache
def lua(name: str) -> str:
    """The source of ``epg/store/<name>.lua`` (with the shared helpers where it needs them)."""
    source = script("epg.store", name)
    return f"{script('epg.store', 'common')}\n{source}" if name in _WITH_COMMON else source


class ScriptLike(Protocol):
    """A registered Lua script."""

    def __call__(self, keys: Sequence[str] = ..., args: Sequence[Any] = ...) -> Awaitable[Any]: ...


class RedisLike(Protocol):
    """The slice of ``redis.asyncio.Redis`` the EPG store uses."""

    def register_script(self, script: str) -> Any: ...
    def hget(self, name: str, key: str) -> Awaitable[Any]: ...
    def hgetall(self, name: str) -> Awaitable[Any]: ...
    def get(self, name: str) -> Awaitable[Any]: ...
    def xread(
        self, streams: Any, count: int | None = ..., block: int | None = ...
    ) -> Awaitable[Any]: ...
    def xrange(
        self, name: str, min: str = ..., max: str = ..., count: int | None = ...
    ) -> Awaitable[Any]: ...


def text(value: Any) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Iterable[Any]) -> tuple[str, ...]:
    """Redis reply values as a tuple of text."""
    return tuple(text(v) for v in values)


class StoreBase:
    """The client, the registered scripts and the decode memos every part uses."""

    def __init__(
        self,
        redis: RedisLike,
        *,
        changes_maxlen: int = 100_000,
        durability: Durability = ON_MASTER,
    ) -> None:
        self._redis = redis
        self._maxlen = changes_maxlen
        # Schedule writes and deletes are acknowledged only once they are this durable.
        self._durability = durability
        self._write = redis.register_script(lua("write"))
        self._delete = redis.register_script(lua("delete"))
        self._channel = redis.register_script(lua("channel"))
        self._now_next = redis.register_script(lua("now_next"))
        self._range = redis.register_script(lua("range"))
        self._decoded: dict[tuple[str, Any, Any, Any], Programme] = {}
        self._channels: dict[Any, Channel] = {}
