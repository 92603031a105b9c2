"""Viewing figures in Redis, kept as leases start, heartbeat, end and expire.

Every lease step reaches every cell it belongs to (its channel, its carrier, its region
and each combination of them): one ``record.lua`` call per cell, whose keys all carry
the cell's hash tag (``vr:{channel+carrier=cctv1/acme}:...``), so each cell is changed
atomically in its own slot of a Redis Cluster, and all the calls of a batch go in one
round trip (:func:`headend.lua.run_many`). Concurrent lease steps share their batch.

A cell keeps its live leases (with what each has been credited up to), their expiries,
and per UTC day one hash of hourly figures; distinct boxes are counted exactly through a
set of MACs per hour and per day, kept only until late heartbeats can no longer reach
them. The carrier cell also writes the raw lease log, a start and an end record per
lease. ``vr:{index}:<dimensions>`` lists the cells of each kind (for queries and counts);
``vr:{index}:due`` scores each cell by the latest lease expiry it was given, so the
expiry sweep visits only the cells that may hold a live lease.

A lease step that is lost between the lease script and this one (a crash between two
round trips) is repaired by the next: a heartbeat credits everything since the last one
it reached, and a lease whose end never arrived is swept when it expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from headend.lua import run_many, script
from subscriber.reports.domain import (
    CELLS,
    DAY,
    Cell,
    ChannelViewers,
    Dimension,
    ViewingQuery,
    ViewingRow,
    day_rows,
    floor_to,
)
from subscriber.store.base import Coalescer, redis_errors
from subscriber.store.codec import ms
from subscriber.store.playback import LeaseEvent

DAY_MS = 86_400_000
# Box sets outlive their bucket by this much: a heartbeat credits the time since the last.
SET_KEEP_MS = DAY_MS
# The sweep visits cells given a lease expiring at most this long before it runs: one
# that was due earlier has been swept since (unless no sweep ran for that long).
SWEEP_BACK_MS = DAY_MS
DUE = "vr:{index}:due"
# A cell's due score is moved only once it is this much behind (heartbeats move expiries
# a little at a time; the sweep's look-back is far longer).
DUE_STEP_MS = 3_600_000
_OPS = {"start": "s", "beat": "b", "end": "e"}
_VIEWERS: Cell = (Dimension.CHANNEL, Dimension.CARRIER)
# (cell, its values joined by '/'), e.g. ((CHANNEL, CARRIER), "cctv1/acme").
CellId = tuple[Cell, str]


def _kind(cell: Cell) -> str:
    """A kind of cell as its keys name it: ``channel+carrier``."""
    return "+".join(dim.value for dim in cell)


def cell_name(cell: Cell, value: str) -> str:
    """The hash tag of one cell: ``channel+carrier=cctv1/acme``."""
    return f"{_kind(cell)}={value}"


def cell_key(cell: Cell, value: str, part: str) -> str:
    """One key of a cell (``live``, ``exp``, ``hour``, ``log``, ``d:<day_ms>``...)."""
    return f"vr:{{{cell_name(cell, value)}}}:{part}"


def index_key(cell: Cell) -> str:
    """The set of a kind of cell's values (every index shares one slot)."""
    return f"vr:{{index}}:{_kind(cell)}"


def log_key(carrier: str) -> str:
    """The carrier's raw lease log (stream: ``op`` start/end/expire, ``lease``, ``mac``,
    ``channel``, ``carrier``, ``region``, ``at`` ms where watching began or ended,
    ``left`` ms when it left the live count)."""
    return cell_key((Dimension.CARRIER,), carrier, "log")


def _keys(cell: Cell, value: str) -> list[str]:
    keys = [cell_key(cell, value, part) for part in ("live", "exp", "hour")]
    if cell == (Dimension.CARRIER,):
        keys.append(log_key(value))
    return keys


def _values(cell: Cell, value: str) -> dict[Dimension, str]:
    return dict(zip(cell, value.split("/"), strict=True))


