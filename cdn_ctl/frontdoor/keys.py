"""Content keys for boxes: the only place an encrypted segment's key leaves the platform.

    GET /keys/{channel}/{key_id}         a live or catch-up key of a channel
    GET /keys/asset/{asset}/{key_id}     a VOD asset's key

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor`, behind its box-token check
(401 ``session_missing``/``session_expired``/...) and its per-token fetch limit, with a
tighter per-token key budget of its own (``FRONTDOOR_KEY_REQUESTS_PER_MINUTE``) kept the
way box routes are limited: a :class:`~cdn_ctl.frontdoor.guard.FetchLimiter`, counted
in-process and summed across replicas through Redis every second (a
:class:`headend.ratelimit.RateLimiter` round trip per key request cost more than half
the route's throughput). A channel's key is the 16 bytes (``application/octet-stream``,
``Cache-Control: no-store``) only when every one of these holds:

- the key id is one of *this* channel's (``ContentKeyStore.get`` with the channel's
  scope): an unknown id, or another channel's, is 404 ``key_not_found`` (the two are
  indistinguishable on purpose); a revoked one is 403 ``key_revoked``;
- the box may play the channel now (the playback routes' cached entitlement verdict);
- the box holds a live lease on the channel and the key's media span is near now
  (``FRONTDOOR_LIVE_KEY_WINDOW_SECONDS``), or this front door (any replica) granted it
  a catch-up window on the channel that overlaps the key's span; else 403 ``no_lease``;
- no programme of the key's span is blacked out in the box's region (the rights
  module's rule, as for playback), else 403 ``blacked_out``.

Leases are the front door's own bookkeeping, so a key costs no gRPC call: every
lease a variant poll uses is noted in-process and, at most every
``_NOTE_REFRESH_SECONDS``, in Redis (``fd:lease:{<mac>}``, ``_NOTE_SECONDS`` TTL) for
the other replicas, whose key requests may land elsewhere than the box's polls. A
catch-up grant is written when a catch-up request is redirected
(``fd:cu:{<mac>}:<channel>``: at most ``GRANTS_MAX`` windows, each living as long as
its signed URL). An asset's key needs only a valid box token: there is no VOD
entitlement model yet. Keys are cached in-process for ``FRONTDOOR_KEY_CACHE_SECONDS``
(the bound within which a revocation reaches a box); their bytes are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from redis.exceptions import RedisError

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.errors import (
    BlackedOut,
    KeyUnknown,
    PlaybackForbidden,
    RateLimited,
    UpstreamUnavailable,
)
from cdn_ctl.frontdoor.guard import FetchLimiter
from cdn_ctl.frontdoor.playback import TOKEN
from cdn_ctl.upstream import EpgCache
from epg.domain import rights
from headend.contentkeys import (
    ContentKey,
    ContentKeyError,
    ContentKeyNotFound,
    ContentKeyRevoked,
    InvalidScope,
    is_key_id,
    scope_for_asset,
    scope_for_channel,
)

log = logging.getLogger(__name__)

KEY_TYPE = "application/octet-stream"
# The key budget's name (its counts are ``fd:keys:{<token id>}:<minute>``).
KEY_LIMITER = "keys"
# Catch-up windows remembered per box and channel (the newest stay).
GRANTS_MAX = 16
# A box's live lease note in Redis: how long it lives, and how often a poll renews it.
_NOTE_SECONDS = 120
_NOTE_REFRESH_SECONDS = 40.0
_CACHE_MAX = 65_536
_HEADERS = {"Cache-Control": "no-store"}


class ContentKeys(Protocol):
    """What the front door needs from ``headend.contentkeys.ContentKeyStore``."""

    async def get(self, scope: str, key_id: str) -> ContentKey:
        """The key ``key_id`` of ``scope`` (``ContentKeyNotFound``/``ContentKeyRevoked``)."""
        ...


@dataclass(frozen=True, slots=True)
class Noted:
    """A live lease a box polled through this replica, and when it was last written out."""

    lease_id: str
    channel: str
    at: float


def lease_note_key(mac: str) -> str:
    """The Redis key naming the box's live lease (one per box)."""
    return f"fd:lease:{{{mac}}}"


