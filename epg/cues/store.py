"""Cues in Redis, under the EPG feed's hash tag so that one script per change writes the cue
and appends the channel's change to the feed (``WatchChanges`` sends it as
``CHANGE_KIND_CUES`` with the channel): a change and its announcement never separate.

Keys per channel: ``epg:{epg}:cues:<channel>`` (hash: id -> JSON) and
``epg:{epg}:cue-ends:<channel>`` (sorted set: id -> when it ends, in ms), which is how
windows are read and old cues go; ``epg:{epg}:cue-channels`` (set) names the channels
that have any, for a list of every channel. Bounded: an insert first drops the cues that
ended more than ``keep`` ago, and a channel keeps at most ``max_cues`` (the oldest ended
ones go; when none has ended, the insert is refused). A cancellation is a compare-and-set
on the version the service read; on a lost race the service reads again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from epg.cues.domain import Cue, CueKind, CueState
from epg.cues.errors import CueChanged, CueExists, CueNotFound, TooManyCues
from epg.store.base import CHANGES, VERSION, RedisLike, text
from headend.lua import script

CUE_CHANNELS = "epg:{epg}:cue-channels"
MAX_CUES = 1000
KEEP = timedelta(days=8)
# The fields a retried insert must repeat exactly.
_CONTENT = ("k", "s", "d", "t", "e", "r", "desc")


def cues_key(channel_id: str) -> str:
    """The channel's cues: id -> JSON."""
    return f"epg:{{epg}}:cues:{channel_id}"


def ends_key(channel_id: str) -> str:
    """The channel's cue ids scored by their end (ms)."""
    return f"epg:{{epg}}:cue-ends:{channel_id}"


class CueRedis(RedisLike, Protocol):
    """The EPG store's slice of the client, and the set of channels with cues."""

    def smembers(self, name: str) -> Awaitable[Any]: ...


class CueStore:
    """Insert, change, read and list cues."""

    def __init__(
        self,
        redis: CueRedis,
        *,
        changes_maxlen: int = 100_000,
        max_cues: int = MAX_CUES,
        keep: timedelta = KEEP,
    ) -> None:
        self._redis = redis
        self._maxlen = changes_maxlen
        self._max_cues = max_cues
        self._keep = keep
        self._insert = redis.register_script(script("epg.cues", "insert"))
        self._change = redis.register_script(script("epg.cues", "change"))
        self._window = redis.register_script(script("epg.cues", "window"))

    async def insert(self, cue: Cue, *, start_given: bool, now: datetime) -> tuple[Cue, bool]:
        """Store a new cue (and its change); True when new, False for a retried insert of
        the same cue (``start_given`` False: the start was "now"), which returns the stored
        one. ``CueExists`` for another; ``TooManyCues`` when the channel is full."""
        record = encode(cue, start_given=start_given)
        reply = await self._insert(
            keys=[
                cues_key(cue.channel_id),
                ends_key(cue.channel_id),
                CUE_CHANNELS,
                VERSION,
                CHANGES,
            ],
            args=[
                cue.id,
                _json(record),
                record["fp"],
                _ms(cue.end),
                self._maxlen,
                self._max_cues,
                _ms(now),
                _ms(now - self._keep),
                cue.channel_id,
            ],
        )
        outcome = text(reply[0])
        if outcome == "exists":
            raise CueExists(f"cue {cue.id} of channel {cue.channel_id} exists with other content")
        if outcome == "full":
            raise TooManyCues(f"channel {cue.channel_id} keeps {self._max_cues} cues not ended yet")
        return decode(text(reply[1])), outcome == "new"

    async def replace(self, before: Cue, after: Cue) -> Cue:
        """Replace ``before`` by ``after`` (one version on) if the stored cue is still
        ``before``'s version; ``CueChanged`` when it changed meanwhile."""
        record = encode(after, start_given=True)
        del record["fp"]
        reply = await self._change(
            keys=[cues_key(before.channel_id), ends_key(before.channel_id), VERSION, CHANGES],
            args=[
                before.id,
                before.version,
                _json(record),
                _ms(after.end),
                self._maxlen,
                before.channel_id,
            ],
        )
        outcome = text(reply[0])
        if outcome == "missing":
            raise CueNotFound(f"channel {before.channel_id} has no cue {before.id}")
        if outcome == "conflict":
            raise CueChanged(f"cue {before.id} of channel {before.channel_id} changed meanwhile")
        return decode(text(reply[1]))

    async def get(self, channel_id: str, cue_id: str) -> Cue | None:
        """The stored cue, or None."""
        raw = await self._redis.hget(cues_key(channel_id), cue_id)
        return None if raw is None else decode(text(raw))

    async def channels(self) -> list[str]:
        """The channels that have (or had) cues."""
        return sorted(text(c) for c in await self._redis.smembers(CUE_CHANNELS))

    async def ending_after(self, channel_ids: Sequence[str], at: datetime) -> list[Cue]:
        """The cues of ``channel_ids`` that end at or after ``at`` (one script call)."""
        if not channel_ids:
            return []
        keys = [k for c in channel_ids for k in (cues_key(c), ends_key(c))]
        return [decode(text(raw)) for raw in await self._window(keys=keys, args=[_ms(at)])]


def encode(cue: Cue, *, start_given: bool) -> dict[str, Any]:
    """The stored record (times in ms); ``fp`` fingerprints what the inserter gave (a start
    of "now" as such, so a retried insert with no start matches)."""
    record: dict[str, Any] = {
        "id": cue.id,
        "ch": cue.channel_id,
        "k": cue.kind.value,
        "s": _ms(cue.start),
        "d": cue.duration_seconds,
        "t": cue.segmentation_type_id,
        "e": cue.event_id,
        "r": list(cue.blackout_regions),
        "desc": cue.description,
        "st": cue.state.value,
        "by": cue.creator,
        "at": None if cue.created is None else _ms(cue.created),
        "v": cue.version,
    }
    given = {k: record[k] for k in _CONTENT}
    if not start_given:
        given["s"] = "now"
    record["fp"] = _json(given)
    return record


def decode(raw: str) -> Cue:
    """A cue from its stored record."""
    r = json.loads(raw)
    return Cue(
        id=r["id"],
        channel_id=r["ch"],
        kind=CueKind(r["k"]),
        start=_instant(r["s"]),
        duration_seconds=float(r["d"]),
        segmentation_type_id=r["t"],
        event_id=r["e"],
        blackout_regions=tuple(r["r"]),
        description=r["desc"],
        state=CueState(r["st"]),
        creator=r["by"],
        created=None if r["at"] is None else _instant(r["at"]),
        version=r["v"],
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
