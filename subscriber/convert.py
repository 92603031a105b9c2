"""Proto <-> domain conversions for ``SubscriberService``, for the server and its client.

The wire speaks resource names (``carriers/{carrier}/subscribers/{subscriber}``...),
the domain ids: the patterns and the conversions both ways live here. No rules
and no I/O. A name that does not fit its pattern is ``InvalidArgument`` naming the
field (``headend.rpc.resources``, as in every service). A value the wire can carry but
the domain cannot hold (a timestamp outside 0001..9999, an unknown enum number) becomes
``InvalidField`` naming the field, or, inside an import row, that row's ``RowError``:
never UNKNOWN.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from headend.errors import InvalidArgument
from headend.rpc import HasFields, optional_timestamp, to_timestamp
from headend.rpc.resources import ResourceName, update_paths
from protos import subscriber_pb2 as pb
from subscriber import convert_profiles, domain
from subscriber.domain import helpdesk
from subscriber.errors import InvalidField

K = TypeVar("K", bound=int)
W = TypeVar("W")

CARRIER = ResourceName("carriers/{carrier}")
PACKAGE = ResourceName("packages/{package}")
SUBSCRIBER = ResourceName("carriers/{carrier}/subscribers/{subscriber}")
# A device's id is its MAC without colons, so that names stay URL-safe.
DEVICE = ResourceName("carriers/{carrier}/devices/{device}")
ENTITLEMENT = ResourceName("carriers/{carrier}/subscribers/{subscriber}/entitlements/{package}")
_DEVICE_ID = re.compile(r"[0-9a-f]{12}")

NETWORK: dict[pb.NetworkType, domain.NetworkType] = {
    pb.NETWORK_TYPE_TELECOM: "telecom",
    pb.NETWORK_TYPE_MOBILE: "mobile",
    pb.NETWORK_TYPE_CABLE: "cable",
}
NETWORK_PB = {v: k for k, v in NETWORK.items()}
CARRIER_STATUS: dict[pb.CarrierStatus, domain.CarrierStatus] = {
    pb.CARRIER_STATUS_ACTIVE: "active",
    pb.CARRIER_STATUS_SUSPENDED: "suspended",
}
CARRIER_STATUS_PB = {v: k for k, v in CARRIER_STATUS.items()}
SUB_STATUS: dict[pb.SubscriberStatus, domain.SubscriberStatus] = {
    pb.SUBSCRIBER_STATUS_ACTIVE: "active",
    pb.SUBSCRIBER_STATUS_SUSPENDED: "suspended",
    pb.SUBSCRIBER_STATUS_TERMINATED: "terminated",
}
SUB_STATUS_PB = {v: k for k, v in SUB_STATUS.items()}
DEVICE_STATUS: dict[pb.DeviceStatus, domain.DeviceStatus] = {
    pb.DEVICE_STATUS_BOUND: "bound",
    pb.DEVICE_STATUS_ACTIVATED: "activated",
    pb.DEVICE_STATUS_BLOCKED: "blocked",
    pb.DEVICE_STATUS_UNBOUND: "unbound",
}
_DEVICE_STATUS_PB = {v: k for k, v in DEVICE_STATUS.items()}
# The domain's reasons are the proto's without their prefix (and so is the
# "reason" the front door reads from a refused StartSession's ErrorInfo).
_DENY_PB: dict[domain.DenyReason, pb.DenyReason] = {
    r: getattr(pb, f"DENY_REASON_{r.value}") for r in domain.DenyReason
}
_DENY = {v: k for k, v in _DENY_PB.items()}


# ---------------------------------------------------------------- resource names


def device_name(carrier_id: str, mac: str) -> str:
    """A box's resource name, from its carrier and normalised MAC."""
    return DEVICE.format(carrier_id, mac.replace(":", ""))


