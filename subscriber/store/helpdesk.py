"""The helpdesk's records: a box's latest events, subscriber counts and refused
provisioning requests.

A box's events are a capped list in its carrier's slot (``sub:{c}:ev:<mac>``, newest
first, ``DEVICE_EVENTS_KEPT`` for ``DEVICE_EVENTS_TTL_SECONDS``). The scripts that decide
(``authorize.lua``, ``start_lease.lua``, ``touch_lease.lua``) record their answer in the
same step, so the hot path pays no round trip for it; logins and the refusals made
before any script runs are recorded here, one round trip each, off the hot path.

Counts (``sub:{c}:counts``, status -> subscribers) change in the very scripts that
create a subscriber or change its status (the guarded write of ``save_subscriber``,
``import.lua``), so they equal a scan of the carrier's subscribers after every change
and are read without one. A carrier's counts are marked ``ready`` when it is created; a
carrier stored before the counts were kept is counted once, atomically, on the first
read (``recount.lua``), and kept from then on.

Refused provisioning requests go to a stream per carrier, trimmed to the latest
``PROVISIONING_ERRORS_KEPT``, only while the carrier exists (``record_errors.lua``), so
a request naming no carrier leaves no key behind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime

from subscriber.domain import SUBSCRIBER_STATUSES
from subscriber.domain.helpdesk import (
    DEVICE_EVENT_KINDS,
    DEVICE_EVENTS_KEPT,
    DEVICE_EVENTS_TTL_SECONDS,
    PROVISIONING_ERRORS_KEPT,
    DeviceEvent,
    ProvisioningError,
    SubscriberCount,
)
from subscriber.store.base import StoreBase, redis_errors
from subscriber.store.codec import (
    CARRIERS,
    COUNTS_READY,
    carrier_key,
    counts_key,
    errors_key,
    events_key,
    from_ms,
    lease_keys,
    ms,
    pairs,
    subs_key,
    text,
)

# What the lease and authorize scripts are told about the box's events: how many to keep
# and for how long (ms).
EVENT_ARGS = (DEVICE_EVENTS_KEPT, DEVICE_EVENTS_TTL_SECONDS * 1000)
# Whose boxes a decision is recorded for: every carrier's, one carrier's, or nobody's.
ANY_CARRIER = ""
NO_CARRIER = "-"
_RECORDING_FOR: ContextVar[str] = ContextVar("subscriber_store_recording_for", default="")


def recording_for() -> str:
    """The carrier whose boxes' decisions are recorded now (``HelpdeskStore.recording_for``)."""
    return _RECORDING_FOR.get()


def event_line(
    now: datetime,
    kind: str,
    channel_id: str = "",
    refusal: str = "",
    detail: str = "",
    lease_id: str = "",
) -> str:
    """One stored event, as the scripts write it: tab-separated fields, newest first."""
    return "\t".join((str(ms(now)), kind, channel_id, refusal, detail, lease_id))


def _event(raw: bytes) -> DeviceEvent | None:
    parts = raw.decode().split("\t")
    if len(parts) != 6 or parts[1] not in DEVICE_EVENT_KINDS:
        return None
    at, kind, channel_id, refusal, detail, lease_id = parts
    return DeviceEvent(from_ms(at), kind, channel_id, refusal, detail, lease_id)  # type: ignore[arg-type]


