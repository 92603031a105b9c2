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

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class PackageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGE_FORMAT_UNSPECIFIED: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_TS: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_CMAF: _ClassVar[PackageFormat]

class ChannelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_STATE_UNSPECIFIED: _ClassVar[ChannelState]
    CHANNEL_STATE_STOPPED: _ClassVar[ChannelState]
    CHANNEL_STATE_STARTING: _ClassVar[ChannelState]
    CHANNEL_STATE_LIVE: _ClassVar[ChannelState]
    CHANNEL_STATE_SLATE: _ClassVar[ChannelState]
    CHANNEL_STATE_DEGRADED: _ClassVar[ChannelState]
    CHANNEL_STATE_RECOVERING: _ClassVar[ChannelState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
PACKAGE_FORMAT_UNSPECIFIED: PackageFormat
PACKAGE_FORMAT_TS: PackageFormat
PACKAGE_FORMAT_CMAF: PackageFormat
CHANNEL_STATE_UNSPECIFIED: ChannelState
CHANNEL_STATE_STOPPED: ChannelState
CHANNEL_STATE_STARTING: ChannelState
CHANNEL_STATE_LIVE: ChannelState
CHANNEL_STATE_SLATE: ChannelState
CHANNEL_STATE_DEGRADED: ChannelState
CHANNEL_STATE_RECOVERING: ChannelState

class Progress(_message.Message):
    __slots__ = ("percent", "speed", "eta_seconds", "phase")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    percent: float
    speed: float
    eta_seconds: float
    phase: str
    def __init__(self, percent: _Optional[float] = ..., speed: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., phase: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "source", "asset", "profile", "state", "progress", "reason", "deliveries", "worker", "output", "create_time", "update_time", "encryption", "subtitles", "audio_language", "format")
    class Encryption(_message.Message):
        __slots__ = ("enabled", "rotation_seconds")
        ENABLED_FIELD_NUMBER: _ClassVar[int]
        ROTATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
        enabled: bool
        rotation_seconds: int
        def __init__(self, enabled: _Optional[bool] = ..., rotation_seconds: _Optional[int] = ...) -> None: ...
    class Subtitle(_message.Message):
        __slots__ = ("uri", "language", "title")
        URI_FIELD_NUMBER: _ClassVar[int]
        LANGUAGE_FIELD_NUMBER: _ClassVar[int]
        TITLE_FIELD_NUMBER: _ClassVar[int]
        uri: str
        language: str
        title: str
        def __init__(self, uri: _Optional[str] = ..., language: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    SUBTITLES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    asset: str
    profile: str
    state: JobState
    progress: Progress
    reason: str
    deliveries: int
    worker: str
    output: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    encryption: Job.Encryption
    subtitles: _containers.RepeatedCompositeFieldContainer[Job.Subtitle]
    audio_language: str
    format: PackageFormat
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., asset: _Optional[str] = ..., profile: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., reason: _Optional[str] = ..., deliveries: _Optional[int] = ..., worker: _Optional[str] = ..., output: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., encryption: _Optional[_Union[Job.Encryption, _Mapping]] = ..., subtitles: _Optional[_Iterable[_Union[Job.Subtitle, _Mapping]]] = ..., audio_language: _Optional[str] = ..., format: _Optional[_Union[PackageFormat, str]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("source", "asset", "profile", "job_id", "encryption", "subtitles", "audio_language", "format")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    SUBTITLES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    source: str
    asset: str
    profile: str
    job_id: str
    encryption: Job.Encryption
    subtitles: _containers.RepeatedCompositeFieldContainer[Job.Subtitle]
    audio_language: str
    format: PackageFormat
    def __init__(self, source: _Optional[str] = ..., asset: _Optional[str] = ..., profile: _Optional[str] = ..., job_id: _Optional[str] = ..., encryption: _Optional[_Union[Job.Encryption, _Mapping]] = ..., subtitles: _Optional[_Iterable[_Union[Job.Subtitle, _Mapping]]] = ..., audio_language: _Optional[str] = ..., format: _Optional[_Union[PackageFormat, str]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job", "state", "progress", "reason")
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job: str
    state: JobState
    progress: Progress
    reason: str
    def __init__(self, job: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("job", "reason", "deliveries", "dead_time")
    JOB_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    DEAD_TIME_FIELD_NUMBER: _ClassVar[int]
    job: Job
    reason: str
    deliveries: int
    dead_time: _timestamp_pb2.Timestamp
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., reason: _Optional[str] = ..., deliveries: _Optional[int] = ..., dead_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token", "total_size")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    total_size: int
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("name", "source", "profile", "segment_seconds", "window_segments", "catchup_days", "node_group", "backup_sources", "encryption", "audio_languages", "subtitle_languages", "audio_language", "card", "multicast", "formats")
    class Encryption(_message.Message):
        __slots__ = ("enabled", "rotation_seconds")
        ENABLED_FIELD_NUMBER: _ClassVar[int]
        ROTATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
        enabled: bool
        rotation_seconds: int
        def __init__(self, enabled: _Optional[bool] = ..., rotation_seconds: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_DAYS_FIELD_NUMBER: _ClassVar[int]
    NODE_GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKUP_SOURCES_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    MULTICAST_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    profile: str
    segment_seconds: int
    window_segments: int
    catchup_days: int
    node_group: str
    backup_sources: _containers.RepeatedScalarFieldContainer[str]
    encryption: Channel.Encryption
    audio_languages: _containers.RepeatedScalarFieldContainer[str]
    subtitle_languages: _containers.RepeatedScalarFieldContainer[str]
    audio_language: str
    card: Card
    multicast: Multicast
    formats: _containers.RepeatedScalarFieldContainer[PackageFormat]
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., profile: _Optional[str] = ..., segment_seconds: _Optional[int] = ..., window_segments: _Optional[int] = ..., catchup_days: _Optional[int] = ..., node_group: _Optional[str] = ..., backup_sources: _Optional[_Iterable[str]] = ..., encryption: _Optional[_Union[Channel.Encryption, _Mapping]] = ..., audio_languages: _Optional[_Iterable[str]] = ..., subtitle_languages: _Optional[_Iterable[str]] = ..., audio_language: _Optional[str] = ..., card: _Optional[_Union[Card, _Mapping]] = ..., multicast: _Optional[_Union[Multicast, _Mapping]] = ..., formats: _Optional[_Iterable[_Union[PackageFormat, str]]] = ...) -> None: ...

class Multicast(_message.Message):
    __slots__ = ("group", "port", "protocol", "ttl", "interface", "rung", "mux_rate_kbps", "regions")
    class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PROTOCOL_UNSPECIFIED: _ClassVar[Multicast.Protocol]
        PROTOCOL_RTP: _ClassVar[Multicast.Protocol]
        PROTOCOL_UDP: _ClassVar[Multicast.Protocol]
    PROTOCOL_UNSPECIFIED: Multicast.Protocol
    PROTOCOL_RTP: Multicast.Protocol
    PROTOCOL_UDP: Multicast.Protocol
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    RUNG_FIELD_NUMBER: _ClassVar[int]
    MUX_RATE_KBPS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    group: str
    port: int
    protocol: Multicast.Protocol
    ttl: int
    interface: str
    rung: str
    mux_rate_kbps: int
    regions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[_Union[Multicast.Protocol, str]] = ..., ttl: _Optional[int] = ..., interface: _Optional[str] = ..., rung: _Optional[str] = ..., mux_rate_kbps: _Optional[int] = ..., regions: _Optional[_Iterable[str]] = ...) -> None: ...

class MulticastOutput(_message.Message):
    __slots__ = ("channel", "multicast", "running")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MULTICAST_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    channel: str
    multicast: Multicast
    running: bool
    def __init__(self, channel: _Optional[str] = ..., multicast: _Optional[_Union[Multicast, _Mapping]] = ..., running: _Optional[bool] = ...) -> None: ...

class ListMulticastOutputsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMulticastOutputsResponse(_message.Message):
    __slots__ = ("outputs", "next_page_token")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[MulticastOutput]
    next_page_token: str
    def __init__(self, outputs: _Optional[_Iterable[_Union[MulticastOutput, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LiveOutput(_message.Message):
    __slots__ = ("channel", "multicast", "running", "formats")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MULTICAST_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    multicast: Multicast
    running: bool
    formats: _containers.RepeatedScalarFieldContainer[PackageFormat]
    def __init__(self, channel: _Optional[str] = ..., multicast: _Optional[_Union[Multicast, _Mapping]] = ..., running: _Optional[bool] = ..., formats: _Optional[_Iterable[_Union[PackageFormat, str]]] = ...) -> None: ...

class ListLiveOutputsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLiveOutputsResponse(_message.Message):
    __slots__ = ("outputs", "next_page_token")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[LiveOutput]
    next_page_token: str
    def __init__(self, outputs: _Optional[_Iterable[_Union[LiveOutput, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("text", "audio_uri")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_URI_FIELD_NUMBER: _ClassVar[int]
    text: str
    audio_uri: str
    def __init__(self, text: _Optional[str] = ..., audio_uri: _Optional[str] = ...) -> None: ...

class SourceSwitch(_message.Message):
    __slots__ = ("switch_time", "from_index", "to_index", "reason", "detail")
    SWITCH_TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    TO_INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    switch_time: _timestamp_pb2.Timestamp
    from_index: int
    to_index: int
    reason: str
    detail: str
    def __init__(self, switch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_index: _Optional[int] = ..., to_index: _Optional[int] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ChannelStatus(_message.Message):
    __slots__ = ("channel", "state", "media_sequence", "discontinuity_sequence", "restarts", "reason", "update_time", "node", "token", "source_index", "source_url", "source_history", "last_segment_time", "target_duration_seconds", "rungs")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DISCONTINUITY_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HISTORY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEGMENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TARGET_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUNGS_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    state: ChannelState
    media_sequence: int
    discontinuity_sequence: int
    restarts: int
    reason: str
    update_time: _timestamp_pb2.Timestamp
    node: str
    token: int
    source_index: int
    source_url: str
    source_history: _containers.RepeatedCompositeFieldContainer[SourceSwitch]
    last_segment_time: _timestamp_pb2.Timestamp
    target_duration_seconds: int
    rungs: _containers.RepeatedCompositeFieldContainer[RungRate]
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ..., state: _Optional[_Union[ChannelState, str]] = ..., media_sequence: _Optional[int] = ..., discontinuity_sequence: _Optional[int] = ..., restarts: _Optional[int] = ..., reason: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node: _Optional[str] = ..., token: _Optional[int] = ..., source_index: _Optional[int] = ..., source_url: _Optional[str] = ..., source_history: _Optional[_Iterable[_Union[SourceSwitch, _Mapping]]] = ..., last_segment_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., target_duration_seconds: _Optional[int] = ..., rungs: _Optional[_Iterable[_Union[RungRate, _Mapping]]] = ...) -> None: ...

class RungRate(_message.Message):
    __slots__ = ("name", "bandwidth")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    bandwidth: int
    def __init__(self, name: _Optional[str] = ..., bandwidth: _Optional[int] = ...) -> None: ...

class GetChannelThumbnailRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ChannelThumbnail(_message.Message):
    __slots__ = ("name", "jpeg", "capture_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    jpeg: bytes
    capture_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., jpeg: _Optional[bytes] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartChannelRequest(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...

class StopChannelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetChannelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChannelsResponse(_message.Message):
    __slots__ = ("channels", "next_page_token")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[ChannelStatus]
    next_page_token: str
    def __init__(self, channels: _Optional[_Iterable[_Union[ChannelStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("name", "group", "capacity", "load", "draining", "channels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    group: str
    capacity: int
    load: int
    draining: bool
    channels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., group: _Optional[str] = ..., capacity: _Optional[int] = ..., load: _Optional[int] = ..., draining: _Optional[bool] = ..., channels: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("name", "resume")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume: bool
    def __init__(self, name: _Optional[str] = ..., resume: _Optional[bool] = ...) -> None: ...
