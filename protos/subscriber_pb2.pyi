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

class NetworkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_TYPE_UNSPECIFIED: _ClassVar[NetworkType]
    NETWORK_TYPE_TELECOM: _ClassVar[NetworkType]
    NETWORK_TYPE_MOBILE: _ClassVar[NetworkType]
    NETWORK_TYPE_CABLE: _ClassVar[NetworkType]

class CarrierStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARRIER_STATUS_UNSPECIFIED: _ClassVar[CarrierStatus]
    CARRIER_STATUS_ACTIVE: _ClassVar[CarrierStatus]
    CARRIER_STATUS_SUSPENDED: _ClassVar[CarrierStatus]

class SubscriberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIBER_STATUS_UNSPECIFIED: _ClassVar[SubscriberStatus]
    SUBSCRIBER_STATUS_ACTIVE: _ClassVar[SubscriberStatus]
    SUBSCRIBER_STATUS_SUSPENDED: _ClassVar[SubscriberStatus]
    SUBSCRIBER_STATUS_TERMINATED: _ClassVar[SubscriberStatus]

class DeviceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATUS_UNSPECIFIED: _ClassVar[DeviceStatus]
    DEVICE_STATUS_BOUND: _ClassVar[DeviceStatus]
    DEVICE_STATUS_ACTIVATED: _ClassVar[DeviceStatus]
    DEVICE_STATUS_BLOCKED: _ClassVar[DeviceStatus]
    DEVICE_STATUS_UNBOUND: _ClassVar[DeviceStatus]

class DenyReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DENY_REASON_UNSPECIFIED: _ClassVar[DenyReason]
    DENY_REASON_NONE: _ClassVar[DenyReason]
    DENY_REASON_NOT_ENTITLED: _ClassVar[DenyReason]
    DENY_REASON_SUBSCRIBER_SUSPENDED: _ClassVar[DenyReason]
    DENY_REASON_SERVICE_EXPIRED: _ClassVar[DenyReason]
    DENY_REASON_DEVICE_BLOCKED: _ClassVar[DenyReason]
    DENY_REASON_UNKNOWN_DEVICE: _ClassVar[DenyReason]
    DENY_REASON_SUBSCRIBER_TERMINATED: _ClassVar[DenyReason]
    DENY_REASON_CARRIER_NOT_ACTIVE: _ClassVar[DenyReason]

class DeliveryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_FORMAT_UNSPECIFIED: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_HLS_TS: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_HLS_CMAF: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_DASH: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_MULTICAST: _ClassVar[DeliveryFormat]

class VideoCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_CODEC_UNSPECIFIED: _ClassVar[VideoCodec]
    VIDEO_CODEC_H264: _ClassVar[VideoCodec]
    VIDEO_CODEC_HEVC: _ClassVar[VideoCodec]

class DeviceEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_EVENT_KIND_UNSPECIFIED: _ClassVar[DeviceEventKind]
    DEVICE_EVENT_KIND_LOGIN: _ClassVar[DeviceEventKind]
    DEVICE_EVENT_KIND_AUTHORIZE: _ClassVar[DeviceEventKind]
    DEVICE_EVENT_KIND_START_SESSION: _ClassVar[DeviceEventKind]
    DEVICE_EVENT_KIND_END_SESSION: _ClassVar[DeviceEventKind]
NETWORK_TYPE_UNSPECIFIED: NetworkType
NETWORK_TYPE_TELECOM: NetworkType
NETWORK_TYPE_MOBILE: NetworkType
NETWORK_TYPE_CABLE: NetworkType
CARRIER_STATUS_UNSPECIFIED: CarrierStatus
CARRIER_STATUS_ACTIVE: CarrierStatus
CARRIER_STATUS_SUSPENDED: CarrierStatus
SUBSCRIBER_STATUS_UNSPECIFIED: SubscriberStatus
SUBSCRIBER_STATUS_ACTIVE: SubscriberStatus
SUBSCRIBER_STATUS_SUSPENDED: SubscriberStatus
SUBSCRIBER_STATUS_TERMINATED: SubscriberStatus
DEVICE_STATUS_UNSPECIFIED: DeviceStatus
DEVICE_STATUS_BOUND: DeviceStatus
DEVICE_STATUS_ACTIVATED: DeviceStatus
DEVICE_STATUS_BLOCKED: DeviceStatus
DEVICE_STATUS_UNBOUND: DeviceStatus
DENY_REASON_UNSPECIFIED: DenyReason
DENY_REASON_NONE: DenyReason
DENY_REASON_NOT_ENTITLED: DenyReason
DENY_REASON_SUBSCRIBER_SUSPENDED: DenyReason
DENY_REASON_SERVICE_EXPIRED: DenyReason
DENY_REASON_DEVICE_BLOCKED: DenyReason
DENY_REASON_UNKNOWN_DEVICE: DenyReason
DENY_REASON_SUBSCRIBER_TERMINATED: DenyReason
DENY_REASON_CARRIER_NOT_ACTIVE: DenyReason
DELIVERY_FORMAT_UNSPECIFIED: DeliveryFormat
DELIVERY_FORMAT_HLS_TS: DeliveryFormat
DELIVERY_FORMAT_HLS_CMAF: DeliveryFormat
DELIVERY_FORMAT_DASH: DeliveryFormat
DELIVERY_FORMAT_MULTICAST: DeliveryFormat
VIDEO_CODEC_UNSPECIFIED: VideoCodec
VIDEO_CODEC_H264: VideoCodec
VIDEO_CODEC_HEVC: VideoCodec
DEVICE_EVENT_KIND_UNSPECIFIED: DeviceEventKind
DEVICE_EVENT_KIND_LOGIN: DeviceEventKind
DEVICE_EVENT_KIND_AUTHORIZE: DeviceEventKind
DEVICE_EVENT_KIND_START_SESSION: DeviceEventKind
DEVICE_EVENT_KIND_END_SESSION: DeviceEventKind

