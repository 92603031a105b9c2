"""EPG use cases: the channel catalogue, schedules, queries, XMLTV and (``epg.feed``) the
change feed.

Who may do what is decided in ``epg.access``: broadcasters read and change
only their own channels; carriers and the ``playback`` role read everything
and change nothing; the admin does everything; devices have no access. The
XMLTV import path lives in ``epg.importer``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO

from epg.access import (
    may_read,
    may_write,
    require_reader,
    require_writer,
)
from epg.domain import (
    DEFAULT_HORIZON_HOURS,
    MAX_HORIZON_HOURS,
    Channel,
    Gap,
    GuideStatus,
    Programme,
    SlotRule,
    WritePolicy,
    WriteResult,
    expand_slots,
    find_gaps,
    guide_key,
    guide_status,
    programme_id,
    time_key,
    validate_batch,
    validate_channel,
    validate_channel_id,
    validate_programme_id,
    validate_window,
)
from epg.errors import (
    ChannelNotFound,
    EpgError,
    InvalidProgramme,
    InvalidQuery,
    InvalidTimeRange,
    NotAllowed,
    ProgrammeNotFound,
)
from epg.feed import ChangeFeeds
from epg.importer import ImportReport, XmltvImporter
from epg.imports import SHOWN_IMPORTS, ImportRecord, decode_import, encode_import
from epg.store import EpgStore
from epg.xmltv import write_xmltv
from headend.auth import Principal
from headend.clock import utc_now

__all__ = ["EpgService", "ImportReport", "NowNext"]


@dataclass(frozen=True, slots=True)
class NowNext:
    """The programme on air on a channel and the one after it."""

    channel_id: str
    now: Programme | None
    next: Programme | None


class EpgService(ChangeFeeds):
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
        self._watch_block_ms = watch_block_ms
        self._importer = XmltvImporter(
            store=store, max_batch=max_batch, max_import_bytes=max_import_bytes
        )

    # ---------------------------------------------------------- authorization

    async def _channel(self, channel_id: str) -> Channel:
        validate_channel_id(channel_id)
        channel = await self._store.get_channel(channel_id)
        if channel is None:
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return channel

    async def _readable(self, principal: Principal, channel_id: str) -> Channel:
        require_reader(principal)
        channel = await self._channel(channel_id)
        if not may_read(principal, channel):
            raise NotAllowed(
                f"{principal} may not read channel {channel_id}", details={"channel_id": channel_id}
            )
        return channel

    async def _writable(self, principal: Principal, channel_id: str) -> Channel:
        require_writer(principal, f"change channel {channel_id!r}")
        channel = await self._channel(channel_id)
        if not may_write(principal, channel):
            raise NotAllowed(
                f"{principal} may not change channel {channel_id}",
                details={"channel_id": channel_id, "owner": channel.owner},
            )
        return channel

    async def _visible(self, principal: Principal, channel_ids: Sequence[str]) -> list[Channel]:
        """The named channels (all readable ones when none are named), in guide order."""
        require_reader(principal)
        if channel_ids:
            return [await self._readable(principal, cid) for cid in channel_ids]
        return [c for c in await self._store.list_channels() if may_read(principal, c)]

    # ---------------------------------------------------------- channels

    async def create_channel(self, principal: Principal, channel: Channel) -> Channel:
        """Add a channel; a broadcaster may only create channels it owns."""
        require_writer(principal, "create channels")
        if principal.role == "broadcaster" and not channel.owner:
            channel = replace(channel, owner=principal.tenant)
        if not may_write(principal, channel):
            raise NotAllowed(f"{principal} may not create channels for {channel.owner!r}")
        channel = validate_channel(replace(channel, version=1))
        await self._store.create_channel(channel)
        return channel

    async def update_channel(
        self,
        principal: Principal,
        channel: Channel,
        expected_version: int,
        *,
        fields: Collection[str] | None = None,
    ) -> Channel:
        """Change the ``fields`` of a channel (all of them when None) to those of ``channel``
        if ``expected_version`` is current; only the admin may change the owner."""
        current = await self._writable(principal, channel.id)
        if fields is not None:
            # The store refuses the write unless ``current`` is still the stored version.
            channel = replace(current, **{f: getattr(channel, f) for f in fields})
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
        for i, pid in enumerate(ids):
            validate_programme_id(pid, f"ids[{i}]")
        return await self._store.delete_programmes(channel_id, ids=ids, start=start, stop=stop)

    async def get_programme(
        self, principal: Principal, pid: str, *, channel_id: str = ""
    ) -> Programme:
        """One programme with its bounds and rights (the front door's catch-up check);
        on the channel ``channel_id`` only, when given."""
        require_reader(principal)
        validate_programme_id(pid)
        programme = await self._store.get_programme(pid)
        if programme is None or channel_id not in ("", programme.channel_id):
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
        require_reader(principal)
        when = at or utc_now()
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
            if not may_read(principal, channel):
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
        after: str = "",
        limit: int = 50,
    ) -> tuple[list[tuple[Channel, list[Programme]]], str]:
        """Up to ``limit`` channels in guide order after the key ``after``, each with its
        programmes in the window; and the key the next page resumes after ("" at the end)."""
        validate_window(start, stop)
        channels = sorted(
            {guide_key(c): c for c in await self._visible(principal, channel_ids)}.items()
        )
        rest = [c for key, c in channels if key > after]
        rows = [(c, await self._store.range(c.id, start, stop)) for c in rest[:limit]]
        return rows, guide_key(rows[-1][0]) if len(rest) > limit else ""

    async def search(
        self,
        principal: Principal,
        text: str,
        category: str,
        *,
        start: datetime | None = None,
        stop: datetime | None = None,
        after: str = "",
        limit: int = 100,
    ) -> tuple[list[Programme], str]:
        """Up to ``limit`` programmes whose titles, sub-titles, descriptions or keywords
        contain ``text`` (case-insensitive) and, if given, that carry ``category``; within
        a window (default: the next 7 days). In guide order, then by start, after the key
        ``after``; with the key the next page resumes after ("" at the end)."""
        if not text.strip() and not category.strip():
            raise InvalidQuery("text", "give a text or a category")
        if len(text) > 256 or len(category) > 256:
            raise InvalidQuery("text", "at most 256 characters")
        lo = start or utc_now()
        hi = stop or lo + timedelta(days=7)
        validate_window(lo, hi)
        needle, cat = text.strip().casefold(), category.strip().casefold()
        # A programme's key: its channel's guide key, then its start (unique on a channel).
        resume_channel = after.rpartition(" ")[0]
        found: list[tuple[str, Programme]] = []
        for channel in await self._visible(principal, ()):
            channel_key = guide_key(channel)
            if channel_key < resume_channel:
                continue  # wholly on earlier pages: not read again
            for p in await self._store.range(channel.id, lo, hi):
                key = f"{channel_key} {time_key(p.start)}"
                if key <= after:
                    continue
                if cat and not any(c.text.casefold() == cat for c in p.categories):
                    continue
                if needle and not any(
                    needle in t.text.casefold()
                    for t in (*p.titles, *p.sub_titles, *p.descriptions, *p.keywords)
                ):
                    continue
                found.append((key, p))
                if len(found) > limit:
                    return [p for _, p in found[:limit]], found[limit - 1][0]
        return [p for _, p in found], ""

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

    async def guide_status(
        self,
        principal: Principal,
        channels: Sequence[Channel],
        *,
        horizon_hours: int = 0,
        at: datetime | None = None,
    ) -> list[GuideStatus]:
        """How far ahead each of ``channels`` (a page of :meth:`list_channels`) has a guide,
        and its gaps from now to the horizon (``horizon_hours``; 0: a week): one store read."""
        require_reader(principal)
        if not 0 <= horizon_hours <= MAX_HORIZON_HOURS:
            raise InvalidQuery("horizon_hours", f"must be from 0 to {MAX_HORIZON_HOURS}")
        for channel in channels:
            if not may_read(principal, channel):
                raise NotAllowed(
                    f"{principal} may not read channel {channel.id}",
                    details={"channel_id": channel.id},
                )
        now = at or utc_now()
        horizon = now + timedelta(hours=horizon_hours or DEFAULT_HORIZON_HOURS)
        ends = await self._store.guide_ends([c.id for c in channels], now, horizon)
        return [
            guide_status(channel, end, airings, now=now, horizon=horizon)
            for channel, (end, airings) in zip(channels, ends, strict=True)
        ]

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
        """Import an XMLTV file (plain or gzip, seekable); see ``XmltvImporter.run``.
        The import is recorded with its report, or its error when refused as a whole."""
        require_writer(principal, "import guides")
        try:
            report = await self._importer.run(
                principal, source, strict=strict, mapping=mapping, owner=owner
            )
        except EpgError as err:
            await self._record_import(ImportRecord(utc_now(), str(principal), error=err.message))
            raise
        await self._record_import(ImportRecord(utc_now(), str(principal), report=report))
        return report

    async def _record_import(self, record: ImportRecord) -> None:
        await self._store.record_import(record.principal, encode_import(record))

    async def recent_imports(self, principal: Principal) -> list[ImportRecord]:
        """The caller's latest imports, newest first (the admin's: everyone's)."""
        require_reader(principal)
        who = None if principal.is_admin else str(principal)
        return [decode_import(r) for r in await self._store.recent_imports(who, SHOWN_IMPORTS)]
