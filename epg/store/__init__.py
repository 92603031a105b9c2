"""Redis storage for the EPG: channels, per-channel programme indexes, the change stream.

Keys (all under ``epg:``):

- ``epg:channels``        hash  channel id -> channel JSON (with its version)
- ``epg:ch:{id}:idx``     zset  programme id scored by start (epoch seconds)
- ``epg:ch:{id}:p``       hash  programme id -> ``"start|stop|json"``
- ``epg:ch:{id}:r``       hash  programme id -> rights JSON (absent = defaults)
- ``epg:prog``            hash  programme id -> channel id
- ``epg:version``         counter, the last change version
- ``epg:changes``         stream, entry id ``<version>-0`` per change

Programmes never overlap within a channel, so the only earlier programme
that can reach into an interval is the one with the greatest start before
it: NowNext and Range need one reverse lookup plus one forward range.
Every write runs as one Lua script (``*.lua`` beside these modules, shipped
as package data) that checks everything before writing anything, so a
refused or failing write leaves the store unchanged. Parts: :mod:`.base`
(keys, scripts), :mod:`.writes`, :mod:`.reads`.
"""

from __future__ import annotations

from epg.store.base import (
    CHANGES,
    CHANNELS,
    KEEP_RIGHTS,
    PROGRAMMES,
    VERSION,
    RedisLike,
    ScriptLike,
)
from epg.store.reads import ReadStore
from epg.store.writes import WriteStore

__all__ = [
    "CHANGES",
    "CHANNELS",
    "KEEP_RIGHTS",
    "PROGRAMMES",
    "VERSION",
    "EpgStore",
    "RedisLike",
    "ScriptLike",
]


class EpgStore(ReadStore, WriteStore):
    """Channels, programmes and changes in Redis; every write is one atomic script."""
