"""The one client of ``EpgService``: domain values in and out, the server's errors rebuilt.

Every caller dials the EPG through :class:`EpgClient`: the front door's guide
cache, the origin's catch-up lookup, ``headend epg`` and the demo. A failed
call raises the ``EpgError`` leaf the service raised (``ProgrammeNotFound``,
``NotAllowed`` ...), rebuilt from the ``ErrorInfo`` it sent, or
``ServiceUnavailable`` when it got no answer (unreachable, overloaded, timed
out, its store down)::

    async with EpgClient("epg.internal:50051", api_key) as epg:
        programme = await epg.get_programme("p1")
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import IO

from grpc.aio import Metadata

from epg.convert import (
    VERSION_HEADER,
    change_from_pb,
    channel_from_pb,
    channel_to_pb,
    import_report_from_pb,
    policy_to_pb,
    programme_from_pb,
    programme_to_pb,
    programmes_from_pb,
    required_time,
    slot_rule_to_pb,
    write_result_from_pb,
)
from epg.domain import (
    Change,
    ChangeFeed,
    Channel,
    Gap,
    Programme,
    SlotRule,
    WritePolicy,
    WriteResult,
)
from epg.errors import EpgError
from epg.importer import ImportReport
from epg.service import NowNext
from headend.rpc import ServiceClient, ServiceUnavailable, to_timestamp
from protos import epg_pb2, epg_pb2_grpc

UPLOAD_CHUNK_BYTES = 256 * 1024


def _positioned(metadata: Metadata | None) -> int | None:
    """The version a WatchChanges feed starts after, from its initial metadata."""
    for key, value in metadata or ():
        if key == VERSION_HEADER:
            text = value.decode() if isinstance(value, bytes) else str(value)
            return int(text) if text.isdigit() else None
    return None


class EpgClient(ServiceClient):
    """``EpgService`` over one gRPC channel, with an API key and a per-call timeout.

    Unary calls give up after ``timeout_seconds``; the streams (XMLTV import and
    export, the change feed) run as long as they have data.
    """

    service = "epg"
    root = EpgError

    @functools.cached_property
    def _stub(self) -> epg_pb2_grpc.EpgServiceStub:
        return epg_pb2_grpc.EpgServiceStub(self.channel)

    # ---- channels

    async def list_channels(self, *, active_only: bool = False) -> list[Channel]:
        """Every channel the key may read (only the active ones with ``active_only``)."""
        resp: epg_pb2.ListChannelsResponse = await self.call(
            self._stub.ListChannels, epg_pb2.ListChannelsRequest(active_only=active_only)
        )
        return [channel_from_pb(c) for c in resp.channels]

    async def create_channel(self, channel: Channel) -> Channel:
        """Add a channel to the catalogue; returns it as stored."""
        created: epg_pb2.Channel = await self.call(
            self._stub.CreateChannel, epg_pb2.CreateChannelRequest(channel=channel_to_pb(channel))
        )
        return channel_from_pb(created)

    async def get_channel(self, channel_id: str) -> Channel:
        """One channel, with the version an update must name."""
        msg: epg_pb2.Channel = await self.call(
            self._stub.GetChannel, epg_pb2.GetChannelRequest(id=channel_id)
        )
        return channel_from_pb(msg)

    async def update_channel(self, channel: Channel, expected_version: int) -> Channel:
        """Replace every field of ``channel`` if it is still at ``expected_version``."""
        request = epg_pb2.UpdateChannelRequest(
            channel=channel_to_pb(channel), expected_version=expected_version
        )
        updated: epg_pb2.Channel = await self.call(self._stub.UpdateChannel, request)
        return channel_from_pb(updated)

    async def delete_channel(self, channel_id: str, *, force: bool = False) -> int:
        """Remove a channel (refused while it has programmes unless ``force``); the change's
        version."""
        resp: epg_pb2.DeleteChannelResponse = await self.call(
            self._stub.DeleteChannel, epg_pb2.DeleteChannelRequest(id=channel_id, force=force)
        )
        return resp.version

    # ---- programmes

    async def put_programmes(
        self,
        channel_id: str,
        programmes: Sequence[Programme],
        *,
        policy: WritePolicy = WritePolicy.REFUSE,
    ) -> WriteResult:
        """Write programmes of one channel under ``policy``."""
        request = epg_pb2.PutProgrammesRequest(
            channel_id=channel_id,
            programmes=[programme_to_pb(p) for p in programmes],
            policy=policy_to_pb(policy),
        )
        resp: epg_pb2.PutProgrammesResponse = await self.call(self._stub.PutProgrammes, request)
        return write_result_from_pb(resp)

    async def get_programme(self, programme_id: str) -> Programme:
        """One programme, with its bounds and rights."""
        msg: epg_pb2.Programme = await self.call(
            self._stub.GetProgramme, epg_pb2.GetProgrammeRequest(id=programme_id)
        )
        return programme_from_pb(msg, "", 0)

    async def delete_programmes(
        self,
        channel_id: str,
        *,
        ids: Sequence[str] = (),
        start: datetime | None = None,
        stop: datetime | None = None,
    ) -> tuple[int, tuple[str, ...]]:
        """Remove programmes of one channel by id, or those starting in ``[start, stop)``;
        the change's version and the ids removed."""
        request = epg_pb2.DeleteProgrammesRequest(
            channel_id=channel_id, ids=ids, start=to_timestamp(start), stop=to_timestamp(stop)
        )
        resp: epg_pb2.DeleteProgrammesResponse = await self.call(
            self._stub.DeleteProgrammes, request
        )
        return resp.version, tuple(resp.removed_ids)

    async def expand_slots(
        self,
        channel_id: str,
        rule: SlotRule,
        *,
        policy: WritePolicy = WritePolicy.REFUSE,
        dry_run: bool = False,
    ) -> tuple[tuple[Programme, ...], int]:
        """Expand a recurring slot in the channel's timezone and write it (unless
        ``dry_run``); the programmes and the change's version (0 for a dry run)."""
        request = epg_pb2.ExpandSlotsRequest(
            channel_id=channel_id, rule=slot_rule_to_pb(rule), policy=policy_to_pb(policy),
            dry_run=dry_run,
        )  # fmt: skip
        resp: epg_pb2.ExpandSlotsResponse = await self.call(self._stub.ExpandSlots, request)
        return programmes_from_pb(resp.programmes, channel_id), resp.version

    # ---- guide queries

    async def now_next(
        self, channel_ids: Sequence[str] = (), at: datetime | None = None
    ) -> list[NowNext]:
        """What is on and what follows on ``channel_ids`` (every readable one when empty)
        at ``at`` (default: now)."""
        request = epg_pb2.NowNextRequest(channel_ids=channel_ids, at=to_timestamp(at))
        resp: epg_pb2.NowNextResponse = await self.call(self._stub.NowNext, request)
        return [
            NowNext(
                e.channel_id,
                programme_from_pb(e.now, e.channel_id, 0) if e.HasField("now") else None,
                programme_from_pb(e.next, e.channel_id, 0) if e.HasField("next") else None,
            )
            for e in resp.entries
        ]

    async def search(
        self,
        text: str,
        *,
        category: str = "",
        start: datetime | None = None,
        stop: datetime | None = None,
        limit: int = 0,
    ) -> tuple[Programme, ...]:
        """Readable programmes whose texts contain ``text`` (and carry ``category``) in
        ``[start, stop)`` (default: the next 7 days); at most ``limit`` (0: the server's)."""
        request = epg_pb2.SearchRequest(
            text=text, category=category, start=to_timestamp(start), stop=to_timestamp(stop),
            limit=limit,
        )  # fmt: skip
        resp: epg_pb2.SearchResponse = await self.call(self._stub.Search, request)
        return programmes_from_pb(resp.programmes)

    async def list_gaps(
        self, channel_id: str, start: datetime, stop: datetime, *, min_seconds: int = 0
    ) -> list[Gap]:
        """Unscheduled intervals of one channel in ``[start, stop)``, each at least
        ``min_seconds`` long."""
        request = epg_pb2.ListGapsRequest(
            channel_id=channel_id, start=to_timestamp(start), stop=to_timestamp(stop),
            min_gap_seconds=min_seconds,
        )  # fmt: skip
        resp: epg_pb2.ListGapsResponse = await self.call(self._stub.ListGaps, request)
        return [Gap(required_time(g, "start"), required_time(g, "stop")) for g in resp.gaps]

    async def range(
        self, channel_id: str, start: datetime, stop: datetime
    ) -> tuple[Programme, ...]:
        """The channel's programmes overlapping ``[start, stop)`` (whole seconds)."""
        request = epg_pb2.RangeRequest(
            channel_id=channel_id, start=to_timestamp(start), stop=to_timestamp(stop)
        )
        resp: epg_pb2.RangeResponse = await self.call(self._stub.Range, request)
        return programmes_from_pb(resp.programmes, channel_id)

    # ---- XMLTV

    async def import_xmltv(
        self,
        data: IO[bytes],
        *,
        strict: bool = False,
        channel_map: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> ImportReport:
        """Stream an XMLTV file (plain or gzip) to the EPG; returns what the import did."""
        options = epg_pb2.ImportOptions(strict=strict, channel_map=channel_map or {}, owner=owner)

        async def chunks() -> AsyncIterator[epg_pb2.ImportXmltvChunk]:
            yield epg_pb2.ImportXmltvChunk(options=options)
            while chunk := data.read(UPLOAD_CHUNK_BYTES):
                yield epg_pb2.ImportXmltvChunk(data=chunk)

        with self.mapped():
            report: epg_pb2.ImportXmltvResponse = await self._stub.ImportXmltv(
                chunks(), metadata=self.metadata
            )
        return import_report_from_pb(report)

    async def export_xmltv(
        self, channel_ids: Sequence[str], start: datetime, stop: datetime, *, gzip: bool = False
    ) -> AsyncIterator[bytes]:
        """The XMLTV guide of ``channel_ids`` (all readable when empty) for ``[start, stop)``,
        in chunks as they arrive."""
        request = epg_pb2.ExportXmltvRequest(
            channel_ids=channel_ids, start=to_timestamp(start), stop=to_timestamp(stop), gzip=gzip
        )
        with self.mapped():
            async for chunk in self._stub.ExportXmltv(request, metadata=self.metadata):
                yield chunk.data

    # ---- changes

    @contextlib.asynccontextmanager
    async def watch_changes(
        self, *, from_version: int = 0, channel_ids: Sequence[str] = ()
    ) -> AsyncIterator[ChangeFeed]:
        """Open ``WatchChanges`` after ``from_version`` (0: from now): the feed is
        positioned once this is entered, and the call ends when it is left."""
        call = self._stub.WatchChanges(
            epg_pb2.WatchChangesRequest(from_version=from_version, channel_ids=channel_ids),
            metadata=self.metadata,
        )
        try:
            with self.mapped():
                version = _positioned(await call.initial_metadata())
                if version is None and call.done():
                    # It ended before it was positioned: reading it raises its error.
                    async for _ in call:
                        pass
                    raise ServiceUnavailable(
                        "epg",
                        "the change feed ended before it was positioned",
                        reason="FeedEnded",
                        retry_delay_seconds=None,
                    )

            async def changes() -> AsyncGenerator[Change, None]:
                with self.mapped():
                    async for msg in call:
                        yield change_from_pb(msg)

            # A server that does not say where it starts gives nothing to resume from.
            yield ChangeFeed(version or 0, changes())
        finally:
            call.cancel()
