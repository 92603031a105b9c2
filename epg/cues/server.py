"""gRPC ``CueService``, mounted by the EPG server: proto <-> values and paging only."""

from __future__ import annotations

import json
from typing import TypeAlias

import grpc

from epg.cues import convert
from epg.cues.service import CueService, by_start
from headend.rpc import ServiceSpec, caller_key, principal
from headend.rpc.resources import page
from protos import cues_pb2 as pb
from protos import cues_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CueService"].full_name
Context: TypeAlias = grpc.aio.ServicerContext


class CueServicer(pb_grpc.CueServiceServicer):
    """Proto <-> ``CueService``."""

    def __init__(self, *, cues: CueService) -> None:
        self._cues = cues

    async def InsertCue(self, request: pb.InsertCueRequest, context: Context) -> pb.Cue:
        caller = principal()
        self._cues.require_writer(caller)
        channel_id = convert.parse_parent(request.parent)
        await self._cues.check_channel(caller, channel_id, write=True)
        cue = await self._cues.insert(
            caller,
            convert.cue_from_pb(request.cue, channel_id, request.cue_id),
            api_key=caller_key(),
            validate_only=request.validate_only,
        )
        return convert.cue_to_pb(cue)

    async def CancelCue(self, request: pb.CancelCueRequest, context: Context) -> pb.Cue:
        caller = principal()
        self._cues.require_writer(caller)
        channel_id, cue_id = convert.parse_cue_name(request.name)
        cue = await self._cues.cancel(caller, channel_id, cue_id, api_key=caller_key())
        return convert.cue_to_pb(cue)

    async def GetCue(self, request: pb.GetCueRequest, context: Context) -> pb.Cue:
        caller = principal()
        self._cues.require_reader(caller)
        channel_id, cue_id = convert.parse_cue_name(request.name)
        return convert.cue_to_pb(await self._cues.get(caller, channel_id, cue_id))

    async def ListCues(self, request: pb.ListCuesRequest, context: Context) -> pb.ListCuesResponse:
        caller = principal()
        self._cues.require_reader(caller)
        channel_id = convert.parse_list_parent(request.parent)
        start = convert.optional_time(request, "start_time", "start_time")
        end = convert.optional_time(request, "end_time", "end_time")
        cues, token = page(
            await self._cues.list_cues(caller, channel_id, start, end),
            key=by_start,
            size=request.page_size,
            token=request.page_token,
            query=json.dumps(["cues", request.parent, start, end], default=str),
        )
        return pb.ListCuesResponse(cues=[convert.cue_to_pb(c) for c in cues], next_page_token=token)


def cue_service(cues: CueService) -> ServiceSpec:
    """The ``ServiceSpec`` mounting ``CueService`` (no public methods)."""
    servicer = CueServicer(cues=cues)
    return ServiceSpec(
        SERVICE_NAME, lambda server: pb_grpc.add_CueServiceServicer_to_server(servicer, server)
    )
