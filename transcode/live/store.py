"""What live channels keep in Redis, and each channel's queue of writes not yet made.

Keys: ``tc:channel:{cctv1}`` (hash of the configuration, ``desired``
running/stopped, and the status the supervisor reports; ``{cctv1}`` is the channel's
hash tag, shared with its archive index and lease) and ``tc:channels`` (set of
channel ids: a global index in a slot of its own). Archive entries go to
``transcode.archive``.

Live encoding never waits for Redis: a :class:`ChannelStore` queues the
archive entries of published segments in order, the channel's rung facts and
a way to read its current status, and the manager's store task writes them
whenever Redis answers. An outage only makes the queue longer; entries are
removed only once written, and writing one twice changes nothing. While Redis answers,
a just-published segment's entries and the status that names it (``status.py``: its time,
the window's rates) go in one step: one round trip per segment.

Every write to the channel's own keys goes through the store's *writer*: plainly
for a channel run without a node lease, or fenced by the lease
(``transcode.farm.FencedWriter``) on a transcode node. A fenced store whose lease
turned stale drops what it queued and writes nothing more: the channel's new owner
writes from now on. The global indexes (``tc:channels``, ``tc:archived``) are in
other Cluster slots than the channel's keys, so the store lists the channel there
after its writer's step succeeds, plainly: adding an id again changes nothing, and a
step cut short before the listing is made again (the listing with it) next flush.

A channel's SCTE-35 cues (``transcode.cues``) are queued like archive entries and written
through the same writer after them, each segment's in one step with the removal of the
scheduled signals placed on it from the channel's queue (``cuequeue.py``); the set is
then trimmed to the catch-up period, plainly (trimming what is past retention again
changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

from headend.clock import utc_now
from transcode.archive import (
    ArchiveIndex,
    RedisWrite,
    RungInfo,
    channel_tag,
    index_channel,
    record_writes,
    register_writes,
    write_plainly,
)
from transcode.cues import StoredCue, cue_writes, trim_cues
from transcode.domain import ArchiveEntry, ChannelStatus, LiveChannel, retention_cutoff
from transcode.errors import ChannelNotFound, LeaseLost
from transcode.live.status import config_mapping

log = logging.getLogger(__name__)

CHANNELS = "tc:channels"
# Entries written per round trip while catching up after an outage.
_BATCH = 500
# The status is rewritten at least this often, so ``updated_at`` shows the control service lives.
_HEARTBEAT_SECONDS = 10.0
# Redis acknowledges writes before they reach its AOF (``everysec`` postpones the write
# by up to 2 s while an fsync runs), so a crash can lose the last seconds it acknowledged.
# Entries written this long before the newest one are kept to be written again after it.
_REPLAY_SECONDS = 10.0

StatusSource = Callable[[], dict[str, str]]


class Writer(Protocol):
    """Makes a channel's Redis writes (``transcode.farm.FencedWriter`` on a node)."""

    async def write(self, writes: Sequence[RedisWrite]) -> None: ...


class PlainWriter:
    """Writes with no lease to check: a channel its control process runs by itself."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def write(self, writes: Sequence[RedisWrite]) -> None:
        """Make ``writes`` in one transaction."""
        await write_plainly(self._redis, writes)


def _hset(key: str, mapping: dict[str, str]) -> RedisWrite:
    return RedisWrite("HSET", key, tuple(x for item in mapping.items() for x in item))


def channel_key(channel_id: str) -> str:
    """The hash holding a channel's configuration and status."""
    return f"tc:channel:{channel_tag(channel_id)}"


async def every_channel(
    redis: aioredis.Redis, get: Callable[[str], Awaitable[ChannelStatus]]
) -> list[ChannelStatus]:
    """Every channel in ``tc:channels`` by id, as ``get`` reports it (one whose hash Redis
    lost, or a start cut short never wrote, is left out: there is nothing to show)."""
    client: Any = redis  # replies are decoded here (redis-py's unions)
    ids = sorted(m.decode() for m in await client.smembers(CHANNELS))
    out = []
    for channel_id in ids:
        with contextlib.suppress(ChannelNotFound):
            out.append(await get(channel_id))
    return out