def device_ids(name: str, field: str = "name") -> tuple[str, str]:
    """A box's carrier and normalised MAC, from its resource name (``InvalidArgument`` on
    ``field`` unless its id is the MAC as 12 lower-case hex digits)."""
    carrier_id, device = DEVICE.parse(name, field=field)
    if not _DEVICE_ID.fullmatch(device):
        raise InvalidArgument(field, "the device id must be the MAC as 12 lower-case hex digits")
    return carrier_id, domain.normalize_mac(device, field)


# ---------------------------------------------------------------- times and enums


def when(message: HasFields, name: str) -> datetime | None:
    """The timestamp field ``name`` as an aware datetime, or None when unset."""
    try:
        return optional_timestamp(message, name)
    except ValueError as err:
        raise InvalidField(name, "not a valid time (0001-01-01..9999-12-31)") from err


def _at(message: HasFields, name: str) -> datetime:
    """A timestamp the server always sets (the epoch if it did not)."""
    return when(message, name) or datetime.fromtimestamp(0, UTC)


# Fields a message and its domain value share under one name and one type.
_ACCOUNT = ("display_name", "region_code", "max_streams", "contact_phone", "contact_email")
_BOX = ("mac", "serial", "model")
_AUDIT = ("entry_id", "principal", "rpc", "subject", "before_json", "after_json")
_LEASE = ("lease_id", "mac", "channel_id", "reused", "active_leases", "max_streams",
          "replaced_lease_id")  # fmt: skip


