import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Granularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANULARITY_UNSPECIFIED: _ClassVar[Granularity]
    GRANULARITY_HOUR: _ClassVar[Granularity]
    GRANULARITY_DAY: _ClassVar[Granularity]

class Dimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIMENSION_UNSPECIFIED: _ClassVar[Dimension]
    DIMENSION_CHANNEL: _ClassVar[Dimension]
    DIMENSION_CARRIER: _ClassVar[Dimension]
    DIMENSION_REGION: _ClassVar[Dimension]
GRANULARITY_UNSPECIFIED: Granularity
GRANULARITY_HOUR: Granularity
GRANULARITY_DAY: Granularity
DIMENSION_UNSPECIFIED: Dimension
DIMENSION_CHANNEL: Dimension
DIMENSION_CARRIER: Dimension
DIMENSION_REGION: Dimension

class QueryViewingRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "granularity", "group_by", "channel_id", "carrier_id", "region")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    granularity: Granularity
    group_by: Dimension
    channel_id: str
    carrier_id: str
    region: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., group_by: _Optional[_Union[Dimension, str]] = ..., channel_id: _Optional[str] = ..., carrier_id: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class ViewingRow(_message.Message):
    __slots__ = ("bucket_start", "key", "watch_seconds", "unique_boxes", "peak_concurrency")
    BUCKET_START_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    WATCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_BOXES_FIELD_NUMBER: _ClassVar[int]
    PEAK_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    bucket_start: _timestamp_pb2.Timestamp
    key: str
    watch_seconds: int
    unique_boxes: int
    peak_concurrency: int
    def __init__(self, bucket_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., watch_seconds: _Optional[int] = ..., unique_boxes: _Optional[int] = ..., peak_concurrency: _Optional[int] = ...) -> None: ...

class QueryViewingResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ViewingRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[ViewingRow, _Mapping]]] = ...) -> None: ...

class CountViewersRequest(_message.Message):
    __slots__ = ("channel_id",)
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    def __init__(self, channel_id: _Optional[str] = ...) -> None: ...

class ChannelViewers(_message.Message):
    __slots__ = ("channel_id", "carrier_id", "viewers")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    VIEWERS_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    carrier_id: str
    viewers: int
    def __init__(self, channel_id: _Optional[str] = ..., carrier_id: _Optional[str] = ..., viewers: _Optional[int] = ...) -> None: ...

class CountViewersResponse(_message.Message):
    __slots__ = ("viewers", "read_time")
    VIEWERS_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    viewers: _containers.RepeatedCompositeFieldContainer[ChannelViewers]
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, viewers: _Optional[_Iterable[_Union[ChannelViewers, _Mapping]]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
