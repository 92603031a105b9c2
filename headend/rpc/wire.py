"""Times on the wire: aware UTC datetimes <-> ``google.protobuf.Timestamp``, in one place.

Every service's converters use these. An unset message field is ``None`` and
``None`` leaves a field unset; a timestamp no datetime can hold (outside the
years 1 to 9999, nanos out of range) raises ``ValueError``, which each
service turns into its own ``InvalidArgument`` leaf naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, overload

from google.protobuf.timestamp_pb2 import Timestamp


class HasFields(Protocol):
    """A protobuf message, as far as reading its optional fields goes."""

    def HasField(self, field_name: str, /) -> bool: ...


@overload
def to_timestamp(when: datetime) -> Timestamp: ...
@overload
def to_timestamp(when: None) -> None: ...
@overload
def to_timestamp(when: datetime | None) -> Timestamp | None: ...
def to_timestamp(when: datetime | None) -> Timestamp | None:
    """A datetime as a protobuf timestamp (a naive one is taken as UTC); None stays unset."""
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    """A protobuf timestamp as an aware UTC datetime (microseconds kept); ``ValueError``
    when no datetime holds it."""
    return stamp.ToDatetime(tzinfo=UTC)


def optional_timestamp(message: HasFields, name: str) -> datetime | None:
    """The timestamp field ``name`` of ``message`` as an aware UTC datetime, None when unset."""
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return from_timestamp(stamp)