def grants_key(mac: str, channel: str) -> str:
    """The Redis key of the catch-up windows granted to a box on a channel."""
    return f"fd:cu:{{{mac}}}:{channel}"


class KeyDelivery:
    """The key store behind a short in-process cache, the lease notes, the catch-up
    grants and the per-token key limit (Redis: shared by every front door replica)."""

    def __init__(
        self,
        store: ContentKeys,
        redis: Any,
        *,
        limiter: FetchLimiter | None,
        cache_seconds: float,
        live_window_seconds: float,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._redis = redis
        self._limiter = limiter
        self._cache_seconds = cache_seconds
        self.live_window = timedelta(seconds=live_window_seconds)
        self._grace_seconds = grace_seconds
        self._clock = clock
        self._keys: dict[tuple[str, str], tuple[ContentKey, float]] = {}
        self._noted: dict[str, Noted] = {}

    async def key(self, scope: str, key_id: str) -> ContentKey:
        """``scope``'s key ``key_id`` (cached); ``KeyUnknown`` 404, revoked 403."""
        now = self._clock()
        cached = self._keys.get((scope, key_id))
        if cached is not None and now - cached[1] < self._cache_seconds:
            return cached[0]
        try:
            key = await self._store.get(scope, key_id)
        except ContentKeyNotFound as err:
            raise KeyUnknown("no such key for this channel", reason="key_not_found") from err
        except ContentKeyRevoked as err:
            raise PlaybackForbidden("this key was revoked", reason="key_revoked") from err
        except ContentKeyError as err:
            # The store is down, or a record does not unwrap (named by id, never shown).
            log.warning(
                "content key unavailable", extra={"key_id": key_id, "error": type(err).__name__}
            )
            raise UpstreamUnavailable(
                "keys cannot be served now", reason="keys_unavailable"
            ) from err
        if len(self._keys) >= _CACHE_MAX:
            self._keys.clear()
        self._keys[(scope, key_id)] = (key, now)
        return key

    @property
    def limiter(self) -> FetchLimiter | None:
        """The per-token key budget (its ``run`` syncs it across replicas)."""
        return self._limiter

    def admit(self, token_id: str) -> None:
        """Count one key request of a box token: 429 ``rate_limited`` past the budget."""
        if self._limiter is not None and not self._limiter.allow(token_id):
            raise RateLimited("too many key requests for this box token", reason="rate_limited")

    async def noted(self, mac: str, lease_id: str, channel: str) -> None:
        """A variant poll used this box's live lease: remember it here, and in Redis for
        the other replicas unless written recently (best effort: playback goes on)."""
        now = self._clock()
        seen = self._noted.get(mac)
        if seen is not None and (seen.lease_id, seen.channel) == (lease_id, channel):
            if now - seen.at < _NOTE_REFRESH_SECONDS:
                return
        if len(self._noted) >= _CACHE_MAX:
            self._noted.clear()
        self._noted[mac] = Noted(lease_id, channel, now)
        try:
            await self._redis.set(lease_note_key(mac), f"{lease_id} {channel}", ex=_NOTE_SECONDS)
        except (RedisError, OSError):
            log.warning("could not note a live lease for key requests on other replicas")

    async def ended(self, mac: str, lease_id: str) -> None:
        """The box stopped playing ``lease_id``: that lease no longer opens keys (a newer
        one of the box still does)."""
        seen = self._noted.get(mac)
        if seen is not None and seen.lease_id == lease_id:
            del self._noted[mac]
        name = lease_note_key(mac)
        try:
            raw = await self._redis.get(name)
            if raw is not None and _text(raw).partition(" ")[0] == lease_id:
                await self._redis.delete(name)
        except (RedisError, OSError):
            log.warning("could not drop a live lease note; it lapses on its own")

    async def leased(self, mac: str, channel: str) -> bool:
        """Does the box hold a live lease on ``channel`` (polled here or on a replica)?"""
        seen = self._noted.get(mac)
        if seen is not None and self._clock() - seen.at < _NOTE_SECONDS:
            if seen.channel == channel:
                return True
        try:
            raw = await self._redis.get(lease_note_key(mac))
        except (RedisError, OSError) as err:
            raise UpstreamUnavailable(
                "keys cannot be checked now", reason="keys_unavailable"
            ) from err
        if raw is None:
            return False
        return _text(raw).partition(" ")[2] == channel

    async def grant(self, mac: str, channel: str, start: datetime, stop: datetime) -> None:
        """Remember a catch-up window redirected for a box, as long as its signed URL
        lives (best effort: the window plays, its keys are refused if this failed)."""
        now = time.time()
        expires = now + (stop - start).total_seconds() + self._grace_seconds
        name = grants_key(mac, channel)
        member = f"{int(start.timestamp())}:{int(stop.timestamp())}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(name, {member: expires})
                pipe.zremrangebyscore(name, "-inf", now)
                pipe.zremrangebyrank(name, 0, -GRANTS_MAX - 1)
                pipe.expireat(name, int(expires) + 1, gt=True)
                pipe.expireat(name, int(expires) + 1, nx=True)
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("could not record a catch-up grant for key requests")

    async def granted(self, mac: str, channel: str, key: ContentKey) -> bool:
        """Was the box granted a catch-up window on ``channel`` overlapping ``key``'s span?"""
        try:
            members = await self._redis.zrangebyscore(grants_key(mac, channel), time.time(), "+inf")
        except (RedisError, OSError) as err:
            raise UpstreamUnavailable(
                "keys cannot be checked now", reason="keys_unavailable"
            ) from err
        since, until = key.not_before.timestamp(), key.not_after.timestamp()
        for raw in members:
            start, _, stop = _text(raw).partition(":")
            if int(start) < until and int(stop) > since:
                return True
        return False


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["key_id"]
    if not is_key_id(key_id):
        raise KeyUnknown("no such key", reason="key_not_found")
    return key_id


def _key_response(key: ContentKey) -> web.Response:
    return web.Response(body=key.key, content_type=KEY_TYPE, headers=_HEADERS)


class Keys:
    """The key handlers; the state they use is the front door's."""

    keys: KeyDelivery | None
    epg: EpgCache
    _now: Callable[[], datetime]
    _channel: Callable[[web.Request], str]
    _require: Callable[[BoxToken, str], Awaitable[None]]

    def _delivery(self) -> KeyDelivery:
        if self.keys is None:
            raise KeyUnknown("this front door serves no keys", reason="key_not_found")
        return self.keys

    async def channel_key(self, request: web.Request) -> web.Response:
        """``GET /keys/{channel}/{key_id}``: the key, to a box that may play its span."""
        box = request[TOKEN]
        delivery = self._delivery()
        delivery.admit(box.token_id)
        channel = self._channel(request)
        try:
            scope = scope_for_channel(channel)
        except InvalidScope as err:
            raise KeyUnknown("no such key", reason="key_not_found") from err
        # Entitlement first: a box that may not play the channel learns nothing of its key ids.
        await self._require(box, channel)
        key = await delivery.key(scope, _key_id(request))
        now = self._now()
        near = now - delivery.live_window < key.not_after and key.not_before < (
            now + delivery.live_window
        )
        if not (near and await delivery.leased(box.mac, channel)) and not await delivery.granted(
            box.mac, channel, key
        ):
            raise PlaybackForbidden(
                "start this channel (or its catch-up) before asking for its keys",
                reason="no_lease",
            )
        span = rights.overlapping(
            await self.epg.programmes(channel, now), key.not_before, key.not_after
        )
        for programme in span:
            if rights.blacked_out(programme, box.region):
                raise BlackedOut(
                    "this programme is blacked out in your region",
                    reason="blacked_out",
                    slate=programme.rights.blackout_slate,
                )
        return _key_response(key)

    async def asset_key(self, request: web.Request) -> web.Response:
        """``GET /keys/asset/{asset}/{key_id}``: any box with a valid token (no VOD
        entitlement model exists yet)."""
        box = request[TOKEN]
        delivery = self._delivery()
        delivery.admit(box.token_id)
        try:
            scope = scope_for_asset(request.match_info["asset"])
        except InvalidScope as err:
            raise KeyUnknown("no such key", reason="key_not_found") from err
        return _key_response(await delivery.key(scope, _key_id(request)))
