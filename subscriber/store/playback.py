"""The playback hot path: box state, the authorize decision in Redis, and stream leases.

A lookup is two pipelined steps for a whole batch of concurrent asks: the MAC index
entries (each its own slot) with the catalogue version, then one script call per
carrier in the batch, whose keys all carry that carrier's tag (``authorize.lua``,
``load_playback.lua``). The deciding scripts also record their answer in the box's
helpdesk events (``helpdesk``). The index may move between the steps: the second step checks
that the box is still its subscriber's and answers as for an unknown box otherwise,
which is what a lookup after the move answers too.

Each applied lease step (start, heartbeat, end, and the end of a lease a box replaced)
then goes to the viewing figures (``subscriber.reports``), a step of its own because
the figures' cells are keyed by channel and region, not by carrier.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from redis.asyncio import Redis

from headend.redisconn import ON_MASTER, Durability
from subscriber.domain import (
    PLATFORM_PROFILE,
    Decision,
    DenyReason,
    DeviceProfile,
    Package,
    PlaybackState,
)
from subscriber.errors import DeviceNotFound, LeaseNotFound, StoreUnavailable, StreamLimitReached
from subscriber.store.base import Coalescer, redis_errors
from subscriber.store.catalogue import CatalogueStore
from subscriber.store.codec import (
    CATALOG_V,
    carrier_key,
    decode_device,
    decode_profile,
    decode_subscriber,
    dev_key,
    events_key,
    from_ms,
    lease_keys,
    mac_key,
    ms,
    pairs,
    sub_key,
    text,
)
from subscriber.store.helpdesk import ANY_CARRIER, EVENT_ARGS, recording_for

log = logging.getLogger(__name__)

# Lease keys outlive every lease in them by this margin.
_KEEP_MARGIN_MS = 60_000
_UNKNOWN = Decision(DenyReason.UNKNOWN_DEVICE)
_REASONS: dict[bytes, DenyReason | None] = {
    b"": None,
    **{reason.value.encode(): reason for reason in DenyReason},
}
# Per box in a batch: (carrier, subscriber), or None when the index names no one.
Holders = list[tuple[str, str] | None]
# Per box loaded: the catalogue version, its state (None: unknown) and device profile.
Loaded = tuple[bytes | None, PlaybackState | None, DeviceProfile]


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """One step of a lease as the viewing figures take it: started, heartbeat or ended
    (a replaced lease ends when its box starts another), with what it is counted under."""

    op: Literal["start", "beat", "end"]
    lease_id: str
    mac: str
    carrier: str
    channel: str
    region: str
    at: datetime
    expires_at: datetime


class LeaseLog(Protocol):
    """Where lease steps go once applied (``subscriber.reports.store.ViewingStore``)."""

    async def record(self, events: Sequence[LeaseEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A started lease: its id, the subscriber's active count, and the lease it replaced."""

    lease_id: str
    active: int
    replaced_lease_id: str


@dataclass(frozen=True, slots=True)
class LeaseTouch:
    """A heartbeat or end: the lease's channel, new expiry and the active count."""

    channel_id: str
    expires_at: datetime
    active: int


@functools.lru_cache(maxsize=1024)
def _login_profile(carrier: str, profile_id: str, value: bytes) -> DeviceProfile:
    """A login's profile from its stored value; a carrier's boxes share a few profiles,
    so the morning peak decodes each once (the value is the key: a change is a miss)."""
    return decode_profile(carrier, profile_id, value)