class Carrier(_message.Message):
    __slots__ = ("name", "display_name", "network_type", "status", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    network_type: NetworkType
    status: CarrierStatus
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., network_type: _Optional[_Union[NetworkType, str]] = ..., status: _Optional[_Union[CarrierStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCarrierRequest(_message.Message):
    __slots__ = ("carrier_id", "carrier", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    carrier: Carrier
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., carrier: _Optional[_Union[Carrier, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetCarrierRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCarriersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCarriersResponse(_message.Message):
    __slots__ = ("carriers", "next_page_token")
    CARRIERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    carriers: _containers.RepeatedCompositeFieldContainer[Carrier]
    next_page_token: str
    def __init__(self, carriers: _Optional[_Iterable[_Union[Carrier, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetCarrierStatusRequest(_message.Message):
    __slots__ = ("name", "status", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: CarrierStatus
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[CarrierStatus, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Package(_message.Message):
    __slots__ = ("name", "display_name", "channel_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., channel_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DefinePackageRequest(_message.Message):
    __slots__ = ("package", "idempotency_key")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    package: Package
    idempotency_key: str
    def __init__(self, package: _Optional[_Union[Package, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListPackagesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPackagesResponse(_message.Message):
    __slots__ = ("packages", "next_page_token")
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    packages: _containers.RepeatedCompositeFieldContainer[Package]
    next_page_token: str
    def __init__(self, packages: _Optional[_Iterable[_Union[Package, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeviceProfile(_message.Message):
    __slots__ = ("name", "display_name", "models", "formats", "codecs", "max_height", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    CODECS_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    formats: _containers.RepeatedScalarFieldContainer[DeliveryFormat]
    codecs: _containers.RepeatedScalarFieldContainer[VideoCodec]
    max_height: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., formats: _Optional[_Iterable[_Union[DeliveryFormat, str]]] = ..., codecs: _Optional[_Iterable[_Union[VideoCodec, str]]] = ..., max_height: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DefineDeviceProfileRequest(_message.Message):
    __slots__ = ("device_profile", "idempotency_key")
    DEVICE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    device_profile: DeviceProfile
    idempotency_key: str
    def __init__(self, device_profile: _Optional[_Union[DeviceProfile, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetDeviceProfileRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDeviceProfilesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeviceProfilesResponse(_message.Message):
    __slots__ = ("device_profiles", "next_page_token")
    DEVICE_PROFILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_profiles: _containers.RepeatedCompositeFieldContainer[DeviceProfile]
    next_page_token: str
    def __init__(self, device_profiles: _Optional[_Iterable[_Union[DeviceProfile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDeviceProfileRequest(_message.Message):
    __slots__ = ("name", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Subscriber(_message.Message):
    __slots__ = ("name", "display_name", "region_code", "status", "service_end", "max_streams", "contact_phone", "contact_email", "version", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    region_code: str
    status: SubscriberStatus
    service_end: _timestamp_pb2.Timestamp
    max_streams: int
    contact_phone: str
    contact_email: str
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., service_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_streams: _Optional[int] = ..., contact_phone: _Optional[str] = ..., contact_email: _Optional[str] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSubscriberRequest(_message.Message):
    __slots__ = ("parent", "subscriber_id", "subscriber", "idempotency_key")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    subscriber_id: str
    subscriber: Subscriber
    idempotency_key: str
    def __init__(self, parent: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., subscriber: _Optional[_Union[Subscriber, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetSubscriberRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSubscribersRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscribersResponse(_message.Message):
    __slots__ = ("subscribers", "next_page_token", "total_size")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[Subscriber]
    next_page_token: str
    total_size: int
    def __init__(self, subscribers: _Optional[_Iterable[_Union[Subscriber, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateSubscriberRequest(_message.Message):
    __slots__ = ("subscriber", "update_mask", "expected_version", "idempotency_key")
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    subscriber: Subscriber
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    idempotency_key: str
    def __init__(self, subscriber: _Optional[_Union[Subscriber, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SetSubscriberStatusRequest(_message.Message):
    __slots__ = ("name", "status", "expected_version", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: SubscriberStatus
    expected_version: int
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., expected_version: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "mac", "subscriber", "serial", "model", "status", "bind_time", "activate_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BIND_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    subscriber: str
    serial: str
    model: str
    status: DeviceStatus
    bind_time: _timestamp_pb2.Timestamp
    activate_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., subscriber: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[_Union[DeviceStatus, str]] = ..., bind_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BindDeviceRequest(_message.Message):
    __slots__ = ("parent", "mac", "serial", "model", "idempotency_key")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    mac: str
    serial: str
    model: str
    idempotency_key: str
    def __init__(self, parent: _Optional[str] = ..., mac: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ActivateDeviceRequest(_message.Message):
    __slots__ = ("name", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ActivateDeviceResponse(_message.Message):
    __slots__ = ("device", "device_secret")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECRET_FIELD_NUMBER: _ClassVar[int]
    device: Device
    device_secret: str
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., device_secret: _Optional[str] = ...) -> None: ...

class UnbindDeviceRequest(_message.Message):
    __slots__ = ("name", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class BlockDeviceRequest(_message.Message):
    __slots__ = ("name", "blocked", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    blocked: bool
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., blocked: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ReplaceDeviceRequest(_message.Message):
    __slots__ = ("name", "new_mac", "serial", "model", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_MAC_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    new_mac: str
    serial: str
    model: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., new_mac: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Entitlement(_message.Message):
    __slots__ = ("name", "valid_from", "valid_until")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EntitleRequest(_message.Message):
    __slots__ = ("name", "package_id", "valid_from", "valid_until", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    package_id: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., package_id: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RevokeEntitlementRequest(_message.Message):
    __slots__ = ("name", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListEntitlementsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEntitlementsResponse(_message.Message):
    __slots__ = ("entitlements", "next_page_token", "subscriber_version")
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    entitlements: _containers.RepeatedCompositeFieldContainer[Entitlement]
    next_page_token: str
    subscriber_version: int
    def __init__(self, entitlements: _Optional[_Iterable[_Union[Entitlement, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., subscriber_version: _Optional[int] = ...) -> None: ...

class EffectiveChannelsRequest(_message.Message):
    __slots__ = ("name", "at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EffectiveChannelsResponse(_message.Message):
    __slots__ = ("channel_ids", "subscriber_version")
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    subscriber_version: int
    def __init__(self, channel_ids: _Optional[_Iterable[str]] = ..., subscriber_version: _Optional[int] = ...) -> None: ...

class DeviceLoginRequest(_message.Message):
    __slots__ = ("mac", "device_secret")
    MAC_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECRET_FIELD_NUMBER: _ClassVar[int]
    mac: str
    device_secret: str
    def __init__(self, mac: _Optional[str] = ..., device_secret: _Optional[str] = ...) -> None: ...

class DeviceLoginResponse(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "region_code", "subscriber_version", "status", "mac", "channel_ids", "allowed", "deny_reason", "device_profile")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENY_REASON_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    region_code: str
    subscriber_version: int
    status: SubscriberStatus
    mac: str
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    allowed: bool
    deny_reason: DenyReason
    device_profile: DeviceProfile
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., region_code: _Optional[str] = ..., subscriber_version: _Optional[int] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., mac: _Optional[str] = ..., channel_ids: _Optional[_Iterable[str]] = ..., allowed: _Optional[bool] = ..., deny_reason: _Optional[_Union[DenyReason, str]] = ..., device_profile: _Optional[_Union[DeviceProfile, _Mapping]] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("mac", "channel_id", "at")
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    mac: str
    channel_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, mac: _Optional[str] = ..., channel_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("allowed", "reason", "subscriber_version", "carrier_id", "subscriber_id")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: DenyReason
    subscriber_version: int
    carrier_id: str
    subscriber_id: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[DenyReason, str]] = ..., subscriber_version: _Optional[int] = ..., carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("lease_id", "mac", "channel_id", "expire_time", "reused", "active_leases", "max_streams", "replaced_lease_id")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_LEASES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    REPLACED_LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    mac: str
    channel_id: str
    expire_time: _timestamp_pb2.Timestamp
    reused: bool
    active_leases: int
    max_streams: int
    replaced_lease_id: str
    def __init__(self, lease_id: _Optional[str] = ..., mac: _Optional[str] = ..., channel_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reused: _Optional[bool] = ..., active_leases: _Optional[int] = ..., max_streams: _Optional[int] = ..., replaced_lease_id: _Optional[str] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("mac", "channel_id", "idempotency_key")
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    mac: str
    channel_id: str
    idempotency_key: str
    def __init__(self, mac: _Optional[str] = ..., channel_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("mac", "lease_id")
    MAC_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    mac: str
    lease_id: str
    def __init__(self, mac: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("mac", "lease_id", "idempotency_key")
    MAC_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    mac: str
    lease_id: str
    idempotency_key: str
    def __init__(self, mac: _Optional[str] = ..., lease_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ImportRow(_message.Message):
    __slots__ = ("row", "subscriber_id", "display_name", "region_code", "status", "service_end", "max_streams", "contact_phone", "contact_email", "mac", "serial", "model", "package_ids", "entitled_from", "entitled_until")
    ROW_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTITLED_FROM_FIELD_NUMBER: _ClassVar[int]
    ENTITLED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    row: int
    subscriber_id: str
    display_name: str
    region_code: str
    status: SubscriberStatus
    service_end: _timestamp_pb2.Timestamp
    max_streams: int
    contact_phone: str
    contact_email: str
    mac: str
    serial: str
    model: str
    package_ids: _containers.RepeatedScalarFieldContainer[str]
    entitled_from: _timestamp_pb2.Timestamp
    entitled_until: _timestamp_pb2.Timestamp
    def __init__(self, row: _Optional[int] = ..., subscriber_id: _Optional[str] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., service_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_streams: _Optional[int] = ..., contact_phone: _Optional[str] = ..., contact_email: _Optional[str] = ..., mac: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., package_ids: _Optional[_Iterable[str]] = ..., entitled_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entitled_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ImportSubscribersRequest(_message.Message):
    __slots__ = ("parent", "rows")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    rows: _containers.RepeatedCompositeFieldContainer[ImportRow]
    def __init__(self, parent: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[ImportRow, _Mapping]]] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("row", "field", "error")
    ROW_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    row: int
    field: str
    error: str
    def __init__(self, row: _Optional[int] = ..., field: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ImportSummary(_message.Message):
    __slots__ = ("rows", "created", "updated", "unchanged", "failed", "errors")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: _containers.RepeatedCompositeFieldContainer[RowError]
    def __init__(self, rows: _Optional[int] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ..., unchanged: _Optional[int] = ..., failed: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("entry_id", "time", "principal", "rpc", "subject", "before_json", "after_json")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RPC_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    time: _timestamp_pb2.Timestamp
    principal: str
    rpc: str
    subject: str
    before_json: str
    after_json: str
    def __init__(self, entry_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., rpc: _Optional[str] = ..., subject: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "after_entry_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    after_entry_id: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., after_entry_id: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeviceEvent(_message.Message):
    __slots__ = ("time", "kind", "channel_id", "allowed", "reason", "detail", "lease_id")
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    kind: DeviceEventKind
    channel_id: str
    allowed: bool
    reason: DenyReason
    detail: str
    lease_id: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[DeviceEventKind, str]] = ..., channel_id: _Optional[str] = ..., allowed: _Optional[bool] = ..., reason: _Optional[_Union[DenyReason, str]] = ..., detail: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ListDeviceEventsRequest(_message.Message):
    __slots__ = ("parent", "page_size")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDeviceEventsResponse(_message.Message):
    __slots__ = ("device", "events", "active_sessions")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    device: str
    events: _containers.RepeatedCompositeFieldContainer[DeviceEvent]
    active_sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, device: _Optional[str] = ..., events: _Optional[_Iterable[_Union[DeviceEvent, _Mapping]]] = ..., active_sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class CountSubscribersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubscriberCount(_message.Message):
    __slots__ = ("carrier", "status", "count")
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    carrier: str
    status: SubscriberStatus
    count: int
    def __init__(self, carrier: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class CountSubscribersResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[SubscriberCount]
    def __init__(self, counts: _Optional[_Iterable[_Union[SubscriberCount, _Mapping]]] = ...) -> None: ...

class ProvisioningError(_message.Message):
    __slots__ = ("time", "carrier", "principal", "rpc", "subject", "reason", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RPC_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    carrier: str
    principal: str
    rpc: str
    subject: str
    reason: str
    message: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., carrier: _Optional[str] = ..., principal: _Optional[str] = ..., rpc: _Optional[str] = ..., subject: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ListProvisioningErrorsRequest(_message.Message):
    __slots__ = ("parent", "page_size")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListProvisioningErrorsResponse(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[ProvisioningError]
    def __init__(self, errors: _Optional[_Iterable[_Union[ProvisioningError, _Mapping]]] = ...) -> None: ...
