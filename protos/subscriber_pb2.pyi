import datetime

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
    TELECOM: _ClassVar[NetworkType]
    MOBILE: _ClassVar[NetworkType]
    CABLE: _ClassVar[NetworkType]

class CarrierStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARRIER_STATUS_UNSPECIFIED: _ClassVar[CarrierStatus]
    CARRIER_ACTIVE: _ClassVar[CarrierStatus]
    CARRIER_SUSPENDED: _ClassVar[CarrierStatus]

class SubscriberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIBER_STATUS_UNSPECIFIED: _ClassVar[SubscriberStatus]
    ACTIVE: _ClassVar[SubscriberStatus]
    SUSPENDED: _ClassVar[SubscriberStatus]
    TERMINATED: _ClassVar[SubscriberStatus]

class DeviceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATUS_UNSPECIFIED: _ClassVar[DeviceStatus]
    BOUND: _ClassVar[DeviceStatus]
    ACTIVATED: _ClassVar[DeviceStatus]
    BLOCKED: _ClassVar[DeviceStatus]
    UNBOUND: _ClassVar[DeviceStatus]

class DenyReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DENY_REASON_UNSPECIFIED: _ClassVar[DenyReason]
    NOT_ENTITLED: _ClassVar[DenyReason]
    SUBSCRIBER_SUSPENDED: _ClassVar[DenyReason]
    SERVICE_EXPIRED: _ClassVar[DenyReason]
    DEVICE_BLOCKED: _ClassVar[DenyReason]
    UNKNOWN_DEVICE: _ClassVar[DenyReason]
    SUBSCRIBER_TERMINATED: _ClassVar[DenyReason]
    CARRIER_NOT_ACTIVE: _ClassVar[DenyReason]
NETWORK_TYPE_UNSPECIFIED: NetworkType
TELECOM: NetworkType
MOBILE: NetworkType
CABLE: NetworkType
CARRIER_STATUS_UNSPECIFIED: CarrierStatus
CARRIER_ACTIVE: CarrierStatus
CARRIER_SUSPENDED: CarrierStatus
SUBSCRIBER_STATUS_UNSPECIFIED: SubscriberStatus
ACTIVE: SubscriberStatus
SUSPENDED: SubscriberStatus
TERMINATED: SubscriberStatus
DEVICE_STATUS_UNSPECIFIED: DeviceStatus
BOUND: DeviceStatus
ACTIVATED: DeviceStatus
BLOCKED: DeviceStatus
UNBOUND: DeviceStatus
DENY_REASON_UNSPECIFIED: DenyReason
NOT_ENTITLED: DenyReason
SUBSCRIBER_SUSPENDED: DenyReason
SERVICE_EXPIRED: DenyReason
DEVICE_BLOCKED: DenyReason
UNKNOWN_DEVICE: DenyReason
SUBSCRIBER_TERMINATED: DenyReason
CARRIER_NOT_ACTIVE: DenyReason

