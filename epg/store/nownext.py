"""NowNext from memory: each channel's answer until its programme ends or the channel changes.

``NowNext`` is the EPG's hottest read (every box asks it on every zap), and its answer
for a channel only changes when the programme on air ends or when the channel's record
or schedule changes. So a store that follows the change feed keeps, per channel, the
record, the programme on air and the next one, with the span of seconds the answer holds
for (from the second it was read to the first second the programme on air has ended or
the next has begun). The record is kept too so access checks (made on every call, by
the service) need no round trip either.

What makes an answer go, so no replica ever serves one the store no longer holds:

- a ``programmes`` or ``channel`` change of the channel in the feed: every replica
  follows the store's one change history (:meth:`NowNextCache.follow`), so a change made
  through any replica reaches every replica's cache within the feed's latency;
- a change this store made itself, as soon as its channel script has written
  (:meth:`epg.store.feed.FeedStore._change`): a caller reads its own writes;
- anything that breaks the follower's view of the history: the feed trimmed past it or
  its versions going backwards (a restored, replaced or failed-over Redis) drop every
  answer and the follower positions again; while it is not positioned (starting, its
  read of the feed failed because Redis is unreachable, backing off) nothing is answered
  from memory and nothing is kept. A Redis restart the client's retries ride out keeps
  the answers only if the versions did not go back: the data is then the same.

An answer read before a change but kept after the follower dropped the channel would
outlive the change: every drop bumps a generation, and an answer is kept only if no
drop happened while it was being read. The cache holds at most ``max_channels``
answers; the oldest kept goes first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from epg.domain import Change, Channel, Programme
from headend.tasks import Backoff, Supervisor

NOWNEXT_CACHE_CHANNELS = 10_000
FOREVER = 2**63  # the end of an answer with no programme after it
# Changes that alter a channel's answer; cues and alerts do not.
_DROPPING_KINDS = frozenset({"programmes", "channel"})
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """A channel's record, the programme on air and the next, for seconds in
    ``[since, until)``."""

    channel: Channel
    now: Programme | None
    next: Programme | None
    since: int
    until: int


def answer(channel: Channel, now: Programme | None, nxt: Programme | None, at_s: int) -> Answer:
    """The answer read for second ``at_s``: it holds until the programme on air ends or
    the next begins, whichever comes first."""
    until = FOREVER
    if now is not None:
        until = now.stop_s
    if nxt is not None:
        until = min(until, nxt.start_s)
    return Answer(channel, now, nxt, at_s, until)


class ChangeHistory(Protocol):
    """The slice of the store the follower reads."""

    async def version(self) -> int: ...
    async def read_changes(self, after: int, *, block_ms: int) -> Sequence[Change]: ...


class NowNextCache:
    """Answers by channel id, kept only while the change feed is followed."""

    def __init__(self, max_channels: int = NOWNEXT_CACHE_CHANNELS) -> None:
        if max_channels < 1:
            raise ValueError("max_channels must be at least 1")
        self.max_channels = max_channels
        self.generation = 0  # bumped by every drop; see keep()
        self.following = False
        self._answers: dict[str, Answer] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, channel_id: str, at_s: int) -> Answer | None:
        """The channel's answer for second ``at_s``, or None (not kept, or not for then)."""
        if not self.following:
            return None
        hit = self._answers.get(channel_id)
        if hit is None or not hit.since <= at_s < hit.until:
            return None
        return hit

    def keep(self, channel_id: str, value: Answer, generation: int) -> None:
        """Keep an answer read while the cache was at ``generation`` (ignored if anything
        was dropped since: the read may predate that change)."""
        if not self.following or generation != self.generation:
            return
        self._answers.pop(channel_id, None)
        if len(self._answers) >= self.max_channels:
            del self._answers[next(iter(self._answers))]
        self._answers[channel_id] = value

    def drop(self, channel_id: str) -> None:
        """Forget a channel's answer (it changed)."""
        self.generation += 1
        self._answers.pop(channel_id, None)

    def _stop(self) -> None:
        self.following = False
        self.generation += 1
        self._answers.clear()

    async def follow(self, history: ChangeHistory, *, block_ms: int) -> None:
        """Follow the change history, dropping what changes, until it cannot be followed:
        returns when the history no longer continues where it was (the caller follows
        again from now) and raises when the store fails; either way every answer goes."""
        try:
            cursor = await history.version()
            # Answers read before this point may predate changes before ``cursor``.
            self.generation += 1
            self.following = True
            log.info("nownext cache following the change feed", extra={"version": cursor})
            while True:
                for change in await history.read_changes(cursor, block_ms=block_ms):
                    if change.version != cursor + 1:
                        log.warning(
                            "change feed skipped versions; nownext cache dropped",
                            extra={"after": cursor, "got": change.version},
                        )
                        return
                    cursor = change.version
                    if change.kind in _DROPPING_KINDS:
                        self.drop(change.channel_id)
                if await history.version() < cursor:
                    log.warning(
                        "change feed versions went backwards; nownext cache dropped",
                        extra={"after": cursor},
                    )
                    return
        finally:
            self._stop()


class NowNextFollower:
    """Runs a cache's follower while a server runs (a component of ``start_server``),
    supervised: positioned again from now whenever it stops or fails."""

    def __init__(
        self,
        cache: NowNextCache,
        history: ChangeHistory,
        registry: CollectorRegistry,
        *,
        block_ms: int,
    ) -> None:
        self._cache = cache
        self._history = history
        self._block_ms = block_ms
        # Redis back after an outage: answer from memory again within seconds.
        self._tasks = Supervisor(backoff=Backoff(first_seconds=0.2, cap_seconds=5.0))
        Gauge(
            "epg_nownext_cached_channels",
            "Channels whose NowNext answer this replica holds in memory.",
            registry=registry,
        ).set_function(lambda: len(cache))
        Gauge(
            "epg_nownext_cache_following",
            "1 while this replica follows the change feed and answers NowNext from memory.",
            registry=registry,
        ).set_function(lambda: int(cache.following))

    async def _forever(self) -> None:
        while True:
            await self._cache.follow(self._history, block_ms=self._block_ms)

    async def __aenter__(self) -> NowNextFollower:
        self._tasks.spawn("epg-nownext-follower", self._forever)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._tasks.close()
