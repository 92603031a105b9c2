"""The front door's playback routes: live masters and variants, stop (the catch-up
windows' are :mod:`cdn_ctl.frontdoor.timeshift`'s).

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor` (which owns the state
declared below): entitlement and blackout checks, leases (one stream per box),
the master fetched once per channel and rewritten to point back here with the rungs
the box's device profile plays (:mod:`cdn_ctl.frontdoor.rungs`, the profile read from
the box token), and the short-lived signed 302 to the lease's edge on every variant
reload. A variant reload is not checked against the profile: the profile says what a
box can play, not what it may, and the hot path stays as it was.

A blackout is a stretch of a channel that boxes in some regions may not see: a
programme blacked out there (its rights), or a running cue with them among its
``blackout_regions`` (``CueService``). Live, both are one rule: the box sees the slate
channel (``FRONTDOOR_BLACKOUT_CHANNEL``) over the stretch through a cut view, or is
refused when there is none. A catch-up window shows a cue's blackout through the same
cut (:meth:`Playback._window_cut`); a blacked-out programme's is refused.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.domain import LEASE_PARAM, Cut, Redirect, Scope, lease_param, validate_channel
from cdn_ctl.errors import (
    BadPlayRequest,
    BlackedOut,
    CdnError,
    ChannelOffAir,
    LeaseReplaced,
    NoEdgeAvailable,
    PlaybackForbidden,
    UpstreamUnavailable,
)
from cdn_ctl.frontdoor.policy import CMAF_VARIANTS, LIVE_NAMES, rewrite_master, unswitched
from cdn_ctl.frontdoor.ports import Routing
from cdn_ctl.frontdoor.profiles import count_fallback, offer_for
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.upstream import EpgCache, Lease, LeaseKeeper, SubscriberCache, on_air
from cdn_ctl.upstream.alerts import AlertCache
from cdn_ctl.upstream.outputs import LiveDirectory
from cdn_ctl.web import redirect_response
from epg.alerts.domain import Alert
from epg.cues.domain import Cue
from epg.domain import Programme, rights
from headend.ids import is_lease_id
from transcode.outputs import LiveOutput

if TYPE_CHECKING:
    from cdn_ctl.frontdoor.keys import KeyDelivery

log = logging.getLogger("cdn_ctl.frontdoor.app")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MPD_TYPE = "application/dash+xml"
# The response header naming the lease a live master started.
LEASE_HEADER = "X-Lease-Id"
_RUNG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.m3u8$")
# Bounds on per-replica memos (replaced leases and their aliases).
MEMO_MAX = 65_536
_NO_LINGER = timedelta(0)
# How long a request waits for a just-started front door's first copy of the alerts.
ALERTS_WAIT_SECONDS = 2.0
# A master fetched by the front door itself (not a box): unbound and short-lived.
MASTER_URL_SECONDS = 60
# A live channel's MPEG-TS master, below its directory.
MASTER_NAME = LIVE_NAMES["hls-ts"]

TOKEN: web.RequestKey[BoxToken] = web.RequestKey("frontdoor.token", BoxToken)
CLIENT: web.RequestKey[str] = web.RequestKey("frontdoor.client", str)


@dataclass(frozen=True, slots=True)
class Master:
    """A channel's master playlist as an edge served it, and when it was fetched."""

    text: str
    at: float


