"""The front door's playback routes: live masters and variants, catch-up, stop.

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor` (which owns the state
declared below): entitlement and blackout checks, leases (one stream per box),
the master fetched once per channel and rewritten to point back here, and the
short-lived signed 302 to the lease's edge on every variant reload.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.domain import LEASE_PARAM, Cut, Scope, lease_param, validate_channel
from cdn_ctl.errors import (
    BadPlayRequest,
    BlackedOut,
    CatchupRefused,
    CdnError,
    ChannelOffAir,
    LeaseReplaced,
    NoEdgeAvailable,
    PlaybackForbidden,
    ProgrammeUnknown,
    UpstreamUnavailable,
)
from cdn_ctl.frontdoor.policy import epoch, rewrite_master, seconds
from cdn_ctl.frontdoor.ports import Routing
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.upstream import EpgCache, Lease, LeaseKeeper, SubscriberCache, on_air
from cdn_ctl.upstream.alerts import AlertCache
from cdn_ctl.web import redirect_response
from epg.alerts.domain import Alert
from epg.domain import Channel, Programme, rights
from headend.ids import is_lease_id

if TYPE_CHECKING:
    from cdn_ctl.frontdoor.keys import KeyDelivery

log = logging.getLogger("cdn_ctl.frontdoor.app")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
# The response header naming the lease a live master started.
LEASE_HEADER = "X-Lease-Id"
_RUNG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.m3u8$")
# Bounds on per-replica memos (replaced leases and their aliases).
MEMO_MAX = 65_536
# How long a request waits for a just-started front door's first copy of the alerts.
ALERTS_WAIT_SECONDS = 2.0
# A master fetched by the front door itself (not a box): unbound and short-lived.
_MASTER_URL_SECONDS = 60

TOKEN: web.RequestKey[BoxToken] = web.RequestKey("frontdoor.token", BoxToken)
CLIENT: web.RequestKey[str] = web.RequestKey("frontdoor.client", str)


@dataclass(frozen=True, slots=True)
class Master:
    """A channel's master playlist as an edge served it, and when it was fetched."""

    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Airing:
    """What a channel is airing (None: nothing) and aired just before, until when, for
    which guide generation."""

    programme: Programme | None
    previous: Programme | None
    until: datetime
    generation: int


