"""The set-top box front door (aiohttp): the only public face a box talks to.

A box needs only this address::

    POST /api/login {"mac": "..", "secret": ".."}
        200 {"token", "expires_at", "lineup_url", "guide_url"}
    GET  /lineup.m3u                     extended M3U, entitled channels only
    GET  /guide.xml.gz                   XMLTV (gzip), entitled channels, blackouts -> slate
    GET  /live/{ch}/master.m3u8          lease started (X-Lease-Id); 200 master whose
                                         variants point back here with ?lease_id=LEASE
    GET  /live/{ch}/{rung}/index.m3u8?lease_id=LEASE
        302 to the lease's edge (a short-lived signed URL); heartbeats the lease
    GET  /live/{ch}/master-cmaf.m3u8, /live/{ch}/manifest.mpd[?lease_id=]
        a channel published as CMAF: its CMAF-HLS master (variants as above), its live
        DASH MPD (signed BaseURL, Location back here) (:mod:`cdn_ctl.frontdoor.formats`)
    GET  /catchup/{ch}/master.m3u8?utc=&utcend=   (or ?programme=ID)
        302 to an edge, signed once for exactly that window (/catchup/{ch}/w/{from}/{to}/...)
    GET  /startover/{ch}/master.m3u8, /timeshift/{ch}/master.m3u8?utc= (or ?offset=)
        the same, for a window still growing (:mod:`cdn_ctl.frontdoor.timeshift`)
    POST /api/stop?lease_id=LEASE         the box stopped: give the stream slot back
    GET  /healthz                        {"status": "ok"}; nothing else about the platform
    GET  /keys/{ch}/{key_id}, /keys/asset/{asset}/{key_id}   a segment's content key, to a
                                         box that may play it (:mod:`cdn_ctl.frontdoor.keys`)
    POST|DELETE /api/player-link, GET /p/{credential}/..., /player_api.php, /get.php,
    /xmltv.php, /live/{username}/{password}/{id}.ts   players with one URL
                                         (:mod:`cdn_ctl.frontdoor.players`)

``lease_id`` was called ``session`` before; the old name is still accepted for one
release (see :func:`cdn_ctl.domain.lease_param`).

Every route but login, ``/healthz`` and the players' (their credential instead)
needs a box token (``Authorization: Bearer`` or, for players that cannot send
headers, ``?token=``); routing, steering, debug output and metrics are on the
admin listener (:mod:`cdn_ctl.http`), never here. The access log records paths
only, with player credentials blanked.

Failover design (observed with FFmpeg 5.1's HLS demuxer): after a 302 it
resolves relative URIs against the redirect target AND keeps reloading the
variant playlist from that target, so a master redirected to an edge pins the
player to that edge for the whole playback. The front door therefore serves
the master itself (fetched once per channel from an edge, cached for
``master_ttl_seconds``) with variant URIs that point back to the front door;
every variant reload comes back here, is checked and heartbeat-counted and
gets a fresh short-lived 302 to the lease's edge while it is up, or to a
healthy one once it is down. That is also how a suspension, a blackout or a
refused entitlement reaches a playing box: its next reload is refused, and
the URL it holds expires within ``CDN_URL_TTL_SECONDS``.

Errors go through :func:`cdn_ctl.web.error_response` (the face's one
mapping): 401 bad/expired token, 403 not entitled / blacked out / device
blocked / catch-up refused / token shared, 409 lease replaced, 429 +
Retry-After over the stream limit or a rate limit, 503 + Retry-After when no
edge (or upstream service) can serve, each with a machine-readable ``reason``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from cdn_ctl.boxtoken import BoxToken, BoxTokenExpired, BoxTokenSigner
from cdn_ctl.domain import Scope
from cdn_ctl.errors import (
    BadPlayRequest,
    BoxTokenRejected,
    LoginFailed,
    PlaybackForbidden,
    RateLimited,
)
from cdn_ctl.frontdoor.formats import LiveFormats
from cdn_ctl.frontdoor.guard import AddressWatch, ClientAddresses, FetchLimiter, LoginGuard
from cdn_ctl.frontdoor.keys import KeyDelivery, Keys
from cdn_ctl.frontdoor.listings import Listings
from cdn_ctl.frontdoor.playback import (
    CLIENT,
    TOKEN,
    Airing,
    Master,
    request_token,
)
from cdn_ctl.frontdoor.players import (
    XTREAM_STREAM_PATH,
    Players,
    problems,
)
from cdn_ctl.frontdoor.ports import Routing
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.frontdoor.timeshift import Timeshift
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.playerlinks import PlayerLinks
from cdn_ctl.upstream import EpgCache, LeaseKeeper, SubscriberCache
from cdn_ctl.upstream.alerts import AlertCache
from cdn_ctl.upstream.outputs import LiveDirectory
from cdn_ctl.web import Handler, error_response
from headend import errors
from headend.clock import utc_now
from headend.tasks import Backoff, Supervisor

log = logging.getLogger(__name__)

# Bound on the per-replica memo of verified tokens.
_VERIFIED_MAX = 65_536
# Reconnecting the change feed or retrying a sync soon matters more than quiet logs:
# an outage should cost seconds of staleness, not minutes.
TASK_BACKOFF = Backoff(first_seconds=0.5, cap_seconds=5.0)
# The front door's background tasks, as its supervisor names them.
TASKS = ("epg-changes", "alerts", "lease-heartbeats", "fetch-limit-sync", "key-limit-sync",
         "live-outputs")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Guards:
    """The front door's defences that need Redis (shared across replicas)."""

    login: LoginGuard | None = None
    addresses: AddressWatch | None = None
    fetches: FetchLimiter | None = None


