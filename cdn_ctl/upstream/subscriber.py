"""The front door's cached view of ``SubscriberService``: login, authorization, leases.

Subscriber answers (``Authorize`` per box and channel, ``EffectiveChannels``
per subscriber) are cached for at most ``entitlement_ttl_seconds`` (the
subscriber service has no change feed, so this TTL is THE bound on how long
a suspension or revocation takes to reach a playing box), and are dropped
early as soon as any answer shows a newer subscriber version. While the
service cannot answer (its store is down, it is restarting) an expired
answer keeps being used for up to ``stale_seconds``: nothing can be
suspended meanwhile through a store that is down, and a playing box keeps
playing. Lease heartbeats are batched: polls only mark a lease as used, and
:class:`LeaseKeeper` sends one ``Heartbeat`` per used lease per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cdn_ctl.errors import LoginFailed, PlaybackForbidden, StreamLimit, UpstreamUnavailable
from cdn_ctl.upstream.common import CHANNEL_OPTIONS, Clock, Outage, deny_reason, unavailable
from headend.errors import HeadendError
from headend.rpc import ClientTls
from subscriber.client import SubscriberClient
from subscriber.domain import PLATFORM_PROFILE, Decision, DenyReason, DeviceProfile
from subscriber.errors import (
    CarrierNotFound,
    DeviceLoginFailed,
    DeviceNotFound,
    InvalidField,
    LeaseNotFound,
    PlaybackDenied,
    StreamLimitReached,
    SubscriberNotFound,
)

log = logging.getLogger("cdn_ctl.upstream")


@dataclass(frozen=True, slots=True)
class Login:
    """What ``DeviceLogin`` says about a box."""

    carrier: str
    subscriber: str
    mac: str
    region: str
    version: int
    channels: frozenset[str]
    deny: str  # "" when the box may play
    # The box's resolved device profile (the platform's from a server without profiles).
    profile: DeviceProfile = PLATFORM_PROFILE


@dataclass(frozen=True, slots=True)
class Verdict:
    """A cached ``Authorize`` answer."""

    allowed: bool
    reason: str
    version: int
    subscriber: tuple[str, str]
    at: float


@dataclass(frozen=True, slots=True)
class Entitled:
    """A cached ``EffectiveChannels`` answer."""

    channels: frozenset[str]
    version: int
    at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A stream lease this front door holds (its id is also the routing ledger's)."""

    lease_id: str
    mac: str
    channel: str


def _reason(deny: DenyReason | None) -> str:
    return deny_reason(deny.value) if deny is not None else ""


