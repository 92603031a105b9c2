"""Redis storage for the EPG: channels, per-channel programme indexes, the change feed.

Keys of one channel share its hash tag (``epg:{<id>}:``), so every channel script runs
on Redis Cluster; the cross-channel keys share the ``{epg}`` tag:

- ``epg:{<id>}:ch``       string  the channel's record (JSON with its version)
- ``epg:{<id>}:idx``      zset    programme id scored by start (epoch seconds)
- ``epg:{<id>}:p``        hash    programme id -> ``"start|stop|json"``
- ``epg:{<id>}:r``        hash    programme id -> rights JSON (absent = defaults)
- ``epg:{<id>}:seq``      counter the number of the channel's last change
- ``epg:{<id>}:out``      stream  the channel's changes the feed may not have yet
- ``epg:{epg}:channels``  hash    channel id -> record: the catalogue, as of the feed
- ``epg:{epg}:prog``      hash    programme id -> channel id (``|stamp`` while reserved)
- ``epg:{epg}:version``   counter the last change version
- ``epg:{epg}:changes``   stream  the feed, entry id ``<version>-0`` per change
- ``epg:{epg}:sent``      hash    channel id -> ``seq|version`` of its last change in the feed
- ``epg:{epg}:pending``   hash    channel id -> ``in-flight|stamp`` of changes under way
- ``epg:{epg}:imports``   list    the latest XMLTV imports' records (and ``:<principal>``)

Programmes never overlap within a channel, so the only earlier programme
that can reach into an interval is the one with the greatest start before
it: NowNext and Range need one reverse lookup plus one forward range.
Every change to a channel is one Lua script in its tag (``*.lua`` beside these
modules, shipped as package data) that checks everything before writing anything,
so a refused or failing write leaves the store unchanged; :mod:`.feed` runs it
between a claim and an emit in the ``{epg}`` tag and says why a crash between
them is safe. Parts: :mod:`.base` (keys, scripts), :mod:`.feed`, :mod:`.writes`,
:mod:`.reads`, :mod:`.imports`, and :mod:`.nownext` (NowNext answered from memory
while a server follows the feed).
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
from epg.store.imports import ImportLog
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


class EpgStore(ReadStore, WriteStore, ImportLog):
    """Channels, programmes and changes in Redis; every change is one atomic script in its
    channel's hash tag, then in the change feed (see :mod:`.feed`)."""
