"""Proto <-> domain conversions for ``SubscriberService`` (no rules, no I/O).

A value the wire can carry but the domain cannot hold (a timestamp outside
0001..9999, an unknown enum number) becomes ``InvalidField`` naming the
field, or, inside an import row, that row's ``RowError``: never UNKNOWN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from protos import subscriber_pb2 as pb
from subscriber import domain
from subscriber.errors import InvalidField

NETWORK = {pb.TELECOM: "telecom", pb.MOBILE: "mobile", pb.CABLE: "cable"}
_NETWORK_PB = {v: k for k, v in NETWORK.items()}
CARRIER_STATUS = {pb.CARRIER_ACTIVE: "active", pb.CARRIER_SUSPENDED: "suspended"}
_CARRIER_STATUS_PB = {v: k for k, v in CARRIER_STATUS.items()}
SUB_STATUS = {pb.ACTIVE: "active", pb.SUSPENDED: "suspended", pb.TERMINATED: "terminated"}
SUB_STATUS_PB = {v: k for k, v in SUB_STATUS.items()}
_DEVICE_STATUS_PB = {
    "bound": pb.BOUND,
    "activated": pb.ACTIVATED,
    "blocked": pb.BLOCKED,
    "unbound": pb.UNBOUND,
}


def ts(value: datetime | None) -> Timestamp | None:
    """A datetime as a protobuf timestamp (None stays unset)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def when(message: Message, name: str) -> datetime | None:
    """The timestamp field ``name`` as an aware datetime, or None when unset."""
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidField(name, "not a valid time (0001-01-01..9999-12-31)") from err


def deny(reason: domain.DenyReason | None) -> Any:
    """A deny reason as the proto enum (unspecified = allowed)."""
    return pb.DENY_REASON_UNSPECIFIED if reason is None else pb.DenyReason.Value(reason.name)


def status(value: int, table: Mapping[Any, str]) -> str:
    """An enum number as its domain word; ``InvalidField`` for unspecified or unknown."""
    if value not in table:
        raise InvalidField("status", "unspecified or unknown status")
    return table[value]


def carrier(c: domain.Carrier) -> pb.Carrier:
    """A carrier on the wire."""
    return pb.Carrier(
        carrier_id=c.carrier_id,
        name=c.name,
        network_type=_NETWORK_PB[c.network_type],
        status=_CARRIER_STATUS_PB[c.status],
        created_at=ts(c.created_at),
    )


def package(p: domain.Package) -> pb.Package:
    """A package on the wire."""
    return pb.Package(package_id=p.package_id, name=p.name, channel_ids=list(p.channel_ids))


def subscriber(s: domain.Subscriber) -> pb.Subscriber:
    """An account on the wire."""
    return pb.Subscriber(
        carrier_id=s.carrier_id,
        subscriber_id=s.subscriber_id,
        display_name=s.display_name,
        region_code=s.region_code,
        status=SUB_STATUS_PB[s.status],
        service_end=ts(s.service_end),
        max_streams=s.max_streams,
        contact_phone=s.contact_phone,
        contact_email=s.contact_email,
        version=s.version,
        created_at=ts(s.created_at),
        updated_at=ts(s.updated_at),
    )


def device(d: domain.Device) -> pb.Device:
    """A box on the wire."""
    return pb.Device(
        carrier_id=d.carrier_id,
        mac=d.mac,
        subscriber_id=d.subscriber_id,
        serial=d.serial,
        model=d.model,
        status=_DEVICE_STATUS_PB[d.status],
        bound_at=ts(d.bound_at),
        activated_at=ts(d.activated_at),
    )


def session(s: domain.Session) -> pb.Session:
    """A lease on the wire."""
    return pb.Session(
        session_id=s.session_id,
        mac=s.mac,
        channel_id=s.channel_id,
        expires_at=ts(s.expires_at),
        reused=s.reused,
        active_sessions=s.active_sessions,
        max_streams=s.max_streams,
        replaced_session_id=s.replaced_session_id,
    )


def import_row(row: pb.ImportRow) -> domain.ImportRow | domain.RowError:
    """An import row, or the ``RowError`` of a row whose values the domain cannot hold."""
    try:
        if row.status and row.status not in SUB_STATUS:
            raise InvalidField("status", "unknown status")
        return domain.ImportRow(
            row=row.row,
            subscriber_id=row.subscriber_id,
            display_name=row.display_name,
            region_code=row.region_code,
            status=SUB_STATUS.get(row.status, ""),
            service_end=when(row, "service_end"),
            max_streams=row.max_streams,
            contact_phone=row.contact_phone,
            contact_email=row.contact_email,
            mac=row.mac,
            serial=row.serial,
            model=row.model,
            package_ids=tuple(row.package_ids),
            entitled_from=when(row, "entitled_from"),
            entitled_until=when(row, "entitled_until"),
        )
    except InvalidField as err:
        return domain.RowError(row.row, err.field, err.reason)


def fingerprint(method: str, request: Message) -> str:
    """What makes two requests 'the same' for idempotency: method and every field but the key."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    body = copy.SerializeToString(deterministic=True)
    return hashlib.sha256(method.encode() + b"\0" + body).hexdigest()