class SubscriberCache:
    """``SubscriberService`` with a playback key: login, cached authorization, leases."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        entitlement_ttl_seconds: float,
        stale_seconds: float = 120.0,
        timeout_seconds: float = 3.0,
        clock: Clock = time.monotonic,
        tls: ClientTls | None = None,
        max_in_flight: int = 64,
    ) -> None:
        self._client = SubscriberClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )
        # Every box's calls share this one channel (one HTTP/2 connection; a heartbeat
        # round alone is a call per playing box), so they are kept below the service's
        # streams per connection (RpcSettings.max_streams_per_connection, 100 by
        # default): grpc does not hold the calls over that limit, the server refuses
        # them (RST_STREAM REFUSED_STREAM: UNAVAILABLE "Stream removed").
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = timeout_seconds
        self._ttl = entitlement_ttl_seconds
        self._stale = stale_seconds
        self._clock = clock
        self.outage = Outage(clock)
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        # The Authorize call in flight per (box, channel), shared by whoever needs it.
        self._asking: dict[tuple[str, str], asyncio.Future[Verdict]] = {}
        self._channels: dict[tuple[str, str], Entitled] = {}
        # The newest version seen per (carrier, subscriber): older cached answers are stale.
        self._versions: dict[tuple[str, str], int] = {}

    def _saw(self, key: tuple[str, str], version: int) -> None:
        if version > self._versions.get(key, 0):
            self._versions[key] = version

    def _fresh(self, key: tuple[str, str], version: int, at: float) -> bool:
        return self._clock() - at < self._ttl and version >= self._versions.get(key, 0)

    def _usable(self, key: tuple[str, str], version: int, at: float) -> bool:
        """Whether an expired answer may stand in while the service cannot answer."""
        return self._clock() - at < self._stale and version >= self._versions.get(key, 0)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of the channel's call slots, waiting for it at most the call timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError as err:
            log.warning("upstream calls waited past their timeout", extra={"service": "subscriber"})
            raise UpstreamUnavailable(
                "subscriber unavailable: too many calls", reason="subscriber_unavailable"
            ) from err
        try:
            yield
        finally:
            self._slots.release()

    def _failed(self, err: HeadendError) -> UpstreamUnavailable:
        """Note the outage and give the front door's 503 for it."""
        self.outage.failed(err)
        return unavailable("subscriber", err)

    async def login(self, mac: str, secret: str) -> Login:
        """Check a box's credentials; ``LoginFailed`` when they do not match."""
        async with self._slot():
            try:
                resp = await self._client.device_login(mac, secret)
            except (DeviceLoginFailed, InvalidField) as err:
                raise LoginFailed("unknown device or wrong secret", reason="login_failed") from err
            except HeadendError as err:
                raise self._failed(err) from err
        self.outage.recovered()
        key = (resp.carrier_id, resp.subscriber_id)
        self._saw(key, resp.subscriber_version)
        channels = frozenset(resp.channel_ids)
        self._channels[key] = Entitled(channels, resp.subscriber_version, self._clock())
        return Login(
            resp.carrier_id,
            resp.subscriber_id,
            resp.mac,
            resp.region_code,
            resp.subscriber_version,
            channels,
            _reason(resp.deny_reason),
            resp.device_profile,
        )

    def cached_verdict(self, mac: str, channel: str) -> Verdict | None:
        """The cached answer if still fresh (the hot path: no I/O)."""
        verdict = self._verdicts.get((mac, channel))
        if verdict is not None and self._fresh(verdict.subscriber, verdict.version, verdict.at):
            return verdict
        return None

    async def authorize(self, mac: str, channel: str) -> Verdict:
        """May this box play this channel now? Cached per (box, channel); an expired answer
        stands in (up to ``stale_seconds``) while the service cannot answer. The requests
        that find the answer expired while one call is asking share that call: a burst of
        reloads (a box's players, its pipelined requests) costs the service one call, and
        no request is answered with anything older than before."""
        verdict = self.cached_verdict(mac, channel)
        if verdict is not None:
            return verdict
        key = (mac, channel)
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._authorize(mac, channel))
            asking.add_done_callback(functools.partial(self._asked, key))
        # Shielded: a request that goes away must not cancel the others' answer.
        return await asyncio.shield(asking)

    def _asked(self, key: tuple[str, str], task: asyncio.Future[Verdict]) -> None:
        if self._asking.get(key) is task:
            del self._asking[key]
        if not task.cancelled():
            # Marked as seen: each request still waiting gets it raised; when every one of
            # them went away, nobody is left to be told.
            task.exception()

    async def _authorize(self, mac: str, channel: str) -> Verdict:
        old = self._verdicts.get((mac, channel))
        stale = old if old and self._usable(old.subscriber, old.version, old.at) else None

        async def ask() -> Verdict:
            async with self._slot():
                decision = await self._client.authorize(mac, channel)
            return self._verdict(decision)

        try:
            answer, fresh = await self.outage.answer(
                "subscriber", ask, stale=stale, passes=(InvalidField, UpstreamUnavailable)
            )
        except InvalidField as err:
            raise PlaybackForbidden("not entitled", reason="not_entitled") from err
        if fresh:
            self._verdicts[(mac, channel)] = answer
        return answer

    def _verdict(self, decision: Decision) -> Verdict:
        key = (decision.carrier_id, decision.subscriber_id)
        self._saw(key, decision.subscriber_version)
        return Verdict(
            decision.allowed,
            _reason(decision.reason),
            decision.subscriber_version,
            key,
            self._clock(),
        )

    async def require(self, mac: str, channel: str) -> None:
        """``PlaybackForbidden`` (403 with the reason) unless the box may play ``channel``."""
        verdict = await self.authorize(mac, channel)
        if not verdict.allowed:
            raise PlaybackForbidden(f"playback refused: {verdict.reason}", reason=verdict.reason)

    async def channels(self, carrier: str, subscriber: str) -> frozenset[str]:
        """The subscriber's entitled channels now (cached like authorizations)."""
        key = (carrier, subscriber)
        cached = self._channels.get(key)
        if cached is not None and self._fresh(key, cached.version, cached.at):
            return cached.channels
        stale = cached.channels if cached and self._usable(key, cached.version, cached.at) else None

        async def ask() -> frozenset[str]:
            async with self._slot():
                channel_ids, version = await self._client.effective_channels(carrier, subscriber)
            self._saw(key, version)
            channels = frozenset(channel_ids)
            self._channels[key] = Entitled(channels, version, self._clock())
            return channels

        gone = (SubscriberNotFound, CarrierNotFound)
        try:
            channels, _ = await self.outage.answer(
                "subscriber", ask, stale=stale, passes=(*gone, UpstreamUnavailable)
            )
        except gone as err:
            raise PlaybackForbidden("no such subscriber", reason="unknown_device") from err
        return channels

    async def start_lease(self, mac: str, channel: str) -> Lease:
        """Take a stream slot: ``StreamLimit`` over the limit, ``PlaybackForbidden`` if refused."""
        async with self._slot():
            try:
                lease = await self._client.start_lease(mac, channel)
            except StreamLimitReached as err:
                raise StreamLimit(
                    "all concurrent streams of this subscriber are in use",
                    reason="stream_limit",
                    limit=err.details.get("limit", ""),
                ) from err
            except (PlaybackDenied, DeviceNotFound) as err:
                reason = deny_reason(err.details.get("reason", "").upper())
                # The cached verdict said yes; the service knows better now.
                self._verdicts.pop((mac, channel), None)
                raise PlaybackForbidden(f"playback refused: {reason}", reason=reason) from err
            except HeadendError as err:
                raise self._failed(err) from err
        self.outage.recovered()
        return Lease(lease.lease_id, lease.mac, lease.channel_id)

    async def heartbeat(self, mac: str, lease_id: str) -> bool:
        """Extend a lease; False when the service no longer knows it."""
        async with self._slot():
            try:
                await self._client.heartbeat(mac, lease_id)
            except (LeaseNotFound, DeviceNotFound, InvalidField):
                return False
            except HeadendError as err:
                raise self._failed(err) from err
        self.outage.recovered()
        return True

    async def end_lease(self, mac: str, lease_id: str) -> None:
        """Give the slot back (best effort: an unknown lease is already gone)."""
        with contextlib.suppress(HeadendError):
            async with self._slot():
                await self._client.end_lease(mac, lease_id)

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._client.close()


