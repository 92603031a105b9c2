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

class CueKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUE_KIND_UNSPECIFIED: _ClassVar[CueKind]
    CUE_KIND_BREAK: _ClassVar[CueKind]
    CUE_KIND_SEGMENT: _ClassVar[CueKind]

class CueState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUE_STATE_UNSPECIFIED: _ClassVar[CueState]
    CUE_STATE_SCHEDULED: _ClassVar[CueState]
    CUE_STATE_CANCELLED: _ClassVar[CueState]
CUE_KIND_UNSPECIFIED: CueKind
CUE_KIND_BREAK: CueKind
CUE_KIND_SEGMENT: CueKind
CUE_STATE_UNSPECIFIED: CueState
CUE_STATE_SCHEDULED: CueState
CUE_STATE_CANCELLED: CueState

class Cue(_message.Message):
    __slots__ = ("name", "kind", "start_time", "duration_seconds", "segmentation_type_id", "event_id", "blackout_regions", "description", "state", "creator", "create_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    BLACKOUT_REGIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: CueKind
    start_time: _timestamp_pb2.Timestamp
    duration_seconds: float
    segmentation_type_id: int
    event_id: int
    blackout_regions: _containers.RepeatedScalarFieldContainer[str]
    description: str
    state: CueState
    creator: str
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[CueKind, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., segmentation_type_id: _Optional[int] = ..., event_id: _Optional[int] = ..., blackout_regions: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., state: _Optional[_Union[CueState, str]] = ..., creator: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InsertCueRequest(_message.Message):
    __slots__ = ("parent", "cue_id", "cue", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CUE_ID_FIELD_NUMBER: _ClassVar[int]
    CUE_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    cue_id: str
    cue: Cue
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., cue_id: _Optional[str] = ..., cue: _Optional[_Union[Cue, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CancelCueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCuesRequest(_message.Message):
    __slots__ = ("parent", "start_time", "end_time", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCuesResponse(_message.Message):
    __slots__ = ("cues", "next_page_token")
    CUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cues: _containers.RepeatedCompositeFieldContainer[Cue]
    next_page_token: str
    def __init__(self, cues: _Optional[_Iterable[_Union[Cue, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