def _same(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``names`` of ``value``, to build the other side's value from."""
    return {name: getattr(value, name) for name in names}


def deny(reason: domain.DenyReason | None) -> pb.DenyReason:
    """A deny reason as the proto enum (NONE = allowed)."""
    return pb.DENY_REASON_NONE if reason is None else _DENY_PB[reason]


def deny_from_pb(allowed: bool, value: pb.DenyReason) -> domain.DenyReason | None:
    """A deny reason from the wire (None = allowed); a refusal for a reason this
    side does not know stays a refusal."""
    if allowed:
        return None
    return _DENY.get(value, domain.DenyReason.NOT_ENTITLED)


def status(value: K, table: Mapping[K, W], field: str = "status") -> W:
    """An enum number as its domain word; ``InvalidField`` on ``field`` for one ``table``
    does not hold (unspecified, unless the table gives it a meaning, or unknown)."""
    if value not in table:
        raise InvalidField(field, f"unspecified or unknown {field}")
    return table[value]


# ---------------------------------------------------------------- catalogue and accounts


def carrier(c: domain.Carrier) -> pb.Carrier:
    """A carrier on the wire."""
    return pb.Carrier(
        name=CARRIER.format(c.carrier_id),
        display_name=c.name,
        network_type=NETWORK_PB[c.network_type],
        status=CARRIER_STATUS_PB[c.status],
        create_time=to_timestamp(c.created_at),
    )


def carrier_from_pb(c: pb.Carrier) -> domain.Carrier:
    """A carrier from the wire."""
    return domain.Carrier(
        carrier_id=CARRIER.id(c.name),
        name=c.display_name,
        network_type=status(c.network_type, NETWORK),
        status=status(c.status, CARRIER_STATUS),
        created_at=_at(c, "create_time"),
    )


def package(p: domain.Package) -> pb.Package:
    """A package on the wire."""
    return pb.Package(
        name=PACKAGE.format(p.package_id), display_name=p.name, channel_ids=list(p.channel_ids)
    )


def package_from_pb(p: pb.Package, field: str = "name") -> domain.Package:
    """A package from the wire (``field``: where its name came from, for errors)."""
    return domain.Package(PACKAGE.id(p.name, field=field), p.display_name, tuple(p.channel_ids))


def subscriber(s: domain.Subscriber) -> pb.Subscriber:
    """An account on the wire."""
    return pb.Subscriber(
        name=SUBSCRIBER.format(s.carrier_id, s.subscriber_id),
        **_same(s, _ACCOUNT),
        status=SUB_STATUS_PB[s.status],
        service_end=to_timestamp(s.service_end),
        version=s.version,
        create_time=to_timestamp(s.created_at),
        update_time=to_timestamp(s.updated_at),
    )


def subscriber_from_pb(s: pb.Subscriber) -> domain.Subscriber:
    """An account from the wire (its rights and boxes are not part of the message)."""
    carrier_id, subscriber_id = SUBSCRIBER.parse(s.name)
    return domain.Subscriber(
        carrier_id=carrier_id,
        subscriber_id=subscriber_id,
        **_same(s, _ACCOUNT),
        status=status(s.status, SUB_STATUS),
        service_end=when(s, "service_end"),
        version=s.version,
        created_at=_at(s, "create_time"),
        updated_at=_at(s, "update_time"),
    )


def changes(request: pb.UpdateSubscriberRequest) -> domain.SubscriberChanges:
    """What an ``UpdateSubscriber`` changes: the masked fields (AIP-134); ``service_end``
    masked but unset removes the service end."""
    s = request.subscriber
    paths = update_paths(s, request.update_mask, (*_ACCOUNT, "service_end"))
    end = when(s, "service_end") if "service_end" in paths else None
    return domain.SubscriberChanges(
        **{f: getattr(s, f) if f in paths else None for f in _ACCOUNT},
        service_end=end,
        clear_service_end="service_end" in paths and end is None,
    )


def changes_to_pb(c: domain.SubscriberChanges) -> tuple[pb.Subscriber, list[str]]:
    """The subscriber fields and update mask of ``c`` (its name left for the caller)."""
    fields = {f: getattr(c, f) for f in _ACCOUNT if getattr(c, f) is not None}
    mask = sorted(fields)
    if c.service_end is not None or c.clear_service_end:
        mask.append("service_end")
    return pb.Subscriber(**fields, service_end=to_timestamp(c.service_end)), mask


def entitlement(s: domain.Subscriber, e: domain.Entitlement) -> pb.Entitlement:
    """A package an account holds, and its window, on the wire."""
    return pb.Entitlement(
        name=ENTITLEMENT.format(s.carrier_id, s.subscriber_id, e.package_id),
        valid_from=to_timestamp(e.valid_from),
        valid_until=to_timestamp(e.valid_until),
    )


def entitlement_from_pb(e: pb.Entitlement) -> domain.Entitlement:
    """A held package and its window, from the wire."""
    return domain.Entitlement(
        ENTITLEMENT.id(e.name), _at(e, "valid_from"), valid_until=when(e, "valid_until")
    )


def device(d: domain.Device) -> pb.Device:
    """A box on the wire."""
    return pb.Device(
        name=device_name(d.carrier_id, d.mac),
        subscriber=SUBSCRIBER.format(d.carrier_id, d.subscriber_id),
        **_same(d, _BOX),
        status=_DEVICE_STATUS_PB[d.status],
        bind_time=to_timestamp(d.bound_at),
        activate_time=to_timestamp(d.activated_at),
    )


def device_from_pb(d: pb.Device) -> domain.Device:
    """A box from the wire."""
    return domain.Device(
        carrier_id=DEVICE.parse(d.name)[0],
        subscriber_id=SUBSCRIBER.id(d.subscriber),
        **_same(d, _BOX),
        status=status(d.status, DEVICE_STATUS),
        bound_at=_at(d, "bind_time"),
        activated_at=when(d, "activate_time"),
    )


# ---------------------------------------------------------------- playback


def login(r: domain.LoginResult) -> pb.DeviceLoginResponse:
    """What a box learns at login, on the wire."""
    return pb.DeviceLoginResponse(
        carrier_id=r.carrier_id,
        subscriber_id=r.subscriber_id,
        region_code=r.region_code,
        subscriber_version=r.subscriber_version,
        status=SUB_STATUS_PB[r.status],
        mac=r.mac,
        channel_ids=r.channel_ids,
        allowed=r.deny_reason is None,
        deny_reason=deny(r.deny_reason),
        device_profile=convert_profiles.device_profile(r.device_profile),
    )


def login_from_pb(r: pb.DeviceLoginResponse) -> domain.LoginResult:
    """What a box learns at login, from the wire."""
    return domain.LoginResult(
        carrier_id=r.carrier_id,
        subscriber_id=r.subscriber_id,
        mac=r.mac,
        region_code=r.region_code,
        status=status(r.status, SUB_STATUS),
        subscriber_version=r.subscriber_version,
        channel_ids=tuple(r.channel_ids),
        deny_reason=deny_from_pb(r.allowed, r.deny_reason),
        # A server from before profiles sends none: its boxes play the platform's.
        device_profile=convert_profiles.device_profile_from_pb(r.device_profile)
        if r.HasField("device_profile")
        else domain.PLATFORM_PROFILE,
    )


def decision(d: domain.Decision) -> pb.AuthorizeResponse:
    """A playback decision on the wire."""
    return pb.AuthorizeResponse(
        allowed=d.allowed,
        reason=deny(d.reason),
        subscriber_version=d.subscriber_version,
        carrier_id=d.carrier_id,
        subscriber_id=d.subscriber_id,
    )


def decision_from_pb(d: pb.AuthorizeResponse) -> domain.Decision:
    """A playback decision from the wire."""
    return domain.Decision(
        deny_from_pb(d.allowed, d.reason), d.subscriber_version, d.carrier_id, d.subscriber_id
    )


def lease(s: domain.Lease) -> pb.Session:
    """A stream lease on the wire."""
    return pb.Session(**_same(s, _LEASE), expire_time=to_timestamp(s.expires_at))


def lease_from_pb(s: pb.Session) -> domain.Lease:
    """A stream lease from the wire."""
    return domain.Lease(**_same(s, _LEASE), expires_at=_at(s, "expire_time"))


# ---------------------------------------------------------------- bulk import


def import_row(row: pb.ImportRow) -> domain.ImportRow | domain.RowError:
    """An import row, or the ``RowError`` of a row whose values the domain cannot hold."""
    try:
        if row.status and row.status not in SUB_STATUS:
            raise InvalidField("status", "unknown status")
        return domain.ImportRow(
            row=row.row,
            subscriber_id=row.subscriber_id,
            **_same(row, _ACCOUNT + _BOX),
            status=SUB_STATUS.get(row.status, ""),
            service_end=when(row, "service_end"),
            package_ids=tuple(row.package_ids),
            entitled_from=when(row, "entitled_from"),
            entitled_until=when(row, "entitled_until"),
        )
    except InvalidField as err:
        return domain.RowError(row.row, err.field, err.reason)


def import_row_to_pb(row: domain.ImportRow) -> pb.ImportRow:
    """An import row on the wire (an empty status is the service's default, active)."""
    wire_status = pb.SUBSCRIBER_STATUS_UNSPECIFIED
    if row.status:
        if row.status not in SUB_STATUS_PB:
            raise InvalidField("status", "unknown status")
        wire_status = SUB_STATUS_PB[row.status]
    return pb.ImportRow(
        row=row.row,
        subscriber_id=row.subscriber_id,
        **_same(row, _ACCOUNT + _BOX),
        status=wire_status,
        service_end=to_timestamp(row.service_end),
        package_ids=row.package_ids,
        entitled_from=to_timestamp(row.entitled_from),
        entitled_until=to_timestamp(row.entitled_until),
    )


def summary(s: domain.ImportSummary) -> pb.ImportSummary:
    """An import's counts and refused rows, on the wire."""
    return pb.ImportSummary(
        rows=s.rows,
        created=s.created,
        updated=s.updated,
        unchanged=s.unchanged,
        failed=len(s.errors),
        errors=[pb.RowError(row=e.row, field=e.field, error=e.error) for e in s.errors],
    )


def summary_from_pb(s: pb.ImportSummary) -> domain.ImportSummary:
    """An import's counts and refused rows, from the wire."""
    return domain.ImportSummary(
        rows=s.rows,
        created=s.created,
        updated=s.updated,
        unchanged=s.unchanged,
        errors=tuple(domain.RowError(e.row, e.field, e.error) for e in s.errors),
    )


def audit_entry(e: domain.AuditEntry) -> pb.AuditEntry:
    """One audit entry on the wire."""
    return pb.AuditEntry(**_same(e, _AUDIT), time=to_timestamp(e.time))


def audit_entry_from_pb(e: pb.AuditEntry) -> domain.AuditEntry:
    """One audit entry from the wire."""
    return domain.AuditEntry(**_same(e, _AUDIT), time=_at(e, "time"))


def fingerprint(method: str, request: Message) -> str:
    """What makes two requests 'the same' for idempotency: method and every field but the key."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    body = copy.SerializeToString(deterministic=True)
    return hashlib.sha256(method.encode() + b"\0" + body).hexdigest()


# ---------------------------------------------------------------- the helpdesk

_EVENT_KIND_PB: dict[helpdesk.DeviceEventKind, pb.DeviceEventKind] = {
    "login": pb.DEVICE_EVENT_KIND_LOGIN,
    "authorize": pb.DEVICE_EVENT_KIND_AUTHORIZE,
    "start_session": pb.DEVICE_EVENT_KIND_START_SESSION,
    "end_session": pb.DEVICE_EVENT_KIND_END_SESSION,
}
_EVENT_KIND = {v: k for k, v in _EVENT_KIND_PB.items()}
# A refusal that is not a deny reason comes back from the wire as this, its words in detail.
OTHER_REFUSAL = "REFUSED"


def device_event(e: helpdesk.DeviceEvent) -> pb.DeviceEvent:
    """One request of a box on the wire: a refusal that is not a deny reason is
    UNSPECIFIED, and every refusal says why in words."""
    reason = e.deny_reason
    return pb.DeviceEvent(
        time=to_timestamp(e.time),
        kind=_EVENT_KIND_PB[e.kind],
        channel_id=e.channel_id,
        allowed=e.allowed,
        reason=deny(reason) if e.allowed or reason else pb.DENY_REASON_UNSPECIFIED,
        detail="" if e.allowed else helpdesk.refusal_detail(e.refusal, e.detail),
        lease_id=e.lease_id,
    )


def device_event_from_pb(e: pb.DeviceEvent) -> helpdesk.DeviceEvent:
    """One request of a box from the wire."""
    reason = _DENY.get(e.reason)
    refusal = "" if e.allowed else reason.value if reason else OTHER_REFUSAL
    return helpdesk.DeviceEvent(
        _at(e, "time"), status(e.kind, _EVENT_KIND), e.channel_id, refusal, e.detail, e.lease_id
    )


def subscriber_count(c: helpdesk.SubscriberCount) -> pb.SubscriberCount:
    """One carrier's subscribers in one status, on the wire."""
    return pb.SubscriberCount(
        carrier=CARRIER.format(c.carrier_id), status=SUB_STATUS_PB[c.status], count=c.count
    )


def subscriber_count_from_pb(c: pb.SubscriberCount) -> helpdesk.SubscriberCount:
    """One carrier's subscribers in one status, from the wire."""
    return helpdesk.SubscriberCount(CARRIER.id(c.carrier), status(c.status, SUB_STATUS), c.count)


_PROVISIONING = ("principal", "rpc", "subject", "reason", "message")


def provisioning_error(e: helpdesk.ProvisioningError) -> pb.ProvisioningError:
    """A refused provisioning request on the wire."""
    return pb.ProvisioningError(
        **_same(e, _PROVISIONING), time=to_timestamp(e.time), carrier=CARRIER.format(e.carrier_id)
    )


def provisioning_error_from_pb(e: pb.ProvisioningError) -> helpdesk.ProvisioningError:
    """A refused provisioning request from the wire."""
    return helpdesk.ProvisioningError(
        **_same(e, _PROVISIONING), time=_at(e, "time"), carrier_id=CARRIER.id(e.carrier)
    )
