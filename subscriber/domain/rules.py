"""Validators and the account lifecycle; every validator raises ``InvalidField`` naming the field.

Free text goes through the platform's one rule, :func:`headend.text.validate_text`
(no control or line-separator characters anywhere), before it is trimmed.
Patterns use ``fullmatch``: ``$`` would let a trailing newline through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import datetime

from headend import regions
from headend.errors import InvalidArgument
from headend.text import validate_text
from subscriber.domain.values import (
    SUBSCRIBER_STATUSES,
    Entitlement,
    Package,
    Subscriber,
    SubscriberChanges,
    SubscriberStatus,
    iso,
)
from subscriber.errors import InvalidField, SubscriberTerminated

MAX_STREAMS_LIMIT = 16
MAX_CHANNELS_PER_PACKAGE = 2000
NAME_MAX_CHARS = 200
DEVICE_TEXT_MAX_CHARS = 64
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAC_SEPARATED = re.compile(r"[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}")
_MAC_DOTTED = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}")
_MAC_BARE = re.compile(r"[0-9a-f]{12}")
_PHONE = re.compile(r"\+?[0-9][0-9 -]{4,19}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_CARRIER = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# Words used by the store's platform-wide keys (sub:mac:..., sub:pkg:...).
RESERVED_CARRIER_IDS = frozenset({"mac", "pkg", "pkgch", "carriers", "packages", "catalog"})


def text_field(value: str, field_name: str, *, max_chars: int, required: bool) -> str:
    """Free text checked by the shared rule (``headend.text``), then trimmed."""
    try:
        validate_text(field_name, value, max_chars=max_chars, required=required)
    except InvalidArgument as err:
        raise InvalidField(err.field, err.reason) from err
    return value.strip()


def normalize_mac(text: str, field_name: str = "mac") -> str:
    """Accept ``AA:BB:..``, ``aa-bb-..``, ``aabb.ccdd.eeff`` or bare hex; return ``aa:bb:..``."""
    raw = text.strip().lower()
    if _MAC_SEPARATED.fullmatch(raw) or _MAC_DOTTED.fullmatch(raw):
        digits = raw.replace(":", "").replace("-", "").replace(".", "")
    elif _MAC_BARE.fullmatch(raw):
        digits = raw
    else:
        raise InvalidField(field_name, f"not a MAC address: {text[:40]!r}")
    if int(digits[:2], 16) & 1:
        raise InvalidField(field_name, "multicast/broadcast address cannot be a device")
    if digits == "0" * 12:
        raise InvalidField(field_name, "all-zero MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def validate_carrier_id(value: str, field_name: str = "carrier_id") -> str:
    """A carrier id: a tenant id without ':' (the key separator) and not a reserved word."""
    if not _CARRIER.fullmatch(value):
        raise InvalidField(field_name, "must match [a-z0-9][a-z0-9._-]{0,62}")
    if value in RESERVED_CARRIER_IDS:
        raise InvalidField(field_name, f"{value!r} is reserved")
    return value


def validate_region_code(code: str, field_name: str = "region_code") -> str:
    """A 6-digit administrative division code with a real province-level prefix."""
    problem = regions.problem(code)
    if problem is not None:
        raise InvalidField(field_name, problem)
    return code


def validate_id(value: str, field_name: str) -> str:
    """An account, package or channel id: 1-64 of ``[A-Za-z0-9._:-]``, starting alphanumeric."""
    if not _ID.fullmatch(value):
        raise InvalidField(field_name, "must be 1-64 of [A-Za-z0-9._:-], starting alphanumeric")
    return value


def validate_max_streams(value: int, field_name: str = "max_streams") -> int:
    """Concurrent streams (boxes playing at once): 1..16."""
    if not 1 <= value <= MAX_STREAMS_LIMIT:
        raise InvalidField(field_name, f"must be between 1 and {MAX_STREAMS_LIMIT}")
    return value


def validate_phone(value: str, field_name: str = "contact_phone") -> str:
    """Optional phone number: digits, spaces, dashes, optional leading +."""
    text = text_field(value, field_name, max_chars=40, required=False)
    if text and not _PHONE.fullmatch(text):
        raise InvalidField(field_name, "not a phone number")
    return text


def validate_email(value: str, field_name: str = "contact_email") -> str:
    """Optional e-mail address (shape only)."""
    text = text_field(value, field_name, max_chars=254, required=False)
    if text and not _EMAIL.fullmatch(text):
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


def validate_status(status: str, field_name: str = "status") -> SubscriberStatus:
    """One of active, suspended, terminated."""
    if status not in SUBSCRIBER_STATUSES:
        raise InvalidField(field_name, f"must be one of {', '.join(SUBSCRIBER_STATUSES)}")
    return status


def validate_package(package: Package) -> Package:
    """A catalogue entry: id, name and 1..2000 distinct valid channel ids."""
    validate_id(package.package_id, "package_id")
    name = text_field(package.name, "name", max_chars=NAME_MAX_CHARS, required=True)
    if not package.channel_ids:
        raise InvalidField("channel_ids", "a package needs at least one channel")
    if len(package.channel_ids) > MAX_CHANNELS_PER_PACKAGE:
        raise InvalidField("channel_ids", f"more than {MAX_CHANNELS_PER_PACKAGE} channels")
    for channel in package.channel_ids:
        validate_id(channel, "channel_ids")
    return replace(package, name=name, channel_ids=tuple(sorted(set(package.channel_ids))))


# --- lifecycle -----------------------------------------------------------------------------


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
        display_name=text_field(
            display_name, "display_name", max_chars=NAME_MAX_CHARS, required=True
        ),
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
        updates["display_name"] = text_field(
            changes.display_name, "display_name", max_chars=NAME_MAX_CHARS, required=True
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


def to_json(record: Mapping[str, object] | None) -> str:
    """An audit before/after value: compact JSON, or '' for none."""
    return "" if record is None else json.dumps(record, sort_keys=True, ensure_ascii=False)


def entitlement_record(ent: Entitlement) -> dict[str, object]:
    """The audit view of an entitlement."""
    data = asdict(ent)
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in data.items()}
