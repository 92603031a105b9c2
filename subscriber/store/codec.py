"""Key names and the field encodings of the subscriber store's hashes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from subscriber.domain import Device, DeviceProfile, Entitlement, Subscriber

PLATFORM = "_platform"
# The platform's own keys (the catalogue, the carrier list, its audit stream) share the
# platform's tag, as a carrier's keys share the carrier's: a catalogue change is one script.
CARRIERS = "sub:{_platform}:carriers"
PACKAGES = "sub:{_platform}:packages"
CATALOG_V = "sub:{_platform}:catalog:v"


def ms(value: datetime) -> int:
    """Milliseconds since the epoch (what the store keeps)."""
    return int(value.timestamp() * 1000)


def from_ms(raw: bytes | str | int) -> datetime:
    """The UTC time of a stored millisecond count."""
    return datetime.fromtimestamp(int(raw) / 1000, UTC)


def opt_ms(value: datetime | None) -> str:
    """Milliseconds as text, or '' for None."""
    return "" if value is None else str(ms(value))


def opt_from_ms(raw: bytes | None) -> datetime | None:
    """The time of a stored optional millisecond count."""
    return None if not raw else from_ms(raw)


def text(raw: bytes | None) -> str:
    """A stored value as text ('' when absent)."""
    return "" if raw is None else raw.decode()


def sub_key(carrier: str, subscriber_id: str) -> str:
    """The subscriber hash's key."""
    return f"sub:{{{carrier}}}:s:{subscriber_id}"


def subs_key(carrier: str) -> str:
    """The carrier's sorted set of subscriber ids."""
    return f"sub:{{{carrier}}}:subs"


def dev_key(carrier: str, mac: str) -> str:
    """A box's hash."""
    return f"sub:{{{carrier}}}:d:{mac}"


def mac_key(mac: str) -> str:
    """The platform-wide MAC uniqueness index entry (see :func:`holder_value`); each MAC
    its own slot on Redis Cluster."""
    return f"sub:mac:{mac}"


def holder_value(carrier: str, subscriber_id: str, claim: str) -> str:
    """A MAC index entry, ``carrier/subscriber/claim``: ``claim`` is new for every binding,
    so each step of a change compares the exact entry it saw and never undoes another's."""
    return f"{carrier}/{subscriber_id}/{claim}"


def parse_holder(raw: bytes) -> tuple[str, str]:
    """(carrier, subscriber) of a MAC index entry."""
    carrier, subscriber_id, _ = raw.decode().split("/")
    return carrier, subscriber_id


def audit_key(carrier: str) -> str:
    """The carrier's audit stream."""
    return f"sub:{{{carrier}}}:audit"


def carrier_key(carrier: str) -> str:
    """The carrier's hash."""
    return f"sub:{{{carrier}}}:carrier"


def package_key(package_id: str) -> str:
    """A catalogue package's hash."""
    return f"sub:{{{PLATFORM}}}:pkg:{package_id}"


def lease_keys(carrier: str, subscriber_id: str) -> list[str]:
    """The subscriber's lease expiries (sorted set) and lease metadata (hash)."""
    return [
        f"sub:{{{carrier}}}:lease:{subscriber_id}",
        f"sub:{{{carrier}}}:leasem:{subscriber_id}",
    ]


def counts_key(carrier: str) -> str:
    """The carrier's subscriber counts: a hash status -> count, kept by the same scripts
    that create subscribers and change their status (``COUNTS_READY`` once they are)."""
    return f"sub:{{{carrier}}}:counts"


# The field set in a carrier's counts once every write keeps them (``recount.lua``).
COUNTS_READY = "ready"


def events_key(carrier: str, mac: str) -> str:
    """A box's latest helpdesk events (list, newest first); ``authorize.lua`` builds the
    same name from the carrier's prefix."""
    return f"sub:{{{carrier}}}:ev:{mac}"


def errors_key(carrier: str) -> str:
    """The carrier's latest refused provisioning requests (stream)."""
    return f"sub:{{{carrier}}}:proverr"


def is_record_key(key: bytes) -> bool:
    """True for the helpdesk's records of requests (a box's events, refused provisioning
    requests): every request may add to them, refused ones included, and they change no
    state."""
    return b":ev:" in key or key.endswith(b":proverr")


def idempotency_key(scope: str, key: str) -> str:
    """An idempotency record (``scope``: a carrier or the platform)."""
    return f"sub:{{{scope}}}:idem:{key}"


def subscriber_fields(sub: Subscriber) -> dict[str, str]:
    """The account fields of a subscriber hash."""
    return {
        "n": sub.display_name,
        "r": sub.region_code,
        "s": sub.status,
        "e": opt_ms(sub.service_end),
        "m": str(sub.max_streams),
        "ph": sub.contact_phone,
        "em": sub.contact_email,
        "v": str(sub.version),
        "c": str(ms(sub.created_at)),
        "u": str(ms(sub.updated_at)),
    }


