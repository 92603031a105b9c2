"""The one client of ``EpgService``: domain values in and out, the server's errors rebuilt.

Every caller dials the EPG through :class:`EpgClient`: the front door's guide
cache, the origin's catch-up lookup, ``headend epg`` and the demo. A failed
call raises the ``EpgError`` leaf the service raised (``ProgrammeNotFound``,
``NotAllowed`` ...), rebuilt from the ``ErrorInfo`` it sent, or
``ServiceUnavailable`` when it got no answer (unreachable, overloaded, timed
out, its store down)::

    async with EpgClient("epg.internal:50051", api_key) as epg:
        programme = await epg.get_programme("p1")

The methods take and return ids and domain values; the resource names and the
page tokens of the wire stay in here. A list method reads every page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import IO, Protocol, TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from grpc.aio import Metadata

from epg.convert import (
    ANY_CHANNEL,
    VERSION_HEADER,
    change_from_pb,
    channel_from_pb,
    channel_name,
    channel_to_pb,
    import_report_from_pb,
    policy_to_pb,
    programme_from_pb,
    programme_name,
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
from headend.rpc.resources import MAX_PAGE_SIZE
from protos import epg_pb2, epg_pb2_grpc

UPLOAD_CHUNK_BYTES = 256 * 1024
# Every field of a channel an update may change: update_channel replaces them all.
_ALL_FIELDS = ("*",)


class _Paged(Protocol):
    next_page_token: str


R = TypeVar("R", bound=_Paged)


async def _every_page(fetch: Callable[[str], Awaitable[R]]) -> AsyncIterator[R]:
    """Each page of a list, from the first to the one without a next page token."""
    token = ""
    while True:
        resp = await fetch(token)
        yield resp
        token = resp.next_page_token
        if not token:
            return


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

        def fetch(token: str) -> Awaitable[epg_pb2.ListChannelsResponse]:
            request = epg_pb2.ListChannelsRequest(
                active_only=active_only, page_size=MAX_PAGE_SIZE, page_token=token
            )
            return self.call(self._stub.ListChannels, request)

        return [channel_from_pb(c) async for resp in _every_page(fetch) for c in resp.channels]

    async def create_channel(self, channel: Channel) -> Channel:
        """Add a channel to the catalogue; returns it as stored."""
        request = epg_pb2.CreateChannelRequest(
            channel_id=channel.id, channel=channel_to_pb(channel)
        )
        created: epg_pb2.Channel = await self.call(self._stub.CreateChannel, request)
        return channel_from_pb(created)

    async def get_channel(self, channel_id: str) -> Channel:
        """One channel, with the version an update must name."""
        msg: epg_pb2.Channel = await self.call(
            self._stub.GetChannel, epg_pb2.GetChannelRequest(name=channel_name(channel_id))
        )
        return channel_from_pb(msg)

    async def update_channel(self, channel: Channel, expected_version: int) -> Channel:
        """Replace every field of ``channel`` if it is still at ``expected_version``."""
        request = epg_pb2.UpdateChannelRequest(
            channel=channel_to_pb(channel),
            update_mask=FieldMask(paths=_ALL_FIELDS),
            expected_version=expected_version,
        )
        updated: epg_pb2.Channel = await self.call(self._stub.UpdateChannel, request)
        return channel_from_pb(updated)

    async def delete_channel(self, channel_id: str, *, force: bool = False) -> int:
        """Remove a channel (refused while it has programmes unless ``force``); the change's
        version."""
        resp: epg_pb2.DeleteChannelResponse = await self.call(
            self._stub.DeleteChannel,
            epg_pb2.DeleteChannelRequest(name=channel_name(channel_id), force=force),
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
            parent=channel_name(channel_id),
            # A programme of no channel is named on the one written.
            programmes=[
                programme_to_pb(
                    p if p.channel_id else dataclasses.replace(p, channel_id=channel_id)
                )
                for p in programmes
            ],
            policy=policy_to_pb(policy),
        )
        resp: epg_pb2.PutProgrammesResponse = await self.call(self._stub.PutProgrammes, request)
        return write_result_from_pb(resp)

    async def get_programme(self, programme_id: str) -> Programme:
        """One programme, with its bounds and rights."""
        name = programme_name(ANY_CHANNEL, programme_id)
        msg: epg_pb2.Programme = await self.call(
            self._stub.GetProgramme, epg_pb2.GetProgrammeRequest(name=name)
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
            parent=channel_name(channel_id),
            ids=ids,
            start=to_timestamp(start),
            stop=to_timestamp(stop),
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
            parent=channel_name(channel_id), rule=slot_rule_to_pb(rule),
            policy=policy_to_pb(policy), dry_run=dry_run,
        )  # fmt: skip
        resp: epg_pb2.ExpandSlotsResponse = await self.call(self._stub.ExpandSlots, request)
        return programmes_from_pb(resp.programmes), resp.version

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
                programme_from_pb(e.now, "", 0) if e.HasField("now") else None,
                programme_from_pb(e.next, "", 0) if e.HasField("next") else None,
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
        ``[start, stop)`` (default: the next 7 days); the first ``limit`` (0: the server's
        page size)."""
        request = epg_pb2.SearchRequest(
            text=text, category=category, start=to_timestamp(start), stop=to_timestamp(stop),
            page_size=limit,
        )  # fmt: skip
        resp: epg_pb2.SearchResponse = await self.call(self._stub.Search, request)
        return programmes_from_pb(resp.programmes)

    async def list_gaps(
        self, channel_id: str, start: datetime, stop: datetime, *, min_seconds: int = 0
    ) -> list[Gap]:
        """Unscheduled intervals of one channel in ``[start, stop)``, each at least
        ``min_seconds`` long."""

        def fetch(token: str) -> Awaitable[epg_pb2.ListGapsResponse]:
            request = epg_pb2.ListGapsRequest(
                parent=channel_name(channel_id), start=to_timestamp(start),
                stop=to_timestamp(stop), min_gap_seconds=min_seconds, page_size=MAX_PAGE_SIZE,
                page_token=token,
            )  # fmt: skip
            return self.call(self._stub.ListGaps, request)

        return [
            Gap(required_time(g, "start"), required_time(g, "stop"))
            async for resp in _every_page(fetch)
            for g in resp.gaps
        ]

    async def range(
        self, channel_id: str, start: datetime, stop: datetime
    ) -> tuple[Programme, ...]:
        """The channel's programmes overlapping ``[start, stop)`` (whole seconds)."""

        def fetch(token: str) -> Awaitable[epg_pb2.ListProgrammesResponse]:
            request = epg_pb2.ListProgrammesRequest(
                parent=channel_name(channel_id), start=to_timestamp(start),
                stop=to_timestamp(stop), page_size=MAX_PAGE_SIZE, page_token=token,
            )  # fmt: skip
            return self.call(self._stub.ListProgrammes, request)

        found: list[Programme] = []
        async for resp in _every_page(fetch):
            found += programmes_from_pb(resp.programmes)
        return tuple(found)

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

        async def chunks() -> AsyncIterator[epg_pb2.ImportXmltvRequest]:
            yield epg_pb2.ImportXmltvRequest(options=options)
            while chunk := data.read(UPLOAD_CHUNK_BYTES):
                yield epg_pb2.ImportXmltvRequest(data=chunk)

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
