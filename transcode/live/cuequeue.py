"""A live channel's queue of scheduled SCTE-35 signals, as the node publishing it uses it.

The farm's control server fills the queue (``transcode.cueq``: the signals of each cue
and programme boundary, kept in step with the EPG); the node publishing the channel reads
the ones due at a segment's start (:class:`NodeQueue`, :func:`due`), puts them on that
segment in every rung (``SpliceBook.place``: the pairing a source's signals get) and
removes them in the channel store's step that keeps the segment's cues, fenced by its
lease (:func:`placement_writes`), so two nodes never place the same signal.

Keys, under the channel's hash tag (``transcode.archive.channel_tag``, so the queue
joins the node's fenced writes): ``tc:cueq:{cctv1}``, a sorted set scored by due time
whose member is the whole signal (one read, no second lookup), and
``tc:cueplaced:{cctv1}``, the ids placed scored by due time, forgotten
:data:`PLACED_FOR` after. Both lapse when nobody syncs or places for :data:`IDLE_SECONDS`.

Kept here, not in ``transcode.cueq``, because the live package imports it (the
publisher reads the queue) and ``transcode.cueq`` imports the live package (the encoder,
the tap's classification).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from transcode.archive import RedisWrite, channel_tag
from transcode.live.metrics import LiveMetrics
from transcode.live.scte35 import Splice

log = logging.getLogger(__name__)

# The most signals one segment takes from the queue.
MAX_DUE = 16
# How long a placed id is remembered (a sync's ``late`` must be shorter).
PLACED_FOR = timedelta(days=1)
# Both keys lapse this long after the last sync or placement.
IDLE_SECONDS = 2 * 86400
_MICROS = 1_000_000
# The ids a node remembers placing while their removal waits on the channel's store.
_RECENT = 256


@dataclass(frozen=True, slots=True)
class QueuedSignal:
    """One signal waiting in a channel's queue; placed on the first segment starting at or
    after ``at``."""

    id: str  # unique in the channel's queue: "c1/out", "c1/in@1764540000000", "prog-<pid>/start"
    at: datetime
    kind: Literal["out", "in", "cmd"]
    key: str  # pairs an out with its return ("splice-0000BEEF", "seg-0000002A")
    section: bytes  # the splice_info_section
    duration: float | None = None  # seconds announced

    def splice(self) -> Splice:
        """The signal as the live side's splice book places it (due now: no PTS)."""
        return Splice(self.kind, self.key, self.section, None, self.duration)


def queue_key(channel: str) -> str:
    """The sorted set of a channel's signals waiting, by due time."""
    return f"tc:cueq:{channel_tag(channel)}"


def placed_key(channel: str) -> str:
    """The sorted set of the ids of a channel's signals placed, by due time."""
    return f"tc:cueplaced:{channel_tag(channel)}"


def _micros(at: datetime) -> int:
    return round(at.timestamp() * _MICROS)


def member(signal: QueuedSignal) -> str:
    """The queue member holding ``signal`` whole (its id first, read by the sync script)."""
    s = signal
    return json.dumps([s.id, _micros(s.at), s.kind, s.key, s.duration, s.section.hex()],
                      separators=(",", ":"))  # fmt: skip


def parse_member(raw: bytes | str) -> QueuedSignal:
    """The signal a member holds; ``ValueError`` for one that is not a signal's."""
    try:
        ident, micros, kind, key, duration, section = json.loads(raw)
        if kind not in ("out", "in", "cmd") or not isinstance(ident, str):
            raise ValueError(f"not a signal: {kind!r}")
        return QueuedSignal(
            ident,
            datetime.fromtimestamp(micros / _MICROS, UTC),
            kind,
            str(key),
            bytes.fromhex(section),
            None if duration is None else float(duration),
        )
    except (TypeError, OverflowError, OSError) as err:
        raise ValueError(f"not a signal: {err}") from err


def score(at: datetime) -> str:
    """A due time as the queue's score (epoch seconds, to the microsecond)."""
    return repr(_micros(at) / _MICROS)


async def due(redis: aioredis.Redis, channel: str, boundary: datetime) -> list[QueuedSignal]:
    """The signals due at or before ``boundary`` (a segment's start): at most ``MAX_DUE``,
    oldest first; a member that is not a signal's is skipped."""
    client: Any = redis
    raw = await client.zrangebyscore(queue_key(channel), "-inf", score(boundary),
                                     start=0, num=MAX_DUE)  # fmt: skip
    out = []
    for m in raw:
        try:
            out.append(parse_member(m))
        except ValueError:
            continue
    return out


def placement_writes(channel: str, signals: Sequence[QueuedSignal]) -> list[RedisWrite]:
    """The writes recording ``signals`` placed: out of the queue, their ids remembered (the
    ones due over ``PLACED_FOR`` before the latest forgotten); made with the segment's cues
    through the channel store's writer, fenced by the node's lease."""
    if not signals:
        return []
    queue, placed = queue_key(channel), placed_key(channel)
    latest = max(s.at for s in signals)
    ttl = str(IDLE_SECONDS * 1000)
    return [
        RedisWrite("ZREM", queue, tuple(member(s) for s in signals)),
        RedisWrite("ZADD", placed, tuple(x for s in signals for x in (score(s.at), s.id))),
        RedisWrite("ZREMRANGEBYSCORE", placed, ("-inf", f"({score(latest - PLACED_FOR)}")),
        RedisWrite("PEXPIRE", queue, (ttl,)),
        RedisWrite("PEXPIRE", placed, (ttl,)),
    ]


class NodeQueue:
    """One channel's queue as the node publishing it reads it: the signals due at a
    segment's start, less the ones it placed whose removal its store has not written yet.

    A Redis that fails or does not answer within ``timeout_seconds`` gives no signal (the
    segment is published without), logged once per outage, and is not asked again for as
    long (a later segment tries): a queue never holds a channel up for long."""

    def __init__(
        self, redis: aioredis.Redis, channel: str, *, timeout_seconds: float,
        metrics: LiveMetrics | None = None,
    ) -> None:  # fmt: skip
        self._redis = redis
        self.channel = channel
        self._timeout = timeout_seconds
        self._metrics = metrics
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.failing = False
        self._retry_at = 0.0  # time.monotonic()

    async def due(self, boundary: datetime) -> list[QueuedSignal]:
        """The signals to place on the segment starting at ``boundary``."""
        if self.failing and time.monotonic() < self._retry_at:
            return []
        try:
            async with asyncio.timeout(self._timeout):
                signals = await due(self._redis, self.channel, boundary)
        except (RedisError, OSError, TimeoutError) as err:
            if not self.failing:
                log.warning("cue queue unreadable: segments go out without its signals",
                            extra={"channel": self.channel, "error": repr(err)})  # fmt: skip
            self.failing = True
            self._retry_at = time.monotonic() + self._timeout
            return []
        self.failing = False
        return [s for s in signals if s.id not in self._recent]

    def placed(self, signals: Sequence[QueuedSignal]) -> list[RedisWrite]:
        """Remember ``signals`` placed (and count them); the writes removing them from the
        queue (:func:`placement_writes`)."""
        for s in signals:
            self._recent[s.id] = None
            if self._metrics is not None:
                self._metrics.cue_signals.labels(self.channel, s.kind).inc()
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        return placement_writes(self.channel, signals)
