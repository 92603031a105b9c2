"""Reads: channels, now/next, ranges, guide ends, single programmes, the change stream."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from epg.domain import (
    Airing,
    Change,
    Channel,
    Programme,
    decode_channel,
    decode_programme,
    decode_rights,
)
from epg.store.base import (
    CHANGES,
    CHANNELS,
    DECODED_MAX,
    PROGRAMMES,
    VERSION,
    data_key,
    idx_key,
    record_key,
    rights_key,
    text,
)
from epg.store.feed import FeedStore
from epg.store.nownext import answer
from headend.lua import by_slot, run_many
from headend.redisconn import block_ms as capped_block_ms


class ReadStore(FeedStore):
    """Decoding (memoised) and every read the service makes."""

    def _programme(self, channel_id: str, pid: Any, raw: Any, rights: Any) -> Programme:
        # Stored values are immutable for a given (id, raw, rights), so decoded
        # programmes are memoised by exactly that: the hot read paths skip JSON.
        key = (channel_id, pid, raw, rights)
        hit = self._decoded.get(key)
        if hit is not None:
            return hit
        start, stop, data = text(raw).split("|", 2)
        programme = decode_programme(
            text(pid), channel_id, int(start), int(stop), data, decode_rights(text(rights))
        )
        if len(self._decoded) >= DECODED_MAX:
            self._decoded.clear()
        self._decoded[key] = programme
        return programme

    def _decode_channel(self, raw: Any) -> Channel:
        hit = self._channels.get(raw)
        if hit is None:
            if len(self._channels) >= DECODED_MAX:
                self._channels.clear()
            hit = self._channels[raw] = decode_channel(raw)
        return hit

    async def get_channel(self, channel_id: str) -> Channel | None:
        """One channel, or None."""
        raw = await self._redis.get(record_key(channel_id))
        return None if raw is None else self._decode_channel(raw)

    async def list_channels(self) -> list[Channel]:
        """Every channel, by logical number then id (the catalogue: as of the feed)."""
        raw = await self._redis.hgetall(CHANNELS)
        channels = (self._decode_channel(v) for v in raw.values())
        return sorted(channels, key=lambda c: (c.number, c.id))

    async def now_next(
        self, channel_ids: Sequence[str], at: datetime
    ) -> list[tuple[Channel | None, Programme | None, Programme | None]]:
        """For each channel (None if unknown): the programme on air at ``at`` and the next.

        From memory where the cache holds the answer (:mod:`.nownext`); the others in one
        round trip, channel included, so callers can authorize without another: one script
        call for them all on a single node; on a cluster one per slot, pipelined.
        """
        now = int(at.timestamp())
        cache = self.nownext
        hits = [cache.get(ch, now) for ch in channel_ids]
        if all(hits):
            return [(a.channel, a.now, a.next) for a in hits if a is not None]
        generation = cache.generation
        missing = [ch for ch, hit in zip(channel_ids, hits, strict=True) if hit is None]
        read = await self._read_now_next(missing, now)
        out: list[tuple[Channel | None, Programme | None, Programme | None]] = []
        for ch, hit in zip(channel_ids, hits, strict=True):
            if hit is not None:
                out.append((hit.channel, hit.now, hit.next))
                continue
            channel, cur, nxt = read[ch]
            if channel is not None:
                cache.keep(ch, answer(channel, cur, nxt, now), generation)
            out.append((channel, cur, nxt))
        return out

    async def _read_now_next(
        self, channel_ids: Sequence[str], now: int
    ) -> dict[str, tuple[Channel | None, Programme | None, Programme | None]]:
        groups = by_slot(self._redis, channel_ids, record_key)
        calls = [([k for ch in chs for k in _now_next_keys(ch)], [now]) for chs in groups]
        out: dict[str, tuple[Channel | None, Programme | None, Programme | None]] = {}
        for chs, flat in zip(
            groups, await run_many(self._redis, self._now_next, calls), strict=True
        ):
            for i, ch in enumerate(chs):
                row = flat[i * 7 : (i + 1) * 7]
                channel = self._decode_channel(row[0]) if row[0] else None
                cur = self._programme(ch, *row[1:4]) if row[1] else None
                nxt = self._programme(ch, *row[4:7]) if row[4] else None
                if cur is not None and cur.stop_s <= now:
                    cur = None  # the latest programme before now has ended: a gap
                out[ch] = (channel, cur, nxt)
        return out

    async def range(
        self, channel_id: str, start: datetime, stop: datetime, *, limit: int = 100_000
    ) -> list[Programme]:
        """Programmes overlapping ``[start, stop)``, in start order."""
        lo = int(start.timestamp())
        flat = await self._range(
            keys=[idx_key(channel_id), data_key(channel_id), rights_key(channel_id)],
            args=[lo, int(stop.timestamp()), limit],
        )
        out = [self._programme(channel_id, *flat[i : i + 3]) for i in range(0, len(flat), 3)]
        if out and out[0].stop_s <= lo:
            out.pop(0)
        return out

    async def guide_ends(
        self, channel_ids: Sequence[str], now: datetime, horizon: datetime
    ) -> list[tuple[datetime | None, list[Airing]]]:
        """For each channel: the stop of its last programme (None when it has none) and the
        times of its programmes overlapping ``[now, min(horizon, that stop))``, in start order.

        One round trip for them all (one script call per slot group), and only the times
        come back: a week of a few hundred channels' programmes is never decoded."""
        if not channel_ids:
            return []
        groups = by_slot(self._redis, channel_ids, idx_key)
        args = [int(now.timestamp()), int(horizon.timestamp())]
        calls = [([k for ch in chs for k in (idx_key(ch), data_key(ch))], args) for chs in groups]
        rows: dict[str, tuple[datetime | None, list[Airing]]] = {}
        for chs, flat in zip(
            groups, await run_many(self._redis, self._guide_status, calls), strict=True
        ):
            at = 0
            for ch in chs:
                last, n = int(flat[at]), int(flat[at + 1])
                times = flat[at + 2 : at + 2 + 2 * n]
                at += 2 + 2 * n
                airings = [
                    Airing(_instant(start), _instant(stop))
                    for start, stop in zip(times[::2], times[1::2], strict=True)
                ]
                rows[ch] = (_instant(last) if last else None, airings)
        return [rows[ch] for ch in channel_ids]

    async def get_programme(self, programme_id: str) -> Programme | None:
        """One programme by id, or None."""
        ch = await self._redis.hget(PROGRAMMES, programme_id)
        if ch is None:
            return None
        channel_id = text(ch).split("|", 1)[0]  # "|stamp": reserved by its claim
        raw = await self._redis.hget(data_key(channel_id), programme_id)
        if raw is None:
            return None
        rights = await self._redis.hget(rights_key(channel_id), programme_id)
        return self._programme(channel_id, programme_id, raw, rights or "")

    # ---------------------------------------------------------- changes

    async def version(self) -> int:
        """The last change version (0 before any change)."""
        raw = await self._redis.get(VERSION)
        return 0 if raw is None else int(raw)

    async def oldest_change(self) -> int | None:
        """The oldest version still in the change stream, or None when it is empty."""
        rows = await self._redis.xrange(CHANGES, "-", "+", count=1)
        return None if not rows else int(text(rows[0][0]).split("-")[0])

    async def read_changes(self, after: int, *, block_ms: int, count: int = 500) -> list[Change]:
        """Changes with version > ``after``, waiting up to ``block_ms`` for the first (capped
        below the client's socket timeout: an empty answer just means "nothing yet").
        An alert's change (``epg.alerts.store``) reads as kind ``alerts``, no channel, the
        alert's id in ``programme_ids``."""
        await self._settle_now_and_then()
        block = capped_block_ms(self._redis, block_ms)
        res = await self._redis.xread({CHANGES: f"{after}-0"}, count=count, block=block)
        out: list[Change] = []
        for _stream, entries in res or ():
            for entry_id, fields in entries:
                f = {text(k): text(v) for k, v in fields.items()}
                out.append(
                    Change(
                        version=int(text(entry_id).split("-")[0]),
                        kind=f["kind"],
                        channel_id=f["ch"],
                        deleted=f["deleted"] == "1",
                        programme_ids=tuple(x for x in f["ids"].split(",") if x),
                        window_start=_ts(f["from"]),
                        window_stop=_ts(f["to"]),
                    )
                )
        return out


def _now_next_keys(ch: str) -> list[str]:
    return [record_key(ch), idx_key(ch), data_key(ch), rights_key(ch)]


def _ts(raw: str) -> datetime | None:
    return datetime.fromtimestamp(int(raw), UTC) if raw else None


@functools.lru_cache(maxsize=1 << 16)
def _instant(epoch_seconds: int) -> datetime:
    # Guides start and stop programmes on the same few marks of every hour: a week of a
    # few hundred channels holds a few thousand distinct instants, not 100,000.
    return datetime.fromtimestamp(epoch_seconds, UTC)
