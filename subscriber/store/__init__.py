"""Redis persistence for the subscriber service.

Layout (tenant data always carries the carrier in the key):

- ``sub:carriers`` set of ids; ``sub:{c}:carrier`` hash.
- ``sub:packages`` set; ``sub:pkg:{id}`` hash; ``sub:catalog:v`` bumps on every catalogue change
  so every replica reloads its in-process copy.
- ``sub:{c}:s:{id}`` one hash per subscriber: account fields, ``v`` (version),
  ``ent:{package}`` = ``from_ms|until_ms`` and ``dev:{mac}`` markers, so a
  playback decision reads one hash. ``sub:{c}:subs`` sorted set (lexicographic paging, count).
- ``sub:{c}:d:{mac}`` device hash; ``sub:mac:{mac}`` = ``{c}/{id}``, the platform-wide
  uniqueness index (never shown to callers).
- ``sub:{c}:lease:{id}`` sorted set lease -> expiry (ms); ``sub:{c}:leasem:{id}`` lease
  -> ``mac\\tchannel\\tstate``. At most one lease per box (MAC).
- ``sub:{scope}:idem:{key}`` idempotency records; ``sub:{c}:audit`` the audit stream
  (``sub:_platform:audit`` for catalogue changes).

Every multi-key change is one Lua script (guards checked, then writes), so a
refused change writes nothing and a concurrent one is detected, never merged.
The scripts (``*.lua`` beside these modules, shipped as package data) touch
keys derived from their arguments, which suits one Redis (or Sentinel);
Redis Cluster would need hash tags on the carrier.
"""

from __future__ import annotations

from subscriber.store.accounts import AccountStore
from subscriber.store.base import Audit, Tx
from subscriber.store.codec import PLATFORM, sub_key
from subscriber.store.playback import LeaseGrant, LeaseTouch, PlaybackStore
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


class SubscriberStore(PlaybackStore, AccountStore, RecordStore):
    """All Redis access for the subscriber service."""
