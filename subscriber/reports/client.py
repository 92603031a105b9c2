"""The one client of ``ViewingReportService`` (served by the subscriber server): values in
and out, the server's errors rebuilt as ``SubscriberError`` leaves."""

from __future__ import annotations

import functools
from datetime import datetime

from headend.rpc import ServiceClient, from_timestamp, to_timestamp
from protos import reports_pb2 as pb
from protos import reports_pb2_grpc as pb_grpc
from subscriber.errors import SubscriberError
from subscriber.reports import convert
from subscriber.reports.domain import ChannelViewers, Dimension, Granularity, ViewingRow


class ViewingReportClient(ServiceClient):
    """``ViewingReportService`` over one gRPC channel, with an API key."""

    service = "subscriber"
    root = SubscriberError

    @functools.cached_property
    def _stub(self) -> pb_grpc.ViewingReportServiceStub:
        return pb_grpc.ViewingReportServiceStub(self.channel)

    async def query_viewing(
        self,
        start: datetime,
        end: datetime | None,
        *,
        granularity: Granularity = Granularity.HOUR,
        group_by: Dimension = Dimension.CHANNEL,
        channel_id: str = "",
        carrier_id: str = "",
        region: str = "",
    ) -> list[ViewingRow]:
        """The rows of a window, by bucket then key."""
        request = pb.QueryViewingRequest(
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            granularity=convert.GRANULARITY_PB[granularity],
            group_by=convert.DIMENSION_PB[group_by],
            channel_id=channel_id,
            carrier_id=carrier_id,
            region=region,
        )
        reply = await self.call(self._stub.QueryViewing, request)
        return [convert.row_from_pb(row) for row in reply.rows]

    async def count_viewers(self, channel_id: str = "") -> tuple[list[ChannelViewers], datetime]:
        """Boxes playing now by channel and carrier, and when the server read them."""
        reply = await self.call(
            self._stub.CountViewers, pb.CountViewersRequest(channel_id=channel_id)
        )
        return [convert.viewers_from_pb(v) for v in reply.viewers], from_timestamp(reply.read_time)