# A stretch of a channel, ``[start, stop)``.
Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Airing:
    """What a channel is airing (None: nothing) and aired just before, until when, and
    its cues that black out some regions from now (or just before) until then, for
    which guide generation."""

    programme: Programme | None
    previous: Programme | None
    cues: tuple[Cue, ...]
    until: datetime
    generation: int
    # Regions none of these programmes or cues black out: a box there sees no blackout
    # for as long as this airing stands (the hot path's answer without the rules).
    clear: set[str] = field(default_factory=set, compare=False)


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
    """Live handlers and the cuts every grant shares; the state they use is the front
    door's."""

    settings: FrontDoorSettings
    routing: Routing
    subscriber: SubscriberCache
    epg: EpgCache
    alerts: AlertCache
    metrics: CdnMetrics | None
    outputs: LiveDirectory | None
    http: aiohttp.ClientSession
    leases: LeaseKeeper
    keys: KeyDelivery | None
    _now: Callable[[], datetime]
    # FRONTDOOR_ALERT_LINGER_SECONDS as a timedelta (built once: every reload uses it).
    _linger: timedelta
    _masters: dict[str, Master]
    _airing: dict[str, Airing]
    _live_scopes: dict[str, Scope]
    _aliases: dict[str, str]
    _replaced: dict[str, str]

    def _output(self, channel: str) -> LiveOutput | None:
        """What the live directory says ``channel`` offers (None: no directory, or unknown)."""
        return self.outputs.get(channel) if self.outputs is not None else None

    def _channel(self, request: web.Request) -> str:
        channel = request.match_info["channel"]
        if channel in self._live_scopes:  # checked when its scope was built
            return channel
        try:
            return validate_channel(channel)
        except CdnError as err:
            raise BadPlayRequest("channel", err.message, reason="bad_channel") from err

    async def _airing_of(self, channel: str, now: datetime) -> Airing:
        """The channel's :class:`Airing` (kept until ``until`` or the guide's next change)."""
        cached = self._airing.get(channel)
        # Read before the calls: a change arriving during them leaves this one stale.
        generation = self.epg.generation
        if cached is not None and cached.generation == generation and now < cached.until:
            return cached
        programmes = await self.epg.programmes(channel, now)
        current = on_air(programmes, now)
        later = [p.start for p in programmes if p.start > now]
        until = current.stop if current else min(later, default=now + timedelta(minutes=5))
        ended = [p for p in programmes if p.stop <= now]
        previous = max(ended, key=lambda p: p.stop) if ended else None
        linger = self._linger
        cues = tuple(
            c
            for c in await self.epg.cues(channel, now)
            if c.blackout_regions and c.start < until and now < c.end + linger
        )
        cached = Airing(current, previous, cues, until, generation)
        self._airing[channel] = cached
        return cached

    async def _check_airing(self, channel: str, region: str, now: datetime) -> Window | None:
        """The blackout a box in ``region`` sees the slate channel over instead of the
        channel (``FRONTDOOR_BLACKOUT_CHANNEL``): the programme on air or the cues running
        that black it out (together, when several do), else the one that ended less than
        the alert linger ago (the player crosses the join back); or None. Without a slate
        channel a blackout on air is refused (``BlackedOut``)."""
        airing = await self._airing_of(channel, now)
        if region in airing.clear:
            return None
        slate = self.settings.blackout_channel
        linger = self._linger if slate else _NO_LINGER
        programmes = [
            p
            for p in (airing.programme, airing.previous)
            if p is not None and p.start <= now < p.stop + linger and rights.blacked_out(p, region)
        ]
        blackouts = [(p.start, p.stop) for p in programmes] + [
            (c.start, c.end)
            for c in airing.cues
            if c.start <= now < c.end + linger and c.blacks_out(region)
        ]
        if not blackouts and _clear(airing, region):
            airing.clear.add(region)
        on = _joined(w for w in blackouts if now < w[1])
        if on is not None and not slate:
            raise BlackedOut(
                f"this {'programme' if programmes else 'channel'} is blacked out in your region",
                reason="blacked_out",
                slate=programmes[0].rights.blackout_slate if programmes else "",
            )
        if on is not None:
            return on
        return max(blackouts, key=lambda w: w[1], default=None)

    def _live_scope(
        self, channel: str, region: str, now: datetime, blacked: Window | None
    ) -> Scope:
        """The scope a live variant reload is signed for: the channel's own, or cut to the
        emergency alert in force for the box (it wins), to the slate of a blackout, or to
        an alert that ended less than the linger ago (the box crosses its join back)."""
        alert = self.alerts.live(channel, region, now, linger=self._linger)
        if alert is not None and (alert.in_force(now) or blacked is None):
            return Scope("live", channel, cut=self._switched(alert_cut(alert), "alert"))
        if blacked is not None:
            return Scope("live", channel, cut=self._switched(self._slate_cut(blacked), "blackout"))
        scope = self._live_scopes.get(channel)
        if scope is None:
            # The channel's own scope, built (and checked) once: Scope is frozen.
            scope = Scope("live", channel)
            if len(self._live_scopes) >= MEMO_MAX:
                self._live_scopes.clear()
            self._live_scopes[channel] = scope
        return scope

    def _slate_cut(self, blackout: Window) -> Cut:
        """The cut that shows the slate channel over ``blackout``."""
        start, stop = blackout
        return Cut(self.settings.blackout_channel, _floor(start), _ceil(stop))

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

    async def _edge_text(
        self, channel: str, region: str, name: str = MASTER_NAME, *, ttl: float | None = None
    ) -> str:
        """The channel's ``name`` (a master, or the live MPD) as an edge serves it, fetched
        once per ``ttl`` seconds (the master TTL unless given) per replica."""
        key = master_key(channel, name)
        cached = self._masters.get(key)
        clock = time.monotonic()
        if ttl is None:
            ttl = self.settings.master_ttl_seconds
        if cached is not None and clock - cached.at < ttl:
            return cached.text
        edges = self.routing.candidates(channel, region)
        scope = Scope("live", channel)
        prefix = self.routing.sign(scope, lifetime_seconds=MASTER_URL_SECONDS, client_ip=None)
        for edge in edges[:3]:
            url = f"http://{edge.address}{prefix}{scope.path}{name}"
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
            if len(self._masters) >= MEMO_MAX:
                self._masters.clear()
            self._masters[key] = Master(text, clock)
            return text
        raise UpstreamUnavailable("no edge answered for this channel", reason="no_edge")

    def _routed(
        self, request: web.Request, box: BoxToken, scope: Scope, rest: str, lease: str
    ) -> Redirect:
        """The one signed route of a request: ``{scope}{rest}`` on the lease's edge."""
        try:
            return self.routing.redirect(
                scope, rest, region=box.region, client_ip=request[CLIENT], lease_id=lease
            )
        except NoEdgeAvailable as err:
            raise UpstreamUnavailable("no edge can serve", reason="no_edge") from err

    def _redirect(
        self, request: web.Request, box: BoxToken, scope: Scope, rest: str, lease: str
    ) -> web.Response:
        """The one signed 302 of a request (:meth:`_routed`)."""
        return redirect_response(self._routed(request, box, scope, rest, lease))

    async def live_master(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/master.m3u8``: entitlement, blackout, lease, then the MPEG-TS
        master with the rungs the box's device profile plays (:mod:`.rungs`)."""
        box = request[TOKEN]
        channel = self._channel(request)
        now = self._now()
        await self._require(box, channel)
        await self._check_airing(channel, box.region, now)
        count_fallback(box, channel, directory=self.outputs, metrics=self.metrics)
        return await self._serve_master(request, box, channel, MASTER_NAME)

    async def _serve_master(
        self, request: web.Request, box: BoxToken, channel: str, name: str
    ) -> web.Response:
        """The checked box's master ``name`` of ``channel``: its rungs for the box's profile,
        variant URIs back here with the lease (started or kept)."""
        master = await self._edge_text(channel, box.region, name)
        text = offer_for(master, box, channel=channel, kind="live", metrics=self.metrics).text
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
        if scope.cut is not None and name in CMAF_VARIANTS:
            scope = unswitched(scope, now)
        return self._redirect(request, box, scope, f"{rung}/{name}", lease)

    async def _window_cut(
        self, channel: str, region: str, start: datetime, stop: datetime, now: datetime
    ) -> Cut | None:
        """The cut a box in ``region`` is granted ``[start, stop)`` of ``channel`` through:
        the alert that replaces part of it (it wins), else the slate over the cue blackouts
        in it; or none. A cue blackout in the window that this cut does not hide (no slate
        channel, blackouts with the channel between them, one beside the alert) is refused
        like a blacked-out programme: one grant shows one cut."""
        alert = self.alerts.window(channel, region, start, stop)
        blackouts = [
            (max(c.start, start), min(c.end, stop))
            for c in await self.epg.cues(channel, now)
            if c.start < stop and start < c.end and c.blacks_out(region)
        ]
        joined = _joined(blackouts)
        cut, cause = None, ""
        if alert is not None:
            cut, cause = alert_cut(alert), "alert"
        elif joined is not None and self.settings.blackout_channel:
            cut, cause = self._slate_cut(joined), "blackout"
        if any(cut is None or not _hides(cut, w) for w in blackouts):
            raise BlackedOut(
                "part of this window is blacked out in your region", reason="blacked_out"
            )
        return self._switched(cut, cause) if cut is not None else None

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


def master_key(channel: str, name: str = MASTER_NAME) -> str:
    """Where a replica holds the channel's ``name`` (a master, the MPD) it fetched."""
    return f"{channel}/{name}"


def alert_cut(alert: Alert) -> Cut:
    """The cut that shows ``alert``'s playout channel over the time it is in force (the
    alert cache holds only alerts that came into force)."""
    start, until = alert.in_force_from, alert.in_force_until
    if start is None:
        raise ValueError(f"alert {alert.id} was never in force")
    return Cut(alert.playout_channel_id, _floor(start), _ceil(until) if until else 0)


def _clear(airing: Airing, region: str) -> bool:
    """Does nothing in ``airing`` black out ``region``, whenever it is asked?"""
    return not any(
        p is not None and rights.blacked_out(p, region) for p in (airing.programme, airing.previous)
    ) and not any(c.blacks_out(region) for c in airing.cues)


def _joined(windows: Iterable[Window]) -> Window | None:
    """The one stretch ``windows`` make together; None for none, or for gaps between them."""
    ordered = sorted(windows)
    if not ordered:
        return None
    start, stop = ordered[0]
    for later, until in ordered[1:]:
        if later > stop:
            return None
        stop = max(stop, until)
    return start, stop


def _hides(cut: Cut, window: Window) -> bool:
    """Does ``cut`` show its feed over the whole of ``window``?"""
    start, stop = window
    return cut.start <= _floor(start) and (cut.end == 0 or _ceil(stop) <= cut.end)


def _floor(at: datetime) -> int:
    return int(at.timestamp())


def _ceil(at: datetime) -> int:
    whole = int(at.timestamp())
    return whole if whole == at.timestamp() else whole + 1
