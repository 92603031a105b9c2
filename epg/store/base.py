"""What every part of the EPG store shares: key names, the Lua scripts, the client slice."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol

from epg.domain import Channel, Programme
from epg.store.nownext import NOWNEXT_CACHE_CHANNELS, NowNextCache
from headend.lua import script
from headend.redisconn import ON_MASTER, Durability

# The cross-channel keys share one hash tag of their own (one slot on a cluster).
CHANNELS = "epg:{epg}:channels"
PROGRAMMES = "epg:{epg}:prog"
VERSION = "epg:{epg}:version"
CHANGES = "epg:{epg}:changes"
SENT = "epg:{epg}:sent"
PENDING = "epg:{epg}:pending"
KEEP_RIGHTS = ""  # a write that leaves stored rights alone (XMLTV has no rights)
DECODED_MAX = 50_000  # memoised decodes; cleared wholesale when full
# Channel scripts start with the shared helpers of ``common.lua``.
_WITH_COMMON = frozenset({"write", "delete", "channel", "outbox"})


def record_key(ch: str) -> str:
    """The channel's record (JSON with its version); the source of truth for the channel."""
    return f"epg:{{{ch}}}:ch"


def idx_key(ch: str) -> str:
    """The channel's programme ids scored by start."""
    return f"epg:{{{ch}}}:idx"


def data_key(ch: str) -> str:
    """The channel's programmes: id -> ``start|stop|json``."""
    return f"epg:{{{ch}}}:p"


def rights_key(ch: str) -> str:
    """The channel's programme rights: id -> JSON (absent = defaults)."""
    return f"epg:{{{ch}}}:r"


def channel_keys(ch: str) -> list[str]:
    """The KEYS of the channel scripts for channel ``ch`` (one hash tag: the channel id)."""
    return [
        record_key(ch),
        idx_key(ch),
        data_key(ch),
        rights_key(ch),
        f"epg:{{{ch}}}:seq",  # the number of the channel's last change
        f"epg:{{{ch}}}:out",  # stream: the channel's changes the feed may not have yet
    ]


CLAIM_KEYS = [PROGRAMMES, PENDING, SENT, VERSION]
EMIT_KEYS = [VERSION, CHANGES, CHANNELS, PROGRAMMES, SENT, PENDING]


@functools.cache
def lua(name: str) -> str:
    """The source of ``epg/store/<name>.lua`` (with the shared helpers where it needs them)."""
    source = script("epg.store", name)
    return f"{script('epg.store', 'common')}\n{source}" if name in _WITH_COMMON else source


class ScriptLike(Protocol):
    """A registered Lua script."""

    def __call__(
        self, keys: Sequence[str] = ..., args: Sequence[Any] = ..., client: Any = ...
    ) -> Awaitable[Any]: ...


class RedisLike(Protocol):
    """The slice of ``redis.asyncio.Redis`` (or ``RedisCluster``) the EPG store uses."""

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
    def lrange(self, name: str, start: int, end: int) -> Awaitable[Any]: ...
    def pipeline(self, transaction: bool = ...) -> Any: ...


def text(value: Any) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Iterable[Any]) -> tuple[str, ...]:
    """Redis reply values as a tuple of text."""
    return tuple(text(v) for v in values)


class StoreBase:
    """The client, the registered scripts, the decode memos and the NowNext cache every part
    uses (the cache answers only while something runs its follower: a server does)."""

    def __init__(
        self,
        redis: RedisLike,
        *,
        changes_maxlen: int = 100_000,
        durability: Durability = ON_MASTER,
        nownext_channels: int = NOWNEXT_CACHE_CHANNELS,
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
        self._guide_status = redis.register_script(lua("guide_status"))
        self._claim = redis.register_script(lua("claim"))
        self._emit = redis.register_script(lua("emit"))
        self._release = redis.register_script(lua("release"))
        self._outbox = redis.register_script(lua("outbox"))
        self._stale = redis.register_script(lua("stale"))
        self._decoded: dict[tuple[str, Any, Any, Any], Programme] = {}
        self._channels: dict[Any, Channel] = {}
        self._settled_at = 0.0  # when this store last forwarded stalled changes
        self.nownext = NowNextCache(nownext_channels)
