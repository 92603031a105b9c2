"""XMLTV import: stream a guide file into the store without holding up the event loop.

lxml parses on a worker thread (parsing is CPU-bound, and the service must
keep answering NowNext while a guide streams in) and hands batches of parsed
elements to the loop through a bounded queue, so only a few batches ever
wait in memory. The loop checks each channel's programmes (ownership,
overlaps within the file, missing stop times) and writes them in batches,
one write in flight while the next batch is parsed. Problems are reported per
element: the first ``MAX_PROBLEMS`` with line and reason, and how many in all.
"""

from __future__ import annotations

import asyncio
import bisect
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

from epg.access import may_write, require_writer
from epg.domain import (
    Channel,
    Programme,
    WritePolicy,
    WriteResult,
    programme_id,
    validate_channel,
    validate_channel_id,
    validate_programme,
)
from epg.errors import ImportRejected, InvalidChannel, InvalidProgramme, NotAllowed, UnknownTimezone
from epg.store import EpgStore
from epg.xmltv import Item, Problem, Source, XmltvChannel, XmltvProgramme, iter_xmltv, open_source
from headend.auth import Principal

MAX_PROBLEMS = 100  # reported with line and reason; the rest are only counted
_BUFFERED_CHANNELS = 8  # channels whose programmes are held before writing
_FLUSH_PROGRAMMES = 2_000
_CHECKED_CHANNELS = 10_000  # remembered verdicts on programmes' channel ids
_BATCH_ITEMS = 512  # parsed elements per hand-over to the loop
_QUEUED_BATCHES = 4  # hand-overs parsed ahead of the loop: the parse thread's memory bound
_MAX_PROBLEM_CHARS = 512  # a problem quotes attacker text: keep each one short

