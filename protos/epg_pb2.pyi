import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WritePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITE_POLICY_UNSPECIFIED: _ClassVar[WritePolicy]
    WRITE_POLICY_REFUSE: _ClassVar[WritePolicy]
    WRITE_POLICY_REPLACE: _ClassVar[WritePolicy]

class GapPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GAP_POLICY_UNSPECIFIED: _ClassVar[GapPolicy]
    GAP_POLICY_SHIFT_FORWARD: _ClassVar[GapPolicy]
    GAP_POLICY_SKIP: _ClassVar[GapPolicy]

class FoldPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FOLD_POLICY_UNSPECIFIED: _ClassVar[FoldPolicy]
    FOLD_POLICY_FIRST: _ClassVar[FoldPolicy]
    FOLD_POLICY_SECOND: _ClassVar[FoldPolicy]
    FOLD_POLICY_SKIP: _ClassVar[FoldPolicy]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_CHANNEL: _ClassVar[ChangeKind]
    CHANGE_KIND_PROGRAMMES: _ClassVar[ChangeKind]
    CHANGE_KIND_RESYNC: _ClassVar[ChangeKind]
    CHANGE_KIND_ALERTS: _ClassVar[ChangeKind]
    CHANGE_KIND_CUES: _ClassVar[ChangeKind]
WRITE_POLICY_UNSPECIFIED: WritePolicy
WRITE_POLICY_REFUSE: WritePolicy
WRITE_POLICY_REPLACE: WritePolicy
GAP_POLICY_UNSPECIFIED: GapPolicy
GAP_POLICY_SHIFT_FORWARD: GapPolicy
GAP_POLICY_SKIP: GapPolicy
FOLD_POLICY_UNSPECIFIED: FoldPolicy
FOLD_POLICY_FIRST: FoldPolicy
FOLD_POLICY_SECOND: FoldPolicy
FOLD_POLICY_SKIP: FoldPolicy
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_CHANNEL: ChangeKind
CHANGE_KIND_PROGRAMMES: ChangeKind
CHANGE_KIND_RESYNC: ChangeKind
CHANGE_KIND_ALERTS: ChangeKind
CHANGE_KIND_CUES: ChangeKind

