"""EPG use cases and authorization: who may read and change which channels.

Broadcasters change and read only their own channels; carriers and the
admin read everything; only the admin and the owning broadcaster write.
The ``device`` role has no access to this service.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import IO

from epg.domain import (
    Change,
    Channel,
    Gap,
    Programme,
    SlotRule,
    WritePolicy,
    WriteResult,
    expand_slots,
    find_gaps,
    programme_id,
    validate_batch,
    validate_channel,
    validate_channel_id,
    validate_programme,
    validate_window,
)
from epg.errors import (
    ChannelNotFound,
    ImportRejected,
    InvalidChannel,
    InvalidProgramme,
    InvalidQuery,
    InvalidTimeRange,
    NotAllowed,
    ProgrammeNotFound,
)
from epg.store import EpgStore
from epg.xmltv import Problem, XmltvChannel, XmltvProgramme, iter_xmltv, open_source, write_xmltv
from headend.auth import Principal

_READERS = ("admin", "carrier", "broadcaster")
_IMPORT_BUFFERED_CHANNELS = 8  # channels whose programmes are held before writing
_IMPORT_FLUSH_PROGRAMMES = 2_000
_MAX_PAGE = 200
_MAX_SEARCH = 1_000


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an XMLTV import did, and the elements it skipped with line and reason."""

    channels_created: int
    channels_updated: int
    programmes_written: int
    programmes_unchanged: int
    programmes_removed: int
    programmes_trimmed: int
    problems: tuple[Problem, ...]
    version: int


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
    buffers: OrderedDict[str, list[XmltvProgramme]] = field(default_factory=OrderedDict)
    held: dict[str, XmltvProgramme] = field(default_factory=dict)
    pending: asyncio.Task[WriteResult] | None = None
    taken: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NowNext:
    """The programme on air on a channel and the one after it."""

    channel_id: str
    now: Programme | None
    next: Programme | None


