"""The gRPC face of the EPG: proto <-> domain only; errors are mapped by the harness."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from epg.domain import (
    DEFAULT_TIMEZONE,
    Channel,
    FoldPolicy,
    GapPolicy,
    Programme,
    Rating,
    Rights,
    SlotRule,
    Text,
    WritePolicy,
)
from epg.errors import (
    ImportTooLarge,
    InvalidProgramme,
    InvalidSlotRule,
    InvalidTimeRange,
    InvalidXmltv,
)
from epg.service import EpgService
from epg.settings import EpgSettings
from epg.store import EpgStore
from headend.auth import Authenticator, KeyStore
from headend.rpc import RpcServer, ServiceSpec, principal, run_service, start_server
from protos import epg_pb2, epg_pb2_grpc

SERVICE_NAME = "headend.epg.v1.EpgService"
# Initial metadata of WatchChanges: the version the feed is positioned at, so a
# client that reconnects can resume from it instead of dropping its cache.
VERSION_HEADER = "epg-version"
EXPORT_CHUNK_BYTES = 1024 * 1024
PROGRAMME_CACHE_SIZE = 50_000
T = TypeVar("T")
log = logging.getLogger(__name__)

# Keyed by wire numbers (proto enums are open: any number can arrive).
_POLICY: dict[int, WritePolicy] = {
    epg_pb2.WRITE_POLICY_REFUSE: WritePolicy.REFUSE,
    epg_pb2.WRITE_POLICY_REPLACE: WritePolicy.REPLACE,
}
_GAP: dict[int, GapPolicy] = {
    epg_pb2.GAP_POLICY_SHIFT_FORWARD: GapPolicy.SHIFT_FORWARD,
    epg_pb2.GAP_POLICY_SKIP: GapPolicy.SKIP,
}
_FOLD: dict[int, FoldPolicy] = {
    epg_pb2.FOLD_POLICY_FIRST: FoldPolicy.FIRST,
    epg_pb2.FOLD_POLICY_SECOND: FoldPolicy.SECOND,
    epg_pb2.FOLD_POLICY_SKIP: FoldPolicy.SKIP,
}


# ---------------------------------------------------------------- conversions


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _time(msg: Any, name: str, field: str | None = None) -> datetime | None:
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    if ts.nanos:
        raise InvalidTimeRange(field or name, "sub-second precision is not allowed")
    try:
        return datetime.fromtimestamp(ts.seconds, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise InvalidTimeRange(field or name, "outside the years 1 to 9999") from err


def _policy(value: int) -> WritePolicy:
    # Enums are open on the wire: an unknown number is a bad request, not a bug.
    policy = _POLICY.get(value)
    if policy is None:
        raise InvalidProgramme("policy", f"unknown write policy {value}")
    return policy


def _required(msg: Any, name: str, field: str | None = None) -> datetime:
    when = _time(msg, name, field)
    if when is None:
        raise InvalidTimeRange(field or name, "is required")
    return when


def _texts(items: Any) -> tuple[Text, ...]:
    return tuple(Text(t.lang, t.text) for t in items)


def _pb_texts(items: Sequence[Text]) -> list[epg_pb2.LocalizedText]:
    return [epg_pb2.LocalizedText(lang=t.lang, text=t.text) for t in items]


def channel_from_pb(c: epg_pb2.Channel) -> Channel:
    """A domain channel from its message."""
    return Channel(
        id=c.id,
        number=c.number,
        names=_texts(c.names),
        owner=c.owner,
        timezone=c.timezone or DEFAULT_TIMEZONE,
        logo_url=c.logo_url,
        catchup_days=c.catchup_days,
        group=c.group,
        active=c.active,
        version=c.version,
    )


def channel_to_pb(c: Channel) -> epg_pb2.Channel:
    """A channel message."""
    return epg_pb2.Channel(
        id=c.id,
        number=c.number,
        names=_pb_texts(c.names),
        logo_url=c.logo_url,
        owner=c.owner,
        timezone=c.timezone,
        catchup_days=c.catchup_days,
        group=c.group,
        active=c.active,
        version=c.version,
    )


def programme_from_pb(p: epg_pb2.Programme, channel_id: str, index: int) -> Programme:
    """A domain programme from its message (times required)."""
    prefix = f"programmes[{index}]"
    return Programme(
        id=p.id,
        channel_id=p.channel_id or channel_id,
        start=_required(p, "start", f"{prefix}.start"),
        stop=_required(p, "stop", f"{prefix}.stop"),
        titles=_texts(p.titles),
        sub_titles=_texts(p.sub_titles),
        descriptions=_texts(p.descriptions),
        categories=_texts(p.categories),
        keywords=_texts(p.keywords),
        episode_xmltv_ns=p.episode_xmltv_ns,
        episode_onscreen=p.episode_onscreen,
        ratings=tuple(Rating(r.system, r.value) for r in p.ratings),
        previously_shown=p.previously_shown,
        premiere=p.premiere,
        icons=tuple(p.icons),
        rights=Rights(
            catchup_allowed=p.catchup_allowed if p.HasField("catchup_allowed") else True,
            blackout_regions=tuple(p.blackout_regions),
            blackout_slate=p.blackout_slate,
        ),
    )


def programme_to_pb(p: Programme) -> epg_pb2.Programme:
    """A programme message."""
    return epg_pb2.Programme(
        id=p.id,
        channel_id=p.channel_id,
        start=_ts(p.start),
        stop=_ts(p.stop),
        titles=_pb_texts(p.titles),
        sub_titles=_pb_texts(p.sub_titles),
        descriptions=_pb_texts(p.descriptions),
        categories=_pb_texts(p.categories),
        keywords=_pb_texts(p.keywords),
        episode_xmltv_ns=p.episode_xmltv_ns,
        episode_onscreen=p.episode_onscreen,
        ratings=[epg_pb2.Rating(system=r.system, value=r.value) for r in p.ratings],
        previously_shown=p.previously_shown,
        premiere=p.premiere,
        icons=list(p.icons),
        catchup_allowed=p.rights.catchup_allowed,
        blackout_regions=list(p.rights.blackout_regions),
        blackout_slate=p.rights.blackout_slate,
    )


def _day(d: epg_pb2.LocalDate, field: str) -> date:
    try:
        return date(d.year, d.month, d.day)
    except ValueError as err:
        raise InvalidSlotRule(field, f"not a date: {err}") from err


def _known(table: dict[int, T], value: int, field: str) -> T:
    if value not in table:
        raise InvalidSlotRule(field, f"unknown value {value}")
    return table[value]


def slot_rule_from_pb(r: epg_pb2.SlotRule) -> SlotRule:
    """A domain slot rule; weekdays arrive as ISO 1..7."""
    if any(not 1 <= d <= 7 for d in r.weekdays):
        raise InvalidSlotRule("rule.weekdays", "ISO weekdays 1 (Mon) to 7 (Sun)")
    if r.hour > 23 or r.minute > 59:
        raise InvalidSlotRule("rule.hour", "a wall-clock time 00:00 to 23:59")
    return SlotRule(
        weekdays=frozenset(d - 1 for d in r.weekdays),
        at=time(r.hour, r.minute),
        duration=timedelta(seconds=r.duration_seconds),
        titles=_texts(r.titles),
        first_day=_day(r.first_day, "rule.first_day"),
        last_day=_day(r.last_day, "rule.last_day"),
        gap_policy=_known(_GAP, r.gap_policy, "rule.gap_policy"),
        fold_policy=_known(_FOLD, r.fold_policy, "rule.fold_policy"),
        categories=_texts(r.categories),
        descriptions=_texts(r.descriptions),
    )


# ---------------------------------------------------------------- servicer


class EpgServicer(epg_pb2_grpc.EpgServiceServicer):
    """Translates EpgService messages to use cases."""

    def __init__(self, service: EpgService, *, max_upload_bytes: int) -> None:
        self._svc = service
        self._max_upload = max_upload_bytes
        self._encoded: dict[Programme, bytes] = {}

    def _wire(self, p: Programme) -> bytes:
        """A programme's serialized message, memoised by its (immutable, hashable) value:
        building messages dominates NowNext and Range otherwise."""
        hit = self._encoded.get(p)
        if hit is None:
            if len(self._encoded) >= PROGRAMME_CACHE_SIZE:
                self._encoded.clear()
            hit = self._encoded[p] = programme_to_pb(p).SerializeToString()
        return hit

    def _add(self, repeated: Any, programmes: Sequence[Programme]) -> None:
        for p in programmes:
            repeated.add().MergeFromString(self._wire(p))

    async def CreateChannel(self, request: Any, context: Any) -> epg_pb2.Channel:
        return channel_to_pb(
            await self._svc.create_channel(principal(), channel_from_pb(request.channel))
        )

    async def UpdateChannel(self, request: Any, context: Any) -> epg_pb2.Channel:
        return channel_to_pb(
            await self._svc.update_channel(
                principal(), channel_from_pb(request.channel), request.expected_version
            )
        )

    async def GetChannel(self, request: Any, context: Any) -> epg_pb2.Channel:
        return channel_to_pb(await self._svc.get_channel(principal(), request.id))

    async def ListChannels(self, request: Any, context: Any) -> epg_pb2.ListChannelsResponse:
        channels = await self._svc.list_channels(
            principal(), include_inactive=not request.active_only
        )
        return epg_pb2.ListChannelsResponse(channels=[channel_to_pb(c) for c in channels])

    async def DeleteChannel(self, request: Any, context: Any) -> epg_pb2.DeleteChannelResponse:
        version = await self._svc.delete_channel(principal(), request.id, force=request.force)
        return epg_pb2.DeleteChannelResponse(version=version)

    async def PutProgrammes(self, request: Any, context: Any) -> epg_pb2.PutProgrammesResponse:
        programmes = [
            programme_from_pb(p, request.channel_id, i) for i, p in enumerate(request.programmes)
        ]
        result = await self._svc.put_programmes(
            principal(), request.channel_id, programmes, policy=_policy(request.policy)
        )
        return epg_pb2.PutProgrammesResponse(
            version=result.version,
            written_ids=result.written,
            unchanged_ids=result.unchanged,
            removed_ids=result.removed,
            trimmed_ids=result.trimmed,
        )

    async def DeleteProgrammes(
        self, request: Any, context: Any
    ) -> epg_pb2.DeleteProgrammesResponse:
        version, removed = await self._svc.delete_programmes(
            principal(),
            request.channel_id,
            ids=list(request.ids),
            start=_time(request, "start"),
            stop=_time(request, "stop"),
        )
        return epg_pb2.DeleteProgrammesResponse(version=version, removed_ids=removed)

    async def GetProgramme(self, request: Any, context: Any) -> epg_pb2.Programme:
        return programme_to_pb(await self._svc.get_programme(principal(), request.id))

    async def ExpandSlots(self, request: Any, context: Any) -> epg_pb2.ExpandSlotsResponse:
        programmes, result = await self._svc.expand_slots(
            principal(),
            request.channel_id,
            slot_rule_from_pb(request.rule),
            policy=_policy(request.policy),
            dry_run=request.dry_run,
        )
        return epg_pb2.ExpandSlotsResponse(
            programmes=[programme_to_pb(p) for p in programmes],
            version=0 if result is None else result.version,
        )

    async def NowNext(self, request: Any, context: Any) -> epg_pb2.NowNextResponse:
        entries = await self._svc.now_next(
            principal(), list(request.channel_ids), _time(request, "at")
        )
        out = epg_pb2.NowNextResponse()
        for e in entries:
            entry = out.entries.add(channel_id=e.channel_id)
            if e.now is not None:
                entry.now.MergeFromString(self._wire(e.now))
            if e.next is not None:
                entry.next.MergeFromString(self._wire(e.next))
        return out

    async def Range(self, request: Any, context: Any) -> epg_pb2.RangeResponse:
        programmes = await self._svc.range(
            principal(), request.channel_id, _required(request, "start"), _required(request, "stop")
        )
        out = epg_pb2.RangeResponse()
        self._add(out.programmes, programmes)
        return out

    async def Grid(self, request: Any, context: Any) -> epg_pb2.GridResponse:
        rows, token = await self._svc.grid(
            principal(),
            list(request.channel_ids),
            _required(request, "start"),
            _required(request, "stop"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        out = epg_pb2.GridResponse(next_page_token=token)
        for c, ps in rows:
            row = out.rows.add(channel=channel_to_pb(c))
            self._add(row.programmes, ps)
        return out

    async def Search(self, request: Any, context: Any) -> epg_pb2.SearchResponse:
        found = await self._svc.search(
            principal(),
            request.text,
            request.category,
            start=_time(request, "start"),
            stop=_time(request, "stop"),
            limit=request.limit,
        )
        return epg_pb2.SearchResponse(programmes=[programme_to_pb(p) for p in found])

    async def ListGaps(self, request: Any, context: Any) -> epg_pb2.ListGapsResponse:
        gaps = await self._svc.list_gaps(
            principal(),
            request.channel_id,
            _required(request, "start"),
            _required(request, "stop"),
            min_seconds=request.min_gap_seconds,
        )
        return epg_pb2.ListGapsResponse(
            gaps=[epg_pb2.Gap(start=_ts(g.start), stop=_ts(g.stop)) for g in gaps]
        )

    async def ImportXmltv(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> epg_pb2.ImportXmltvResponse:
        caller = principal()
        options: Any = None
        size = 0
        with tempfile.TemporaryFile() as spool:
            async for chunk in request_iterator:
                if chunk.HasField("options"):
                    if options is not None or size:
                        raise InvalidXmltv("options", "options must come once, first")
                    options = chunk.options
                    continue
                size += len(chunk.data)
                if size > self._max_upload:
                    raise ImportTooLarge(
                        f"upload exceeds {self._max_upload} bytes",
                        details={"limit_bytes": str(self._max_upload)},
                    )
                spool.write(chunk.data)
            if size == 0:
                raise InvalidXmltv("file", "empty upload")
            spool.seek(0)
            opts = options or epg_pb2.ImportOptions()
            report = await self._svc.import_xmltv(
                caller, spool, strict=opts.strict, mapping=dict(opts.channel_map), owner=opts.owner
            )
        return epg_pb2.ImportXmltvResponse(
            channels_created=report.channels_created,
            channels_updated=report.channels_updated,
            programmes_written=report.programmes_written,
            programmes_unchanged=report.programmes_unchanged,
            programmes_removed=report.programmes_removed,
            programmes_trimmed=report.programmes_trimmed,
            problems=[
                epg_pb2.ImportProblem(line=p.line, channel_id=p.channel, reason=p.reason)
                for p in report.problems
            ],
            version=report.version,
            problems_total=report.problems_total,
        )

    async def ExportXmltv(
        self, request: Any, context: Any
    ) -> AsyncIterator[epg_pb2.ExportXmltvChunk]:
        data = await self._svc.export_xmltv(
            principal(),
            list(request.channel_ids),
            _required(request, "start"),
            _required(request, "stop"),
            compress=request.gzip,
        )
        for i in range(0, len(data), EXPORT_CHUNK_BYTES):
            yield epg_pb2.ExportXmltvChunk(data=data[i : i + EXPORT_CHUNK_BYTES])

    async def WatchChanges(self, request: Any, context: Any) -> AsyncIterator[epg_pb2.Change]:
        feed = await self._svc.open_changes(
            principal(), from_version=request.from_version, channel_ids=list(request.channel_ids)
        )
        # Headers tell the caller the feed is positioned (every later write is seen)
        # and where, so it can resume from there after a reconnect.
        await context.send_initial_metadata(((VERSION_HEADER, str(feed.version)),))
        async for c in feed:
            msg = epg_pb2.Change(
                version=c.version,
                kind=c.kind,
                channel_id=c.channel_id,
                deleted=c.deleted,
                programme_ids=c.programme_ids,
            )
            if c.window_start is not None and c.window_stop is not None:
                msg.window_start.CopyFrom(_ts(c.window_start))
                msg.window_stop.CopyFrom(_ts(c.window_stop))
            yield msg


# ---------------------------------------------------------------- entry points


async def create_server(
    settings: EpgSettings, *, redis: Any, keys: Authenticator
) -> tuple[RpcServer, int]:
    """Build the EPG service on ``redis`` and start its gRPC server."""
    store = EpgStore(redis, changes_maxlen=settings.changes_maxlen)
    service = EpgService(
        store=store,
        max_batch=settings.max_batch_programmes,
        max_import_bytes=settings.max_import_bytes,
        watch_block_ms=settings.watch_block_ms,
    )
    servicer = EpgServicer(service, max_upload_bytes=settings.max_upload_bytes)
    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=lambda s: epg_pb2_grpc.add_EpgServiceServicer_to_server(servicer, s),
    )
    return await start_server(settings.rpc, services=[spec], authenticator=keys)


def main() -> None:
    """``python -m epg``: serve until SIGTERM/SIGINT (needs ``REDIS_URL``)."""
    run_service(
        "epg",
        EpgSettings.from_env,
        lambda settings, redis: create_server(settings, redis=redis, keys=KeyStore(redis)),
    )
