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

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_MINOR: _ClassVar[Severity]
    SEVERITY_MODERATE: _ClassVar[Severity]
    SEVERITY_SEVERE: _ClassVar[Severity]
    SEVERITY_EXTREME: _ClassVar[Severity]

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_PENDING: _ClassVar[AlertState]
    ALERT_STATE_CONFIRMED: _ClassVar[AlertState]
    ALERT_STATE_CANCELLED: _ClassVar[AlertState]
    ALERT_STATE_EXPIRED: _ClassVar[AlertState]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_MINOR: Severity
SEVERITY_MODERATE: Severity
SEVERITY_SEVERE: Severity
SEVERITY_EXTREME: Severity
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_PENDING: AlertState
ALERT_STATE_CONFIRMED: AlertState
ALERT_STATE_CANCELLED: AlertState
ALERT_STATE_EXPIRED: AlertState

class Card(_message.Message):
    __slots__ = ("text", "audio_uri")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_URI_FIELD_NUMBER: _ClassVar[int]
    text: str
    audio_uri: str
    def __init__(self, text: _Optional[str] = ..., audio_uri: _Optional[str] = ...) -> None: ...

class AlertContent(_message.Message):
    __slots__ = ("feed_channel_id", "card")
    FEED_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    feed_channel_id: str
    card: Card
    def __init__(self, feed_channel_id: _Optional[str] = ..., card: _Optional[_Union[Card, _Mapping]] = ...) -> None: ...

class AlertStep(_message.Message):
    __slots__ = ("action", "principal", "key_id", "time", "request_id", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: str
    principal: str
    key_id: str
    time: _timestamp_pb2.Timestamp
    request_id: str
    reason: str
    def __init__(self, action: _Optional[str] = ..., principal: _Optional[str] = ..., key_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("name", "severity", "headline", "description", "regions", "channel_ids", "start_time", "end_time", "content", "drill", "language", "state", "history", "version", "in_force_from", "in_force_until", "playout_channel_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    HEADLINE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    DRILL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_FORCE_FROM_FIELD_NUMBER: _ClassVar[int]
    IN_FORCE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PLAYOUT_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    severity: Severity
    headline: str
    description: str
    regions: _containers.RepeatedScalarFieldContainer[str]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    content: AlertContent
    drill: bool
    language: str
    state: AlertState
    history: _containers.RepeatedCompositeFieldContainer[AlertStep]
    version: int
    in_force_from: _timestamp_pb2.Timestamp
    in_force_until: _timestamp_pb2.Timestamp
    playout_channel_id: str
    def __init__(self, name: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., headline: _Optional[str] = ..., description: _Optional[str] = ..., regions: _Optional[_Iterable[str]] = ..., channel_ids: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content: _Optional[_Union[AlertContent, _Mapping]] = ..., drill: _Optional[bool] = ..., language: _Optional[str] = ..., state: _Optional[_Union[AlertState, str]] = ..., history: _Optional[_Iterable[_Union[AlertStep, _Mapping]]] = ..., version: _Optional[int] = ..., in_force_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_force_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., playout_channel_id: _Optional[str] = ...) -> None: ...

class IssueAlertRequest(_message.Message):
    __slots__ = ("alert_id", "alert", "validate_only")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    alert: Alert
    validate_only: bool
    def __init__(self, alert_id: _Optional[str] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class ConfirmAlertRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelAlertRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "ended_after")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ENDED_AFTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    ended_after: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., ended_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_page_token")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next_page_token: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