class Carrier(_message.Message):
    __slots__ = ("carrier_id", "name", "network_type", "status", "created_at")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    name: str
    network_type: NetworkType
    status: CarrierStatus
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, carrier_id: _Optional[str] = ..., name: _Optional[str] = ..., network_type: _Optional[_Union[NetworkType, str]] = ..., status: _Optional[_Union[CarrierStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCarrierRequest(_message.Message):
    __slots__ = ("carrier_id", "name", "network_type", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    name: str
    network_type: NetworkType
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., name: _Optional[str] = ..., network_type: _Optional[_Union[NetworkType, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetCarrierRequest(_message.Message):
    __slots__ = ("carrier_id",)
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    def __init__(self, carrier_id: _Optional[str] = ...) -> None: ...

class ListCarriersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCarriersResponse(_message.Message):
    __slots__ = ("carriers",)
    CARRIERS_FIELD_NUMBER: _ClassVar[int]
    carriers: _containers.RepeatedCompositeFieldContainer[Carrier]
    def __init__(self, carriers: _Optional[_Iterable[_Union[Carrier, _Mapping]]] = ...) -> None: ...

class SetCarrierStatusRequest(_message.Message):
    __slots__ = ("carrier_id", "status", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    status: CarrierStatus
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., status: _Optional[_Union[CarrierStatus, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Package(_message.Message):
    __slots__ = ("package_id", "name", "channel_ids")
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    package_id: str
    name: str
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, package_id: _Optional[str] = ..., name: _Optional[str] = ..., channel_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DefinePackageRequest(_message.Message):
    __slots__ = ("package", "idempotency_key")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    package: Package
    idempotency_key: str
    def __init__(self, package: _Optional[_Union[Package, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListPackagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPackagesResponse(_message.Message):
    __slots__ = ("packages",)
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    packages: _containers.RepeatedCompositeFieldContainer[Package]
    def __init__(self, packages: _Optional[_Iterable[_Union[Package, _Mapping]]] = ...) -> None: ...

class Subscriber(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "display_name", "region_code", "status", "service_end", "max_streams", "contact_phone", "contact_email", "version", "created_at", "updated_at")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    display_name: str
    region_code: str
    status: SubscriberStatus
    service_end: _timestamp_pb2.Timestamp
    max_streams: int
    contact_phone: str
    contact_email: str
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., service_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_streams: _Optional[int] = ..., contact_phone: _Optional[str] = ..., contact_email: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSubscriberRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "display_name", "region_code", "service_end", "max_streams", "contact_phone", "contact_email", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    display_name: str
    region_code: str
    service_end: _timestamp_pb2.Timestamp
    max_streams: int
    contact_phone: str
    contact_email: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., service_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_streams: _Optional[int] = ..., contact_phone: _Optional[str] = ..., contact_email: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetSubscriberRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class ListSubscribersRequest(_message.Message):
    __slots__ = ("carrier_id", "page_size", "page_token")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    page_size: int
    page_token: str
    def __init__(self, carrier_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscribersResponse(_message.Message):
    __slots__ = ("subscribers", "next_page_token", "total_count")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[Subscriber]
    next_page_token: str
    total_count: int
    def __init__(self, subscribers: _Optional[_Iterable[_Union[Subscriber, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class UpdateSubscriberRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "expected_version", "display_name", "region_code", "service_end", "clear_service_end", "max_streams", "contact_phone", "contact_email", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    CLEAR_SERVICE_END_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    expected_version: int
    display_name: str
    region_code: str
    service_end: _timestamp_pb2.Timestamp
    clear_service_end: bool
    max_streams: int
    contact_phone: str
    contact_email: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., service_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clear_service_end: _Optional[bool] = ..., max_streams: _Optional[int] = ..., contact_phone: _Optional[str] = ..., contact_email: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SetSubscriberStatusRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "status", "expected_version", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    status: SubscriberStatus
    expected_version: int
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., expected_version: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("carrier_id", "mac", "subscriber_id", "serial", "model", "status", "bound_at", "activated_at")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BOUND_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    mac: str
    subscriber_id: str
    serial: str
    model: str
    status: DeviceStatus
    bound_at: _timestamp_pb2.Timestamp
    activated_at: _timestamp_pb2.Timestamp
    def __init__(self, carrier_id: _Optional[str] = ..., mac: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[_Union[DeviceStatus, str]] = ..., bound_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BindDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "mac", "serial", "model", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    mac: str
    serial: str
    model: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., mac: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "mac")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    mac: str
    def __init__(self, carrier_id: _Optional[str] = ..., mac: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class ActivateDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "mac", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    mac: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., mac: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ActivateDeviceResponse(_message.Message):
    __slots__ = ("device", "device_secret")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SECRET_FIELD_NUMBER: _ClassVar[int]
    device: Device
    device_secret: str
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., device_secret: _Optional[str] = ...) -> None: ...

class UnbindDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "mac", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    mac: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., mac: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class BlockDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "mac", "blocked", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    mac: str
    blocked: bool
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., mac: _Optional[str] = ..., blocked: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ReplaceDeviceRequest(_message.Message):
    __slots__ = ("carrier_id", "old_mac", "new_mac", "serial", "model", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_MAC_FIELD_NUMBER: _ClassVar[int]
    NEW_MAC_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    old_mac: str
    new_mac: str
    serial: str
    model: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., old_mac: _Optional[str] = ..., new_mac: _Optional[str] = ..., serial: _Optional[str] = ..., model: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Entitlement(_message.Message):
    __slots__ = ("subscriber_id", "package_id", "valid_from", "valid_until")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    package_id: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, subscriber_id: _Optional[str] = ..., package_id: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EntitleRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "package_id", "valid_from", "valid_until", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    package_id: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., package_id: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RevokeEntitlementRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "package_id", "idempotency_key")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    package_id: str
    idempotency_key: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., package_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListEntitlementsRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class ListEntitlementsResponse(_message.Message):
    __slots__ = ("entitlements", "subscriber_version")
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    entitlements: _containers.RepeatedCompositeFieldContainer[Entitlement]
    subscriber_version: int
    def __init__(self, entitlements: _Optional[_Iterable[_Union[Entitlement, _Mapping]]] = ..., subscriber_version: _Optional[int] = ...) -> None: ...

class EffectiveChannelsRequest(_message.Message):
    __slots__ = ("carrier_id", "subscriber_id", "at")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("carrier_id", "subscriber_id", "region_code", "subscriber_version", "status", "mac", "channel_ids", "deny_reason")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    DENY_REASON_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    subscriber_id: str
    region_code: str
    subscriber_version: int
    status: SubscriberStatus
    mac: str
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    deny_reason: DenyReason
    def __init__(self, carrier_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., region_code: _Optional[str] = ..., subscriber_version: _Optional[int] = ..., status: _Optional[_Union[SubscriberStatus, str]] = ..., mac: _Optional[str] = ..., channel_ids: _Optional[_Iterable[str]] = ..., deny_reason: _Optional[_Union[DenyReason, str]] = ...) -> None: ...

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
    __slots__ = ("lease_id", "mac", "channel_id", "expires_at", "reused", "active_leases", "max_streams", "replaced_lease_id")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_LEASES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    REPLACED_LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    mac: str
    channel_id: str
    expires_at: _timestamp_pb2.Timestamp
    reused: bool
    active_leases: int
    max_streams: int
    replaced_lease_id: str
    def __init__(self, lease_id: _Optional[str] = ..., mac: _Optional[str] = ..., channel_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reused: _Optional[bool] = ..., active_leases: _Optional[int] = ..., max_streams: _Optional[int] = ..., replaced_lease_id: _Optional[str] = ...) -> None: ...

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

class ImportChunk(_message.Message):
    __slots__ = ("carrier_id", "rows")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    rows: _containers.RepeatedCompositeFieldContainer[ImportRow]
    def __init__(self, carrier_id: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[ImportRow, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("carrier_id", "page_size", "page_token")
    CARRIER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    carrier_id: str
    page_size: int
    page_token: str
    def __init__(self, carrier_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