def _entry_order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a sortable pair."""
    at, _, seq = entry_id.partition(b"-")
    return int(at), int(seq)


class HelpdeskStore(StoreBase):
    """Box events, subscriber counts and refused provisioning requests."""

    # --- box events ------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def recording_for(carrier: str) -> Iterator[None]:
        """Within it, ``authorize`` records decisions only on boxes of ``carrier``
        (``ANY_CARRIER``, ``NO_CARRIER``): a caller that cannot see a box leaves no event
        in its history."""
        token = _RECORDING_FOR.set(carrier)
        try:
            yield
        finally:
            _RECORDING_FOR.reset(token)

    @redis_errors
    async def record_device_event(self, carrier: str, mac: str, line: str) -> None:
        """Add one event (``event_line``) to the box's capped list."""
        key = events_key(carrier, mac)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, line)
            pipe.ltrim(key, 0, DEVICE_EVENTS_KEPT - 1)
            pipe.expire(key, DEVICE_EVENTS_TTL_SECONDS)
            await pipe.execute()

    @redis_errors
    async def device_events(self, carrier: str, mac: str, *, limit: int) -> list[DeviceEvent]:
        """The box's latest ``limit`` events, newest first."""
        raw = await self._redis.lrange(events_key(carrier, mac), 0, limit - 1)
        return [event for event in map(_event, raw) if event is not None]

    @redis_errors
    async def live_leases(
        self, carrier: str, subscriber_id: str, now: datetime
    ) -> list[tuple[str, str, str, datetime]]:
        """The subscriber's live leases (not ended, not expired): (lease id, MAC, channel,
        expiry), by expiry."""
        expiries, metas = lease_keys(carrier, subscriber_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(expiries, f"({ms(now)}", "+inf", byscore=True, withscores=True)
            pipe.hgetall(metas)
            live, meta = await pipe.execute()
        leases = []
        for lease_id, expiry in live:
            # mac, channel, state (and what else the lease scripts keep after them)
            fields = text(meta.get(lease_id)).split("\t")
            if len(fields) >= 3 and fields[2] == "active":
                leases.append((lease_id.decode(), fields[0], fields[1], from_ms(int(expiry))))
        return leases

    # --- counts ----------------------------------------------------------------------------

    @redis_errors
    async def carrier_ids(self) -> list[str]:
        """Every carrier's id, sorted."""
        return sorted(i.decode() for i in await self._redis.smembers(CARRIERS))

    @redis_errors
    async def subscriber_counts(self, carriers: Sequence[str]) -> list[SubscriberCount]:
        """Each carrier's subscribers per status (zeros included), one round trip; counts
        that predate their upkeep are counted once first (``recount.lua``)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for carrier in carriers:
                pipe.hgetall(counts_key(carrier))
            rows = await pipe.execute()
        for i, carrier in enumerate(carriers):
            if COUNTS_READY.encode() not in rows[i]:
                keys = [subs_key(carrier), counts_key(carrier)]
                rows[i] = pairs(await self._script("recount", keys=keys, args=[]))
        return [
            SubscriberCount(carrier, status, int(row.get(status.encode(), 0)))
            for carrier, row in zip(carriers, rows, strict=True)
            for status in SUBSCRIBER_STATUSES
        ]

    # --- provisioning errors ---------------------------------------------------------------

    @redis_errors
    async def record_provisioning_errors(
        self, carrier: str, errors: Sequence[ProvisioningError]
    ) -> bool:
        """Append ``errors`` to the carrier's stream (oldest first); False, and nothing
        written, when the carrier does not exist."""
        entries = [
            [str(ms(e.time)), e.principal, e.rpc, e.subject, e.reason, e.message] for e in errors
        ]
        done = await self._script(
            "record_errors",
            keys=[carrier_key(carrier), errors_key(carrier)],
            args=[PROVISIONING_ERRORS_KEPT, json.dumps(entries, ensure_ascii=False)],
        )
        return bool(done)

    @redis_errors
    async def provisioning_errors(
        self, carriers: Sequence[str], *, limit: int
    ) -> list[ProvisioningError]:
        """The latest ``limit`` refused requests of these carriers, newest first, one
        round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for carrier in carriers:
                pipe.xrevrange(errors_key(carrier), count=limit)
            replies = await pipe.execute()
        found = [
            (_entry_order(entry_id), carrier, f)
            for carrier, rows in zip(carriers, replies, strict=True)
            for entry_id, f in rows
        ]
        found.sort(key=lambda item: item[0], reverse=True)
        return [
            ProvisioningError(
                time=from_ms(f[b"t"]),
                carrier_id=carrier,
                principal=text(f.get(b"p")),
                rpc=text(f.get(b"r")),
                subject=text(f.get(b"s")),
                reason=text(f.get(b"c")),
                message=text(f.get(b"m")),
            )
            for _, carrier, f in found[:limit]
        ]