def entitlement_value(ent: Entitlement) -> str:
    """An ``ent:{package}`` field's value: ``from_ms|until_ms``."""
    return f"{ms(ent.valid_from)}|{opt_ms(ent.valid_until)}"


def decode_subscriber(carrier: str, subscriber_id: str, raw: Mapping[bytes, bytes]) -> Subscriber:
    """A subscriber from its hash."""
    ents, macs = [], []
    for name, value in raw.items():
        if name.startswith(b"ent:"):
            start, _, until = value.partition(b"|")
            ents.append(Entitlement(name[4:].decode(), from_ms(start), opt_from_ms(until or None)))
        elif name.startswith(b"dev:"):
            macs.append(name[4:].decode())
    return Subscriber(
        carrier_id=carrier,
        subscriber_id=subscriber_id,
        display_name=text(raw.get(b"n")),
        region_code=text(raw.get(b"r")),
        status=text(raw.get(b"s")),  # type: ignore[arg-type]
        service_end=opt_from_ms(raw.get(b"e")),
        max_streams=int(raw.get(b"m", b"1")),
        contact_phone=text(raw.get(b"ph")),
        contact_email=text(raw.get(b"em")),
        version=int(raw[b"v"]),
        created_at=from_ms(raw[b"c"]),
        updated_at=from_ms(raw[b"u"]),
        entitlements=tuple(sorted(ents, key=lambda e: e.package_id)),
        device_macs=tuple(sorted(macs)),
    )


def device_fields(dev: Device) -> dict[str, str]:
    """A box's hash fields."""
    return {
        "sub": dev.subscriber_id,
        "sn": dev.serial,
        "md": dev.model,
        "st": dev.status,
        "b": str(ms(dev.bound_at)),
        "a": opt_ms(dev.activated_at),
        "h": dev.secret_digest,
    }


def decode_device(carrier: str, mac: str, raw: Mapping[bytes, bytes]) -> Device:
    """A box from its hash."""
    return Device(
        carrier_id=carrier,
        mac=mac,
        subscriber_id=text(raw.get(b"sub")),
        serial=text(raw.get(b"sn")),
        model=text(raw.get(b"md")),
        status=text(raw.get(b"st")),  # type: ignore[arg-type]
        bound_at=from_ms(raw[b"b"]),
        activated_at=opt_from_ms(raw.get(b"a")),
        secret_digest=text(raw.get(b"h")),
    )


def pairs(raw: Sequence[Any]) -> dict[bytes, bytes]:
    """A flat HGETALL reply from a script as a dict."""
    return {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}


def flatten(fields: Mapping[str, str]) -> list[str]:
    """``{k: v}`` as ``[k, v, ...]`` for HSET."""
    return [x for kv in fields.items() for x in kv]


# --- device profiles ----------------------------------------------------------------------
# A carrier's profiles live in three hashes of its slot, written together by one guarded
# script: what a box plays (read at login, so without the models), each profile's models,
# and the model -> profile index that keeps a model in one profile only.


def profiles_key(carrier: str) -> str:
    """The carrier's profiles: a hash id -> ``profile_value`` (no models)."""
    return f"sub:{{{carrier}}}:prof"


def profile_models_key(carrier: str) -> str:
    """The carrier's profiles' models: a hash id -> JSON list of models."""
    return f"sub:{{{carrier}}}:profm"


def model_index_key(carrier: str) -> str:
    """The carrier's model index: a hash model -> profile id (``load_playback.lua``
    builds the same names from the carrier's prefix)."""
    return f"sub:{{{carrier}}}:profx"


def profile_value(profile: DeviceProfile) -> str:
    """What a box plays, as stored: compact JSON of name, formats, codecs, height, time."""
    return json.dumps(
        {
            "n": profile.display_name,
            "f": list(profile.formats),
            "c": list(profile.codecs),
            "h": profile.max_height,
            "u": opt_ms(profile.updated_at),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def models_value(models: Sequence[str]) -> str:
    """A profile's models, as stored."""
    return json.dumps(list(models), separators=(",", ":"), ensure_ascii=False)


def decode_profile(
    carrier: str, profile_id: str, raw: bytes | str, models: bytes | str | None = None
) -> DeviceProfile:
    """A profile from its stored value (and its models' value; None: left out)."""
    data = json.loads(raw)
    return DeviceProfile(
        carrier_id=carrier,
        profile_id=profile_id,
        display_name=data["n"],
        models=tuple(json.loads(models)) if models else (),
        formats=tuple(data["f"]),
        codecs=tuple(data["c"]),
        max_height=int(data["h"]),
        updated_at=opt_from_ms(data["u"].encode() if data["u"] else None),
    )
