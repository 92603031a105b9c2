"""The gRPC face of the EPG: proto <-> domain only; errors are mapped by the harness.

Resource names become ids here (``epg.convert``), and lists are paged here by the
shared AIP-158 rules (``headend.rpc.resources``): a token is bound to the query
that made it, so a token from another parent, window or filter is refused.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import AsyncIterator, Sequence

import grpc
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from redis.asyncio import Redis

from epg.alerts.server import alert_service
from epg.alerts.service import AlertService
from epg.alerts.store import AlertStore
from epg.convert import (
    ANY_CHANNEL,
    VERSION_HEADER,
    change_to_pb,
    channel_from_pb,
    channel_name,
    channel_to_pb,
    guide_status_to_pb,
    import_record_to_pb,
    import_report_to_pb,
    optional_time,
    parse_channel_name,
    parse_programme_name,
    policy_from_pb,
    programme_from_pb,
    programme_to_pb,
    required_time,
    slot_rule_from_pb,
    write_result_to_pb,
)
from epg.cues.server import cue_service
from epg.cues.service import CueService
from epg.cues.store import CueStore
from epg.domain import Programme, guide_key, time_key
from epg.errors import ImportTooLarge, InvalidXmltv
from epg.metrics import AlertMetrics, CueMetrics, GuideMetrics
from epg.service import EpgService, NowNext
from epg.settings import EpgSettings
from epg.store import EpgStore
from epg.store.nownext import NowNextFollower
from headend.auth import Authenticator, KeyStore
from headend.metrics import RpcMetrics
from headend.rpc import RpcServer, ServiceSpec, principal, run_service, start_server, to_timestamp
from headend.rpc.resources import decode_token, encode_token, page, page_size, update_paths
from protos import epg_pb2, epg_pb2_grpc

SERVICE_NAME = "headend.epg.v1.EpgService"
EXPORT_CHUNK_BYTES = 1024 * 1024
PROGRAMME_CACHE_SIZE = 50_000
# Grid pages hold channels with all their programmes: smaller than other pages.
GRID_PAGE_SIZE = 50
GRID_MAX_PAGE_SIZE = 200
# What UpdateChannel may change; name and version are the server's.
UPDATABLE_CHANNEL_FIELDS = frozenset(
    {"number", "names", "logo_url", "owner", "timezone", "catchup_days", "group", "active"}
)
log = logging.getLogger(__name__)


def _query(*parts: object) -> str:
    """What selects a list besides its page: a page token is valid for this only."""
    return json.dumps(parts, default=str)


# ---------------------------------------------------------------- servicer


class EpgServicer(epg_pb2_grpc.EpgServiceServicer):
    """Translates EpgService messages to use cases."""

    def __init__(self, service: EpgService, *, max_upload_bytes: int) -> None:
        self._svc = service
        self._max_upload = max_upload_bytes
        self._encoded: dict[Programme, bytes] = {}
        self._entries: dict[tuple[str, int, int], tuple[NowNext, bytes]] = {}

    def _wire(self, p: Programme) -> bytes:
        """A programme's serialized message, memoised by its (immutable, hashable) value:
        building messages dominates NowNext and Range otherwise."""
        hit = self._encoded.get(p)
        if hit is None:
            if len(self._encoded) >= PROGRAMME_CACHE_SIZE:
                self._encoded.clear()
            hit = self._encoded[p] = programme_to_pb(p).SerializeToString()
        return hit

    def _entry(self, e: NowNext) -> bytes:
        """A response holding the one entry ``e``, serialized; memoised by the identity of
        its programmes: the store hands out the same objects for as long as a channel's
        answer holds, so the hot path hashes no programme (kept entries keep their
        programmes alive, so an id is never another object's while its entry is kept)."""
        key = (e.channel_id, id(e.now), id(e.next))
        hit = self._entries.get(key)
        if hit is not None and hit[0].now is e.now and hit[0].next is e.next:
            return hit[1]
        out = epg_pb2.NowNextResponse()
        entry = out.entries.add(channel_id=e.channel_id)
        if e.now is not None:
            entry.now.MergeFromString(self._wire(e.now))
        if e.next is not None:
            entry.next.MergeFromString(self._wire(e.next))
        if len(self._entries) >= PROGRAMME_CACHE_SIZE:
            self._entries.clear()
        wire = self._entries[key] = (e, out.SerializeToString())
        return wire[1]

    def _add(
        self,
        repeated: RepeatedCompositeFieldContainer[epg_pb2.Programme],
        programmes: Sequence[Programme],
    ) -> None:
        for p in programmes:
            repeated.add().MergeFromString(self._wire(p))

    async def CreateChannel(
        self, request: epg_pb2.CreateChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Channel:
        channel = channel_from_pb(request.channel, request.channel_id)
        return channel_to_pb(await self._svc.create_channel(principal(), channel))

    async def UpdateChannel(
        self, request: epg_pb2.UpdateChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Channel:
        fields = update_paths(request.channel, request.update_mask, UPDATABLE_CHANNEL_FIELDS)
        return channel_to_pb(
            await self._svc.update_channel(
                principal(),
                channel_from_pb(request.channel),
                request.expected_version,
                fields=fields,
            )
        )

    async def GetChannel(
        self, request: epg_pb2.GetChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Channel:
        return channel_to_pb(
            await self._svc.get_channel(principal(), parse_channel_name(request.name))
        )

    async def ListChannels(
        self, request: epg_pb2.ListChannelsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListChannelsResponse:
        channels, token = page(
            await self._svc.list_channels(principal(), include_inactive=not request.active_only),
            key=guide_key,
            size=request.page_size,
            token=request.page_token,
            query=_query("channels", request.active_only),
        )
        return epg_pb2.ListChannelsResponse(
            channels=[channel_to_pb(c) for c in channels], next_page_token=token
        )

    async def DeleteChannel(
        self, request: epg_pb2.DeleteChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.DeleteChannelResponse:
        version = await self._svc.delete_channel(
            principal(), parse_channel_name(request.name), force=request.force
        )
        return epg_pb2.DeleteChannelResponse(version=version)

    async def PutProgrammes(
        self, request: epg_pb2.PutProgrammesRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.PutProgrammesResponse:
        channel_id = parse_channel_name(request.parent, "parent")
        programmes = [programme_from_pb(p, channel_id, i) for i, p in enumerate(request.programmes)]
        result = await self._svc.put_programmes(
            principal(), channel_id, programmes, policy=policy_from_pb(request.policy)
        )
        return write_result_to_pb(result)

    async def DeleteProgrammes(
        self, request: epg_pb2.DeleteProgrammesRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.DeleteProgrammesResponse:
        version, removed = await self._svc.delete_programmes(
            principal(),
            parse_channel_name(request.parent, "parent"),
            ids=list(request.ids),
            start=optional_time(request, "start"),
            stop=optional_time(request, "stop"),
        )
        return epg_pb2.DeleteProgrammesResponse(version=version, removed_ids=removed)

    async def GetProgramme(
        self, request: epg_pb2.GetProgrammeRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Programme:
        channel_id, pid = parse_programme_name(request.name, any_channel=True)
        return programme_to_pb(
            await self._svc.get_programme(
                principal(), pid, channel_id="" if channel_id == ANY_CHANNEL else channel_id
            )
        )

    async def ExpandSlots(
        self, request: epg_pb2.ExpandSlotsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ExpandSlotsResponse:
        programmes, result = await self._svc.expand_slots(
            principal(),
            parse_channel_name(request.parent, "parent"),
            slot_rule_from_pb(request.rule),
            policy=policy_from_pb(request.policy),
            dry_run=request.dry_run,
        )
        return epg_pb2.ExpandSlotsResponse(
            programmes=[programme_to_pb(p) for p in programmes],
            version=0 if result is None else result.version,
        )

    async def NowNext(
        self, request: epg_pb2.NowNextRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.NowNextResponse:
        entries = await self._svc.now_next(
            principal(), list(request.channel_ids), optional_time(request, "at")
        )
        # Serialized messages concatenated are one message with their repeated fields joined.
        return epg_pb2.NowNextResponse.FromString(b"".join(self._entry(e) for e in entries))

    async def ListProgrammes(
        self, request: epg_pb2.ListProgrammesRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListProgrammesResponse:
        channel_id = parse_channel_name(request.parent, "parent")
        start, stop = required_time(request, "start"), required_time(request, "stop")
        # Programmes of one channel never overlap: the start orders them.
        programmes, token = page(
            await self._svc.range(principal(), channel_id, start, stop),
            key=lambda p: time_key(p.start),
            size=request.page_size,
            token=request.page_token,
            query=_query(channel_name(channel_id), start, stop),
        )
        out = epg_pb2.ListProgrammesResponse(next_page_token=token)
        self._add(out.programmes, programmes)
        return out

    async def Grid(
        self, request: epg_pb2.GridRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.GridResponse:
        start, stop = required_time(request, "start"), required_time(request, "stop")
        size = page_size(request.page_size, default=GRID_PAGE_SIZE, maximum=GRID_MAX_PAGE_SIZE)
        query = _query("grid", sorted(request.channel_ids), start, stop)
        rows, last = await self._svc.grid(
            principal(),
            list(request.channel_ids),
            start,
            stop,
            after=decode_token(request.page_token, query=query),
            limit=size,
        )
        out = epg_pb2.GridResponse(next_page_token=encode_token(last, query=query))
        for c, ps in rows:
            row = out.rows.add(channel=channel_to_pb(c))
            self._add(row.programmes, ps)
        return out

    async def Search(
        self, request: epg_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.SearchResponse:
        start, stop = optional_time(request, "start"), optional_time(request, "stop")
        size = page_size(request.page_size)
        query = _query("search", request.text, request.category, start, stop)
        found, last = await self._svc.search(
            principal(),
            request.text,
            request.category,
            start=start,
            stop=stop,
            after=decode_token(request.page_token, query=query),
            limit=size,
        )
        return epg_pb2.SearchResponse(
            programmes=[programme_to_pb(p) for p in found],
            next_page_token=encode_token(last, query=query),
        )

    async def ListGaps(
        self, request: epg_pb2.ListGapsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListGapsResponse:
        channel_id = parse_channel_name(request.parent, "parent")
        start, stop = required_time(request, "start"), required_time(request, "stop")
        gaps, token = page(
            await self._svc.list_gaps(
                principal(), channel_id, start, stop, min_seconds=request.min_gap_seconds
            ),
            key=lambda g: time_key(g.start),
            size=request.page_size,
            token=request.page_token,
            query=_query(channel_name(channel_id), start, stop, request.min_gap_seconds),
        )
        return epg_pb2.ListGapsResponse(
            gaps=[
                epg_pb2.Gap(start=to_timestamp(g.start), stop=to_timestamp(g.stop)) for g in gaps
            ],
            next_page_token=token,
        )

    async def ListGuideStatus(
        self, request: epg_pb2.ListGuideStatusRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListGuideStatusResponse:
        caller = principal()
        channels, token = page(
            await self._svc.list_channels(caller),
            key=guide_key,
            size=request.page_size,
            token=request.page_token,
            query=_query("guideStatus"),
        )
        statuses = await self._svc.guide_status(
            caller, channels, horizon_hours=request.horizon_hours
        )
        return epg_pb2.ListGuideStatusResponse(
            channels=[guide_status_to_pb(g) for g in statuses],
            next_page_token=token,
            recent_imports=[import_record_to_pb(r) for r in await self._svc.recent_imports(caller)],
        )

    async def ImportXmltv(
        self,
        request_iterator: AsyncIterator[epg_pb2.ImportXmltvRequest],
        context: grpc.aio.ServicerContext,
    ) -> epg_pb2.ImportXmltvResponse:
        caller = principal()
        options: epg_pb2.ImportOptions | None = None
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
        return import_report_to_pb(report)

    async def ExportXmltv(
        self, request: epg_pb2.ExportXmltvRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[epg_pb2.ExportXmltvChunk]:
        data = await self._svc.export_xmltv(
            principal(),
            list(request.channel_ids),
            required_time(request, "start"),
            required_time(request, "stop"),
            compress=request.gzip,
        )
        for i in range(0, len(data), EXPORT_CHUNK_BYTES):
            yield epg_pb2.ExportXmltvChunk(data=data[i : i + EXPORT_CHUNK_BYTES])

    async def WatchChanges(
        self, request: epg_pb2.WatchChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[epg_pb2.Change]:
        feed = await self._svc.open_changes(
            principal(), from_version=request.from_version, channel_ids=list(request.channel_ids)
        )
        # Headers tell the caller the feed is positioned (every later write is seen)
        # and where, so it can resume from there after a reconnect.
        await context.send_initial_metadata(((VERSION_HEADER, str(feed.version)),))
        async for c in feed:
            yield change_to_pb(c)


# ---------------------------------------------------------------- entry points


async def create_server(
    settings: EpgSettings, *, redis: Redis, keys: Authenticator
) -> tuple[RpcServer, int]:
    """Build the EPG service, ``AlertService`` (with its expiry sweep) and ``CueService``
    on ``redis`` and start their gRPC server."""
    store = EpgStore(
        redis,
        changes_maxlen=settings.changes_maxlen,
        durability=settings.redis.durability,
        nownext_channels=settings.nownext_cache_channels,
    )
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
    metrics = RpcMetrics()
    guide = GuideMetrics(service, metrics.registry, every_seconds=settings.guide_status_seconds)
    alerts = AlertService(
        store=AlertStore(
            redis, changes_maxlen=settings.changes_maxlen, max_alerts=settings.alerts.max_alerts
        ),
        confirm_seconds=settings.alerts.confirm_seconds,
        metrics=AlertMetrics(metrics.registry),
    )
    cues = CueService(
        store=CueStore(redis, changes_maxlen=settings.changes_maxlen),
        channels=store,
        metrics=CueMetrics(metrics.registry),
    )
    return await start_server(
        settings.rpc,
        services=[spec, alert_service(alerts), cue_service(cues)],
        authenticator=keys,
        metrics=metrics,
        components=[
            NowNextFollower(
                store.nownext, store, metrics.registry, block_ms=settings.watch_block_ms
            ),
            guide,
            alerts.sweeping(settings.alerts.sweep_seconds),
        ],
    )


def main() -> None:
    """``python -m epg``: serve until SIGTERM/SIGINT (needs ``REDIS_URL``)."""
    run_service(
        "epg",
        EpgSettings.from_env,
        lambda settings, redis: create_server(settings, redis=redis, keys=KeyStore(redis)),
    )