# --------------------------------------------------------------------------- the face


class FrontDoor(Timeshift, LiveFormats, Listings, Players, Keys):
    """Box-facing handlers behind the box-token check (:meth:`_guarded`): the public face."""

    def __init__(
        self,
        settings: FrontDoorSettings,
        *,
        routing: Routing,
        subscriber: SubscriberCache,
        epg: EpgCache,
        http: aiohttp.ClientSession,
        guards: Guards | None = None,
        links: PlayerLinks | None = None,
        keys: KeyDelivery | None = None,
        now: Callable[[], datetime] = utc_now,
        supervisor: Supervisor | None = None,
        alerts: AlertCache | None = None,
        metrics: CdnMetrics | None = None,
        outputs: LiveDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.guards = guards or Guards()
        self.links = links
        self.keys = keys
        self.clients = ClientAddresses(settings.trusted_proxies)
        self.routing = routing
        self.subscriber = subscriber
        self.epg = epg
        if alerts is None:
            alerts = AlertCache(
                settings.epg_target,
                settings.api_key,
                refresh_seconds=settings.alert_refresh_seconds,
                tls=settings.grpc_tls,
                now=now,
            )
        self.alerts = alerts
        # The live channels' deliveries (none without a transcode target: HLS-TS for all).
        self.outputs = outputs or LiveDirectory.of(settings, metrics=metrics)
        # The EPG's feed says when an alert changed.
        epg.on_alerts = alerts.changed
        self.http = http
        self.signer: BoxTokenSigner = settings.signer()
        self.leases = LeaseKeeper(
            subscriber,
            interval_seconds=settings.heartbeat_seconds,
            idle_seconds=max(60.0, settings.heartbeat_seconds * 3),
        )
        self._now = now
        self._linger = timedelta(seconds=settings.alert_linger_seconds)
        self._verified: dict[str, BoxToken] = {}
        self._masters: dict[str, Master] = {}
        self._airing: dict[str, Airing] = {}
        self._live_scopes: dict[str, Scope] = {}
        self._aliases: dict[str, str] = {}
        # Leases a newer stream of the same box replaced -> the one that replaced them.
        self._replaced: dict[str, str] = {}
        # Runs the background tasks; the routing process passes its own, so their
        # status shows on its /healthz and /metrics.
        self.supervisor = supervisor or Supervisor(backoff=TASK_BACKOFF)

    @classmethod
    def connect(
        cls,
        settings: FrontDoorSettings,
        *,
        routing: Routing,
        http: aiohttp.ClientSession,
        guards: Guards | None = None,
        links: PlayerLinks | None = None,
        keys: KeyDelivery | None = None,
        now: Callable[[], datetime] = utc_now,
        supervisor: Supervisor | None = None,
        metrics: CdnMetrics | None = None,
    ) -> FrontDoor:
        """A front door with its own gRPC clients of the EPG and subscriber services."""
        subscriber = SubscriberCache(
            settings.subscriber_target,
            settings.api_key,
            entitlement_ttl_seconds=settings.entitlement_ttl_seconds,
            stale_seconds=settings.stale_if_error_seconds,
            tls=settings.grpc_tls,
        )
        epg = EpgCache(
            settings.epg_target,
            settings.api_key,
            guide_ttl_seconds=settings.guide_ttl_seconds,
            stale_seconds=settings.stale_if_error_seconds,
            tls=settings.grpc_tls,
        )
        return cls(
            settings,
            routing=routing,
            subscriber=subscriber,
            epg=epg,
            http=http,
            guards=guards,
            links=links,
            keys=keys,
            now=now,
            supervisor=supervisor,
            metrics=metrics,
        )

    # ---- lifecycle

    async def start(self) -> None:
        """Follow the EPG change feed and the alerts it announces, batch heartbeats and sync
        fetch and key counts, read the live directory, each as a supervised task (a
        failure is logged, counted and restarted with backoff)."""
        epg_changes, alerts, heartbeats, fetch_sync, key_sync, outputs = TASKS
        self.supervisor.spawn(epg_changes, self.epg.watch)
        self.supervisor.spawn(alerts, self.alerts.run)
        self.supervisor.spawn(heartbeats, self.leases.run)
        if self.guards.fetches is not None:
            self.supervisor.spawn(fetch_sync, self.guards.fetches.run)
        if self.keys is not None and self.keys.limiter is not None:
            self.supervisor.spawn(key_sync, self.keys.limiter.run)
        if self.outputs is not None:
            self.supervisor.spawn(outputs, self.outputs.run)

    async def stop(self) -> None:
        """Stop the background tasks and close the gRPC channels."""
        for name in TASKS:
            await self.supervisor.cancel(name)
        await self.epg.close()
        await self.alerts.close()
        await self.subscriber.close()
        if self.outputs is not None:
            await self.outputs.close()

    # ---- box token

    def verify(self, token: str) -> BoxToken:
        """The box a token stands for (verified once, then remembered until expiry)."""
        now = self._now()
        if not token:
            raise BoxTokenRejected("a box token is required", reason="session_missing")
        box = self._verified.get(token)
        if box is None:
            try:
                box = self.signer.verify(token, now=now)
            except BoxTokenExpired as err:
                raise BoxTokenRejected(err.message, reason="session_expired") from err
            except errors.Unauthenticated as err:
                raise BoxTokenRejected(err.message, reason="session_invalid") from err
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = box
        elif box.expires_at <= now:
            del self._verified[token]
            raise BoxTokenRejected("box token expired; log in again", reason="session_expired")
        return box

    async def _admit(self, box: BoxToken, client: str) -> None:
        """The token's binding, sharing and rate checks for one request from ``client``."""
        if not self.settings.token_binding.admits(box.address, client):
            raise BoxTokenRejected(
                "this box token belongs to another address; log in again",
                reason="session_wrong_address",
            )
        guards = self.guards
        if guards.fetches is not None and not guards.fetches.allow(box.token_id):
            raise RateLimited("too many requests for this box token", reason="rate_limited")
        addresses = guards.addresses
        if (
            addresses is not None
            and not addresses.confirmed(box.token_id, client)
            and not await addresses.allow(box.token_id, client)
        ):
            raise PlaybackForbidden(
                "this box token is in use from several places at once", reason="session_shared"
            )

    def _guarded(
        self,
        handler: Handler,
        *,
        token: bool = True,
        metrics: CdnMetrics | None = None,
        route: str = "",
    ) -> Handler:
        """``handler`` behind the client's address and, unless the route opens without one
        (login, health, the players' own credential), the box token; a domain error from
        either becomes its response (:func:`error_response`), and every answer, refusals
        included, is counted by ``metrics`` (by the ``route`` template: what it counts
        depends on the route, not on each request's path). One wrapper per route, not
        middlewares and wrappers around wrappers: the variant reload is the hot path, and
        each layer costs a coroutine per request (a path no route serves is a plain 404
        whatever the token)."""

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            client = self.clients.of(request)
            request[CLIENT] = client
            try:
                if token:
                    box = self.verify(request_token(request)[0])
                    await self._admit(box, client)
                    request[TOKEN] = box
                response = await handler(request)
            except errors.HeadendError as err:
                response = error_response(err)
            if metrics is not None:
                metrics.box_answer(route, response)
            return response

        return guarded

    def add_routes(self, app: web.Application, *, metrics: CdnMetrics | None = None) -> None:
        """Mount the box routes (nothing else), each behind :meth:`_guarded`, counted by
        ``metrics``."""

        def add(method: str, path: str, handler: Handler, *, token: bool = True) -> None:
            guarded = self._guarded(handler, token=token, metrics=metrics, route=path)
            if method == "GET":
                app.router.add_get(path, guarded)  # and HEAD
            else:
                app.router.add_route(method, path, guarded)

        add("POST", "/api/login", self.login, token=False)
        add("POST", "/api/stop", self.stop_playback)
        add("GET", "/healthz", self.healthz, token=False)
        add("GET", "/lineup.m3u", self.lineup)
        add("GET", "/guide.xml.gz", self.guide)
        self._add_player_routes(add)
        # The variant reload first: the hot path tries one route fewer.
        add("GET", "/live/{channel}/{rung}/{name}", self.live_variant)
        add("GET", "/live/{channel}/master.m3u8", self.live_master)
        add("GET", "/live/{channel}/master-cmaf.m3u8", self.live_cmaf_master)
        add("GET", "/live/{channel}/manifest.mpd", self.live_mpd)
        add("GET", "/catchup/{channel}/master.m3u8", self.catchup)
        add("GET", "/catchup/{channel}/master-cmaf.m3u8", self.catchup)
        add("GET", "/catchup/{channel}/manifest.mpd", self.catchup)
        add("GET", "/startover/{channel}/master.m3u8", self.startover)
        add("GET", "/timeshift/{channel}/master.m3u8", self.timeshift)
        add("GET", "/keys/asset/{asset}/{key_id}", self.asset_key)
        add("GET", "/keys/{channel}/{key_id}", self.channel_key)

    def _add_player_routes(self, add: Callable[..., None]) -> None:
        """Players with one URL (see :mod:`cdn_ctl.frontdoor.players`); 404 without links.
        A link is made and dropped with the box token, then used with its credential."""
        add("POST", "/api/player-link", problems(self.create_player_link))
        add("DELETE", "/api/player-link", problems(self.delete_player_link))
        add("GET", "/p/{credential}/playlist.m3u", problems(self.player_playlist), token=False)
        add("GET", "/p/{credential}/guide.xml.gz", problems(self.player_guide), token=False)
        add("GET", "/player_api.php", problems(self.player_api), token=False)
        add("GET", "/get.php", problems(self.xtream_playlist), token=False)
        add("GET", "/xmltv.php", problems(self.xtream_guide), token=False)
        # Ahead of /live/{channel}/{rung}/{name}, which has as many segments.
        add("GET", XTREAM_STREAM_PATH, problems(self.xtream_stream), token=False)

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz`` for load balancers: up or not, and nothing about the platform."""
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})

    def _base(self, request: web.Request) -> str:
        return self.settings.public_url or f"{request.scheme}://{request.host}"

    # ---- login, lineup, guide

    async def login(self, request: web.Request) -> web.Response:
        """``POST /api/login`` {mac, secret} -> a box token and where to go next."""
        client = request[CLIENT]
        guard = self.guards.login
        if guard is not None:
            _locked_out(await guard.address_wait(client))
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
        box = mac.lower()
        if guard is not None:
            _locked_out(await guard.box_wait(box))
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
        token, issued = self.signer.issue(
            carrier=login.carrier,
            subscriber=login.subscriber,
            mac=login.mac,
            region=login.region,
            version=login.version,
            now=self._now(),
            address=client,
            profile=login.profile,
        )
        base = self._base(request)
        return web.json_response(
            {
                "token": token,
                "expires_at": issued.expires_at.isoformat(),
                "lineup_url": f"{base}/lineup.m3u",
                "guide_url": f"{base}/guide.xml.gz",
            },
            headers={"Cache-Control": "no-store"},
        )


def _locked_out(wait_seconds: float) -> None:
    """``RateLimited`` (429 ``login_locked`` + Retry-After) while a lockout lasts."""
    if wait_seconds > 0:
        raise RateLimited(
            "too many failed logins; try again later",
            reason="login_locked",
            retry_after=str(max(1, round(wait_seconds))),
        )


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


def create_box_app(frontdoor: FrontDoor, *, metrics: CdnMetrics | None = None) -> web.Application:
    """The public app: the box routes behind the token check (counted outside it by
    ``metrics``: its refusals too), nothing else."""
    app = web.Application(client_max_size=4096)
    frontdoor.add_routes(app, metrics=metrics)
    return app
