"""The set-top box front door (aiohttp): the only public face a box talks to.

A box needs only this address::

    POST /api/login {"mac": "..", "secret": ".."}
        200 {"token", "expires_at", "lineup_url", "guide_url"}
    GET  /lineup.m3u                     extended M3U, entitled channels only
    GET  /guide.xml.gz                   XMLTV (gzip), entitled channels, blackouts -> slate
    GET  /live/{ch}/master.m3u8          lease started; 200 master whose variants point back here
    GET  /live/{ch}/{rung}/index.m3u8?session=LEASE
        302 to the lease's edge (a short-lived signed URL); heartbeats the lease
    GET  /catchup/{ch}/master.m3u8?utc=&utcend=   (or ?programme=ID)
        302 to an edge, signed for exactly that window (/catchup/{ch}/w/{from}/{to}/...)
    POST /api/stop?session=LEASE          the box stopped: give the stream slot back
    GET  /healthz                        {"status": "ok"}; nothing else about the platform

Every route but login and ``/healthz`` needs a box token (``Authorization:
Bearer`` or, for players that cannot send headers, ``?token=``); routing,
steering, debug output and metrics are on the admin listener
(:mod:`cdn_ctl.http`), never here. The access log records paths only.

Failover design (observed with FFmpeg 5.1's HLS demuxer): after a 302 it
resolves relative URIs against the redirect target AND keeps reloading the
variant playlist from that target, so a master redirected to an edge pins the
player to that edge for the whole session. The front door therefore serves
the master itself (fetched once per channel from an edge, cached for
``master_ttl_seconds``) with variant URIs that point back to the front door;
every variant reload comes back here, is checked and heartbeat-counted and
gets a fresh short-lived 302 to the lease's edge while it is up, or to a
healthy one once it is down. That is also how a suspension, a blackout or a
refused entitlement reaches a playing box: its next reload is refused, and
the URL it holds expires within ``CDN_URL_TTL_SECONDS``.

Errors go through :func:`cdn_ctl.http.error_response` (the face's one
mapping): 401 bad/expired token, 403 not entitled / blacked out / device
blocked / catch-up refused / token shared, 409 lease replaced, 429 +
Retry-After over the stream limit or a rate limit, 503 + Retry-After when no
edge (or upstream service) can serve, each with a machine-readable ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from cdn_ctl.domain import validate_channel
from cdn_ctl.errors import (
    BadPlayRequest,
    BlackedOut,
    CatchupRefused,
    CdnError,
    ChannelOffAir,
    LeaseReplaced,
    LoginFailed,
    NoEdgeAvailable,
    PlaybackForbidden,
    ProgrammeUnknown,
    RateLimited,
    SessionRejected,
    UpstreamUnavailable,
)
from cdn_ctl.frontdoor.guard import AddressWatch, ClientAddresses, FetchLimiter, LoginGuard
from cdn_ctl.frontdoor.policy import blacked_out, epoch, rewrite_master, slate_for
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.http import Handler, error_response, mapped, redirect_response
from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.service import RouteRequest, RoutingService
from cdn_ctl.session import DeviceSession, SessionExpired, SessionSigner
from cdn_ctl.upstream import (
    EpgCache,
    Lease,
    LeaseKeeper,
    SubscriberClient,
    on_air,
    utc_now,
)
from epg.domain import Channel, Programme
from epg.xmltv import write_xmltv
from headend import errors

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_LEASE = re.compile(r"^[0-9a-f]{16}$")
_RUNG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.m3u8$")
# Routes a box reaches without a token.
_OPEN_PATHS = frozenset({"/api/login", "/healthz"})
# Bounds on per-replica memos (verified tokens, replaced leases).
_VERIFIED_MAX = 65_536
# A master fetched by the front door itself (not a box): unbound and short-lived.
_MASTER_URL_SECONDS = 60

SESSION: web.RequestKey[DeviceSession] = web.RequestKey("frontdoor.session", DeviceSession)
CLIENT: web.RequestKey[str] = web.RequestKey("frontdoor.client", str)


@dataclass
class _Master:
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Guards:
    """The front door's defences that need Redis (shared across replicas)."""

    login: LoginGuard | None = None
    addresses: AddressWatch | None = None
    fetches: FetchLimiter | None = None


# --------------------------------------------------------------------------- the face


