"""Carriers, subscribers, boxes, packages and entitlements: values and the rules on them.

Pure: no Redis, no gRPC. Every validator raises ``InvalidField`` naming the
field, so a request (or an import row) is refused before anything changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

from subscriber.errors import InvalidField, SubscriberTerminated

NetworkType = Literal["telecom", "mobile", "cable"]
NETWORK_TYPES: tuple[NetworkType, ...] = ("telecom", "mobile", "cable")
CarrierStatus = Literal["active", "suspended"]
CARRIER_STATUSES: tuple[CarrierStatus, ...] = ("active", "suspended")
SubscriberStatus = Literal["active", "suspended", "terminated"]
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = ("active", "suspended", "terminated")
DeviceStatus = Literal["bound", "activated", "blocked", "unbound"]
DEVICE_STATUSES: tuple[DeviceStatus, ...] = ("bound", "activated", "blocked", "unbound")

MAX_STREAMS_LIMIT = 16
MAX_CHANNELS_PER_PACKAGE = 2000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_MAC_SEPARATED = re.compile(r"^[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$")
_MAC_DOTTED = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
_MAC_BARE = re.compile(r"^[0-9a-f]{12}$")
_REGION = re.compile(r"^[1-8][0-9]{5}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# Province-level prefixes of GB/T 2260 administrative division codes
# (11 Beijing ... 65 Xinjiang, 71 Taiwan, 81 Hong Kong, 82 Macao).
PROVINCE_PREFIXES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)


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
            "service_end": _iso(self.service_end),
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
            "activated_at": _iso(self.activated_at),
        }


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
    """What a box learns when it logs in with its MAC and device secret."""

    state: PlaybackState
    channel_ids: tuple[str, ...]
    deny_reason: DenyReason | None


@dataclass(frozen=True, slots=True)
class Session:
    """A playback lease: it holds one of the subscriber's concurrent streams until it expires."""

    session_id: str
    mac: str
    channel_id: str
    expires_at: datetime
    reused: bool
    active_sessions: int
    max_streams: int


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


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One bulk-provisioning row as received (unvalidated)."""

    row: int
    subscriber_id: str
    display_name: str
    region_code: str
    status: str
    service_end: datetime | None
    max_streams: int
    contact_phone: str
    contact_email: str
    mac: str
    serial: str
    model: str
    package_ids: tuple[str, ...]
    entitled_from: datetime | None
    entitled_until: datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one import row was refused (nothing of it was applied)."""

    row: int
    field: str
    error: str


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """Counts over an import, plus every refused row."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[RowError, ...] = ()

    def merge(self, other: ImportSummary) -> ImportSummary:
        """The sum of two summaries."""
        return ImportSummary(
            self.rows + other.rows,
            self.created + other.created,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.errors + other.errors,
        )


# --- validators -----------------------------------------------------------------------------


def normalize_mac(text: str, field_name: str = "mac") -> str:
    """Accept ``AA:BB:..``, ``aa-bb-..``, ``aabb.ccdd.eeff`` or bare hex; return ``aa:bb:..``."""
    raw = text.strip().lower()
    if _MAC_SEPARATED.match(raw) or _MAC_DOTTED.match(raw):
        digits = raw.replace(":", "").replace("-", "").replace(".", "")
    elif _MAC_BARE.match(raw):
        digits = raw
    else:
        raise InvalidField(field_name, f"not a MAC address: {text[:40]!r}")
    if int(digits[:2], 16) & 1:
        raise InvalidField(field_name, "multicast/broadcast address cannot be a device")
    if digits == "0" * 12:
        raise InvalidField(field_name, "all-zero MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


_CARRIER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Words used by the store's platform-wide keys (sub:mac:..., sub:pkg:...).
RESERVED_CARRIER_IDS = frozenset({"mac", "pkg", "pkgch", "carriers", "packages", "catalog"})


def validate_carrier_id(value: str, field_name: str = "carrier_id") -> str:
    """A carrier id: a tenant id without ':' (the key separator) and not a reserved word."""
    if not _CARRIER.match(value):
        raise InvalidField(field_name, "must match [a-z0-9][a-z0-9._-]{0,62}")
    if value in RESERVED_CARRIER_IDS:
        raise InvalidField(field_name, f"{value!r} is reserved")
    return value


def validate_region_code(code: str, field_name: str = "region_code") -> str:
    """A 6-digit administrative division code with a real province-level prefix."""
    if not _REGION.match(code):
        raise InvalidField(field_name, "must be a 6-digit administrative division code")
    if code[:2] not in PROVINCE_PREFIXES:
        raise InvalidField(field_name, f"unknown province prefix {code[:2]}")
    return code


def validate_id(value: str, field_name: str) -> str:
    """An account, package or channel id: 1-64 of ``[A-Za-z0-9._:-]``, starting alphanumeric."""
    if not _ID.match(value):
        raise InvalidField(field_name, "must be 1-64 of [A-Za-z0-9._:-], starting alphanumeric")
    return value


def validate_text(value: str, field_name: str, *, max_len: int, required: bool) -> str:
    """Free text: trimmed, bounded, no control characters."""
    text = value.strip()
    if required and not text:
        raise InvalidField(field_name, "required")
    if len(text) > max_len:
        raise InvalidField(field_name, f"longer than {max_len} characters")
    if _CONTROL.search(text):
        raise InvalidField(field_name, "control characters are not allowed")
    return text


def validate_max_streams(value: int, field_name: str = "max_streams") -> int:
    """Concurrent streams: 1..16."""
    if not 1 <= value <= MAX_STREAMS_LIMIT:
        raise InvalidField(field_name, f"must be between 1 and {MAX_STREAMS_LIMIT}")
    return value


def validate_phone(value: str, field_name: str = "contact_phone") -> str:
    """Optional phone number: digits, spaces, dashes, optional leading +."""
    text = value.strip()
    if text and not _PHONE.match(text):
        raise InvalidField(field_name, "not a phone number")
    return text


def validate_email(value: str, field_name: str = "contact_email") -> str:
    """Optional e-mail address (shape only)."""
    text = value.strip()
    if text and (len(text) > 254 or not _EMAIL.match(text)):
        raise InvalidField(field_name, "not an e-mail address")
    return text


def validate_aware(value: datetime | None, field_name: str) -> datetime | None:
    """Refuse naive datetimes (ambiguous across the carriers' time zones)."""
    if value is not None and value.tzinfo is None:
        raise InvalidField(field_name, "needs an explicit UTC offset")
    return value


def validate_window(valid_from: datetime, valid_until: datetime | None) -> None:
    """An entitlement window must not be empty."""
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidField("valid_until", "must be after valid_from")


def validate_package(package: Package) -> Package:
    """A catalogue entry: id, name and 1..2000 distinct valid channel ids."""
    validate_id(package.package_id, "package_id")
    name = validate_text(package.name, "name", max_len=200, required=True)
    if not package.channel_ids:
        raise InvalidField("channel_ids", "a package needs at least one channel")
    if len(package.channel_ids) > MAX_CHANNELS_PER_PACKAGE:
        raise InvalidField("channel_ids", f"more than {MAX_CHANNELS_PER_PACKAGE} channels")
    for channel in package.channel_ids:
        validate_id(channel, "channel_ids")
    return replace(package, name=name, channel_ids=tuple(sorted(set(package.channel_ids))))


# --- rules ---------------------------------------------------------------------------------


def new_subscriber(
    *,
    carrier_id: str,
    subscriber_id: str,
    display_name: str,
    region_code: str,
    service_end: datetime | None,
    max_streams: int,
    contact_phone: str,
    contact_email: str,
    now: datetime,
    status: str = "active",
) -> Subscriber:
    """A validated new account at version 1."""
    return Subscriber(
        carrier_id=carrier_id,
        subscriber_id=validate_id(subscriber_id, "subscriber_id"),
        display_name=validate_text(display_name, "display_name", max_len=200, required=True),
        region_code=validate_region_code(region_code),
        status=validate_status(status),
        service_end=validate_aware(service_end, "service_end"),
        max_streams=validate_max_streams(max_streams),
        contact_phone=validate_phone(contact_phone),
        contact_email=validate_email(contact_email),
        version=1,
        created_at=now,
        updated_at=now,
    )


def validate_status(status: str, field_name: str = "status") -> SubscriberStatus:
    """One of active, suspended, terminated."""
    if status not in SUBSCRIBER_STATUSES:
        raise InvalidField(field_name, f"must be one of {', '.join(SUBSCRIBER_STATUSES)}")
    return status


def bump(sub: Subscriber, now: datetime, **changes: object) -> Subscriber:
    """The next version of ``sub`` with ``changes`` applied."""
    return replace(sub, version=sub.version + 1, updated_at=now, **changes)  # type: ignore[arg-type]


def require_changeable(sub: Subscriber) -> None:
    """Terminated is final: nothing about the account changes any more."""
    if sub.status == "terminated":
        raise SubscriberTerminated(
            f"subscriber {sub.subscriber_id} is terminated", details={"status": "terminated"}
        )


def apply_changes(sub: Subscriber, changes: SubscriberChanges, now: datetime) -> Subscriber:
    """Validate and apply an update; raises before anything is changed."""
    require_changeable(sub)
    updates: dict[str, object] = {}
    if changes.display_name is not None:
        updates["display_name"] = validate_text(
            changes.display_name, "display_name", max_len=200, required=True
        )
    if changes.region_code is not None:
        updates["region_code"] = validate_region_code(changes.region_code)
    if changes.clear_service_end:
        if changes.service_end is not None:
            raise InvalidField("clear_service_end", "cannot both set and clear service_end")
        updates["service_end"] = None
    elif changes.service_end is not None:
        updates["service_end"] = validate_aware(changes.service_end, "service_end")
    if changes.max_streams is not None:
        updates["max_streams"] = validate_max_streams(changes.max_streams)
    if changes.contact_phone is not None:
        updates["contact_phone"] = validate_phone(changes.contact_phone)
    if changes.contact_email is not None:
        updates["contact_email"] = validate_email(changes.contact_email)
    return bump(sub, now, **updates)


def change_status(sub: Subscriber, status: str, now: datetime) -> Subscriber:
    """Move through the lifecycle: active <-> suspended, either -> terminated (final)."""
    target = validate_status(status)
    require_changeable(sub)
    if target == sub.status:
        return sub
    return bump(sub, now, status=target)


def effective_channels(
    entitlements: Iterable[Entitlement], packages: Mapping[str, Package], at: datetime
) -> tuple[str, ...]:
    """The sorted union of channels of the packages entitled at ``at``."""
    channels: set[str] = set()
    for ent in entitlements:
        package = packages.get(ent.package_id)
        if package is not None and ent.active_at(at):
            channels.update(package.channel_ids)
    return tuple(sorted(channels))


def account_denial(state: PlaybackState, at: datetime) -> DenyReason | None:
    """Why this box may not play anything at ``at``, or None."""
    device, sub = state.device, state.subscriber
    if device.status == "unbound":
        return DenyReason.UNKNOWN_DEVICE
    if device.status == "blocked":
        return DenyReason.DEVICE_BLOCKED
    if state.carrier_status != "active":
        return DenyReason.CARRIER_NOT_ACTIVE
    if sub.status == "terminated":
        return DenyReason.SUBSCRIBER_TERMINATED
    if sub.status == "suspended":
        return DenyReason.SUBSCRIBER_SUSPENDED
    if sub.service_end is not None and at >= sub.service_end:
        return DenyReason.SERVICE_EXPIRED
    return None


def decide(
    state: PlaybackState | None, channel_id: str, packages: Mapping[str, Package], at: datetime
) -> Decision:
    """May this box play ``channel_id`` at ``at``?

    ``Authorize`` runs the same checks inside Redis (``subscriber.store._AUTHORIZE``);
    ``tests/subscriber/test_store.py`` holds the two equal.
    """
    if state is None:
        return Decision(DenyReason.UNKNOWN_DEVICE)
    sub = state.subscriber
    reason = account_denial(state, at)
    if reason is None and not any(
        ent.active_at(at)
        and (pkg := packages.get(ent.package_id)) is not None
        and channel_id in pkg.channel_ids
        for ent in sub.entitlements
    ):
        reason = DenyReason.NOT_ENTITLED
    return Decision(reason, sub.version, sub.carrier_id, sub.subscriber_id)


def validate_import_row(
    row: ImportRow, *, default_max_streams: int, packages: Mapping[str, Package], now: datetime
) -> ImportRow:
    """Check one import row completely; return it normalised (raises ``InvalidField``)."""
    validate_id(row.subscriber_id, "subscriber_id")
    status = validate_status(row.status or "active")
    validate_text(row.display_name, "display_name", max_len=200, required=True)
    validate_region_code(row.region_code)
    validate_aware(row.service_end, "service_end")
    max_streams = validate_max_streams(row.max_streams or default_max_streams)
    phone = validate_phone(row.contact_phone)
    email = validate_email(row.contact_email)
    mac = normalize_mac(row.mac) if row.mac.strip() else ""
    if not mac and (row.serial.strip() or row.model.strip()):
        raise InvalidField("mac", "serial/model given without a MAC")
    serial = validate_text(row.serial, "serial", max_len=64, required=False)
    model = validate_text(row.model, "model", max_len=64, required=False)
    for package_id in row.package_ids:
        if package_id not in packages:
            raise InvalidField("package_ids", f"unknown package {package_id[:64]!r}")
    if len(set(row.package_ids)) != len(row.package_ids):
        raise InvalidField("package_ids", "a package is listed twice")
    start = validate_aware(row.entitled_from, "entitled_from") or now
    until = validate_aware(row.entitled_until, "entitled_until")
    if until is not None and until <= start:
        raise InvalidField("entitled_until", "must be after entitled_from")
    return ImportRow(
        row=row.row,
        subscriber_id=row.subscriber_id,
        display_name=row.display_name.strip(),
        region_code=row.region_code,
        status=status,
        service_end=row.service_end,
        max_streams=max_streams,
        contact_phone=phone,
        contact_email=email,
        mac=mac,
        serial=serial,
        model=model,
        package_ids=row.package_ids,
        entitled_from=row.entitled_from,
        entitled_until=until,
    )


def to_json(record: Mapping[str, object] | None) -> str:
    """An audit before/after value: compact JSON, or '' for none."""
    return "" if record is None else json.dumps(record, sort_keys=True, ensure_ascii=False)


def entitlement_record(ent: Entitlement) -> dict[str, object]:
    """The audit view of an entitlement."""
    data = asdict(ent)
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