@dataclass
class Flushed:
    """What one successful flush wrote."""

    sequences: list[int] = field(default_factory=list)  # newly indexed, in order
    recovered: bool = False  # the previous attempt had failed
    caught_up: int = 0  # entries that had waited for an outage to end


class ChannelStore:
    """One channel's writes to Redis that have not been made yet, made in order by ``flush``."""

    def __init__(
        self,
        channel: LiveChannel,
        *,
        redis: aioredis.Redis,
        archive: ArchiveIndex,
        wake: Callable[[], None] | None = None,
        writer: Writer | None = None,
    ) -> None:
        self.channel = channel
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self._archive = archive
        self.writer: Writer = writer or PlainWriter(redis)
        # The lease turned stale: nothing more is written (the new owner writes).
        self.fenced = False
        self._wake = wake or (lambda: None)
        self._segments: deque[tuple[str, ArchiveEntry]] = deque()
        self._cues: deque[list[RedisWrite]] = deque()  # each published segment's
        self._recent: deque[tuple[float, tuple[str, ArchiveEntry]]] = deque()
        self._replay_due = False
        self._again: list[tuple[str, ArchiveEntry]] = []  # written before, to write again
        self._rungs: list[RungInfo] | None = None
        self._known_rungs: list[RungInfo] | None = None
        self._status: StatusSource | None = None
        self.final = False
        self._written: dict[str, str] | None = None
        self._written_at = 0.0
        self._rewrite_config = False
        # One flush at a time: a status read before another flush must not land after it.
        self._lock = asyncio.Lock()
        self.indexed_sequence = -1
        self.down_since: float | None = None  # monotonic time of the first failed attempt
        self.error = ""

    # -- what the channel queues ----------------------------------------------------------

    def add_segments(self, entries: Sequence[tuple[str, ArchiveEntry]]) -> None:
        """Queue the archive entries of one published segment (one per rung)."""
        self._segments.extend(entries)
        self._wake()

    def add_cues(self, cues: Sequence[StoredCue], placed: Sequence[RedisWrite] = ()) -> None:
        """Queue the SCTE-35 cues of one published segment, and the writes recording the
        scheduled signals among them placed (``cuequeue.py``), made in the same step."""
        self._cues.append([*cue_writes(self.channel.id, cues), *placed])
        self._wake()

    def set_rungs(self, rungs: list[RungInfo]) -> None:
        """Queue the channel's rung facts and catch-up period."""
        self._rungs = self._known_rungs = rungs
        self._wake()

    def follow(self, source: StatusSource, *, final: bool = False) -> None:
        """Write the status ``source()`` returns at each flush (``final``: the last one)."""
        # ``final``: the channel stopped here, and its store may go once this is written.
        self._status = source
        self.final = final
        self._wake()

    def changed(self) -> None:
        """The status changed: write it soon."""
        self._wake()

    @property
    def backlog(self) -> int:
        """Segments published but not indexed yet."""
        return len({entry.sequence for _rung, entry in self._segments})

    @property
    def down(self) -> bool:
        """True while the last attempt to write failed."""
        return self.down_since is not None

    def idle(self) -> bool:
        """True when nothing waits to be written (the status is what was last written)."""
        if self.fenced:
            return True
        if self._segments or self._again or self._cues or self._rungs is not None:
            return False
        return self._status is None or _comparable(self._status()) == self._written

    # -- writing --------------------------------------------------------------------------

    async def flush(self) -> Flushed:
        """Write the backlog in order, then the rung facts, then the status if it changed."""
        async with self._lock:
            if self.fenced:
                return Flushed()
            try:
                return await self._flush()
            except LeaseLost as err:
                self.abandon(str(err))
                return Flushed()

    def abandon(self, why: str) -> None:
        """The lease is stale: drop every queued write, make none again."""
        log.warning(
            "live channel's writes fenced: another node owns it now",
            extra={"channel": self.channel.id, "reason": why,
                   "dropped": len(self._segments) + len(self._again)},
        )  # fmt: skip
        self.fenced = True
        self._segments.clear()
        self._cues.clear()
        self._again.clear()
        self._recent.clear()
        self._rungs = self._known_rungs = None
        self.down_since, self.error = None, ""

    async def _flush(self) -> Flushed:
        result = Flushed(recovered=self.down)
        if result.recovered:
            result.caught_up = self.backlog
        if result.recovered or self._replay_due:
            self._replay_due = False
            self._replay()
        while self._again:
            batch = self._again[:_BATCH]
            await self.writer.write(record_writes(self.channel.id, batch))
            del self._again[:_BATCH]
            now = time.monotonic()
            self._recent.extend((now, item) for item in batch)
        while self._segments:
            batch = [self._segments[i] for i in range(min(_BATCH, len(self._segments)))]
            writes = record_writes(self.channel.id, batch)
            status = None
            last = len(batch) == len(self._segments)
            if last and self._rungs is None and not (self.down or self._rewrite_config):
                # The hot path (a segment just published, Redis up): the status that names
                # it goes in the same step, one round trip per segment.
                status = self._status_step()
            await self.writer.write(writes if status is None else [*writes, *status[0]])
            if status is not None:
                self._status_written(status[1])
            now = time.monotonic()
            for item in batch:
                self._segments.popleft()
                self._recent.append((now, item))
            for _rung, entry in batch:
                if entry.sequence > self.indexed_sequence:
                    self.indexed_sequence = entry.sequence
                    result.sequences.append(entry.sequence)
            # Trimmed against the newest write, not the clock: an outage keeps them all.
            while self._recent and self._recent[0][0] < now - _REPLAY_SECONDS:
                self._recent.popleft()
        if self._cues:
            while self._cues:  # whole segments' writes, up to _BATCH (at least one segment's)
                count, size = 1, len(self._cues[0])
                while count < len(self._cues) and size + len(self._cues[count]) <= _BATCH:
                    size += len(self._cues[count])
                    count += 1
                await self.writer.write([w for i in range(count) for w in self._cues[i]])
                for _ in range(count):
                    self._cues.popleft()
            days = self.channel.catchup_days
            cutoff = retention_cutoff(utc_now(), days)
            await trim_cues(self._redis, self.channel.id, cutoff=cutoff, catchup_days=days)
        if self._rungs is not None:
            await self.writer.write(
                register_writes(
                    self.channel.id, catchup_days=self.channel.catchup_days, rungs=self._rungs
                )
            )
            await index_channel(self._redis, self.channel.id)
            self._rungs = None
        # Reachable: the status written below must not say the store is down.
        self.down_since, self.error = None, ""
        await self._write_status()
        return result

    def _status_step(self) -> tuple[list[RedisWrite], dict[str, str]] | None:
        """The writes of the status if it changed or its heartbeat is due (None: neither),
        and what it is compared by; the configuration again after a replay."""
        if self._status is None:
            return None
        mapping = self._status()
        comparable = _comparable(mapping)
        due = time.monotonic() - self._written_at >= _HEARTBEAT_SECONDS
        if comparable == self._written and not due and not self._rewrite_config:
            return None
        writes = []
        if self._rewrite_config:
            writes.append(_hset(channel_key(self.channel.id), config_mapping(self.channel)))
        writes.append(_hset(channel_key(self.channel.id), mapping))
        return writes, comparable

    def _status_written(self, comparable: dict[str, str]) -> None:
        self._written, self._written_at, self._rewrite_config = comparable, time.monotonic(), False

    async def _write_status(self) -> None:
        step = self._status_step()
        if step is None:
            return
        await self.writer.write(step[0])
        if self._rewrite_config:
            await self._redis.sadd(CHANNELS, self.channel.id)
        self._status_written(step[1])

    def replay(self) -> None:
        """Write the recent entries, configuration, rung facts and status again, next flush."""
        # Redis restarted and may have lost them; an index member written twice is still one.
        self._replay_due = True
        self._wake()

    def _replay(self) -> None:
        self._again.extend(item for _t, item in self._recent)
        self._recent.clear()
        self._rewrite_config = True
        if self._rungs is None:
            self._rungs = self._known_rungs

    def failed(self, err: BaseException) -> bool:
        """Note a failed attempt; True when it is the first of an outage."""
        first = self.down_since is None
        if first:
            self.down_since = time.monotonic()
        self.error = f"{type(err).__name__}: {err}"[:300] or type(err).__name__
        return first


def _comparable(mapping: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in mapping.items() if k != "updated_at"}
