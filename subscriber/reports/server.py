"""gRPC ``ViewingReportService``, mounted by the subscriber server: proto <-> values only."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from headend.rpc import ServiceSpec, caller_key, principal, to_timestamp
from protos import reports_pb2 as pb
from protos import reports_pb2_grpc as pb_grpc
from subscriber.convert import when
from subscriber.reports import convert
from subscriber.reports.service import ViewingReports

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ViewingReportService"].full_name
Context: TypeAlias = grpc.aio.ServicerContext


class ViewingReportServicer(pb_grpc.ViewingReportServiceServicer):
    """Proto <-> ``ViewingReports``."""

    def __init__(self, *, reports: ViewingReports) -> None:
        self._reports = reports

    async def QueryViewing(
        self, request: pb.QueryViewingRequest, context: Context
    ) -> pb.QueryViewingResponse:
        rows = await self._reports.query_viewing(
            principal(),
            api_key=caller_key(),
            start=when(request, "start_time"),
            end=when(request, "end_time"),
            granularity=convert.granularity(request.granularity),
            group_by=convert.dimension(request.group_by),
            channel_id=request.channel_id,
            carrier_id=request.carrier_id,
            region=request.region,
        )
        return pb.QueryViewingResponse(rows=[convert.row(r) for r in rows])

    async def CountViewers(
        self, request: pb.CountViewersRequest, context: Context
    ) -> pb.CountViewersResponse:
        found, read_at = await self._reports.count_viewers(
            principal(), request.channel_id, api_key=caller_key()
        )
        return pb.CountViewersResponse(
            viewers=[convert.viewers(v) for v in found], read_time=to_timestamp(read_at)
        )


def viewing_service(reports: ViewingReports) -> ServiceSpec:
    """The ``ServiceSpec`` mounting ``ViewingReportService`` (no public methods)."""
    servicer = ViewingReportServicer(reports=reports)
    return ServiceSpec(
        SERVICE_NAME,
        lambda server: pb_grpc.add_ViewingReportServiceServicer_to_server(servicer, server),
    )