# Channel writes in flight at once during an import (each is a few round trips: the id
# claim, the channel's script, the change feed; one at a time would leave Redis idle).
_WRITES_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an XMLTV import did, and the first elements it skipped with line and reason."""

    channels_created: int
    channels_updated: int
    programmes_written: int
    programmes_unchanged: int
    programmes_removed: int
    programmes_trimmed: int
    problems: tuple[Problem, ...]
    version: int
    problems_total: int = 0


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _ImportRun:
    """The state of one pass over an XMLTV file."""

    write: bool
    channels: dict[str, Channel]
    created: int = 0
    updated: int = 0
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    trimmed: int = 0
    version: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    buffers: OrderedDict[str, list[XmltvProgramme]] = field(default_factory=OrderedDict)
    held: dict[str, XmltvProgramme] = field(default_factory=dict)
    # Writes in flight, by channel, oldest first (at most one per channel: its batches land
    # in order).
    pending: dict[str, asyncio.Task[WriteResult]] = field(default_factory=dict)
    taken: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)

    def problem(self, line: int, channel: str, reason: str) -> None:
        """Count a problem; keep the first ``MAX_PROBLEMS`` (shortened) for the report."""
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(
                Problem(line, _clip(channel, 128), _clip(reason, _MAX_PROBLEM_CHARS))
            )

    def report(self) -> ImportReport:
        """The report of this pass."""
        return ImportReport(
            self.created,
            self.updated,
            self.written,
            self.unchanged,
            self.removed,
            self.trimmed,
            tuple(self.problems),
            self.version,
            self.problems_total,
        )


class _Stoppable(io.RawIOBase):
    """Ends the input early once the import has stopped, so the parse thread winds down."""

    def __init__(self, inner: Source, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._inner.tell()

    def read(self, size: int = -1, /) -> bytes:
        return b"" if self._stop.is_set() else self._inner.read(size)


class _ParseThread:
    """``iter_xmltv`` on a worker thread; the loop takes its items in bounded batches."""

    def __init__(self, source: IO[bytes], *, max_bytes: int) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Queue[list[Item] | Exception | None] = asyncio.Queue()
        self._room = threading.Semaphore(_QUEUED_BATCHES)
        self._stop = threading.Event()
        self._done = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="xmltv-parse", daemon=True)

    async def __aenter__(self) -> _ParseThread:
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        # Wake a hand-over waiting for room; it sees the stop and the thread ends.
        for _ in range(_QUEUED_BATCHES):
            self._room.release()
        # The caller owns the source (and may seek or close it): wait for the thread.
        await asyncio.shield(self._done.wait())

    async def batch(self) -> list[Item] | None:
        """The next parsed items, None at the end; re-raises what stopped the reader."""
        got = await self._ready.get()
        self._room.release()
        if isinstance(got, Exception):
            raise got
        return got

    def _run(self) -> None:
        try:
            reader = _Stoppable(open_source(self._source, max_bytes=self._max_bytes), self._stop)
            batch: list[Item] = []
            for item in iter_xmltv(reader):
                batch.append(item)
                if len(batch) >= _BATCH_ITEMS:
                    if not self._hand_over(batch):
                        return
                    batch = []
            if batch and not self._hand_over(batch):
                return
            self._hand_over(None)
        except Exception as err:  # every failure is the import's: raised on the loop
            self._hand_over(err)
        finally:
            self._call(self._done.set)

    def _hand_over(self, item: list[Item] | Exception | None) -> bool:
        """Queue ``item`` for the loop once there is room; False once the import has stopped."""
        if self._stop.is_set():
            return False
        self._room.acquire()
        if self._stop.is_set():
            return False
        self._call(self._ready.put_nowait, item)
        return True

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has closed: nobody waits for this any more
            pass


class XmltvImporter:
    """Imports XMLTV files into the store for a principal."""

    def __init__(self, *, store: EpgStore, max_batch: int, max_import_bytes: int) -> None:
        self._store = store
        self._max_batch = max_batch
        self._max_import_bytes = max_import_bytes

    async def run(
        self,
        principal: Principal,
        source: IO[bytes],
        *,
        strict: bool = False,
        mapping: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> ImportReport:
        """Import an XMLTV file (plain or gzip, seekable); idempotent.

        Programmes from the file replace what they overlap on the same
        channel (the file is authoritative for the times it covers) but keep
        stored catch-up and blackout rights, which XMLTV cannot carry. Bad
        programmes are reported with line and reason; in strict mode any
        problem means nothing is imported.
        """
        require_writer(principal, "import guides")
        if principal.role == "broadcaster":
            if owner and owner != principal.tenant:
                raise NotAllowed(f"{principal} may not import for {owner!r}")
            owner = principal.tenant
        table = dict(mapping or {})
        for source_id, our_id in table.items():
            validate_channel_id(our_id, f"mapping[{_clip(source_id, 128)}]")
        known = {c.id: c for c in await self._store.list_channels()}
        if strict:
            dry = await self._pass(principal, source, table, owner, dict(known), write=False)
            if dry.problems_total:
                first = dry.problems[0]
                raise ImportRejected(
                    "file",
                    f"{dry.problems_total} bad element(s), the first at line {first.line}: "
                    f"{first.reason}; strict import changed nothing",
                    details={
                        "problems": str(dry.problems_total),
                        "first": "; ".join(f"line {p.line}: {p.reason}" for p in dry.problems[:20]),
                    },
                )
            source.seek(0)
        run = await self._pass(principal, source, table, owner, known, write=True)
        return run.report()

    async def _pass(
        self,
        principal: Principal,
        source: IO[bytes],
        mapping: dict[str, str],
        owner: str,
        known: dict[str, Channel],
        *,
        write: bool,
    ) -> _ImportRun:
        run = _ImportRun(write=write, channels=known)
        try:
            async with _ParseThread(source, max_bytes=self._max_import_bytes) as parsed:
                await self._read_all(principal, run, parsed, mapping, owner)
            for cid in [*run.buffers, *(c for c in run.held if c not in run.buffers)]:
                await self._flush(run, cid, final=True)
            for cid in list(run.pending):
                await self._collect(run, cid)
        finally:
            # The file failed part-way: settle the writes in flight.
            await asyncio.gather(*run.pending.values(), return_exceptions=True)
        return run

    async def _read_all(
        self,
        principal: Principal,
        run: _ImportRun,
        parsed: _ParseThread,
        mapping: dict[str, str],
        owner: str,
    ) -> None:
        checked: dict[str, str] = {}
        while (batch := await parsed.batch()) is not None:
            for item in batch:
                if isinstance(item, Problem):
                    run.problem(item.line, mapping.get(item.channel, item.channel), item.reason)
                elif isinstance(item, XmltvChannel):
                    await self._import_channel(principal, run, item, mapping, owner)
                    checked.clear()
                else:
                    await self._buffer(principal, run, item, mapping, checked)
            # A batch of problems alone awaits nothing else: let other RPCs in between batches.
            await asyncio.sleep(0)

    async def _buffer(
        self,
        principal: Principal,
        run: _ImportRun,
        item: XmltvProgramme,
        mapping: dict[str, str],
        checked: dict[str, str],
    ) -> None:
        source_id = item.programme.channel_id
        cid = mapping.get(source_id, source_id)
        reason = checked.get(cid)
        if reason is None:
            if len(checked) >= _CHECKED_CHANNELS:
                checked.clear()
            reason = checked[cid] = self._channel_problem(principal, run, cid)
        if reason:
            run.problem(item.line, cid, reason)
            return
        buffer = run.buffers.get(cid)
        if buffer is None:
            buffer = run.buffers[cid] = []
        else:
            run.buffers.move_to_end(cid)  # least recently used goes first
        buffer.append(item)
        if len(buffer) >= _FLUSH_PROGRAMMES:
            await self._flush(run, cid, final=False)
        while len(run.buffers) > _BUFFERED_CHANNELS:
            await self._flush(run, next(iter(run.buffers)), final=False)

    @staticmethod
    def _channel_problem(principal: Principal, run: _ImportRun, cid: str) -> str:
        channel = run.channels.get(cid)
        if channel is None:
            return f"unknown channel {_clip(cid, 128)!r} (not in the catalogue or the file)"
        if not may_write(principal, channel):
            return f"channel {cid!r} belongs to another broadcaster"
        return ""

    async def _import_channel(
        self,
        principal: Principal,
        run: _ImportRun,
        item: XmltvChannel,
        mapping: dict[str, str],
        owner: str,
    ) -> None:
        cid = mapping.get(item.id, item.id)
        current = run.channels.get(cid)
        try:
            if current is None:
                if not owner:
                    run.problem(item.line, cid, "new channel needs an owner for an admin import")
                    return
                channel = validate_channel(
                    Channel(
                        id=cid,
                        number=0,
                        names=item.names,
                        owner=owner,
                        logo_url=item.icon,
                        version=1,
                    )
                )
                run.channels[cid] = channel
                run.created += 1
                if run.write:
                    run.version = await self._store.create_channel(channel)
                return
            if not may_write(principal, current):
                run.problem(item.line, cid, f"channel {cid!r} belongs to another broadcaster")
                return
            if item.names == current.names and item.icon == current.logo_url:
                return
            updated = validate_channel(
                replace(current, names=item.names, logo_url=item.icon, version=current.version + 1)
            )
        except (InvalidChannel, UnknownTimezone) as err:
            run.problem(item.line, cid, err.message)
            return
        run.channels[cid] = updated
        run.updated += 1
        if run.write:
            run.version = await self._store.update_channel(updated, current.version)

    async def _flush(self, run: _ImportRun, cid: str, *, final: bool) -> None:
        """Validate and write one channel's buffered programmes.

        A programme without a stop ends when the next one on its channel
        starts; when it is the last one buffered it waits for the next flush
        (or, at the end of the file, is reported).
        """
        items = run.buffers.pop(cid, [])
        waiting = run.held.pop(cid, None)
        if waiting is not None:
            items.append(waiting)
        items.sort(key=lambda x: x.programme.start)
        starts = [x.programme.start for x in items]
        if not final and items and items[-1].stop_missing:
            run.held[cid] = items.pop()
        ready: list[Programme] = []
        taken = run.taken.setdefault(cid, [])
        for i, item in enumerate(items):
            p = item.programme
            stop = p.stop
            if item.stop_missing:
                if i + 1 >= len(starts):
                    run.problem(item.line, cid, "no stop time and no following programme")
                    continue
                stop = starts[i + 1]
            p = Programme(  # direct construction: dataclasses.replace is slow in bulk
                programme_id(cid, p.start),
                cid,
                p.start,
                stop,
                p.titles,
                p.sub_titles,
                p.descriptions,
                p.categories,
                p.keywords,
                p.episode_xmltv_ns,
                p.episode_onscreen,
                p.ratings,
                p.previously_shown,
                p.premiere,
                p.icons,
                p.rights,
                p.audio_languages,
                p.subtitle_languages,
            )
            try:
                validate_programme(p)
            except (InvalidProgramme, InvalidChannel) as err:
                run.problem(item.line, cid, err.message)
                continue
            start_s, stop_s = p.start_s, p.stop_s
            at = bisect.bisect_left(taken, (start_s, stop_s, item.line))
            before = taken[at - 1] if at > 0 else None
            after = taken[at] if at < len(taken) else None
            clash = (
                before
                if before is not None and before[1] > start_s
                else after
                if after is not None and after[0] < stop_s
                else None
            )
            if clash is not None:
                run.problem(
                    item.line, cid, f"overlaps the programme at line {clash[2]} of this file"
                )
                continue
            taken.insert(at, (start_s, stop_s, item.line))
            ready.append(p)
        if not ready or not run.write:
            return
        for i in range(0, len(ready), self._max_batch):
            await self._collect(run, cid)
            while len(run.pending) >= _WRITES_IN_FLIGHT:
                await self._collect(run, next(iter(run.pending)))
            # Writes in flight while the next batches are parsed: Redis runs them on the
            # other core meanwhile, and a write's round trips (claim, channel, feed) overlap.
            run.pending[cid] = asyncio.create_task(
                self._store.write_programmes(
                    cid,
                    ready[i : i + self._max_batch],
                    policy=WritePolicy.REPLACE,
                    keep_rights=True,
                )
            )
            await asyncio.sleep(0)

    @staticmethod
    async def _collect(run: _ImportRun, cid: str) -> None:
        """Wait for the channel's write in flight, if any, and count what it did."""
        pending = run.pending.pop(cid, None)
        if pending is None:
            return
        result = await pending
        run.written += len(result.written)
        run.unchanged += len(result.unchanged)
        run.removed += len(result.removed)
        run.trimmed += len(result.trimmed)
        run.version = max(run.version, result.version)
