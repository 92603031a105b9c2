"""``protos/reports.proto`` messages <-> viewing values, for the server, the client and the
console (which renders a response's rows with :mod:`subscriber.reports.export`)."""

from __future__ import annotations

from headend.rpc import from_timestamp, to_timestamp
from protos import reports_pb2 as pb
from subscriber.convert import status
from subscriber.reports.domain import ChannelViewers, Dimension, Granularity, ViewingRow

GRANULARITY = {
    pb.GRANULARITY_UNSPECIFIED: Granularity.HOUR,
    pb.GRANULARITY_HOUR: Granularity.HOUR,
    pb.GRANULARITY_DAY: Granularity.DAY,
}
GRANULARITY_PB = {Granularity.HOUR: pb.GRANULARITY_HOUR, Granularity.DAY: pb.GRANULARITY_DAY}
DIMENSION = {
    pb.DIMENSION_UNSPECIFIED: Dimension.CHANNEL,
    pb.DIMENSION_CHANNEL: Dimension.CHANNEL,
    pb.DIMENSION_CARRIER: Dimension.CARRIER,
    pb.DIMENSION_REGION: Dimension.REGION,
}
DIMENSION_PB = {
    Dimension.CHANNEL: pb.DIMENSION_CHANNEL,
    Dimension.CARRIER: pb.DIMENSION_CARRIER,
    Dimension.REGION: pb.DIMENSION_REGION,
}


def granularity(value: pb.Granularity) -> Granularity:
    """A wire granularity (unset: hour); ``InvalidField`` for an unknown one."""
    return status(value, GRANULARITY, "granularity")


def dimension(value: pb.Dimension) -> Dimension:
    """A wire dimension (unset: channel); ``InvalidField`` for an unknown one."""
    return status(value, DIMENSION, "group_by")


def row(value: ViewingRow) -> pb.ViewingRow:
    """A row on the wire."""
    return pb.ViewingRow(
        bucket_start=to_timestamp(value.bucket_start),
        key=value.key,
        watch_seconds=value.watch_seconds,
        unique_boxes=value.unique_boxes,
        peak_concurrency=value.peak_concurrency,
    )


def row_from_pb(message: pb.ViewingRow) -> ViewingRow:
    """A row off the wire."""
    return ViewingRow(
        from_timestamp(message.bucket_start),
        message.key,
        message.watch_seconds,
        message.unique_boxes,
        message.peak_concurrency,
    )


def viewers(value: ChannelViewers) -> pb.ChannelViewers:
    """Viewers now on the wire."""
    return pb.ChannelViewers(
        channel_id=value.channel_id, carrier_id=value.carrier_id, viewers=value.viewers
    )


def viewers_from_pb(message: pb.ChannelViewers) -> ChannelViewers:
    """Viewers now off the wire."""
    return ChannelViewers(message.channel_id, message.carrier_id, message.viewers)