def request_token(request: web.Request) -> tuple[str, bool]:
    """The box token and whether it came in the query (players without headers)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip(), False
    return request.query.get("token", ""), True


def token_query(request: web.Request) -> str:
    """``token=...`` for the URLs a box is given, when (and only when) the token that was
    verified came in the query: players that cannot send headers need it on every URL."""
    token, from_query = request_token(request)
    return f"token={token}" if from_query and token else ""


class Playback:
    """Live and catch-up handlers; the state they use is the front door's."""

    settings: FrontDoorSettings
    routing: Routing
    subscriber: SubscriberCache
    epg: EpgCache
    alerts: AlertCache
    metrics: CdnMetrics | None
    http: aiohttp.ClientSession
    leases: LeaseKeeper
    keys: KeyDelivery | None
    _now: Callable[[], datetime]
    _masters: dict[str, Master]
    _airing: dict[str, Airing]
    _aliases: dict[str, str]
    _replaced: dict[str, str]

    def _channel(self, request: web.Request) -> str:
        try:
            return validate_channel(request.match_info["channel"])
        except CdnError as err:
            raise BadPlayRequest("channel", err.message, reason="bad_channel") from err

    async def _check_airing(self, channel: str, region: str, now: datetime) -> Programme | None:
        """The blacked-out programme a box in ``region`` sees the slate channel instead of
        (``FRONTDOOR_BLACKOUT_CHANNEL``; also the one that ended less than the alert linger
        ago, so the player crosses the join back), or None. Without a slate channel a
        blacked-out programme is refused (``BlackedOut``)."""
        cached = self._airing.get(channel)
        if cached is None or cached.generation != self.epg.generation or now >= cached.until:
            programmes = await self.epg.programmes(channel, now)
            current = on_air(programmes, now)
            later = [p.start for p in programmes if p.start > now]
            until = current.stop if current else min(later, default=now + timedelta(minutes=5))
            ended = [p for p in programmes if p.stop <= now]
            previous = max(ended, key=lambda p: p.stop) if ended else None
            cached = Airing(current, previous, until, self.epg.generation)
            self._airing[channel] = cached
        current = cached.programme
        if current is not None and rights.blacked_out(current, region):
            if not self.settings.blackout_channel:
                raise BlackedOut(
                    "this programme is blacked out in your region",
                    reason="blacked_out",
                    slate=current.rights.blackout_slate,
                )
            return current
        previous = cached.previous
        linger = timedelta(seconds=self.settings.alert_linger_seconds)
        if (
            self.settings.blackout_channel
            and previous is not None
            and now < previous.stop + linger
            and rights.blacked_out(previous, region)
        ):
            return previous
        return None

    def _live_scope(
        self, channel: str, region: str, now: datetime, blacked: Programme | None
    ) -> Scope:
        """The scope a live variant reload is signed for: the channel's own, or cut to the
        emergency alert in force for the box (it wins), to the slate of a blackout, or to
        an alert that ended less than the linger ago (the box crosses its join back)."""
        linger = timedelta(seconds=self.settings.alert_linger_seconds)
        alert = self.alerts.live(channel, region, now, linger=linger)
        if alert is not None and (alert.in_force(now) or blacked is None):
            return Scope("live", channel, cut=self._switched(alert_cut(alert), "alert"))
        if blacked is not None:
            cut = Cut(self.settings.blackout_channel, _floor(blacked.start), _ceil(blacked.stop))
            return Scope("live", channel, cut=self._switched(cut, "blackout"))
        return Scope("live", channel)

    def _switched(self, cut: Cut, cause: str) -> Cut:
        if self.metrics is not None:
            self.metrics.picture_switches.labels(cause).inc()
        return cut

    async def _require(self, box: BoxToken, channel: str) -> None:
        verdict = self.subscriber.cached_verdict(box.mac, channel)
        if verdict is None:
            verdict = await self.subscriber.authorize(box.mac, channel)
        if not verdict.allowed:
            raise PlaybackForbidden(f"playback refused: {verdict.reason}", reason=verdict.reason)

    def _remember(self, memo: dict[str, str], old: str, new: str) -> None:
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[old] = new

    async def _lease(self, box: BoxToken, channel: str, held: str) -> str:
        """The box's lease for ``channel`` (noted for its key requests, when keys are served)."""
        lease = await self._lease_for(box, channel, held)
        if self.keys is not None:
            await self.keys.noted(box.mac, lease, channel)
        return lease

    async def _lease_for(self, box: BoxToken, channel: str, held: str) -> str:
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
        if held and self.leases.touch(held, mac=box.mac, channel=channel):
            return held
        if is_lease_id(held) and await self.subscriber.heartbeat(box.mac, held):
            lease = self.leases.get(held)
            if lease is None or lease.channel == channel:
                self._keep(Lease(held, box.mac, channel))
                return held
        fresh = await self.subscriber.start_lease(box.mac, channel)
        self._keep(fresh)
        if held:
            self._remember(self._aliases, held, fresh.lease_id)
        return fresh.lease_id

    def _keep(self, lease: Lease) -> None:
        old = self.leases.add(lease)
        if old is not None:
            self.routing.end(old.lease_id)
            self._remember(self._replaced, old.lease_id, lease.lease_id)

    async def _master_text(self, channel: str, region: str) -> str:
        cached = self._masters.get(channel)
        clock = time.monotonic()
        if cached is not None and clock - cached.at < self.settings.master_ttl_seconds:
            return cached.text
        edges = self.routing.candidates(channel, region)
        scope = Scope("live", channel)
        prefix = self.routing.sign(scope, lifetime_seconds=_MASTER_URL_SECONDS, client_ip=None)
        for edge in edges[:3]:
            url = f"http://{edge.address}{prefix}{scope.path}master.m3u8"
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
            self._masters[channel] = Master(text, clock)
            return text
        raise UpstreamUnavailable("no edge answered for this channel", reason="no_edge")

    def _redirect(
        self, request: web.Request, box: BoxToken, scope: Scope, rest: str, lease: str
    ) -> web.Response:
        """The one signed 302 of a request: ``{scope}{rest}`` on the lease's edge."""
        try:
            redirect = self.routing.redirect(
                scope, rest, region=box.region, client_ip=request[CLIENT], lease_id=lease
            )
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err
        return redirect_response(redirect)

    async def live_master(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/master.m3u8``: entitlement, blackout, lease, then the master."""
        box = request[TOKEN]
        channel = self._channel(request)
        now = self._now()
        await self._require(box, channel)
        await self._check_airing(channel, box.region, now)
        text = await self._master_text(channel, box.region)
        lease = await self._lease(box, channel, lease_param(request.query))
        query = f"{LEASE_PARAM}={lease}"
        extra = token_query(request)
        if extra:
            query += f"&{extra}"
        return web.Response(
            text=rewrite_master(
                text, query=query, audio_language=self.settings.audio_language(box.region)
            ),
            content_type=PLAYLIST_TYPE,
            headers={"Cache-Control": "no-store", LEASE_HEADER: lease},
        )

    async def live_variant(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/{rung}/{name}.m3u8?lease_id=``: keep the lease, 302 to the edge."""
        box = request[TOKEN]
        channel = self._channel(request)
        rung, name = request.match_info["rung"], request.match_info["name"]
        if not _RUNG.match(rung) or not _NAME.match(name):
            raise BadPlayRequest("path", "not a variant playlist", reason="bad_path")
        held = lease_param(request.query)
        if not held:
            raise BadPlayRequest(LEASE_PARAM, "required: the lease from the master playlist")
        await self._require(box, channel)
        now = self._now()
        blacked = await self._check_airing(channel, box.region, now)
        lease = await self._lease(box, channel, held)
        await self.alerts.ready(ALERTS_WAIT_SECONDS)
        scope = self._live_scope(channel, box.region, now, blacked)
        return self._redirect(request, box, scope, f"{rung}/{name}", lease)

    async def _catchup_window(
        self, request: web.Request, channel: str, now: datetime
    ) -> tuple[datetime, datetime]:
        """``programme`` (or ``catchup-id``, the guide's id as Kodi and TiviMate send it);
        ``utc`` with ``utcend`` or ``duration`` (``start`` is ``utc``'s other name)."""
        query = request.query
        for name in ("programme", "catchup-id"):
            if name in query:
                p = await self.epg.programme(channel, query[name], now)
                return p.start, p.stop
        first = "start" if "utc" not in query and "start" in query else "utc"
        start = epoch(query, first)
        if "utcend" not in query and "duration" in query:
            return start, start + timedelta(seconds=seconds(query, "duration"))
        return start, epoch(query, "utcend")

    async def catchup(self, request: web.Request) -> web.Response:
        """``GET /catchup/{ch}/master.m3u8``: check the window and the rights (the one set
        of rules the origin applies too), lease, 302 signed for exactly that window. A
        window that ends ahead is a start-over: the origin's playlist grows until its end."""
        channel = await self._catchup_channel(request)
        now = self._now()
        start, stop = await self._catchup_window(request, channel.id, now)
        return await self._grant_window(request, channel, start, stop, now)

    async def _grant_window(
        self, request: web.Request, channel: Channel, start: datetime, stop: datetime, now: datetime
    ) -> web.Response:
        """The rights of ``[start, stop)`` for the box (window, channel, entitlement, every
        programme in it), then its lease and the 302 signed for exactly that window: the
        one grant behind catch-up, start-over and timeshift."""
        box = request[TOKEN]
        channel_id = channel.id
        longest = timedelta(hours=self.settings.catchup_max_hours)
        _refuse(rights.window_refusal(start, stop, now, longest=longest))
        _refuse(rights.channel_refusal(channel, start, now))
        await self._require(box, channel_id)
        for p in rights.overlapping(await self.epg.programmes(channel_id, now), start, stop):
            _refuse(rights.programme_refusal(p, box.region), programme=p.id)
        lease = await self._lease(box, channel_id, lease_param(request.query))
        await self.alerts.ready(ALERTS_WAIT_SECONDS)
        alert = self.alerts.window(channel_id, box.region, start, stop)
        cut = self._switched(alert_cut(alert), "alert") if alert is not None else None
        scope = Scope("catchup", channel_id, int(start.timestamp()), int(stop.timestamp()), cut=cut)
        response = self._redirect(request, box, scope, "master.m3u8", lease)
        if self.keys is not None:
            await self.keys.grant(box.mac, channel_id, start, stop)
        return response

    async def _catchup_channel(self, request: web.Request) -> Channel:
        """The request's channel, from the guide (404 for one the guide does not have)."""
        channel = (await self.epg.channels()).get(self._channel(request))
        if channel is None:
            raise ProgrammeUnknown("no such channel", reason="unknown_channel")
        return channel

    async def stop_playback(self, request: web.Request) -> web.Response:
        """``POST /api/stop?lease_id=``: the box stopped playing; free its stream slot."""
        box = request[TOKEN]
        held = lease_param(request.query)
        held = self._aliases.pop(held, held)
        lease = self.leases.get(held)
        if lease is not None and lease.mac == box.mac:
            self.leases.drop(held)
            self.routing.end(held)
        if is_lease_id(held):
            await self.subscriber.end_lease(box.mac, held)
        if self.keys is not None:
            await self.keys.ended(box.mac, held)
        return web.Response(status=204)


def alert_cut(alert: Alert) -> Cut:
    """The cut that shows ``alert``'s playout channel over the time it is in force (the
    alert cache holds only alerts that came into force)."""
    start, until = alert.in_force_from, alert.in_force_until
    if start is None:
        raise ValueError(f"alert {alert.id} was never in force")
    return Cut(alert.playout_channel_id, _floor(start), _ceil(until) if until else 0)


def _floor(at: datetime) -> int:
    return int(at.timestamp())


def _ceil(at: datetime) -> int:
    whole = int(at.timestamp())
    return whole if whole == at.timestamp() else whole + 1


def _refuse(refusal: rights.Refusal | None, *, programme: str = "") -> None:
    """The front door's error for a refused right (none when it is granted)."""
    if refusal is None:
        return
    if refusal.field:
        name = "utc" if refusal.field == "start" else "utcend"
        raise BadPlayRequest(name, refusal.describe("utc", "utcend"), reason=refusal.reason)
    if refusal.reason == "blacked_out":
        raise BlackedOut(refusal.message, reason=refusal.reason)
    extra = {"programme": programme} if refusal.reason == "catchup_not_allowed" else {}
    raise CatchupRefused(refusal.message, reason=refusal.reason, **extra)
