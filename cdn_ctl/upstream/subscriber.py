"""The front door's client of ``SubscriberService``: login, cached authorization, leases.

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
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from cdn_ctl.errors import LoginFailed, PlaybackForbidden, StreamLimit, UpstreamUnavailable
from cdn_ctl.upstream.common import CHANNEL_OPTIONS, Clock, Outage, deny_reason, unavailable
from headend.rpc import ClientTls, bearer, client_channel, error_details
from protos import subscriber_pb2, subscriber_pb2_grpc

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


@dataclass(frozen=True, slots=True)
class Verdict:
    """A cached ``Authorize`` answer."""

    allowed: bool
    reason: str
    version: int
    subscriber: tuple[str, str]
    at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A concurrency lease (its id is the routing session id)."""

    session_id: str
    mac: str
    channel: str


class SubscriberClient:
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
        self._channel = client_channel(target, tls=tls, options=CHANNEL_OPTIONS)
        self._stub = subscriber_pb2_grpc.SubscriberServiceStub(self._channel)
        # Every box's calls share this one channel (one HTTP/2 connection; a heartbeat
        # round alone is a call per playing box), so they are kept below the service's
        # streams per connection (RpcSettings.max_streams_per_connection, 100 by
        # default): grpc does not hold the calls over that limit, the server refuses
        # them (RST_STREAM REFUSED_STREAM: UNAVAILABLE "Stream removed").
        self._slots = asyncio.Semaphore(max_in_flight)
        self._md = bearer(api_key)
        self._timeout = timeout_seconds
        self._ttl = entitlement_ttl_seconds
        self._stale = stale_seconds
        self._clock = clock
        self.outage = Outage(clock)
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._channels: dict[tuple[str, str], tuple[int, frozenset[str], float]] = {}
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

    async def login(self, mac: str, secret: str) -> Login:
        """Check a box's credentials; ``LoginFailed`` when they do not match."""
        try:
            async with self._slot():
                resp = await self._stub.DeviceLogin(
                    subscriber_pb2.DeviceLoginRequest(mac=mac, device_secret=secret),
                    timeout=self._timeout,
                )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                raise LoginFailed("unknown device or wrong secret", reason="login_failed") from err
            self.outage.failed(err)
            raise unavailable("subscriber", err) from err
        self.outage.recovered()
        key = (resp.carrier_id, resp.subscriber_id)
        self._saw(key, resp.subscriber_version)
        channels = frozenset(resp.channel_ids)
        self._channels[key] = (resp.subscriber_version, channels, self._clock())
        deny = subscriber_pb2.DenyReason.Name(resp.deny_reason) if resp.deny_reason else ""
        return Login(
            resp.carrier_id,
            resp.subscriber_id,
            resp.mac,
            resp.region_code,
            resp.subscriber_version,
            channels,
            deny_reason(deny) if deny else "",
        )

    def cached_verdict(self, mac: str, channel: str) -> Verdict | None:
        """The cached answer if still fresh (the hot path: no I/O)."""
        verdict = self._verdicts.get((mac, channel))
        if verdict is not None and self._fresh(verdict.subscriber, verdict.version, verdict.at):
            return verdict
        return None

    async def authorize(self, mac: str, channel: str) -> Verdict:
        """May this box play this channel now? Cached per (box, channel); an expired answer
        stands in (up to ``stale_seconds``) while the service cannot answer."""
        verdict = self.cached_verdict(mac, channel)
        if verdict is not None:
            return verdict
        old = self._verdicts.get((mac, channel))
        stale = old if old and self._usable(old.subscriber, old.version, old.at) else None
        if stale is not None and self.outage.active:
            return stale
        try:
            async with self._slot():
                resp = await self._stub.Authorize(
                    subscriber_pb2.AuthorizeRequest(mac=mac, channel_id=channel),
                    metadata=self._md,
                    timeout=self._timeout,
                )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise PlaybackForbidden("not entitled", reason="not_entitled") from err
            self.outage.failed(err)
            failure = unavailable("subscriber", err)
            if stale is not None:
                return stale
            raise failure from err
        self.outage.recovered()
        key = (resp.carrier_id, resp.subscriber_id)
        self._saw(key, resp.subscriber_version)
        reason = "" if resp.allowed else deny_reason(subscriber_pb2.DenyReason.Name(resp.reason))
        verdict = Verdict(resp.allowed, reason, resp.subscriber_version, key, self._clock())
        self._verdicts[(mac, channel)] = verdict
        return verdict

    async def require(self, mac: str, channel: str) -> None:
        """``PlaybackForbidden`` (403 with the reason) unless the box may play ``channel``."""
        verdict = await self.authorize(mac, channel)
        if not verdict.allowed:
            raise PlaybackForbidden(f"playback refused: {verdict.reason}", reason=verdict.reason)

    async def channels(self, carrier: str, subscriber: str) -> frozenset[str]:
        """The subscriber's entitled channels now (cached like authorizations)."""
        key = (carrier, subscriber)
        cached = self._channels.get(key)
        if cached is not None and self._fresh(key, cached[0], cached[2]):
            return cached[1]
        stale = cached[1] if cached and self._usable(key, cached[0], cached[2]) else None
        if stale is not None and self.outage.active:
            return stale
        try:
            async with self._slot():
                resp = await self._stub.EffectiveChannels(
                    subscriber_pb2.EffectiveChannelsRequest(
                        carrier_id=carrier, subscriber_id=subscriber
                    ),
                    metadata=self._md,
                    timeout=self._timeout,
                )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise PlaybackForbidden("no such subscriber", reason="unknown_device") from err
            self.outage.failed(err)
            failure = unavailable("subscriber", err)
            if stale is not None:
                return stale
            raise failure from err
        self.outage.recovered()
        self._saw(key, resp.subscriber_version)
        channels = frozenset(resp.channel_ids)
        self._channels[key] = (resp.subscriber_version, channels, self._clock())
        return channels

    async def start_session(self, mac: str, channel: str) -> Lease:
        """Take a stream slot: ``StreamLimit`` over the limit, ``PlaybackForbidden`` if refused."""
        try:
            async with self._slot():
                resp = await self._stub.StartSession(
                    subscriber_pb2.StartSessionRequest(mac=mac, channel_id=channel),
                    metadata=self._md,
                    timeout=self._timeout,
                )
        except grpc.aio.AioRpcError as err:
            code = err.code()
            meta = error_details(err).metadata
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise StreamLimit(
                    "all concurrent streams of this subscriber are in use",
                    reason="stream_limit",
                    limit=meta.get("limit", ""),
                ) from err
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                reason = deny_reason(meta.get("reason", "").upper())
                # The cached verdict said yes; the service knows better now.
                self._verdicts.pop((mac, channel), None)
                raise PlaybackForbidden(f"playback refused: {reason}", reason=reason) from err
            self.outage.failed(err)
            raise unavailable("subscriber", err) from err
        self.outage.recovered()
        return Lease(resp.session_id, resp.mac, resp.channel_id)

    async def heartbeat(self, mac: str, session_id: str) -> bool:
        """Extend a lease; False when the service no longer knows it."""
        try:
            async with self._slot():
                await self._stub.Heartbeat(
                    subscriber_pb2.HeartbeatRequest(mac=mac, session_id=session_id),
                    metadata=self._md,
                    timeout=self._timeout,
                )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return False
            self.outage.failed(err)
            raise unavailable("subscriber", err) from err
        self.outage.recovered()
        return True

    async def end_session(self, mac: str, session_id: str) -> None:
        """Give the slot back (best effort: an unknown lease is already gone)."""
        with contextlib.suppress(grpc.aio.AioRpcError, UpstreamUnavailable):
            async with self._slot():
                await self._stub.EndSession(
                    subscriber_pb2.EndSessionRequest(mac=mac, session_id=session_id),
                    metadata=self._md,
                    timeout=self._timeout,
                )

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._channel.close()


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
        subscriber: SubscriberClient,
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
        if previous is not None and previous != lease.session_id:
            replaced = self.drop(previous)
        self._held[lease.session_id] = _Held(lease, now, now)
        self._by_mac[lease.mac] = lease.session_id
        return replaced

    def touch(self, session_id: str, *, mac: str, channel: str) -> bool:
        """Mark a known lease of this box and channel as used; False if unknown here."""
        held = self._held.get(session_id)
        if held is None or held.lease.mac != mac or held.lease.channel != channel:
            return False
        held.used_at = self._clock()
        return True

    def get(self, session_id: str) -> Lease | None:
        """A held lease."""
        held = self._held.get(session_id)
        return held.lease if held else None

    def drop(self, session_id: str) -> Lease | None:
        """Forget a lease (the box ended it)."""
        held = self._held.pop(session_id, None)
        if held is None:
            return None
        if self._by_mac.get(held.lease.mac) == session_id:
            del self._by_mac[held.lease.mac]
        return held.lease

    async def beat(self) -> int:
        """One round of heartbeats for the leases used since their last beat."""
        now = self._clock()
        due = []
        for sid, held in list(self._held.items()):
            if now - held.used_at > self._idle:
                self.drop(sid)
            elif held.used_at > held.beaten_at:
                due.append(held)
        gate = asyncio.Semaphore(self._max_in_flight)

        async def beat_one(held: _Held) -> bool:
            async with gate:
                return await self._subscriber.heartbeat(held.lease.mac, held.lease.session_id)

        results = await asyncio.gather(*(beat_one(h) for h in due), return_exceptions=True)
        for held, ok in zip(due, results, strict=True):
            if ok is True:
                held.beaten_at = now
            elif ok is False:
                # Gone at the service: the next poll starts a fresh lease.
                self.drop(held.lease.session_id)
            elif not isinstance(ok, UpstreamUnavailable):
                raise ok  # a bug, not an outage: let the supervisor log and restart
        self.beats += len(due)
        return len(due)

    async def run(self) -> None:
        """Beat every interval until cancelled (run under a ``Supervisor``)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.beat()