class ViewingStore:
    """Viewing figures per cell and bucket; the live leases of each cell."""

    def __init__(self, redis: Redis, *, retention_days: int = 400, log_days: int = 35) -> None:
        # redis-py types replies as ``bytes | str`` (decode_responses); ours are always bytes.
        self._redis: Any = redis
        self._script = redis.register_script(script("subscriber.reports", "record"))
        self._keep_ms = retention_days * DAY_MS
        self._log_ms = log_days * DAY_MS
        self._indexed: set[CellId] = set()
        # The due score this process last gave each cell.
        self._due: dict[str, int] = {}
        self._batch = Coalescer(self._record_many)

    async def record(self, events: Sequence[LeaseEvent]) -> None:
        """Credit lease steps to every cell they belong to (shared round trips)."""
        await self._batch(tuple(events))

    async def _record_many(self, batches: list[tuple[LeaseEvent, ...]]) -> list[None]:
        calls: dict[CellId, list[Any]] = {}
        due: dict[str, int] = {}
        for event in (event for batch in batches for event in batch):
            values = {
                Dimension.CHANNEL: event.channel,
                Dimension.CARRIER: event.carrier,
                Dimension.REGION: event.region,
            }
            args = [
                _OPS[event.op], event.lease_id, event.mac, ms(event.at), ms(event.expires_at),
                f"{event.channel}\t{event.carrier}\t{event.region}",
            ]  # fmt: skip
            for cell in CELLS:
                if all(values[dim] for dim in cell):  # a lease from before regions: no region
                    value = "/".join(values[dim] for dim in cell)
                    calls.setdefault((cell, value), []).extend(args)
                    name = cell_name(cell, value)
                    if ms(event.expires_at) > self._due.get(name, 0) + DUE_STEP_MS:
                        due[name] = ms(event.expires_at)
        await self._index(list(calls))
        if due:
            await asyncio.gather(self._run(calls), self._redis.zadd(DUE, due, gt=True))
            self._due.update(due)
        else:
            await self._run(calls)
        return [None] * len(batches)

    async def _index(self, cells: list[CellId]) -> None:
        new = [cell for cell in cells if cell not in self._indexed]
        if not new:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for cell, value in new:
                pipe.sadd(index_key(cell), value)
            await pipe.execute()
        self._indexed.update(new)

    async def _run(self, calls: dict[CellId, list[Any]]) -> list[int]:
        head = [self._keep_ms, SET_KEEP_MS, self._log_ms]
        return await run_many(
            self._redis,
            self._script,
            [(_keys(cell, value), [*head, *args]) for (cell, value), args in calls.items()],
        )

    @redis_errors
    async def _cells(self, cells: Sequence[Cell]) -> list[CellId]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for cell in cells:
                pipe.smembers(index_key(cell))
            found = await pipe.execute()
        return [(cell, raw.decode()) for cell, values in zip(cells, found, strict=True)
                for raw in sorted(values)]  # fmt: skip

    @redis_errors
    async def sweep(self, now: datetime) -> dict[CellId, int]:
        """End the leases expired at ``now`` in the cells that may hold one; the live
        leases of each cell swept."""
        since = ms(now) - SWEEP_BACK_MS
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(DUE, "-inf", f"({since}")
            pipe.zrange(DUE, 0, -1)
            _, names = await pipe.execute()
        kinds = {_kind(cell): cell for cell in CELLS}
        cells = []
        for name in names:
            kind, _, value = name.decode().partition("=")
            cells.append((kinds[kind], value))
        calls = {cell: ["x", "", "", ms(now), 0, ""] for cell in cells}
        counts = await self._run(calls) if calls else []
        return dict(zip(cells, counts, strict=True))

    async def _matching(self, cell: Cell, filters: dict[Dimension, str]) -> list[CellId]:
        return [
            (cell, value)
            for cell, value in await self._cells([cell])
            if all(_values(cell, value)[dim] == want for dim, want in filters.items())
        ]

    @redis_errors
    async def query(self, query: ViewingQuery) -> list[ViewingRow]:
        """The rows of ``query``'s window (already whole buckets), by bucket then key."""
        cells = await self._matching(query.cell(), query.filters())
        days: list[datetime] = []
        day = floor_to(query.start, DAY)
        while day < query.end:
            days.append(day)
            day += DAY
        async with self._redis.pipeline(transaction=False) as pipe:
            for cell, value in cells:
                for day in days:
                    pipe.hgetall(cell_key(cell, value, f"d:{ms(day)}"))
            found = iter(await pipe.execute())
        rows: list[ViewingRow] = []
        for cell, value in cells:
            key = _values(cell, value)[query.group_by]
            for day in days:
                figures = {k.decode(): int(v) for k, v in next(found).items()}
                rows += day_rows(key, day, figures, query.granularity, query.start, query.end)
        return sorted(rows, key=lambda row: (row.bucket_start, row.key))

    @redis_errors
    async def viewers(self, channel_id: str, carrier_id: str) -> list[ChannelViewers]:
        """Live leases by channel and carrier (``""``: any), by channel then carrier."""
        filters = {Dimension.CHANNEL: channel_id, Dimension.CARRIER: carrier_id}
        cells = await self._matching(_VIEWERS, {d: v for d, v in filters.items() if v})
        async with self._redis.pipeline(transaction=False) as pipe:
            for cell, value in cells:
                pipe.hlen(cell_key(cell, value, "live"))
            counts = await pipe.execute()
        found = []
        for (_, value), count in zip(cells, counts, strict=True):
            if count:
                channel, carrier = value.split("/")
                found.append(ChannelViewers(channel, carrier, count))
        return sorted(found, key=lambda v: (v.channel_id, v.carrier_id))
