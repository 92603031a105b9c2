"""The set-top box front door (aiohttp): login, lineup, guide, live and catch-up playback.

A box needs only this address::

    POST /api/login {"mac": "..", "secret": ".."}
        200 {"token", "expires_at", "lineup_url", "guide_url"}
    GET  /lineup.m3u                     extended M3U, entitled channels only
    GET  /guide.xml.gz                   XMLTV (gzip), entitled channels, blackouts -> slate
    GET  /live/{ch}/master.m3u8          lease started; 200 master whose variants point back here
    GET  /live/{ch}/{rung}/index.m3u8?session=LEASE
        302 to the session's edge (signed URL); heartbeats the lease; re-routes after a failure
    GET  /catchup/{ch}/master.m3u8?utc=&utcend=   (or ?programme=ID)
        302 to an edge, the window inside the signed scope (/catchup/{ch}/w/{from}/{to}/...)
    POST /api/stop?session=LEASE         the box stopped: give the stream slot back

The session token is accepted as ``Authorization: Bearer`` or ``?token=``
(players that cannot send headers); the access log records paths only, never
query strings or headers, so tokens never reach it.

Failover design (observed with FFmpeg 5.1's HLS demuxer): after a 302 it
resolves relative URIs against the redirect target AND keeps reloading the
variant playlist from that target, so a master redirected to an edge pins the
player to that edge for the whole session. The front door therefore serves
the master itself (fetched once per channel from an edge, cached for
``master_ttl_seconds``) with variant URIs that point back to the front door;
every variant reload comes back here, is heartbeat-counted and gets a 302 to
the session's edge while it is up, or to a healthy one once it is down.
Segments are relative to the edge's variant playlist and never touch the
front door.

Errors go through :func:`cdn_ctl.http.error_response` (the face's one
mapping): 401 bad/expired session, 403 not entitled / blacked out / device
blocked / catch-up refused, 429 + Retry-After over the stream limit, 503 +
Retry-After when no edge (or upstream service) can serve, each with a
machine-readable ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cdn_ctl.domain import validate_channel
from cdn_ctl.errors import (
    BadPlayRequest,
    BlackedOut,
    CatchupRefused,
    CdnError,
    ChannelOffAir,
    LoginFailed,
    NoEdgeAvailable,
    PlaybackForbidden,
    ProgrammeUnknown,
    SessionRejected,
    UpstreamUnavailable,
)
from cdn_ctl.frontdoor_settings import FrontDoorSettings
from cdn_ctl.http import BOX_CONTEXT, BoxContext, Handler, mapped, redirect_response
from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.service import RouteRequest, RoutingService
from cdn_ctl.session import DeviceSession, SessionExpired, SessionSigner
from cdn_ctl.signing import token_prefix
from cdn_ctl.upstream import (
    EpgCache,
    Lease,
    LeaseKeeper,
    SubscriberClient,
    on_air,
    utc_now,
)
from epg.domain import Channel, Programme, Text
from epg.xmltv import write_xmltv
from headend import errors

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SLATE_TITLE = "Not available in your region"
_LEASE = re.compile(r"^[0-9a-f]{16}$")
_RUNG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.m3u8$")
_URI_ATTR = re.compile(r'URI="([^"]*)"')
_PATHWAY = re.compile(r'PATHWAY-ID="[^"]*",?')
_SESSION_PATHS = ("/live/", "/catchup/", "/lineup.m3u", "/guide.xml.gz", "/api/stop")
# Bounds on per-replica memos (verified tokens, replaced leases).
_VERIFIED_MAX = 65_536

SESSION: web.RequestKey[DeviceSession] = web.RequestKey("frontdoor.session", DeviceSession)


# --------------------------------------------------------------------------- pure helpers


def region_covers(blackout: str, box: str) -> bool:
    """Does a blackout region (province XX0000, city XXXX00 or county) include ``box``?"""
    if blackout == box:
        return True
    if blackout.endswith("0000"):
        return box[:2] == blackout[:2]
    if blackout.endswith("00"):
        return box[:4] == blackout[:4]
    return False


def blacked_out(programme: Programme, region: str) -> bool:
    """Is ``programme`` blacked out for a box in ``region``?"""
    return any(region_covers(r, region) for r in programme.rights.blackout_regions)


def slate_for(programme: Programme) -> Programme:
    """The guide entry shown instead of a blacked-out programme (same slot, no details)."""
    return Programme(
        id=programme.id,
        channel_id=programme.channel_id,
        start=programme.start,
        stop=programme.stop,
        titles=(Text("", SLATE_TITLE),),
        icons=(programme.rights.blackout_slate,) if programme.rights.blackout_slate else (),
    )


def _with_query(uri: str, query: str) -> str:
    path = uri.split("?", 1)[0]
    return f"{path}?{query}" if query else path


def rewrite_master(text: str, *, query: str) -> str:
    """The edge's master playlist as the front door serves it: variant URIs stay relative
    (so they resolve to the front door) and carry ``query``; steering is dropped (the
    front door re-routes variant reloads itself)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-CONTENT-STEERING"):
            continue
        if line.startswith("#"):
            line = _PATHWAY.sub("", line)
            line = _URI_ATTR.sub(lambda m: f'URI="{_with_query(m[1], query)}"', line)
        elif line.strip():
            line = _with_query(line.strip(), query)
        out.append(line)
    return "\n".join(out) + "\n"


