"""The one client of ``CueService`` (served by the EPG server), for the farm's control
server, the front doors and ``headend cue``: cue values in and out, the server's errors
rebuilt as ``EpgError`` leaves (``CueNotFound``, ``NotAllowed`` ...).

    async with CueClient("epg.internal:50051", api_key) as cues:
        running = await cues.list_cues("cctv1", now, now + timedelta(hours=1))
"""

from __future__ import annotations

import functools
from datetime import datetime

from epg.cues import convert
from epg.cues.domain import Cue
from epg.errors import EpgError
from headend.rpc import ServiceClient, to_timestamp
from headend.rpc.resources import MAX_PAGE_SIZE
from protos import cues_pb2 as pb
from protos import cues_pb2_grpc as pb_grpc


class CueClient(ServiceClient):
    """``CueService`` over one gRPC channel, with an API key."""

    service = "epg"
    root = EpgError

    @functools.cached_property
    def _stub(self) -> pb_grpc.CueServiceStub:
        return pb_grpc.CueServiceStub(self.channel)

    async def insert(self, cue: Cue, *, validate_only: bool = False) -> Cue:
        """Insert ``cue`` into its channel (an empty id: the server makes one; a start of
        ``rules.START_NOW``: now)."""
        request = pb.InsertCueRequest(
            parent=convert.parent_name(cue.channel_id),
            cue_id=cue.id,
            cue=convert.cue_to_pb(cue),
            validate_only=validate_only,
        )
        return convert.cue_from_wire(await self.call(self._stub.InsertCue, request))

    async def cancel(self, channel_id: str, cue_id: str) -> Cue:
        """Withdraw a cue not started yet, or end a running one now."""
        request = pb.CancelCueRequest(name=convert.cue_name(channel_id, cue_id))
        return convert.cue_from_wire(await self.call(self._stub.CancelCue, request))

    async def get(self, channel_id: str, cue_id: str) -> Cue:
        """One cue."""
        request = pb.GetCueRequest(name=convert.cue_name(channel_id, cue_id))
        return convert.cue_from_wire(await self.call(self._stub.GetCue, request))

    async def list_cues(self, channel_id: str | None, start: datetime, end: datetime) -> list[Cue]:
        """The cues (scheduled and cancelled) of ``channel_id`` (None: of every channel the
        key may read) overlapping ``[start, end)``, every page, by start then id."""
        found: list[Cue] = []
        token = ""
        while True:
            request = pb.ListCuesRequest(
                parent=convert.parent_name(channel_id),
                start_time=to_timestamp(start),
                end_time=to_timestamp(end),
                page_size=MAX_PAGE_SIZE,
                page_token=token,
            )
            reply = await self.call(self._stub.ListCues, request)
            found.extend(convert.cue_from_wire(c) for c in reply.cues)
            token = reply.next_page_token
            if not token:
                return found