class LocalizedText(_message.Message):
    __slots__ = ("lang", "text")
    LANG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    lang: str
    text: str
    def __init__(self, lang: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("name", "number", "names", "logo_url", "owner", "timezone", "catchup_days", "group", "active", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    LOGO_URL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_DAYS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    number: int
    names: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    logo_url: str
    owner: str
    timezone: str
    catchup_days: int
    group: str
    active: bool
    version: int
    def __init__(self, name: _Optional[str] = ..., number: _Optional[int] = ..., names: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., logo_url: _Optional[str] = ..., owner: _Optional[str] = ..., timezone: _Optional[str] = ..., catchup_days: _Optional[int] = ..., group: _Optional[str] = ..., active: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class Rating(_message.Message):
    __slots__ = ("system", "value")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    system: str
    value: str
    def __init__(self, system: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Programme(_message.Message):
    __slots__ = ("name", "start", "stop", "titles", "sub_titles", "descriptions", "categories", "keywords", "episode_xmltv_ns", "episode_onscreen", "ratings", "previously_shown", "premiere", "icons", "catchup_allowed", "blackout_regions", "blackout_slate", "audio_languages", "subtitle_languages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    SUB_TITLES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_XMLTV_NS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ONSCREEN_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUSLY_SHOWN_FIELD_NUMBER: _ClassVar[int]
    PREMIERE_FIELD_NUMBER: _ClassVar[int]
    ICONS_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    BLACKOUT_REGIONS_FIELD_NUMBER: _ClassVar[int]
    BLACKOUT_SLATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    titles: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    sub_titles: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    descriptions: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    categories: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    keywords: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    episode_xmltv_ns: str
    episode_onscreen: str
    ratings: _containers.RepeatedCompositeFieldContainer[Rating]
    previously_shown: bool
    premiere: bool
    icons: _containers.RepeatedScalarFieldContainer[str]
    catchup_allowed: bool
    blackout_regions: _containers.RepeatedScalarFieldContainer[str]
    blackout_slate: str
    audio_languages: _containers.RepeatedScalarFieldContainer[str]
    subtitle_languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., titles: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., sub_titles: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., descriptions: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., categories: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., keywords: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., episode_xmltv_ns: _Optional[str] = ..., episode_onscreen: _Optional[str] = ..., ratings: _Optional[_Iterable[_Union[Rating, _Mapping]]] = ..., previously_shown: _Optional[bool] = ..., premiere: _Optional[bool] = ..., icons: _Optional[_Iterable[str]] = ..., catchup_allowed: _Optional[bool] = ..., blackout_regions: _Optional[_Iterable[str]] = ..., blackout_slate: _Optional[str] = ..., audio_languages: _Optional[_Iterable[str]] = ..., subtitle_languages: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateChannelRequest(_message.Message):
    __slots__ = ("channel_id", "channel")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    channel: Channel
    def __init__(self, channel_id: _Optional[str] = ..., channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...

class UpdateChannelRequest(_message.Message):
    __slots__ = ("channel", "update_mask", "expected_version")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class GetChannelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "active_only")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    active_only: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., active_only: _Optional[bool] = ...) -> None: ...

class ListChannelsResponse(_message.Message):
    __slots__ = ("channels", "next_page_token")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    next_page_token: str
    def __init__(self, channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteChannelRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteChannelResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class PutProgrammesRequest(_message.Message):
    __slots__ = ("parent", "programmes", "policy")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    programmes: _containers.RepeatedCompositeFieldContainer[Programme]
    policy: WritePolicy
    def __init__(self, parent: _Optional[str] = ..., programmes: _Optional[_Iterable[_Union[Programme, _Mapping]]] = ..., policy: _Optional[_Union[WritePolicy, str]] = ...) -> None: ...

class PutProgrammesResponse(_message.Message):
    __slots__ = ("version", "written_ids", "unchanged_ids", "removed_ids", "trimmed_ids")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_IDS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_IDS_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_IDS_FIELD_NUMBER: _ClassVar[int]
    version: int
    written_ids: _containers.RepeatedScalarFieldContainer[str]
    unchanged_ids: _containers.RepeatedScalarFieldContainer[str]
    removed_ids: _containers.RepeatedScalarFieldContainer[str]
    trimmed_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., written_ids: _Optional[_Iterable[str]] = ..., unchanged_ids: _Optional[_Iterable[str]] = ..., removed_ids: _Optional[_Iterable[str]] = ..., trimmed_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteProgrammesRequest(_message.Message):
    __slots__ = ("parent", "ids", "start", "stop")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    parent: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    def __init__(self, parent: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeleteProgrammesResponse(_message.Message):
    __slots__ = ("version", "removed_ids")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REMOVED_IDS_FIELD_NUMBER: _ClassVar[int]
    version: int
    removed_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., removed_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetProgrammeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LocalDate(_message.Message):
    __slots__ = ("year", "month", "day")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    year: int
    month: int
    day: int
    def __init__(self, year: _Optional[int] = ..., month: _Optional[int] = ..., day: _Optional[int] = ...) -> None: ...

class SlotRule(_message.Message):
    __slots__ = ("weekdays", "hour", "minute", "duration_seconds", "titles", "first_day", "last_day", "gap_policy", "fold_policy", "categories", "descriptions")
    WEEKDAYS_FIELD_NUMBER: _ClassVar[int]
    HOUR_FIELD_NUMBER: _ClassVar[int]
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    GAP_POLICY_FIELD_NUMBER: _ClassVar[int]
    FOLD_POLICY_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    weekdays: _containers.RepeatedScalarFieldContainer[int]
    hour: int
    minute: int
    duration_seconds: int
    titles: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    first_day: LocalDate
    last_day: LocalDate
    gap_policy: GapPolicy
    fold_policy: FoldPolicy
    categories: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    descriptions: _containers.RepeatedCompositeFieldContainer[LocalizedText]
    def __init__(self, weekdays: _Optional[_Iterable[int]] = ..., hour: _Optional[int] = ..., minute: _Optional[int] = ..., duration_seconds: _Optional[int] = ..., titles: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., first_day: _Optional[_Union[LocalDate, _Mapping]] = ..., last_day: _Optional[_Union[LocalDate, _Mapping]] = ..., gap_policy: _Optional[_Union[GapPolicy, str]] = ..., fold_policy: _Optional[_Union[FoldPolicy, str]] = ..., categories: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ..., descriptions: _Optional[_Iterable[_Union[LocalizedText, _Mapping]]] = ...) -> None: ...

class ExpandSlotsRequest(_message.Message):
    __slots__ = ("parent", "rule", "policy", "dry_run")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    rule: SlotRule
    policy: WritePolicy
    dry_run: bool
    def __init__(self, parent: _Optional[str] = ..., rule: _Optional[_Union[SlotRule, _Mapping]] = ..., policy: _Optional[_Union[WritePolicy, str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ExpandSlotsResponse(_message.Message):
    __slots__ = ("programmes", "version")
    PROGRAMMES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    programmes: _containers.RepeatedCompositeFieldContainer[Programme]
    version: int
    def __init__(self, programmes: _Optional[_Iterable[_Union[Programme, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class NowNextRequest(_message.Message):
    __slots__ = ("channel_ids", "at")
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    at: _timestamp_pb2.Timestamp
    def __init__(self, channel_ids: _Optional[_Iterable[str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NowNextEntry(_message.Message):
    __slots__ = ("channel_id", "now", "next")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    now: Programme
    next: Programme
    def __init__(self, channel_id: _Optional[str] = ..., now: _Optional[_Union[Programme, _Mapping]] = ..., next: _Optional[_Union[Programme, _Mapping]] = ...) -> None: ...

class NowNextResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[NowNextEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[NowNextEntry, _Mapping]]] = ...) -> None: ...

class ListProgrammesRequest(_message.Message):
    __slots__ = ("parent", "start", "stop", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProgrammesResponse(_message.Message):
    __slots__ = ("programmes", "next_page_token")
    PROGRAMMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    programmes: _containers.RepeatedCompositeFieldContainer[Programme]
    next_page_token: str
    def __init__(self, programmes: _Optional[_Iterable[_Union[Programme, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GridRequest(_message.Message):
    __slots__ = ("channel_ids", "start", "stop", "page_size", "page_token")
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, channel_ids: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GridRow(_message.Message):
    __slots__ = ("channel", "programmes")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    programmes: _containers.RepeatedCompositeFieldContainer[Programme]
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ..., programmes: _Optional[_Iterable[_Union[Programme, _Mapping]]] = ...) -> None: ...

class GridResponse(_message.Message):
    __slots__ = ("rows", "next_page_token")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[GridRow]
    next_page_token: str
    def __init__(self, rows: _Optional[_Iterable[_Union[GridRow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "category", "start", "stop", "page_size", "page_token")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    text: str
    category: str
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, text: _Optional[str] = ..., category: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("programmes", "next_page_token")
    PROGRAMMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    programmes: _containers.RepeatedCompositeFieldContainer[Programme]
    next_page_token: str
    def __init__(self, programmes: _Optional[_Iterable[_Union[Programme, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListGapsRequest(_message.Message):
    __slots__ = ("parent", "start", "stop", "min_gap_seconds", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    MIN_GAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    min_gap_seconds: int
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_gap_seconds: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("start", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListGapsResponse(_message.Message):
    __slots__ = ("gaps", "next_page_token")
    GAPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    gaps: _containers.RepeatedCompositeFieldContainer[Gap]
    next_page_token: str
    def __init__(self, gaps: _Optional[_Iterable[_Union[Gap, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ImportOptions(_message.Message):
    __slots__ = ("strict", "channel_map", "owner")
    class ChannelMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STRICT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MAP_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    strict: bool
    channel_map: _containers.ScalarMap[str, str]
    owner: str
    def __init__(self, strict: _Optional[bool] = ..., channel_map: _Optional[_Mapping[str, str]] = ..., owner: _Optional[str] = ...) -> None: ...

class ImportXmltvRequest(_message.Message):
    __slots__ = ("options", "data")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    options: ImportOptions
    data: bytes
    def __init__(self, options: _Optional[_Union[ImportOptions, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImportProblem(_message.Message):
    __slots__ = ("line", "channel_id", "reason")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    line: int
    channel_id: str
    reason: str
    def __init__(self, line: _Optional[int] = ..., channel_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ImportXmltvResponse(_message.Message):
    __slots__ = ("channels_created", "channels_updated", "programmes_written", "programmes_unchanged", "programmes_removed", "programmes_trimmed", "problems", "version", "problems_total")
    CHANNELS_CREATED_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMES_TRIMMED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    channels_created: int
    channels_updated: int
    programmes_written: int
    programmes_unchanged: int
    programmes_removed: int
    programmes_trimmed: int
    problems: _containers.RepeatedCompositeFieldContainer[ImportProblem]
    version: int
    problems_total: int
    def __init__(self, channels_created: _Optional[int] = ..., channels_updated: _Optional[int] = ..., programmes_written: _Optional[int] = ..., programmes_unchanged: _Optional[int] = ..., programmes_removed: _Optional[int] = ..., programmes_trimmed: _Optional[int] = ..., problems: _Optional[_Iterable[_Union[ImportProblem, _Mapping]]] = ..., version: _Optional[int] = ..., problems_total: _Optional[int] = ...) -> None: ...

class ListGuideStatusRequest(_message.Message):
    __slots__ = ("horizon_hours", "page_size", "page_token")
    HORIZON_HOURS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    horizon_hours: int
    page_size: int
    page_token: str
    def __init__(self, horizon_hours: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GuideStatus(_message.Message):
    __slots__ = ("channel", "display_name", "guide_end", "hours_ahead", "gaps", "gap_seconds")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    GUIDE_END_FIELD_NUMBER: _ClassVar[int]
    HOURS_AHEAD_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    GAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    display_name: str
    guide_end: _timestamp_pb2.Timestamp
    hours_ahead: float
    gaps: int
    gap_seconds: int
    def __init__(self, channel: _Optional[str] = ..., display_name: _Optional[str] = ..., guide_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hours_ahead: _Optional[float] = ..., gaps: _Optional[int] = ..., gap_seconds: _Optional[int] = ...) -> None: ...

class ImportRecord(_message.Message):
    __slots__ = ("time", "principal", "result", "error")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    principal: str
    result: ImportXmltvResponse
    error: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., result: _Optional[_Union[ImportXmltvResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ListGuideStatusResponse(_message.Message):
    __slots__ = ("channels", "next_page_token", "recent_imports")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RECENT_IMPORTS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[GuideStatus]
    next_page_token: str
    recent_imports: _containers.RepeatedCompositeFieldContainer[ImportRecord]
    def __init__(self, channels: _Optional[_Iterable[_Union[GuideStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., recent_imports: _Optional[_Iterable[_Union[ImportRecord, _Mapping]]] = ...) -> None: ...

class ExportXmltvRequest(_message.Message):
    __slots__ = ("channel_ids", "start", "stop", "gzip")
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    GZIP_FIELD_NUMBER: _ClassVar[int]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    stop: _timestamp_pb2.Timestamp
    gzip: bool
    def __init__(self, channel_ids: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gzip: _Optional[bool] = ...) -> None: ...

class ExportXmltvChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class WatchChangesRequest(_message.Message):
    __slots__ = ("from_version", "channel_ids")
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    from_version: int
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, from_version: _Optional[int] = ..., channel_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("version", "kind", "channel_id", "deleted", "programme_ids", "window_start", "window_stop")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    PROGRAMME_IDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_STOP_FIELD_NUMBER: _ClassVar[int]
    version: int
    kind: ChangeKind
    channel_id: str
    deleted: bool
    programme_ids: _containers.RepeatedScalarFieldContainer[str]
    window_start: _timestamp_pb2.Timestamp
    window_stop: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., channel_id: _Optional[str] = ..., deleted: _Optional[bool] = ..., programme_ids: _Optional[_Iterable[str]] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_stop: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