class EpgService:
    """Channel catalogue, schedules, queries, XMLTV and change feed."""

    def __init__(
        self,
        *,
        store: EpgStore,
        max_batch: int = 10_000,
        max_import_bytes: int = 1024**3,
        watch_block_ms: int = 5_000,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._max_import_bytes = max_import_bytes
        self._watch_block_ms = watch_block_ms

    # ---------------------------------------------------------- authorization

    @staticmethod
    def _require_reader(principal: Principal) -> None:
        if principal.role not in _READERS:
            raise NotAllowed(f"{principal} may not use the EPG service")

    @staticmethod
    def _may_read(principal: Principal, channel: Channel) -> bool:
        return principal.role in ("admin", "carrier") or (
            principal.role == "broadcaster" and principal.tenant == channel.owner
        )

    @staticmethod
    def _may_write(principal: Principal, channel: Channel) -> bool:
        return principal.is_admin or (
            principal.role == "broadcaster" and principal.tenant == channel.owner
        )

    async def _channel(self, channel_id: str) -> Channel:
        validate_channel_id(channel_id)
        channel = await self._store.get_channel(channel_id)
        if channel is None:
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return channel

    async def _readable(self, principal: Principal, channel_id: str) -> Channel:
        self._require_reader(principal)
        channel = await self._channel(channel_id)
        if not self._may_read(principal, channel):
            raise NotAllowed(
                f"{principal} may not read channel {channel_id}", details={"channel_id": channel_id}
            )
        return channel

    async def _writable(self, principal: Principal, channel_id: str) -> Channel:
        self._require_reader(principal)
        channel = await self._channel(channel_id)
        if not self._may_write(principal, channel):
            raise NotAllowed(
                f"{principal} may not change channel {channel_id}",
                details={"channel_id": channel_id, "owner": channel.owner},
            )
        return channel

    async def _visible(self, principal: Principal, channel_ids: Sequence[str]) -> list[Channel]:
        """The named channels (all readable ones when none are named), in guide order."""
        self._require_reader(principal)
        if channel_ids:
            return [await self._readable(principal, cid) for cid in channel_ids]
        return [c for c in await self._store.list_channels() if self._may_read(principal, c)]

    # ---------------------------------------------------------- channels

    async def create_channel(self, principal: Principal, channel: Channel) -> Channel:
        """Add a channel; a broadcaster may only create channels it owns."""
        self._require_reader(principal)
        if principal.role == "broadcaster" and not channel.owner:
            channel = replace(channel, owner=principal.tenant)
        if not self._may_write(principal, channel):
            raise NotAllowed(f"{principal} may not create channels for {channel.owner!r}")
        channel = validate_channel(replace(channel, version=1))
        await self._store.create_channel(channel)
        return channel

    async def update_channel(
        self, principal: Principal, channel: Channel, expected_version: int
    ) -> Channel:
        """Replace a channel's fields if ``expected_version`` is current; only the admin
        may change the owner."""
        current = await self._writable(principal, channel.id)
        if channel.owner != current.owner and not principal.is_admin:
            raise NotAllowed(f"{principal} may not change the owner of {channel.id}")
        updated = validate_channel(replace(channel, version=expected_version + 1))
        await self._store.update_channel(updated, expected_version)
        return updated

    async def get_channel(self, principal: Principal, channel_id: str) -> Channel:
        """One channel."""
        return await self._readable(principal, channel_id)

    async def list_channels(
        self, principal: Principal, *, include_inactive: bool = True
    ) -> list[Channel]:
        """The channels the caller may read, by logical number."""
        channels = await self._visible(principal, ())
        return [c for c in channels if include_inactive or c.active]

    async def delete_channel(self, principal: Principal, channel_id: str, *, force: bool) -> int:
        """Remove a channel; refused while it has programmes unless ``force``."""
        await self._writable(principal, channel_id)
        return await self._store.delete_channel(channel_id, force=force)

    # ---------------------------------------------------------- programmes

    async def put_programmes(
        self,
        principal: Principal,
        channel_id: str,
        programmes: Sequence[Programme],
        *,
        policy: WritePolicy = WritePolicy.REFUSE,
    ) -> WriteResult:
        """Write a batch to one channel, entirely or not at all."""
        await self._writable(principal, channel_id)
        filled = [
            p if p.id else replace(p, id=programme_id(channel_id, p.start)) for p in programmes
        ]
        ordered = validate_batch(channel_id, filled, max_batch=self._max_batch)
        return await self._store.write_programmes(channel_id, ordered, policy=policy)

    async def delete_programmes(
        self,
        principal: Principal,
        channel_id: str,
        *,
        ids: Sequence[str] = (),
        start: datetime | None = None,
        stop: datetime | None = None,
    ) -> tuple[int, tuple[str, ...]]:
        """Remove programmes by id or those starting inside a window."""
        await self._writable(principal, channel_id)
        if (start is None) != (stop is None):
            raise InvalidTimeRange("start", "give both start and stop, or neither")
        if start is not None and stop is not None:
            if ids:
                raise InvalidProgramme("ids", "give ids or a window, not both")
            validate_window(start, stop, max_seconds=366 * 86400)
        elif not ids:
            raise InvalidProgramme("ids", "give ids or a window")
        return await self._store.delete_programmes(channel_id, ids=ids, start=start, stop=stop)

    async def get_programme(self, principal: Principal, pid: str) -> Programme:
        """One programme with its bounds and rights (the front door's catch-up check)."""
        self._require_reader(principal)
        programme = await self._store.get_programme(pid)
        if programme is None:
            raise ProgrammeNotFound(f"no programme {pid}", details={"programme_id": pid})
        await self._readable(principal, programme.channel_id)
        return programme

    async def expand_slots(
        self,
        principal: Principal,
        channel_id: str,
        rule: SlotRule,
        *,
        policy: WritePolicy = WritePolicy.REFUSE,
        dry_run: bool = False,
    ) -> tuple[list[Programme], WriteResult | None]:
        """Expand a recurring slot in the channel's timezone and (unless dry run) write it."""
        channel = await self._writable(principal, channel_id)
        programmes = expand_slots(rule, channel)
        ordered = validate_batch(channel_id, programmes, max_batch=self._max_batch)
        if dry_run:
            return ordered, None
        return ordered, await self._store.write_programmes(channel_id, ordered, policy=policy)

    # ---------------------------------------------------------- queries

    async def now_next(
        self, principal: Principal, channel_ids: Sequence[str], at: datetime | None = None
    ) -> list[NowNext]:
        """Now and next for many channels in one round trip."""
        self._require_reader(principal)
        when = at or datetime.now(UTC)
        if channel_ids:
            ids = [validate_channel_id(cid) for cid in channel_ids]
        else:
            ids = [c.id for c in await self._visible(principal, ())]
        out: list[NowNext] = []
        # Channels come back with the programmes: authorization costs no extra round trip.
        for cid, (channel, now, nxt) in zip(
            ids, await self._store.now_next(ids, when), strict=True
        ):
            if channel is None:
                raise ChannelNotFound(f"no channel {cid}", details={"channel_id": cid})
            if not self._may_read(principal, channel):
                raise NotAllowed(
                    f"{principal} may not read channel {cid}", details={"channel_id": cid}
                )
            out.append(NowNext(cid, now, nxt))
        return out

    async def range(
        self, principal: Principal, channel_id: str, start: datetime, stop: datetime
    ) -> list[Programme]:
        """Programmes of one channel overlapping ``[start, stop)``."""
        validate_window(start, stop)
        await self._readable(principal, channel_id)
        return await self._store.range(channel_id, start, stop)

    async def grid(
        self,
        principal: Principal,
        channel_ids: Sequence[str],
        start: datetime,
        stop: datetime,
        *,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[tuple[Channel, list[Programme]]], str]:
        """A page of channels, each with its programmes in the window; and the next token."""
        validate_window(start, stop)
        if not 0 <= page_size <= _MAX_PAGE:
            raise InvalidQuery("page_size", f"must be between 0 and {_MAX_PAGE}")
        size = page_size or 50
        try:
            offset = int(page_token) if page_token else 0
        except ValueError as err:
            raise InvalidQuery("page_token", "not a token from a previous page") from err
        channels = await self._visible(principal, channel_ids)
        page = channels[offset : offset + size]
        rows = [(c, await self._store.range(c.id, start, stop)) for c in page]
        more = offset + size < len(channels)
        return rows, str(offset + size) if more else ""

    async def search(
        self,
        principal: Principal,
        text: str,
        category: str,
        *,
        start: datetime | None = None,
        stop: datetime | None = None,
        limit: int = 100,
    ) -> list[Programme]:
        """Programmes whose titles, sub-titles, descriptions or keywords contain ``text``
        (case-insensitive) and, if given, that carry ``category``; within a window
        (default: the next 7 days)."""
        if not text.strip() and not category.strip():
            raise InvalidQuery("text", "give a text or a category")
        if len(text) > 256 or len(category) > 256:
            raise InvalidQuery("text", "at most 256 characters")
        if not 0 <= limit <= _MAX_SEARCH:
            raise InvalidQuery("limit", f"must be between 0 and {_MAX_SEARCH}")
        lo = start or datetime.now(UTC)
        hi = stop or lo + timedelta(days=7)
        validate_window(lo, hi)
        needle, cat = text.strip().casefold(), category.strip().casefold()
        found: list[Programme] = []
        for channel in await self._visible(principal, ()):
            for p in await self._store.range(channel.id, lo, hi):
                if cat and not any(c.text.casefold() == cat for c in p.categories):
                    continue
                if needle and not any(
                    needle in t.text.casefold()
                    for t in (*p.titles, *p.sub_titles, *p.descriptions, *p.keywords)
                ):
                    continue
                found.append(p)
                if len(found) >= (limit or 100):
                    return found
        return found

    async def list_gaps(
        self,
        principal: Principal,
        channel_id: str,
        start: datetime,
        stop: datetime,
        *,
        min_seconds: int = 1,
    ) -> list[Gap]:
        """Unscheduled intervals of one channel inside a window."""
        programmes = await self.range(principal, channel_id, start, stop)
        return find_gaps(programmes, start, stop, min_seconds=max(1, min_seconds))

    # ---------------------------------------------------------- changes

    async def open_changes(
        self,
        principal: Principal,
        *,
        from_version: int = 0,
        channel_ids: Sequence[str] = (),
    ) -> AsyncGenerator[Change, None]:
        """Position a change feed now; iterating it yields changes after ``from_version``
        (0: after the current version), forever.

        When the history after ``from_version`` has been trimmed, a ``resync``
        change comes first: the caller must drop its whole cache.
        """
        self._require_reader(principal)
        wanted = frozenset(channel_ids)
        for cid in wanted:
            await self._readable(principal, cid)
        latest = await self._store.version()
        resync = False
        if from_version <= 0:
            cursor = latest
        else:
            cursor = from_version
            oldest = await self._store.oldest_change()
            resync = (oldest is None and latest > from_version) or (
                oldest is not None and oldest > from_version + 1
            )
        return self._follow(principal, cursor, resync, wanted)

    async def _follow(
        self, principal: Principal, cursor: int, resync: bool, wanted: frozenset[str]
    ) -> AsyncGenerator[Change, None]:
        if resync:
            yield Change(version=cursor, kind="resync", channel_id="")
        owners: dict[str, str] = {}
        while True:
            for change in await self._store.read_changes(cursor, block_ms=self._watch_block_ms):
                cursor = change.version
                if wanted and change.channel_id not in wanted:
                    continue
                if principal.role == "broadcaster":
                    owner = owners.get(change.channel_id)
                    if owner is None:
                        channel = await self._store.get_channel(change.channel_id)
                        owner = channel.owner if channel else ""
                        owners[change.channel_id] = owner
                    if owner != principal.tenant:
                        continue
                yield change

    # ---------------------------------------------------------- XMLTV

    async def export_xmltv(
        self,
        principal: Principal,
        channel_ids: Sequence[str],
        start: datetime,
        stop: datetime,
        *,
        compress: bool = False,
    ) -> bytes:
        """An XMLTV document for the channels (all readable ones by default) over a window."""
        validate_window(start, stop)
        channels = await self._visible(principal, channel_ids)
        programmes: list[Programme] = []
        for c in channels:
            programmes += await self._store.range(c.id, start, stop)
        return write_xmltv(channels, programmes, compress=compress)

    async def import_xmltv(
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
        self._require_reader(principal)
        if principal.role == "carrier":
            raise NotAllowed(f"{principal} may not import guides")
        if principal.role == "broadcaster":
            if owner and owner != principal.tenant:
                raise NotAllowed(f"{principal} may not import for {owner!r}")
            owner = principal.tenant
        table = dict(mapping or {})
        for source_id, our_id in table.items():
            validate_channel_id(our_id, f"mapping[{source_id}]")
        known = {c.id: c for c in await self._store.list_channels()}
        if strict:
            dry = await self._import_pass(principal, source, table, owner, dict(known), False)
            if dry.problems:
                first = dry.problems[:20]
                raise ImportRejected(
                    "file",
                    f"{len(dry.problems)} bad element(s); strict import changed nothing",
                    details={
                        "problems": str(len(dry.problems)),
                        "first": "; ".join(f"line {p.line}: {p.reason}" for p in first),
                    },
                )
            source.seek(0)
        run = await self._import_pass(principal, source, table, owner, known, True)
        return ImportReport(
            run.created,
            run.updated,
            run.written,
            run.unchanged,
            run.removed,
            run.trimmed,
            tuple(run.problems),
            run.version,
        )

    async def _import_pass(
        self,
        principal: Principal,
        source: IO[bytes],
        mapping: dict[str, str],
        owner: str,
        known: dict[str, Channel],
        write: bool,
    ) -> _ImportRun:
        run = _ImportRun(write=write, channels=known)
        reader = open_source(source, max_bytes=self._max_import_bytes)
        try:
            await self._read_all(principal, run, reader, mapping, owner)
            for cid in [*run.buffers, *(c for c in run.held if c not in run.buffers)]:
                await self._flush(run, cid, final=True)
            await self._collect(run)
        finally:
            if run.pending is not None:  # the file failed part-way: settle the last write
                await asyncio.gather(run.pending, return_exceptions=True)
        return run

    async def _read_all(
        self,
        principal: Principal,
        run: _ImportRun,
        reader: IO[bytes],
        mapping: dict[str, str],
        owner: str,
    ) -> None:
        checked: dict[str, str] = {}
        for item in iter_xmltv(reader):
            if isinstance(item, Problem):
                run.problems.append(
                    Problem(item.line, mapping.get(item.channel, item.channel), item.reason)
                )
            elif isinstance(item, XmltvChannel):
                await self._import_channel(principal, run, item, mapping, owner)
                checked.clear()
            else:
                source_id = item.programme.channel_id
                cid = mapping.get(source_id, source_id)
                reason = checked.get(cid)
                if reason is None:
                    reason = checked[cid] = self._channel_problem(principal, run, cid)
                if reason:
                    run.problems.append(Problem(item.line, cid, reason))
                    continue
                buffer = run.buffers.get(cid)
                if buffer is None:
                    buffer = run.buffers[cid] = []
                else:
                    run.buffers.move_to_end(cid)  # least recently used goes first
                buffer.append(item)
                if len(buffer) >= _IMPORT_FLUSH_PROGRAMMES:
                    await self._flush(run, cid, final=False)
                while len(run.buffers) > _IMPORT_BUFFERED_CHANNELS:
                    await self._flush(run, next(iter(run.buffers)), final=False)

    def _channel_problem(self, principal: Principal, run: _ImportRun, cid: str) -> str:
        channel = run.channels.get(cid)
        if channel is None:
            return f"unknown channel {cid!r} (not in the catalogue or the file)"
        if not self._may_write(principal, channel):
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
                    run.problems.append(
                        Problem(item.line, cid, "new channel needs an owner for an admin import")
                    )
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
            if not self._may_write(principal, current):
                run.problems.append(
                    Problem(item.line, cid, f"channel {cid!r} belongs to another broadcaster")
                )
                return
            if item.names == current.names and item.icon == current.logo_url:
                return
            updated = validate_channel(
                replace(current, names=item.names, logo_url=item.icon, version=current.version + 1)
            )
        except InvalidChannel as err:
            run.problems.append(Problem(item.line, cid, err.message))
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
                    run.problems.append(
                        Problem(item.line, cid, "no stop time and no following programme")
                    )
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
            )
            try:
                validate_programme(p)
            except InvalidProgramme as err:
                run.problems.append(Problem(item.line, cid, err.reason))
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
                run.problems.append(
                    Problem(
                        item.line, cid, f"overlaps the programme at line {clash[2]} of this file"
                    )
                )
                continue
            taken.insert(at, (start_s, stop_s, item.line))
            ready.append(p)
        if not ready or not run.write:
            return
        for i in range(0, len(ready), self._max_batch):
            await self._collect(run)
            # One write in flight while the next batch is parsed: Redis runs the
            # script on the other core meanwhile.
            run.pending = asyncio.create_task(
                self._store.write_programmes(
                    cid,
                    ready[i : i + self._max_batch],
                    policy=WritePolicy.REPLACE,
                    keep_rights=True,
                )
            )
            await asyncio.sleep(0)

    @staticmethod
    async def _collect(run: _ImportRun) -> None:
        """Wait for the write in flight and count what it did."""
        if run.pending is None:
            return
        pending, run.pending = run.pending, None
        result = await pending
        run.written += len(result.written)
        run.unchanged += len(result.unchanged)
        run.removed += len(result.removed)
        run.trimmed += len(result.trimmed)
        run.version = max(run.version, result.version)
