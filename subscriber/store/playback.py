"""The playback hot path: box state, the authorize decision in Redis, and stream leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from headend.redisconn import ON_MASTER, Durability
from subscriber.domain import Decision, DenyReason, Package, PlaybackState
from subscriber.errors import DeviceNotFound, LeaseNotFound, StreamLimitReached
from subscriber.store.base import Coalescer, redis_errors
from subscriber.store.catalogue import CatalogueStore
from subscriber.store.codec import (
    CATALOG_V,
    decode_device,
    decode_subscriber,
    from_ms,
    lease_keys,
    mac_key,
    ms,
    pairs,
    text,
)

# Lease keys outlive every lease in them by this margin.
_KEEP_MARGIN_MS = 60_000


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


class PlaybackStore(CatalogueStore):
    """Playback state, decisions and leases; concurrent lookups share one script call."""

    def __init__(
        self, redis: Redis, *, audit_maxlen: int = 1_000_000, durability: Durability = ON_MASTER
    ) -> None:
        super().__init__(redis, audit_maxlen=audit_maxlen, durability=durability)
        self._playback_batch = Coalescer(self._load_playback_many)
        self._authorize_batch = Coalescer(self._authorize_many)

    async def playback_state(self, mac: str) -> tuple[PlaybackState | None, dict[str, Package]]:
        """The box, its subscriber and carrier status, plus the catalogue (one shared trip)."""
        catalog_v, (holder, dev, sub, carrier_status) = await self._playback_batch(mac)
        packages = await self.catalogue(catalog_v)
        if not holder or not dev or not sub:
            return None, packages
        carrier, _, sid = holder.decode().partition("/")
        state = PlaybackState(
            decode_device(carrier, mac, pairs(dev)),
            decode_subscriber(carrier, sid, pairs(sub)),
            text(carrier_status) or "suspended",  # type: ignore[arg-type]
        )
        return state, packages

    async def _load_playback_many(self, macs: list[str]) -> list[tuple[bytes, list[Any]]]:
        reply = await self._script("load_playback", keys=[CATALOG_V], args=macs)
        return [(reply[0], reply[1 + 4 * i : 5 + 4 * i]) for i in range(len(macs))]

    async def authorize(self, mac: str, channel_id: str, at: datetime) -> Decision:
        """The playback decision, computed in Redis (``authorize.lua``); one shared trip."""
        return await self._authorize_batch((mac, channel_id, ms(at)))

    async def _authorize_many(self, asks: list[tuple[str, str, int]]) -> list[Decision]:
        reply = await self._script("authorize", keys=[], args=[x for ask in asks for x in ask])
        decisions = []
        for i in range(0, len(reply), 4):
            reason = reply[i].decode()
            decisions.append(
                Decision(
                    DenyReason(reason) if reason else None,
                    int(reply[i + 1]),
                    reply[i + 2].decode(),
                    reply[i + 3].decode(),
                )
            )
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
            keys=[*lease_keys(carrier, subscriber_id), mac_key(mac)],
            args=[
                ms(now), ttl_ms, limit, lease_id, mac, channel, f"{carrier}/{subscriber_id}",
                ttl_ms + grace_ms + _KEEP_MARGIN_MS,
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
            keys=lease_keys(carrier, subscriber_id),
            args=[
                ms(now), extend_ms, lease_id, "end" if end else "beat", mac,
                keep_ms + _KEEP_MARGIN_MS,
            ],
        )  # fmt: skip
        if result[0] != b"ok":
            raise LeaseNotFound("no live lease with that id for this device")
        return LeaseTouch(text(result[1]), from_ms(result[2]), int(result[3]))