@dataclass
class _Held:
    lease: Lease
    used_at: float
    beaten_at: float


class LeaseKeeper:
    """The leases this front door knows, kept alive by batched heartbeats.

    A poll calls :meth:`touch` (no I/O); :meth:`beat` (run every
    ``interval_seconds`` by :meth:`run`) sends one ``Heartbeat`` for each lease
    used since its last beat, and forgets leases unused for ``idle_seconds``
    (the box stopped: the subscriber service frees the slot after its TTL).
    A heartbeat that fails (the service is down) keeps its lease: the next
    round tries again, well within the service's lease TTL.
    """

    def __init__(
        self,
        subscriber: SubscriberCache,
        *,
        interval_seconds: float,
        idle_seconds: float,
        clock: Clock = time.monotonic,
        max_in_flight: int = 16,
    ) -> None:
        self._subscriber = subscriber
        self._interval = interval_seconds
        self._idle = idle_seconds
        # Heartbeats in flight at once: a round is one call per playing box, and must
        # not take every call slot of the client from the boxes' own requests.
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._by_mac: dict[str, str] = {}  # the one lease each box holds
        self.beats = 0

    def add(self, lease: Lease) -> Lease | None:
        """A lease just started (or confirmed by a heartbeat); returns the box's other
        lease, which this one replaces (one stream per box)."""
        now = self._clock()
        previous = self._by_mac.get(lease.mac)
        replaced = None
        if previous is not None and previous != lease.lease_id:
            replaced = self.drop(previous)
        self._held[lease.lease_id] = _Held(lease, now, now)
        self._by_mac[lease.mac] = lease.lease_id
        return replaced

    def touch(self, lease_id: str, *, mac: str, channel: str) -> bool:
        """Mark a known lease of this box and channel as used; False if unknown here."""
        held = self._held.get(lease_id)
        if held is None or held.lease.mac != mac or held.lease.channel != channel:
            return False
        held.used_at = self._clock()
        return True

    def get(self, lease_id: str) -> Lease | None:
        """A held lease."""
        held = self._held.get(lease_id)
        return held.lease if held else None

    def of_box(self, mac: str) -> Lease | None:
        """The lease this replica holds for the box (one stream a box), if any."""
        lease_id = self._by_mac.get(mac)
        return self.get(lease_id) if lease_id else None

    def drop(self, lease_id: str) -> Lease | None:
        """Forget a lease (the box ended it)."""
        held = self._held.pop(lease_id, None)
        if held is None:
            return None
        if self._by_mac.get(held.lease.mac) == lease_id:
            del self._by_mac[held.lease.mac]
        return held.lease

    async def beat(self) -> int:
        """One round of heartbeats for the leases used since their last beat."""
        now = self._clock()
        due = []
        for lease_id, held in list(self._held.items()):
            if now - held.used_at > self._idle:
                self.drop(lease_id)
            elif held.used_at > held.beaten_at:
                due.append(held)
        gate = asyncio.Semaphore(self._max_in_flight)

        async def beat_one(held: _Held) -> bool:
            async with gate:
                return await self._subscriber.heartbeat(held.lease.mac, held.lease.lease_id)

        results = await asyncio.gather(*(beat_one(h) for h in due), return_exceptions=True)
        for held, ok in zip(due, results, strict=True):
            if ok is True:
                held.beaten_at = now
            elif ok is False:
                # Gone at the service: the next poll starts a fresh lease.
                self.drop(held.lease.lease_id)
            elif not isinstance(ok, UpstreamUnavailable):
                raise ok  # a bug, not an outage: let the supervisor log and restart
        self.beats += len(due)
        return len(due)

    async def run(self) -> None:
        """Beat every interval until cancelled (run under a ``Supervisor``)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.beat()
