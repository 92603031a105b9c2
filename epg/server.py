"""The gRPC face of the EPG: proto <-> domain only; errors are mapped by the harness."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Sequence

import grpc
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from redis.asyncio import Redis

from epg.convert import (
    VERSION_HEADER,
    change_to_pb,
    channel_from_pb,
    channel_to_pb,
    import_report_to_pb,
    optional_time,
    policy_from_pb,
    programme_from_pb,
    programme_to_pb,
    required_time,
    slot_rule_from_pb,
    write_result_to_pb,
)
from epg.domain import Programme
from epg.errors import ImportTooLarge, InvalidXmltv
from epg.service import EpgService
from epg.settings import EpgSettings
from epg.store import EpgStore
from headend.auth import Authenticator, KeyStore
from headend.rpc import RpcServer, ServiceSpec, principal, run_service, start_server, to_timestamp
from protos import epg_pb2, epg_pb2_grpc

SERVICE_NAME = "headend.epg.v1.EpgService"
EXPORT_CHUNK_BYTES = 1024 * 1024
PROGRAMME_CACHE_SIZE = 50_000
log = logging.getLogger(__name__)


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
        return channel_to_pb(
            await self._svc.create_channel(principal(), channel_from_pb(request.channel))
        )

    async def UpdateChannel(
        self, request: epg_pb2.UpdateChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Channel:
        return channel_to_pb(
            await self._svc.update_channel(
                principal(), channel_from_pb(request.channel), request.expected_version
            )
        )

    async def GetChannel(
        self, request: epg_pb2.GetChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Channel:
        return channel_to_pb(await self._svc.get_channel(principal(), request.id))

    async def ListChannels(
        self, request: epg_pb2.ListChannelsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListChannelsResponse:
        channels = await self._svc.list_channels(
            principal(), include_inactive=not request.active_only
        )
        return epg_pb2.ListChannelsResponse(channels=[channel_to_pb(c) for c in channels])

    async def DeleteChannel(
        self, request: epg_pb2.DeleteChannelRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.DeleteChannelResponse:
        version = await self._svc.delete_channel(principal(), request.id, force=request.force)
        return epg_pb2.DeleteChannelResponse(version=version)

    async def PutProgrammes(
        self, request: epg_pb2.PutProgrammesRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.PutProgrammesResponse:
        programmes = [
            programme_from_pb(p, request.channel_id, i) for i, p in enumerate(request.programmes)
        ]
        result = await self._svc.put_programmes(
            principal(), request.channel_id, programmes, policy=policy_from_pb(request.policy)
        )
        return write_result_to_pb(result)

    async def DeleteProgrammes(
        self, request: epg_pb2.DeleteProgrammesRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.DeleteProgrammesResponse:
        version, removed = await self._svc.delete_programmes(
            principal(),
            request.channel_id,
            ids=list(request.ids),
            start=optional_time(request, "start"),
            stop=optional_time(request, "stop"),
        )
        return epg_pb2.DeleteProgrammesResponse(version=version, removed_ids=removed)

    async def GetProgramme(
        self, request: epg_pb2.GetProgrammeRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.Programme:
        return programme_to_pb(await self._svc.get_programme(principal(), request.id))

    async def ExpandSlots(
        self, request: epg_pb2.ExpandSlotsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ExpandSlotsResponse:
        programmes, result = await self._svc.expand_slots(
            principal(),
            request.channel_id,
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
        out = epg_pb2.NowNextResponse()
        for e in entries:
            entry = out.entries.add(channel_id=e.channel_id)
            if e.now is not None:
                entry.now.MergeFromString(self._wire(e.now))
            if e.next is not None:
                entry.next.MergeFromString(self._wire(e.next))
        return out

    async def Range(
        self, request: epg_pb2.RangeRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.RangeResponse:
        programmes = await self._svc.range(
            principal(),
            request.channel_id,
            required_time(request, "start"),
            required_time(request, "stop"),
        )
        out = epg_pb2.RangeResponse()
        self._add(out.programmes, programmes)
        return out

    async def Grid(
        self, request: epg_pb2.GridRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.GridResponse:
        rows, token = await self._svc.grid(
            principal(),
            list(request.channel_ids),
            required_time(request, "start"),
            required_time(request, "stop"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        out = epg_pb2.GridResponse(next_page_token=token)
        for c, ps in rows:
            row = out.rows.add(channel=channel_to_pb(c))
            self._add(row.programmes, ps)
        return out

    async def Search(
        self, request: epg_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.SearchResponse:
        found = await self._svc.search(
            principal(),
            request.text,
            request.category,
            start=optional_time(request, "start"),
            stop=optional_time(request, "stop"),
            limit=request.limit,
        )
        return epg_pb2.SearchResponse(programmes=[programme_to_pb(p) for p in found])

    async def ListGaps(
        self, request: epg_pb2.ListGapsRequest, context: grpc.aio.ServicerContext
    ) -> epg_pb2.ListGapsResponse:
        gaps = await self._svc.list_gaps(
            principal(),
            request.channel_id,
            required_time(request, "start"),
            required_time(request, "stop"),
            min_seconds=request.min_gap_seconds,
        )
        return epg_pb2.ListGapsResponse(
            gaps=[epg_pb2.Gap(start=to_timestamp(g.start), stop=to_timestamp(g.stop)) for g in gaps]
        )

    async def ImportXmltv(
        self,
        request_iterator: AsyncIterator[epg_pb2.ImportXmltvChunk],
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
    """Build the EPG service on ``redis`` and start its gRPC server."""
    store = EpgStore(
        redis, changes_maxlen=settings.changes_maxlen, durability=settings.redis.durability
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
    return await start_server(settings.rpc, services=[spec], authenticator=keys)


def main() -> None:
    """``python -m epg``: serve until SIGTERM/SIGINT (needs ``REDIS_URL``)."""
    run_service(
        "epg",
        EpgSettings.from_env,
        lambda settings, redis: create_server(settings, redis=redis, keys=KeyStore(redis)),
    )
