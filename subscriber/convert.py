"""Proto <-> domain conversions for ``SubscriberService``, for the server and its client.

No rules and no I/O. A value the wire can carry but the domain cannot hold
(a timestamp outside 0001..9999, an unknown enum number) becomes
``InvalidField`` naming the field, or, inside an import row, that row's
``RowError``: never UNKNOWN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from headend.rpc import HasFields, optional_timestamp, to_timestamp
from protos import subscriber_pb2 as pb
from subscriber import domain
from subscriber.errors import InvalidField

K = TypeVar("K", bound=int)
W = TypeVar("W", bound=str)

NETWORK: dict[pb.NetworkType, domain.NetworkType] = {
    pb.TELECOM: "telecom",
    pb.MOBILE: "mobile",
    pb.CABLE: "cable",
}
NETWORK_PB = {v: k for k, v in NETWORK.items()}
CARRIER_STATUS: dict[pb.CarrierStatus, domain.CarrierStatus] = {
    pb.CARRIER_ACTIVE: "active",
    pb.CARRIER_SUSPENDED: "suspended",
}
CARRIER_STATUS_PB = {v: k for k, v in CARRIER_STATUS.items()}
SUB_STATUS: dict[pb.SubscriberStatus, domain.SubscriberStatus] = {
    pb.ACTIVE: "active",
    pb.SUSPENDED: "suspended",
    pb.TERMINATED: "terminated",
}
SUB_STATUS_PB = {v: k for k, v in SUB_STATUS.items()}
DEVICE_STATUS: dict[pb.DeviceStatus, domain.DeviceStatus] = {
    pb.BOUND: "bound",
    pb.ACTIVATED: "activated",
    pb.BLOCKED: "blocked",
    pb.UNBOUND: "unbound",
}
_DEVICE_STATUS_PB = {v: k for k, v in DEVICE_STATUS.items()}


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
_ACCOUNT = (
    "subscriber_id", "display_name", "region_code", "max_streams", "contact_phone", "contact_email"
)  # fmt: skip
_BOX = ("mac", "serial", "model")
_LEASE = ("lease_id", "mac", "channel_id", "reused", "active_leases", "max_streams",
          "replaced_lease_id")  # fmt: skip


def _same(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``names`` of ``value``, to build the other side's value from."""
    return {name: getattr(value, name) for name in names}


def deny(reason: domain.DenyReason | None) -> pb.DenyReason | str:
    """A deny reason as the proto enum, by name (unspecified = allowed)."""
    return pb.DENY_REASON_UNSPECIFIED if reason is None else reason.name


def deny_from_pb(value: pb.DenyReason) -> domain.DenyReason | None:
    """A deny reason from the proto enum (None = allowed)."""
    if value == pb.DENY_REASON_UNSPECIFIED:
        return None
    return domain.DenyReason(pb.DenyReason.Name(value))


def status(value: K, table: Mapping[K, W]) -> W:
    """An enum number as its domain word; ``InvalidField`` for unspecified or unknown."""
    if value not in table:
        raise InvalidField("status", "unspecified or unknown status")
    return table[value]


# ---------------------------------------------------------------- catalogue and accounts


def carrier(c: domain.Carrier) -> pb.Carrier:
    """A carrier on the wire."""
    return pb.Carrier(
        carrier_id=c.carrier_id,
        name=c.name,
        network_type=NETWORK_PB[c.network_type],
        status=CARRIER_STATUS_PB[c.status],
        created_at=to_timestamp(c.created_at),
    )


def carrier_from_pb(c: pb.Carrier) -> domain.Carrier:
    """A carrier from the wire."""
    return domain.Carrier(
        carrier_id=c.carrier_id,
        name=c.name,
        network_type=status(c.network_type, NETWORK),
        status=status(c.status, CARRIER_STATUS),
        created_at=_at(c, "created_at"),
    )


def package(p: domain.Package) -> pb.Package:
    """A package on the wire."""
    return pb.Package(package_id=p.package_id, name=p.name, channel_ids=list(p.channel_ids))


def package_from_pb(p: pb.Package) -> domain.Package:
    """A package from the wire."""
    return domain.Package(p.package_id, p.name, tuple(p.channel_ids))


def subscriber(s: domain.Subscriber) -> pb.Subscriber:
    """An account on the wire."""
    return pb.Subscriber(
        carrier_id=s.carrier_id,
        **_same(s, _ACCOUNT),
        status=SUB_STATUS_PB[s.status],
        service_end=to_timestamp(s.service_end),
        version=s.version,
        created_at=to_timestamp(s.created_at),
        updated_at=to_timestamp(s.updated_at),
    )


def subscriber_from_pb(s: pb.Subscriber) -> domain.Subscriber:
    """An account from the wire (its rights and boxes are not part of the message)."""
    return domain.Subscriber(
        carrier_id=s.carrier_id,
        **_same(s, _ACCOUNT),
        status=status(s.status, SUB_STATUS),
        service_end=when(s, "service_end"),
        version=s.version,
        created_at=_at(s, "created_at"),
        updated_at=_at(s, "updated_at"),
    )


def entitlement_from_pb(e: pb.Entitlement) -> domain.Entitlement:
    """A held package and its window, from the wire."""
    return domain.Entitlement(
        e.package_id, _at(e, "valid_from"), valid_until=when(e, "valid_until")
    )


def device(d: domain.Device) -> pb.Device:
    """A box on the wire."""
    return pb.Device(
        carrier_id=d.carrier_id,
        subscriber_id=d.subscriber_id,
        **_same(d, _BOX),
        status=_DEVICE_STATUS_PB[d.status],
        bound_at=to_timestamp(d.bound_at),
        activated_at=to_timestamp(d.activated_at),
    )


def device_from_pb(d: pb.Device) -> domain.Device:
    """A box from the wire."""
    return domain.Device(
        carrier_id=d.carrier_id,
        subscriber_id=d.subscriber_id,
        **_same(d, _BOX),
        status=status(d.status, DEVICE_STATUS),
        bound_at=_at(d, "bound_at"),
        activated_at=when(d, "activated_at"),
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
        deny_reason=deny(r.deny_reason),
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
        deny_reason=deny_from_pb(r.deny_reason),
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
        deny_from_pb(d.reason), d.subscriber_version, d.carrier_id, d.subscriber_id
    )


def lease(s: domain.Lease) -> pb.Session:
    """A stream lease on the wire."""
    return pb.Session(**_same(s, _LEASE), expires_at=to_timestamp(s.expires_at))


def lease_from_pb(s: pb.Session) -> domain.Lease:
    """A stream lease from the wire."""
    return domain.Lease(**_same(s, _LEASE), expires_at=_at(s, "expires_at"))


# ---------------------------------------------------------------- bulk import


def import_row(row: pb.ImportRow) -> domain.ImportRow | domain.RowError:
    """An import row, or the ``RowError`` of a row whose values the domain cannot hold."""
    try:
        if row.status and row.status not in SUB_STATUS:
            raise InvalidField("status", "unknown status")
        return domain.ImportRow(
            row=row.row,
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


def fingerprint(method: str, request: Message) -> str:
    """What makes two requests 'the same' for idempotency: method and every field but the key."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    body = copy.SerializeToString(deterministic=True)
    return hashlib.sha256(method.encode() + b"\0" + body).hexdigest()