def _by_carrier(holders: Holders) -> dict[str, list[tuple[int, str]]]:
    """A batch's boxes (position, subscriber), grouped by the carrier holding them."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for i, holder in enumerate(holders):
        if holder is not None:
            groups.setdefault(holder[0], []).append((i, holder[1]))
    return groups


class PlaybackStore(CatalogueStore):
    """Playback state, decisions and leases; concurrent lookups share their round trips."""

    def __init__(
        self,
        redis: Redis,
        *,
        audit_maxlen: int = 1_000_000,
        durability: Durability = ON_MASTER,
        viewing: LeaseLog | None = None,
    ) -> None:
        super().__init__(redis, audit_maxlen=audit_maxlen, durability=durability)
        # Lease steps are passed on here once applied (none: the store keeps no figures).
        self._viewing = viewing
        self._playback_batch = Coalescer(self._load_playback_many)
        # Logins are batched apart: only they read the boxes' device profiles.
        self._login_batch = Coalescer(self._load_login_many)
        self._authorize_batch = Coalescer(self._authorize_many)

    async def _holders(self, macs: list[str]) -> tuple[bytes | None, Holders]:
        """Step one: the catalogue version and each box's holder, one round trip."""
        reply = await self._get_many([CATALOG_V, *(mac_key(mac) for mac in macs)])
        holders: Holders = []
        for raw in reply[1:]:
            if raw is None:
                holders.append(None)
            else:
                carrier, sid, _ = raw.decode().split("/")
                holders.append((carrier, sid))
        return reply[0], holders

    async def playback_state(self, mac: str) -> tuple[PlaybackState | None, dict[str, Package]]:
        """The box, its subscriber and carrier status, plus the catalogue (shared trips)."""
        catalog_v, state, _ = await self._playback_batch(mac)
        return state, await self.catalogue(catalog_v)

    async def login_state(
        self, mac: str
    ) -> tuple[PlaybackState | None, dict[str, Package], DeviceProfile]:
        """:meth:`playback_state` and the box's device profile, resolved in the same
        script (``load_playback.lua``): the login answer costs no round trip more. The
        profile comes without its models (the login answer leaves them out)."""
        catalog_v, state, profile = await self._login_batch(mac)
        return state, await self.catalogue(catalog_v), profile

    async def _load_login_many(self, macs: list[str]) -> list[Loaded]:
        return await self._load_playback_many(macs, profiles=True)

    async def _load_playback_many(self, macs: list[str], *, profiles: bool = False) -> list[Loaded]:
        catalog_v, holders = await self._holders(macs)
        groups = _by_carrier(holders)
        calls: list[tuple[list[str], list[Any]]] = []
        for carrier, boxes in groups.items():
            keys = [carrier_key(carrier)]
            for i, sid in boxes:
                keys += [dev_key(carrier, macs[i]), sub_key(carrier, sid)]
            calls.append((keys, ["1"] if profiles else []))
        states: list[PlaybackState | None] = [None] * len(macs)
        found = [PLATFORM_PROFILE] * len(macs)
        replies = await self._many("load_playback", calls) if calls else []
        for (carrier, boxes), reply in zip(groups.items(), replies, strict=True):
            status = text(reply[0]) or "suspended"
            for n, (i, sid) in enumerate(boxes):
                dev, sub = pairs(reply[1 + 2 * n]), pairs(reply[2 + 2 * n])
                # The box must still be this subscriber's (the index may have moved).
                if dev and sub and dev.get(b"sub") == sid.encode():
                    states[i] = PlaybackState(
                        decode_device(carrier, macs[i], dev),
                        decode_subscriber(carrier, sid, sub),
                        status,  # type: ignore[arg-type]
                    )
                if profiles and (value := reply[1 + 2 * len(boxes) + n][1]):
                    profile_id = text(reply[1 + 2 * len(boxes) + n][0])
                    found[i] = _login_profile(carrier, profile_id, value)
        return [(catalog_v, state, found[i]) for i, state in enumerate(states)]

    async def authorize(self, mac: str, channel_id: str, at: datetime, now: datetime) -> Decision:
        """The playback decision, computed in Redis (``authorize.lua``), which records it
        in the box's events as of ``now`` when the caller sees the box
        (``HelpdeskStore.recording_for``); shared trips."""
        return await self._authorize_batch((mac, channel_id, ms(at), ms(now), recording_for()))

    async def _authorize_many(self, asks: list[tuple[str, str, int, int, str]]) -> list[Decision]:
        catalog_v, holders = await self._holders([ask[0] for ask in asks])
        packages_of = (await self._catalogue(catalog_v)).packages_of
        groups = _by_carrier(holders)
        calls = []
        for carrier, boxes in groups.items():
            keys = [carrier_key(carrier)]
            args: list[Any] = [*EVENT_ARGS]
            for i, sid in boxes:
                mac, channel, at, now, scope = asks[i]
                keys += [dev_key(carrier, mac), sub_key(carrier, sid)]
                stamp = now if scope in (ANY_CARRIER, carrier) else ""
                args += [sid, at, packages_of.get(channel, ""), channel, stamp]
            calls.append((keys, args))
        decisions = [_UNKNOWN] * len(asks)
        replies = await self._many("authorize", calls) if calls else []
        for (carrier, boxes), reply in zip(groups.items(), replies, strict=True):
            for n, (i, sid) in enumerate(boxes):
                version = reply[2 * n + 1]
                if version:
                    decisions[i] = Decision(_REASONS[reply[2 * n]], int(version), carrier, sid)
        return decisions

    # --- leases ----------------------------------------------------------------------------

    @redis_errors
    async def start_lease(
        self,
        carrier: str,
        subscriber_id: str,
        *,
        lease_id: str,
        mac: str,
        channel: str,
        now: datetime,
        ttl_ms: int,
        grace_ms: int,
        limit: int,
    ) -> LeaseGrant:
        """The box's one lease, replacing any it held; ``StreamLimitReached`` when full."""
        result = await self._script(
            "start_lease",
            keys=[
                *lease_keys(carrier, subscriber_id), dev_key(carrier, mac),
                events_key(carrier, mac), sub_key(carrier, subscriber_id),
            ],
            args=[
                ms(now), ttl_ms, limit, lease_id, mac, channel, subscriber_id,
                ttl_ms + grace_ms + _KEEP_MARGIN_MS, *EVENT_ARGS,
            ],
        )  # fmt: skip
        kind = result[0].decode()
        if kind == "moved":
            raise DeviceNotFound("no such device")
        if kind == "full":
            raise StreamLimitReached(
                f"all {limit} concurrent streams are in use",
                details={
                    "limit": str(limit),
                    "leases": text(result[1]),
                    "devices": text(result[2]),
                },
            )
        expires = now + timedelta(milliseconds=ttl_ms)
        steps = [
            LeaseEvent("end", text(old), mac, carrier, meta[1], meta[3] if len(meta) > 3 else "",
                       now, now)
            for old, meta in zip(result[4][::2], (m.decode().split("\t") for m in result[4][1::2]),
                                 strict=True)
        ]  # fmt: skip
        steps.append(LeaseEvent("start", lease_id, mac, carrier, channel, text(result[5]), now,
                                expires))  # fmt: skip
        await self._pass_on(steps)
        return LeaseGrant(text(result[1]), int(result[2]), text(result[3]))

    @redis_errors
    async def touch_lease(
        self,
        carrier: str,
        subscriber_id: str,
        *,
        lease_id: str,
        mac: str,
        now: datetime,
        extend_ms: int,
        keep_ms: int,
        end: bool,
    ) -> LeaseTouch:
        """Heartbeat or end the box's live lease; ``LeaseNotFound`` for any other id."""
        result = await self._script(
            "touch_lease",
            keys=[*lease_keys(carrier, subscriber_id), events_key(carrier, mac)],
            args=[
                ms(now), extend_ms, lease_id, "end" if end else "beat", mac,
                keep_ms + _KEEP_MARGIN_MS, *EVENT_ARGS,
            ],
        )  # fmt: skip
        if result[0] != b"ok":
            raise LeaseNotFound("no live lease with that id for this device")
        touch = LeaseTouch(text(result[1]), from_ms(result[2]), int(result[3]))
        op: Literal["beat", "end"] = "end" if end else "beat"
        await self._pass_on([LeaseEvent(op, lease_id, mac, carrier, touch.channel_id,
                                         text(result[4]), now, touch.expires_at)])  # fmt: skip
        return touch

    async def _pass_on(self, steps: list[LeaseEvent]) -> None:
        """Give applied lease steps to the viewing figures; the lease stands whatever they
        answer (a figure lost to an outage is repaired by the lease's next step)."""
        if self._viewing is None:
            return
        try:
            await self._viewing.record(steps)
        except StoreUnavailable:
            log.warning("viewing figures unavailable", extra={"lease_id": steps[-1].lease_id})
