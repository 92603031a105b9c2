"""The front door's cached view of the EPG and subscriber services (gRPC clients).

The box-facing hot path (variant playlist polls) must not make a gRPC round
trip per request, so answers are cached here:

- EPG channels and each channel's programmes around now are cached until the
  EPG's ``WatchChanges`` stream says they changed (a ``resync`` change, or a
  broken stream, drops everything), with ``guide_ttl_seconds`` as a safety net.
- Subscriber answers (``Authorize`` per box and channel, ``EffectiveChannels``
  per subscriber) are cached for at most ``entitlement_ttl_seconds`` (the
  subscriber service has no change feed, so this TTL is THE bound on how long
  a suspension or revocation takes to reach a playing box), and are dropped
  early as soon as any answer shows a newer subscriber version.
- Lease heartbeats are batched: polls only mark a lease as used, and
  :class:`LeaseKeeper` sends one ``Heartbeat`` per used lease per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc

from cdn_ctl.errors import (
    LoginFailed,
    PlaybackForbidden,
    ProgrammeUnknown,
    StreamLimit,
    UpstreamUnavailable,
)
from epg.domain import Channel, Programme
from epg.server import channel_from_pb, programme_from_pb
from headend.rpc import ClientTls, bearer, client_channel, error_details
from protos import epg_pb2, epg_pb2_grpc, subscriber_pb2, subscriber_pb2_grpc

log = logging.getLogger(__name__)

Clock = Callable[[], float]


_DENY = {
    "NOT_ENTITLED": "not_entitled",
    "SUBSCRIBER_SUSPENDED": "subscriber_suspended",
    "SERVICE_EXPIRED": "service_expired",
    "DEVICE_BLOCKED": "device_blocked",
    "UNKNOWN_DEVICE": "unknown_device",
    "SUBSCRIBER_TERMINATED": "subscriber_terminated",
    "CARRIER_NOT_ACTIVE": "carrier_not_active",
}


def deny_reason(name: str) -> str:
    """The box-facing reason for a subscriber ``DenyReason`` name."""
    return _DENY.get(name, name.lower() or "not_entitled")


def _unavailable(service: str, err: grpc.aio.AioRpcError) -> UpstreamUnavailable:
    log.warning(
        "upstream call failed",
        extra={"service": service, "code": err.code().name, "details": err.details()},
    )
    return UpstreamUnavailable(
        f"{service} unavailable: {err.code().name}", reason=f"{service}_unavailable"
    )


# --------------------------------------------------------------------------- subscriber


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
    """``SubscriberService`` with an admin key: login, cached authorization, leases."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        entitlement_ttl_seconds: float,
        timeout_seconds: float = 3.0,
        clock: Clock = time.monotonic,
        tls: ClientTls | None = None,
    ) -> None:
        self._channel = client_channel(target, tls=tls)
        self._stub = subscriber_pb2_grpc.SubscriberServiceStub(self._channel)
        self._md = bearer(api_key)
        self._timeout = timeout_seconds
        self._ttl = entitlement_ttl_seconds
        self._clock = clock
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._channels: dict[tuple[str, str], tuple[int, frozenset[str], float]] = {}
        # The newest version seen per (carrier, subscriber): older cached answers are stale.
        self._versions: dict[tuple[str, str], int] = {}

    def _saw(self, key: tuple[str, str], version: int) -> None:
        if version > self._versions.get(key, 0):
            self._versions[key] = version

    def _fresh(self, key: tuple[str, str], version: int, at: float) -> bool:
        return self._clock() - at < self._ttl and version >= self._versions.get(key, 0)

    async def login(self, mac: str, secret: str) -> Login:
        """Check a box's credentials; ``LoginFailed`` when they do not match."""
        try:
            resp = await self._stub.DeviceLogin(
                subscriber_pb2.DeviceLoginRequest(mac=mac, device_secret=secret),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                raise LoginFailed("unknown device or wrong secret", reason="login_failed") from err
            raise _unavailable("subscriber", err) from err
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
        """May this box play this channel now? Cached per (box, channel)."""
        verdict = self.cached_verdict(mac, channel)
        if verdict is not None:
            return verdict
        try:
            resp = await self._stub.Authorize(
                subscriber_pb2.AuthorizeRequest(mac=mac, channel_id=channel),
                metadata=self._md,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise PlaybackForbidden("not entitled", reason="not_entitled") from err
            raise _unavailable("subscriber", err) from err
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
        try:
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
            raise _unavailable("subscriber", err) from err
        self._saw(key, resp.subscriber_version)
        channels = frozenset(resp.channel_ids)
        self._channels[key] = (resp.subscriber_version, channels, self._clock())
        return channels

    async def start_session(self, mac: str, channel: str) -> Lease:
        """Take a stream slot: ``StreamLimit`` over the limit, ``PlaybackForbidden`` if refused."""
        try:
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
            raise _unavailable("subscriber", err) from err
        return Lease(resp.session_id, resp.mac, resp.channel_id)

    async def heartbeat(self, mac: str, session_id: str) -> bool:
        """Extend a lease; False when the service no longer knows it."""
        try:
            await self._stub.Heartbeat(
                subscriber_pb2.HeartbeatRequest(mac=mac, session_id=session_id),
                metadata=self._md,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return False
            raise _unavailable("subscriber", err) from err
        return True

    async def end_session(self, mac: str, session_id: str) -> None:
        """Give the slot back (best effort: an unknown lease is already gone)."""
        with contextlib.suppress(grpc.aio.AioRpcError):
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
    """

    def __init__(
        self,
        subscriber: SubscriberClient,
        *,
        interval_seconds: float,
        idle_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._subscriber = subscriber
        self._interval = interval_seconds
        self._idle = idle_seconds
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
        results = await asyncio.gather(
            *(self._subscriber.heartbeat(h.lease.mac, h.lease.session_id) for h in due),
            return_exceptions=True,
        )
        for held, ok in zip(due, results, strict=True):
            if ok is True:
                held.beaten_at = now
            elif ok is False:
                # Gone at the service: the next poll starts a fresh lease.
                self.drop(held.lease.session_id)
        self.beats += len(due)
        return len(due)

    async def run(self) -> None:
        """Beat every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.beat()
            except Exception:  # keep beating whatever one round hit
                log.exception("lease heartbeat round failed")


# --------------------------------------------------------------------------- EPG


@dataclass
class _Guide:
    programmes: tuple[Programme, ...]
    start: datetime
    stop: datetime
    at: float


class EpgCache:
    """``EpgService`` channels and programmes around now, invalidated by ``WatchChanges``."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        guide_ttl_seconds: float = 300.0,
        past: timedelta = timedelta(days=7),
        future: timedelta = timedelta(days=8),
        timeout_seconds: float = 3.0,
        clock: Clock = time.monotonic,
        tls: ClientTls | None = None,
    ) -> None:
        self.guide_ttl_seconds = guide_ttl_seconds
        self.past = past
        self.future = future
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        # Set while the watch stream is positioned (every later change will be seen).
        self.watching = asyncio.Event()
        # Bumped on every invalidation: lets callers cache what they derive.
        self.generation = 0
        self._channels: dict[str, Channel] | None = None
        self._channels_at = 0.0
        self._guides: dict[str, _Guide] = {}
        self._version = 0
        self._channel = client_channel(target, tls=tls)
        self._stub = epg_pb2_grpc.EpgServiceStub(self._channel)
        self._md = bearer(api_key)

    def invalidate(self, channel_id: str | None = None, *, channels: bool = False) -> None:
        """Drop one channel's programmes, the channel list, or (no argument) everything."""
        self.generation += 1
        if channel_id is None and not channels:
            self._channels = None
            self._guides.clear()
            return
        if channels:
            self._channels = None
        if channel_id is not None:
            self._guides.pop(channel_id, None)

    async def channels(self) -> dict[str, Channel]:
        """Every active channel by id."""
        if self._channels is not None and self.clock() - self._channels_at < self.guide_ttl_seconds:
            return self._channels
        try:
            resp = await self._stub.ListChannels(
                epg_pb2.ListChannelsRequest(active_only=True),
                metadata=self._md,
                timeout=self.timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            raise _unavailable("epg", err) from err
        self._channels = {c.id: channel_from_pb(c) for c in resp.channels}
        self._channels_at = self.clock()
        return self._channels

    async def programmes(self, channel_id: str, now: datetime) -> tuple[Programme, ...]:
        """The channel's programmes from ``now - past`` to ``now + future`` (cached)."""
        guide = self._guides.get(channel_id)
        if (
            guide is not None
            and self.clock() - guide.at < self.guide_ttl_seconds
            and guide.start <= now - self.past / 2
            and now + self.future / 2 <= guide.stop
        ):
            return guide.programmes
        # The EPG refuses sub-second instants.
        now = now.replace(microsecond=0)
        start, stop = now - self.past, now + self.future
        request = epg_pb2.RangeRequest(channel_id=channel_id)
        request.start.FromDatetime(start)
        request.stop.FromDatetime(stop)
        generation = self.generation
        try:
            resp = await self._stub.Range(request, metadata=self._md, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                return ()
            raise _unavailable("epg", err) from err
        programmes = tuple(
            programme_from_pb(p, channel_id, i) for i, p in enumerate(resp.programmes)
        )
        # A change that arrived during the call makes this answer stale: do not keep it.
        if generation == self.generation:
            self._guides[channel_id] = _Guide(programmes, start, stop, self.clock())
        return programmes

    async def programme(self, channel_id: str, programme_id: str, now: datetime) -> Programme:
        """One programme of the channel (from the cached window, else ``GetProgramme``)."""
        for p in await self.programmes(channel_id, now):
            if p.id == programme_id:
                return p
        try:
            msg = await self._stub.GetProgramme(
                epg_pb2.GetProgrammeRequest(id=programme_id),
                metadata=self._md,
                timeout=self.timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise ProgrammeUnknown(
                    f"no programme {programme_id[:64]}", reason="unknown_programme"
                ) from err
            raise _unavailable("epg", err) from err
        if msg.channel_id != channel_id:
            raise ProgrammeUnknown(
                f"no programme {programme_id[:64]} on this channel", reason="unknown_programme"
            )
        return programme_from_pb(msg, channel_id, 0)

    def apply(self, kind: str, channel_id: str, version: int) -> None:
        """One change from the feed."""
        self._version = max(self._version, version)
        if kind == "programmes" and channel_id:
            self.invalidate(channel_id)
        elif kind == "channel":
            self.invalidate(channel_id or None, channels=True)
        else:  # "resync" or anything new: drop everything
            self.invalidate()

    async def watch(self, *, retry_seconds: float = 1.0) -> None:
        """Follow ``WatchChanges`` forever (cancel to stop), reconnecting after errors."""
        while True:
            call = self._stub.WatchChanges(
                epg_pb2.WatchChangesRequest(from_version=self._version), metadata=self._md
            )
            try:
                await call.initial_metadata()
                # Anything may have changed while we were not watching.
                self.invalidate()
                self.watching.set()
                async for change in call:
                    self.apply(change.kind, change.channel_id, change.version)
            except grpc.aio.AioRpcError as err:
                log.warning("epg change feed broke; reconnecting", extra={"code": err.code().name})
            finally:
                call.cancel()
            self.watching.clear()
            self.invalidate()
            await asyncio.sleep(retry_seconds)

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._channel.close()


def on_air(programmes: Iterable[Programme], at: datetime) -> Programme | None:
    """The programme airing at ``at``."""
    for p in programmes:
        if p.start <= at < p.stop:
            return p
    return None


def utc_now() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)
