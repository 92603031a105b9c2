"""The subscriber service's values: frozen dataclasses, the deny reasons and the status sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

NetworkType = Literal["telecom", "mobile", "cable"]
NETWORK_TYPES: tuple[NetworkType, ...] = ("telecom", "mobile", "cable")
CarrierStatus = Literal["active", "suspended"]
CARRIER_STATUSES: tuple[CarrierStatus, ...] = ("active", "suspended")
SubscriberStatus = Literal["active", "suspended", "terminated"]
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = ("active", "suspended", "terminated")
DeviceStatus = Literal["bound", "activated", "blocked", "unbound"]
DEVICE_STATUSES: tuple[DeviceStatus, ...] = ("bound", "activated", "blocked", "unbound")
DeliveryFormat = Literal["hls-ts", "hls-cmaf", "dash", "multicast"]
DELIVERY_FORMATS: tuple[DeliveryFormat, ...] = ("hls-ts", "hls-cmaf", "dash", "multicast")
VideoCodec = Literal["h264", "hevc"]
VIDEO_CODECS: tuple[VideoCodec, ...] = ("h264", "hevc")


class DenyReason(StrEnum):
    """Why playback is refused; the names are the proto enum's names."""

    NOT_ENTITLED = "NOT_ENTITLED"
    SUBSCRIBER_SUSPENDED = "SUBSCRIBER_SUSPENDED"
    SERVICE_EXPIRED = "SERVICE_EXPIRED"
    DEVICE_BLOCKED = "DEVICE_BLOCKED"
    UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
    SUBSCRIBER_TERMINATED = "SUBSCRIBER_TERMINATED"
    CARRIER_NOT_ACTIVE = "CARRIER_NOT_ACTIVE"


@dataclass(frozen=True, slots=True)
class Carrier:
    """A telecom, mobile or cable operator: the tenant."""

    carrier_id: str
    name: str
    network_type: NetworkType
    status: CarrierStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Package:
    """A sellable bundle of channels from the admin's catalogue."""

    package_id: str
    name: str
    channel_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A subscriber's right to a package over the half-open window ``[valid_from, valid_until)``."""

    package_id: str
    valid_from: datetime
    valid_until: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        """True when ``at`` lies inside the window."""
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A carrier's account; ``version`` changes with every change to it, its boxes or rights."""

    carrier_id: str
    subscriber_id: str
    display_name: str
    region_code: str
    status: SubscriberStatus
    service_end: datetime | None
    max_streams: int
    contact_phone: str
    contact_email: str
    version: int
    created_at: datetime
    updated_at: datetime
    entitlements: tuple[Entitlement, ...] = ()
    device_macs: tuple[str, ...] = ()

    def snapshot(self) -> dict[str, object]:
        """The audit view of the account fields (not rights or boxes)."""
        return {
            "display_name": self.display_name,
            "region_code": self.region_code,
            "status": self.status,
            "service_end": iso(self.service_end),
            "max_streams": self.max_streams,
            "contact_phone": self.contact_phone,
            "contact_email": self.contact_email,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Device:
    """A set-top box; ``secret_digest`` is the SHA-256 of its device secret (never the secret)."""

    carrier_id: str
    mac: str
    subscriber_id: str
    serial: str
    model: str
    status: DeviceStatus
    bound_at: datetime
    activated_at: datetime | None = None
    secret_digest: str = field(default="", repr=False)

    def snapshot(self) -> dict[str, object]:
        """The audit view (never the secret digest)."""
        return {
            "subscriber_id": self.subscriber_id,
            "serial": self.serial,
            "model": self.model,
            "status": self.status,
            "activated_at": iso(self.activated_at),
        }


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What the box models ``models`` of a carrier play, most preferred format first;
    ``max_height`` 0 is any size. The platform's own profile has empty ids
    (:data:`PLATFORM_PROFILE`)."""

    carrier_id: str
    profile_id: str
    display_name: str
    models: tuple[str, ...]
    formats: tuple[DeliveryFormat, ...]
    codecs: tuple[VideoCodec, ...]
    max_height: int = 0
    updated_at: datetime | None = None

    def snapshot(self) -> dict[str, object]:
        """The audit view (its ids are the audit entry's subject)."""
        return {
            "display_name": self.display_name,
            "models": list(self.models),
            "formats": list(self.formats),
            "codecs": list(self.codecs),
            "max_height": self.max_height,
        }


# What a box plays when its carrier has no profile for it: every HLS player plays this.
PLATFORM_PROFILE = DeviceProfile("", "", "", (), ("hls-ts",), ("h264",))


@dataclass(frozen=True, slots=True)
class SubscriberChanges:
    """The fields an update sets; ``None`` leaves a field alone."""

    display_name: str | None = None
    region_code: str | None = None
    service_end: datetime | None = None
    clear_service_end: bool = False
    max_streams: int | None = None
    contact_phone: str | None = None
    contact_email: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A playback decision: ``reason`` is None when allowed."""

    reason: DenyReason | None
    subscriber_version: int = 0
    carrier_id: str = ""
    subscriber_id: str = ""

    @property
    def allowed(self) -> bool:
        """True when playback may go ahead."""
        return self.reason is None


@dataclass(frozen=True, slots=True)
class PlaybackState:
    """Everything a playback decision reads, loaded in one go by the store."""

    device: Device
    subscriber: Subscriber
    carrier_status: CarrierStatus


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a box learns when it logs in with its MAC and device secret: its account,
    the channels it may watch now, and why it may not play at all (None when it may)."""

    carrier_id: str
    subscriber_id: str
    mac: str
    region_code: str
    status: SubscriberStatus
    subscriber_version: int
    channel_ids: tuple[str, ...]
    deny_reason: DenyReason | None
    # What the box's model plays (its carrier's profile, else the platform's); the
    # login answer leaves its models out (see ``PlaybackUseCases.device_login``).
    device_profile: DeviceProfile = PLATFORM_PROFILE


@dataclass(frozen=True, slots=True)
class Lease:
    """A stream lease: the one stream of its box, holding one of the subscriber's streams.

    ``replaced_lease_id`` names the box's previous lease when this one replaced
    it (a channel switch; ``reused`` is then True); ``active_leases`` counts the
    subscriber's live leases, this one included.
    """

    lease_id: str
    mac: str
    channel_id: str
    expires_at: datetime
    reused: bool
    active_leases: int
    max_streams: int
    replaced_lease_id: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change in a carrier's audit stream; before/after are JSON objects or ''."""

    entry_id: str
    time: datetime
    principal: str
    rpc: str
    subject: str
    before_json: str
    after_json: str


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO-8601 text, or None."""
    return None if value is None else value.isoformat()