class FrontDoor:
    """Box-facing handlers behind the box-token middleware: the public face."""

    def __init__(
        self,
        settings: FrontDoorSettings,
        *,
        routing: RoutingService,
        subscriber: SubscriberClient,
        epg: EpgCache,
        http: aiohttp.ClientSession,
        guards: Guards | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.guards = guards or Guards()
        self.clients = ClientAddresses(settings.trusted_proxies)
        self.routing = routing
        self.subscriber = subscriber
        self.epg = epg
        self.http = http
        self.signer: SessionSigner = settings.signer()
        self.leases = LeaseKeeper(
            subscriber,
            interval_seconds=settings.heartbeat_seconds,
            idle_seconds=max(60.0, settings.heartbeat_seconds * 3),
        )
        self._now = now
        self._verified: dict[str, DeviceSession] = {}
        self._masters: dict[str, _Master] = {}
        self._airing: dict[str, tuple[Programme | None, datetime, int]] = {}
        self._aliases: dict[str, str] = {}
        # Leases a newer stream of the same box replaced -> the one that replaced them.
        self._replaced: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def connect(
        cls,
        settings: FrontDoorSettings,
        *,
        routing: RoutingService,
        http: aiohttp.ClientSession,
        guards: Guards | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> FrontDoor:
        """A front door with its own gRPC clients of the EPG and subscriber services."""
        subscriber = SubscriberClient(
            settings.subscriber_target,
            settings.api_key,
            entitlement_ttl_seconds=settings.entitlement_ttl_seconds,
            tls=settings.grpc_tls,
        )
        epg = EpgCache(
            settings.epg_target,
            settings.api_key,
            guide_ttl_seconds=settings.guide_ttl_seconds,
            tls=settings.grpc_tls,
        )
        return cls(
            settings,
            routing=routing,
            subscriber=subscriber,
            epg=epg,
            http=http,
            guards=guards,
            now=now,
        )

    # ---- lifecycle

    async def start(self) -> None:
        """Follow the EPG change feed and start batched heartbeats."""
        self._tasks = [
            asyncio.create_task(self.epg.watch()),
            asyncio.create_task(self.leases.run()),
        ]
        if self.guards.fetches is not None:
            self._tasks.append(asyncio.create_task(self.guards.fetches.run()))

    async def stop(self) -> None:
        """Stop the background tasks and close the gRPC channels."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.epg.close()
        await self.subscriber.close()

    # ---- session

    @staticmethod
    def _token(request: web.Request) -> tuple[str, bool]:
        """The box token and whether it came in the query (players without headers)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:].strip(), False
        return request.query.get("token", ""), True

    def verify(self, token: str) -> DeviceSession:
        """The session a token stands for (verified once, then remembered until expiry)."""
        now = self._now()
        if not token:
            raise SessionRejected("a session token is required", reason="session_missing")
        session = self._verified.get(token)
        if session is None:
            try:
                session = self.signer.verify(token, now=now)
            except SessionExpired as err:
                raise SessionRejected(err.message, reason="session_expired") from err
            except errors.Unauthenticated as err:
                raise SessionRejected(err.message, reason="session_invalid") from err
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = session
        elif session.expires_at <= now:
            del self._verified[token]
            raise SessionRejected("session expired; log in again", reason="session_expired")
        return session

    async def _admit(self, session: DeviceSession, client: str) -> None:
        """The token's binding, sharing and rate checks for one request from ``client``."""
        if not self.settings.token_binding.admits(session.address, client):
            raise SessionRejected(
                "this session belongs to another address; log in again",
                reason="session_wrong_address",
            )
        guards = self.guards
        if guards.fetches is not None and not guards.fetches.allow(session.token_id):
            raise RateLimited("too many requests for this session", reason="rate_limited")
        if guards.addresses is not None and not await guards.addresses.allow(
            session.token_id, client
        ):
            raise PlaybackForbidden(
                "this session is in use from several places at once", reason="session_shared"
            )

    @web.middleware
    async def session_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Authenticate every box request but login and health; nothing else is served."""
        client = self.clients.of(request)
        request[CLIENT] = client
        if request.path in _OPEN_PATHS:
            return await handler(request)
        try:
            token, _ = self._token(request)
            session = self.verify(token)
            await self._admit(session, client)
        except errors.HeadendError as err:
            return error_response(err)
        request[SESSION] = session
        return await handler(request)

    @property
    def middlewares(self) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
        """The middlewares of the public app (see :func:`create_box_app`)."""
        return [self.session_middleware]

    def add_routes(self, app: web.Application) -> None:
        """Mount the box-facing routes (and nothing else)."""
        app.router.add_post("/api/login", mapped(self.login))
        app.router.add_post("/api/stop", mapped(self.stop_playback))
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/lineup.m3u", mapped(self.lineup))
        app.router.add_get("/guide.xml.gz", mapped(self.guide))
        app.router.add_get("/live/{channel}/master.m3u8", mapped(self.live_master))
        app.router.add_get("/live/{channel}/{rung}/{name}", mapped(self.live_variant))
        app.router.add_get("/catchup/{channel}/master.m3u8", mapped(self.catchup))

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz`` for load balancers: up or not, and nothing about the platform."""
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})

    def _base(self, request: web.Request) -> str:
        return self.settings.public_url or f"{request.scheme}://{request.host}"

    # ---- login, lineup, guide

    async def login(self, request: web.Request) -> web.Response:
        """``POST /api/login`` {mac, secret} -> a session token and where to go next."""
        client = request[CLIENT]
        if request.content_length is not None and request.content_length > 4096:
            raise BadPlayRequest("body", "too large")
        try:
            body = await asyncio.wait_for(request.content.read(4097), 10)
            parsed = _json_object(body)
        except (ValueError, TimeoutError) as err:
            raise BadPlayRequest("body", "must be JSON {mac, secret}") from err
        mac, secret = parsed.get("mac"), parsed.get("secret")
        if not isinstance(mac, str) or not isinstance(secret, str) or not mac or not secret:
            raise LoginFailed("mac and secret are required", reason="login_failed")
        if len(mac) > 64 or len(secret) > 256:
            raise LoginFailed("unknown device or wrong secret", reason="login_failed")
        guard, box = self.guards.login, mac.lower()
        if guard is not None:
            wait = await guard.retry_after(box, client)
            if wait > 0:
                raise RateLimited(
                    "too many failed logins; try again later",
                    reason="login_locked",
                    retry_after=str(max(1, round(wait))),
                )
        try:
            login = await self.subscriber.login(mac, secret)
        except LoginFailed:
            if guard is not None:
                await guard.failed(box, client)
            log.warning("box login failed", extra={"client": client, "mac": box[:32]})
            raise
        if guard is not None:
            await guard.succeeded(box)
        if login.deny:
            raise PlaybackForbidden(f"this box may not play: {login.deny}", reason=login.deny)
        token, session = self.signer.issue(
            carrier=login.carrier,
            subscriber=login.subscriber,
            mac=login.mac,
            region=login.region,
            version=login.version,
            now=self._now(),
            address=client,
        )
        base = self._base(request)
        return web.json_response(
            {
                "token": token,
                "expires_at": session.expires_at.isoformat(),
                "lineup_url": f"{base}/lineup.m3u",
                "guide_url": f"{base}/guide.xml.gz",
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _entitled(self, session: DeviceSession) -> list[Channel]:
        channels = await self.epg.channels()
        allowed = await self.subscriber.channels(session.carrier, session.subscriber)
        return [channels[c] for c in sorted(allowed) if c in channels]

    async def lineup(self, request: web.Request) -> web.Response:
        """``GET /lineup.m3u``: the entitled channels as extended M3U."""
        session = request[SESSION]
        entries = [
            LineupEntry(c.id, c.number, c.name(), c.logo_url, c.group, c.catchup_days)
            for c in await self._entitled(session)
        ]
        base = self._base(request)
        text = render_m3u(
            entries, base_url=base, guide_url=f"{base}/guide.xml.gz", query=_token_query(request)
        )
        return web.Response(
            text=text, content_type="audio/x-mpegurl", headers={"Cache-Control": "no-store"}
        )

    async def guide(self, request: web.Request) -> web.Response:
        """``GET /guide.xml.gz``: XMLTV of the entitled channels, blackouts as slates."""
        session = request[SESSION]
        now = self._now()
        channels = await self._entitled(session)
        future = now + timedelta(days=self.settings.guide_future_days)
        programmes: list[Programme] = []
        for channel in channels:
            days = min(self.settings.guide_past_days, channel.catchup_days)
            past = now - timedelta(days=days)
            for p in await self.epg.programmes(channel.id, now):
                if p.stop > past and p.start < future:
                    programmes.append(slate_for(p) if blacked_out(p, session.region) else p)
        data = write_xmltv(channels, programmes, compress=True)
        return web.Response(
            body=data,
            content_type="application/gzip",
            headers={"Cache-Control": "private, max-age=300"},
        )

    # ---- playback

    def _channel(self, request: web.Request) -> str:
        try:
            return validate_channel(request.match_info["channel"])
        except CdnError as err:
            raise BadPlayRequest("channel", err.message, reason="bad_channel") from err

    async def _check_airing(self, channel: str, region: str, now: datetime) -> None:
        cached = self._airing.get(channel)
        if cached is None or cached[2] != self.epg.generation or now >= cached[1]:
            programmes = await self.epg.programmes(channel, now)
            current = on_air(programmes, now)
            later = [p.start for p in programmes if p.start > now]
            until = current.stop if current else min(later, default=now + timedelta(minutes=5))
            cached = (current, until, self.epg.generation)
            self._airing[channel] = cached
        current = cached[0]
        if current is not None and blacked_out(current, region):
            raise BlackedOut(
                "this programme is blacked out in your region",
                reason="blacked_out",
                slate=current.rights.blackout_slate,
            )

    async def _require(self, session: DeviceSession, channel: str) -> None:
        verdict = self.subscriber.cached_verdict(session.mac, channel)
        if verdict is None:
            verdict = await self.subscriber.authorize(session.mac, channel)
        if not verdict.allowed:
            raise PlaybackForbidden(f"playback refused: {verdict.reason}", reason=verdict.reason)

    def _remember(self, memo: dict[str, str], old: str, new: str) -> None:
        if len(memo) >= _VERIFIED_MAX:
            memo.clear()
        memo[old] = new

    async def _lease(self, session: DeviceSession, channel: str, held: str) -> str:
        """The box's lease for ``channel``: the one it holds, else a new one (may 429).

        A box has one stream at a time: a new lease replaces the box's other one (at the
        subscriber service and here), and a player still polling a replaced lease is
        refused rather than given a new one, so two players on one box cannot take turns.
        """
        if held in self._replaced:
            raise LeaseReplaced(
                "this box started another stream; this one has ended", reason="lease_replaced"
            )
        held = self._aliases.get(held, held)
        if held and self.leases.touch(held, mac=session.mac, channel=channel):
            return held
        if _LEASE.match(held) and await self.subscriber.heartbeat(session.mac, held):
            lease = self.leases.get(held)
            if lease is None or lease.channel == channel:
                self._keep(Lease(held, session.mac, channel))
                return held
        fresh = await self.subscriber.start_session(session.mac, channel)
        self._keep(fresh)
        if held:
            self._remember(self._aliases, held, fresh.session_id)
        return fresh.session_id

    def _keep(self, lease: Lease) -> None:
        old = self.leases.add(lease)
        if old is not None:
            self.routing.end(old.session_id)
            self._remember(self._replaced, old.session_id, lease.session_id)

    async def _master_text(self, channel: str, region: str) -> str:
        cached = self._masters.get(channel)
        clock = time.monotonic()
        if cached is not None and clock - cached.at < self.settings.master_ttl_seconds:
            return cached.text
        edges = self.routing.candidates(channel, region)
        scope = f"live/{channel}/"
        prefix = self.routing.sign(scope, lifetime_seconds=_MASTER_URL_SECONDS, client_ip=None)
        for edge in edges[:3]:
            url = f"http://{edge.address}{prefix}{scope}master.m3u8"
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    if resp.status == 404:
                        raise ChannelOffAir("this channel is not on air", reason="off_air")
                    if resp.status != 200:
                        log.warning(
                            "edge refused the master fetch",
                            extra={"edge_id": edge.edge_id, "status": resp.status},
                        )
                        continue
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError) as err:
                # Not yet marked down by the probes: try the next edge in rank order.
                log.warning(
                    "edge did not answer the master fetch",
                    extra={"edge_id": edge.edge_id, "error": type(err).__name__},
                )
                continue
            self._masters[channel] = _Master(text, clock)
            return text
        raise UpstreamUnavailable("no edge answered for this channel", reason="no_edge")

    def _redirect(
        self, request: web.Request, session: DeviceSession, kind: str, channel: str, path: str,
        lease: str,
    ) -> web.Response:  # fmt: skip
        try:
            redirect = self.routing.redirect(
                RouteRequest(kind, channel, path, session.region, request[CLIENT], lease)
            )
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err
        return redirect_response(redirect)

    async def live_master(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/master.m3u8``: entitlement, blackout, lease, then the master."""
        session = request[SESSION]
        channel = self._channel(request)
        now = self._now()
        await self._require(session, channel)
        await self._check_airing(channel, session.region, now)
        text = await self._master_text(channel, session.region)
        lease = await self._lease(session, channel, request.query.get("session", ""))
        query = f"session={lease}"
        token_query = _token_query(request)
        if token_query:
            query += f"&{token_query}"
        return web.Response(
            text=rewrite_master(text, query=query),
            content_type=PLAYLIST_TYPE,
            headers={"Cache-Control": "no-store", "X-Session": lease},
        )

    async def live_variant(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/{rung}/{name}.m3u8?session=``: keep the lease, 302 to the edge."""
        session = request[SESSION]
        channel = self._channel(request)
        rung, name = request.match_info["rung"], request.match_info["name"]
        if not _RUNG.match(rung) or not _NAME.match(name):
            raise BadPlayRequest("path", "not a variant playlist", reason="bad_path")
        held = request.query.get("session", "")
        if not held:
            raise BadPlayRequest("session", "required: the lease from the master playlist")
        await self._require(session, channel)
        await self._check_airing(channel, session.region, self._now())
        lease = await self._lease(session, channel, held)
        return self._redirect(request, session, "live", channel, f"{rung}/{name}", lease)

    async def _catchup_window(
        self, request: web.Request, channel: str, now: datetime
    ) -> tuple[datetime, datetime]:
        query = request.query
        if "programme" in query:
            p = await self.epg.programme(channel, query["programme"], now)
            return p.start, p.stop
        start, stop = epoch(query, "utc"), epoch(query, "utcend")
        if stop <= start:
            raise BadPlayRequest("utcend", "must be after utc", reason="bad_window")
        return start, stop

    async def catchup(self, request: web.Request) -> web.Response:
        """``GET /catchup/{ch}/master.m3u8``: check the window, lease, 302 signed for it."""
        session = request[SESSION]
        channel_id = self._channel(request)
        now = self._now()
        channel = (await self.epg.channels()).get(channel_id)
        if channel is None:
            raise ProgrammeUnknown("no such channel", reason="unknown_channel")
        start, stop = await self._catchup_window(request, channel_id, now)
        if start >= now:
            raise CatchupRefused("the window has not started yet", reason="not_yet_aired")
        if stop - start > timedelta(hours=self.settings.catchup_max_hours):
            raise BadPlayRequest("utcend", "window too long", reason="bad_window")
        if channel.catchup_days <= 0:
            raise CatchupRefused("this channel has no catch-up", reason="catchup_disabled")
        if start < now - timedelta(days=channel.catchup_days):
            raise CatchupRefused(
                f"older than the channel's {channel.catchup_days} catch-up days",
                reason="outside_catchup_days",
            )
        await self._require(session, channel_id)
        for p in await self.epg.programmes(channel_id, now):
            if p.start < stop and p.stop > start:
                if not p.rights.catchup_allowed:
                    raise CatchupRefused(
                        "this programme is not available for catch-up",
                        reason="catchup_not_allowed",
                        programme=p.id,
                    )
                if blacked_out(p, session.region):
                    raise BlackedOut(
                        "this programme is blacked out in your region", reason="blacked_out"
                    )
        lease = await self._lease(session, channel_id, request.query.get("session", ""))
        first, last = int(start.timestamp()), int(stop.timestamp())
        path = f"w/{first}/{last}/master.m3u8"
        return self._redirect(request, session, "catchup", channel_id, path, lease)

    async def stop_playback(self, request: web.Request) -> web.Response:
        """``POST /api/stop?session=``: the box stopped playing; free its stream slot."""
        session = request[SESSION]
        held = request.query.get("session", "")
        held = self._aliases.pop(held, held)
        lease = self.leases.get(held)
        if lease is not None and lease.mac == session.mac:
            self.leases.drop(held)
            self.routing.end(held)
        if _LEASE.match(held):
            await self.subscriber.end_session(session.mac, held)
        return web.Response(status=204)


def _token_query(request: web.Request) -> str:
    """``token=...`` for the URLs a box is given, when (and only when) the token that was
    verified came in the query: players that cannot send headers need it on every URL."""
    token, from_query = FrontDoor._token(request)
    return f"token={token}" if from_query and token else ""


def _json_object(body: bytes) -> dict[str, Any]:
    """A small flat JSON object (a login body); ``ValueError`` for anything else."""
    if len(body) > 4096:
        raise ValueError("too large")
    try:
        value = json.loads(body)
    except RecursionError as err:  # 4 KiB of '[' is deep enough to exhaust the stack
        raise ValueError("nested too deeply") from err
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def create_box_app(frontdoor: FrontDoor) -> web.Application:
    """The public app: the box routes behind the token middleware, nothing else."""
    app = web.Application(middlewares=frontdoor.middlewares, client_max_size=4096)
    frontdoor.add_routes(app)
    return app
