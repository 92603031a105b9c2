"""Redis persistence for the subscriber service.

Layout. Every key of one carrier carries the carrier's hash tag ``{c}``, so every
script on a carrier's data runs in one slot of a Redis Cluster:

- ``sub:{c}:carrier`` hash; ``sub:{c}:audit`` the audit stream.
- ``sub:{c}:s:<id>`` one hash per subscriber: account fields, ``v`` (version),
  ``ent:<package>`` = ``from_ms|until_ms`` and ``dev:<mac>`` markers, so a
  playback decision reads one hash. ``sub:{c}:subs`` sorted set (lexicographic paging, count).
- ``sub:{c}:d:<mac>`` box hash (``sub`` names its subscriber).
- ``sub:{c}:lease:<id>`` sorted set lease -> expiry (ms); ``sub:{c}:leasem:<id>`` lease
  -> ``mac\tchannel\tstate``. At most one lease per box (MAC).
- ``sub:{c}:idem:<key>`` idempotency records (``{_platform}`` for platform requests).

The platform's keys carry ``{_platform}``: ``sub:{_platform}:carriers`` set of ids,
``sub:{_platform}:packages`` set, ``sub:{_platform}:pkg:<id>`` hash,
``sub:{_platform}:catalog:v`` (bumps on every catalogue change so every replica
reloads its in-process copy) and ``sub:{_platform}:audit`` (catalogue changes).

``sub:mac:<mac>`` = ``c/<id>/<claim>`` is the platform-wide MAC uniqueness index
(never shown to callers), each entry its own slot.

Every multi-key change within one tag is one Lua script (guards checked, then writes),
so a refused change writes nothing and a concurrent one is detected, never merged. The
scripts (``*.lua`` beside these modules, shipped as package data) are given every key
they touch in KEYS, or build one from a KEYS entry's tag. A change that also touches
another slot is split into ordered steps, each documented where it is made: a box
binding and unbinding, the bulk import (``base``, ``records``), creating a carrier
(``catalogue``), and the batched playback lookups (``playback``). The helpdesk's
records (box events, subscriber counts, refused provisioning requests) are ``helpdesk``.

``sub:{c}:prof``, ``sub:{c}:profm`` and ``sub:{c}:profx`` are the carrier's device
profiles (what a box plays, by profile id), their models, and the model -> profile
index, written together by one guarded script (``profiles``); a login resolves its box's
profile in ``load_playback.lua``.
"""

from __future__ import annotations

from subscriber.store.accounts import AccountStore
from subscriber.store.base import Audit, Tx
from subscriber.store.codec import PLATFORM, sub_key
from subscriber.store.helpdesk import HelpdeskStore
from subscriber.store.playback import LeaseGrant, LeaseTouch, PlaybackStore
from subscriber.store.profiles import ProfileStore
from subscriber.store.records import RecordStore

__all__ = [
    "PLATFORM",
    "Audit",
    "LeaseGrant",
    "LeaseTouch",
    "SubscriberStore",
    "Tx",
    "sub_key",
]


class SubscriberStore(PlaybackStore, AccountStore, ProfileStore, RecordStore, HelpdeskStore):
    """All Redis access for the subscriber service."""
