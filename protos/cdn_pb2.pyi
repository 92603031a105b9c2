from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    TIER_EDGE: _ClassVar[Tier]
    TIER_MID: _ClassVar[Tier]
    TIER_ORIGIN: _ClassVar[Tier]

class HealthState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATE_UNSPECIFIED: _ClassVar[HealthState]
    HEALTH_STATE_UNKNOWN: _ClassVar[HealthState]
    HEALTH_STATE_UP: _ClassVar[HealthState]
    HEALTH_STATE_DEGRADED: _ClassVar[HealthState]
    HEALTH_STATE_DOWN: _ClassVar[HealthState]
TIER_UNSPECIFIED: Tier
TIER_EDGE: Tier
TIER_MID: Tier
TIER_ORIGIN: Tier
HEALTH_STATE_UNSPECIFIED: HealthState
HEALTH_STATE_UNKNOWN: HealthState
HEALTH_STATE_UP: HealthState
HEALTH_STATE_DEGRADED: HealthState
HEALTH_STATE_DOWN: HealthState

class Edge(_message.Message):
    __slots__ = ("name", "region", "tier", "host", "port", "capacity_sessions", "capacity_mbps", "uplink_mbps", "parent_id", "draining", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MBPS_FIELD_NUMBER: _ClassVar[int]
    UPLINK_MBPS_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    region: str
    tier: Tier
    host: str
    port: int
    capacity_sessions: int
    capacity_mbps: float
    uplink_mbps: float
    parent_id: str
    draining: bool
    version: int
    def __init__(self, name: _Optional[str] = ..., region: _Optional[str] = ..., tier: _Optional[_Union[Tier, str]] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., capacity_sessions: _Optional[int] = ..., capacity_mbps: _Optional[float] = ..., uplink_mbps: _Optional[float] = ..., parent_id: _Optional[str] = ..., draining: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class EdgeStatus(_message.Message):
    __slots__ = ("edge", "health", "health_reason", "failed_probes", "probes", "probe_latency_ms", "active_sessions", "load", "cache_hit_ratio", "uplink_mbps_used", "uplink_use")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_PROBES_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    PROBE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    UPLINK_MBPS_USED_FIELD_NUMBER: _ClassVar[int]
    UPLINK_USE_FIELD_NUMBER: _ClassVar[int]
    edge: Edge
    health: HealthState
    health_reason: str
    failed_probes: int
    probes: int
    probe_latency_ms: float
    active_sessions: int
    load: float
    cache_hit_ratio: float
    uplink_mbps_used: float
    uplink_use: float
    def __init__(self, edge: _Optional[_Union[Edge, _Mapping]] = ..., health: _Optional[_Union[HealthState, str]] = ..., health_reason: _Optional[str] = ..., failed_probes: _Optional[int] = ..., probes: _Optional[int] = ..., probe_latency_ms: _Optional[float] = ..., active_sessions: _Optional[int] = ..., load: _Optional[float] = ..., cache_hit_ratio: _Optional[float] = ..., uplink_mbps_used: _Optional[float] = ..., uplink_use: _Optional[float] = ...) -> None: ...

class RegisterEdgeRequest(_message.Message):
    __slots__ = ("edge_id", "edge")
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    edge: Edge
    def __init__(self, edge_id: _Optional[str] = ..., edge: _Optional[_Union[Edge, _Mapping]] = ...) -> None: ...

class UpdateEdgeRequest(_message.Message):
    __slots__ = ("edge", "update_mask", "expected_version")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    edge: Edge
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    def __init__(self, edge: _Optional[_Union[Edge, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DrainEdgeRequest(_message.Message):
    __slots__ = ("name", "resume")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume: bool
    def __init__(self, name: _Optional[str] = ..., resume: _Optional[bool] = ...) -> None: ...

class ListEdgesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEdgesResponse(_message.Message):
    __slots__ = ("edges", "next_page_token")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[EdgeStatus]
    next_page_token: str
    def __init__(self, edges: _Optional[_Iterable[_Union[EdgeStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