def _epoch(query: Any, name: str) -> datetime:
    raw = query.get(name, "")
    if not raw.isdigit() or len(raw) > 12:
        raise BadPlayRequest(name, "must be epoch seconds", reason="bad_window")
    return datetime.fromtimestamp(int(raw), tz=utc_now().tzinfo)


class RedactedAccessLogger(AbstractAccessLogger):
    """Access log lines with the path only: no query string (tokens), no headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One JSON-friendly line per request."""
        self.logger.info(
            "http",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "seconds": round(time, 4),
                "client": request.remote,
            },
        )


@dataclass
class _Master:
    text: str
    at: float


# --------------------------------------------------------------------------- the face


class FrontDoor:
    """Box-facing handlers and the session middleware, in front of the routing face."""

    def __init__(
        self,
        settings: FrontDoorSettings,
        *,
        routing: RoutingService,
        subscriber: SubscriberClient,
        epg: EpgCache,
        http: aiohttp.ClientSession,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
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
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def connect(
        cls,
        settings: FrontDoorSettings,
        *,
        routing: RoutingService,
        http: aiohttp.ClientSession,
        now: Callable[[], datetime] = utc_now,
    ) -> FrontDoor:
        """A front door with its own gRPC clients of the EPG and subscriber services."""
        subscriber = SubscriberClient(
            settings.subscriber_target,
            settings.api_key,
            entitlement_ttl_seconds=settings.entitlement_ttl_seconds,
        )
        epg = EpgCache(
            settings.epg_target,
            settings.api_key,
            guide_ttl_seconds=settings.guide_ttl_seconds,
        )
        return cls(settings, routing=routing, subscriber=subscriber, epg=epg, http=http, now=now)

    # ---- lifecycle

    async def start(self) -> None:
        """Follow the EPG change feed and start batched heartbeats."""
        self._tasks = [
            asyncio.create_task(self.epg.watch()),
            asyncio.create_task(self.leases.run()),
        ]

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

    def _token(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:].strip()
        return request.query.get("token", "")

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

    @web.middleware
    async def session_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Authenticate box requests and give the routing face the box's context."""
        if request.path.startswith(_SESSION_PATHS):
            session = self.verify(self._token(request))
            request[SESSION] = session
            request[BOX_CONTEXT] = BoxContext(region=session.region, client_ip=request.remote)
        return await handler(request)

    @property
    def middlewares(self) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
        """What :func:`cdn_ctl.http.create_app` puts in front of the routing handlers."""
        return [self.session_middleware]

    def add_routes(self, app: web.Application) -> None:
        """Mount the box-facing routes."""
        app.router.add_post("/api/login", mapped(self.login))
        app.router.add_post("/api/stop", mapped(self.stop_playback))
        app.router.add_get("/lineup.m3u", mapped(self.lineup))
        app.router.add_get("/guide.xml.gz", mapped(self.guide))
        app.router.add_get("/live/{channel}/master.m3u8", mapped(self.live_master))
        app.router.add_get("/live/{channel}/{rung}/{name}", mapped(self.live_variant))
        app.router.add_get("/catchup/{channel}/master.m3u8", mapped(self.catchup))

    def _base(self, request: web.Request) -> str:
        return self.settings.public_url or f"{request.scheme}://{request.host}"

    # ---- login, lineup, guide

    async def login(self, request: web.Request) -> web.Response:
        """``POST /api/login`` {mac, secret} -> a session token and where to go next."""
        try:
            body = await request.json()
        except ValueError as err:
            raise BadPlayRequest("body", "must be JSON {mac, secret}") from err
        mac, secret = (body.get(k) if isinstance(body, dict) else None for k in ("mac", "secret"))
        if not isinstance(mac, str) or not isinstance(secret, str) or not mac or not secret:
            raise LoginFailed("mac and secret are required", reason="login_failed")
        login = await self.subscriber.login(mac, secret)
        if login.deny:
            raise PlaybackForbidden(f"this box may not play: {login.deny}", reason=login.deny)
        token, session = self.signer.issue(
            carrier=login.carrier,
            subscriber=login.subscriber,
            mac=login.mac,
            region=login.region,
            version=login.version,
            now=self._now(),
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
        # Players that could only pass ?token= need it on every URL they are given.
        query = f"token={request.query['token']}" if "token" in request.query else ""
        text = render_m3u(entries, base_url=base, guide_url=f"{base}/guide.xml.gz", query=query)
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

    async def _lease(self, session: DeviceSession, channel: str, held: str) -> str:
        """The box's lease for ``channel``: the one it holds, else a new one (may 429)."""
        held = self._aliases.get(held, held)
        if held and self.leases.touch(held, mac=session.mac, channel=channel):
            return held
        if _LEASE.match(held) and await self.subscriber.heartbeat(session.mac, held):
            lease = self.leases.get(held)
            if lease is None or lease.channel == channel:
                self.leases.add(Lease(held, session.mac, channel))
                return held
        fresh = await self.subscriber.start_session(session.mac, channel)
        self.leases.add(fresh)
        if held:
            if len(self._aliases) >= _VERIFIED_MAX:
                self._aliases.clear()
            self._aliases[held] = fresh.session_id
        return fresh.session_id

    async def _master_text(self, channel: str, region: str) -> str:
        cached = self._masters.get(channel)
        clock = time.monotonic()
        if cached is not None and clock - cached.at < self.settings.master_ttl_seconds:
            return cached.text
        try:
            edges = self.routing.router.ranked(channel, region)
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err
        scope = f"live/{channel}/"
        # Unbound (the front door fetches, not the box) and short-lived.
        prefix = token_prefix(
            self.routing.keys, scope=scope, expires_at=int(time.time()) + 60, client_ip=None
        )
        for edge in [e for e in edges if not e.draining][:3]:
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
        if "token" in request.query:
            query += f"&token={request.query['token']}"
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
        try:
            redirect = self.routing.redirect(
                RouteRequest(
                    "live", channel, f"{rung}/{name}", session.region, request.remote, lease
                )
            )
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err
        return redirect_response(redirect)

    async def _catchup_window(
        self, request: web.Request, channel: str, now: datetime
    ) -> tuple[datetime, datetime]:
        query = request.query
        if "programme" in query:
            p = await self.epg.programme(channel, query["programme"], now)
            return p.start, p.stop
        start, stop = _epoch(query, "utc"), _epoch(query, "utcend")
        if stop <= start:
            raise BadPlayRequest("utcend", "must be after utc", reason="bad_window")
        return start, stop

    async def catchup(self, request: web.Request) -> web.Response:
        """``GET /catchup/{ch}/master.m3u8``: check the window, lease, 302 with a signed window."""
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
        scope = f"catchup/{channel_id}/w/{first}/{last}/"
        try:
            redirect = self.routing.redirect(
                RouteRequest(
                    "catchup",
                    channel_id,
                    f"w/{first}/{last}/master.m3u8",
                    session.region,
                    request.remote,
                    lease,
                )
            )
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err
        # Re-signed for the window's own scope: editing the window breaks the signature.
        routing = self.routing.settings
        prefix = token_prefix(
            self.routing.keys,
            scope=scope,
            expires_at=int(time.time()) + routing.url_ttl_seconds,
            client_ip=request.remote if routing.bind_client_ip else None,
        )
        location = (
            f"http://{redirect.edge.address}{prefix}{scope}master.m3u8"
            f"?session={lease}&region={session.region}"
        )
        return redirect_response(redirect._replace(location=location))

    async def stop_playback(self, request: web.Request) -> web.Response:
        """``POST /api/stop?session=``: the box stopped playing; free its stream slot."""
        session = request[SESSION]
        held = request.query.get("session", "")
        held = self._aliases.pop(held, held)
        lease = self.leases.get(held)
        if lease is not None and lease.mac == session.mac:
            self.leases.drop(held)
            self.routing.router.ledger.end(held)
        if _LEASE.match(held):
            await self.subscriber.end_session(session.mac, held)
        return web.Response(status=204)
