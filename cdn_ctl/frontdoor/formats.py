"""The front door's live CMAF routes: the CMAF-HLS master and the live MPEG-DASH MPD of a
channel published as CMAF (``Channel.formats``; :mod:`transcode.live.cmaf` writes both).

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor`, on the checks every live grant
shares (:class:`~cdn_ctl.frontdoor.playback.Playback`: entitlement, blackout, the lease
that holds the box's one stream, signing, the lease's edge):

- ``GET /live/{ch}/master-cmaf.m3u8``: the CMAF-HLS master, served like the MPEG-TS one
  (fetched once per ``master_ttl_seconds`` from an edge, the rungs the box's profile
  plays, variant URIs back here with the lease). Its variant reloads
  (``{track}/cmaf.m3u8``, ``{rung}/cmaf-iframes.m3u8``) take the MPEG-TS variants' route
  and its signed 302 to the lease's edge.
- ``GET /live/{ch}/manifest.mpd[?lease_id=]``: a DASH player reloads the MPD itself
  (``minimumUpdatePeriod``) and follows no 302 back (dash.js keeps reloading where a
  redirect left it), so the front door serves the MPD, fetched from an edge at most once a
  second per replica (:data:`MPD_TTL_SECONDS`), with a ``BaseURL`` signed for the
  lease's edge, where segments resolve, and a ``Location`` back here with the lease:
  every reload is checked, heartbeats the lease and gets a fresh signature (or a healthy
  edge once the lease's is down), as an HLS variant reload does.

Cut views (an emergency alert, a blackout's slate) are MPEG-TS only: while one applies
to the box, a CMAF master, variant or MPD request is refused with 409 ``picture_switched``
naming the channel's MPEG-TS master, which shows it (the lineup lists the channels an
alert replaces as MPEG-TS HLS for as long as it is in force). A channel not published as
CMAF is refused with 409 ``format_not_offered`` the same way, before any lease is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.domain import LEASE_PARAM, Scope, lease_param
from cdn_ctl.frontdoor.playback import (
    ALERTS_WAIT_SECONDS,
    LEASE_HEADER,
    MPD_TYPE,
    TOKEN,
    Playback,
    token_query,
)
from cdn_ctl.frontdoor.policy import LIVE_NAMES, require_offered, rewrite_mpd, unswitched

# How long a replica serves an MPD it fetched: well under a segment, so a player sees a
# new segment within a second of its edge.
MPD_TTL_SECONDS = 1.0


class LiveFormats(Playback):
    """CMAF-HLS master and DASH MPD handlers; the state they use is the front door's."""

    _base: Callable[[web.Request], str]

    async def _cmaf_scope(
        self, box: BoxToken, channel: str, now: datetime, blacked: tuple[datetime, datetime] | None
    ) -> Scope:
        """The box's live scope now, refused while a cut view is in force (MPEG-TS only)."""
        await self.alerts.ready(ALERTS_WAIT_SECONDS)
        return unswitched(self._live_scope(channel, box.region, now, blacked), now)

    async def live_cmaf_master(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/master-cmaf.m3u8``: the checks of the MPEG-TS master, then the
        CMAF-HLS master with the rungs the box's device profile plays."""
        box = request[TOKEN]
        channel = self._channel(request)
        require_offered(self._output(channel), channel, "hls-cmaf")
        now = self._now()
        await self._require(box, channel)
        blacked = await self._check_airing(channel, box.region, now)
        await self._cmaf_scope(box, channel, now, blacked)
        return await self._serve_master(request, box, channel, LIVE_NAMES["hls-cmaf"])

    async def live_mpd(self, request: web.Request) -> web.Response:
        """``GET /live/{ch}/manifest.mpd[?lease_id=]``: entitlement, blackout, the lease
        (started without one, kept with it), then the edge's MPD with the lease's signed
        ``BaseURL`` and a ``Location`` back here."""
        box = request[TOKEN]
        channel = self._channel(request)
        require_offered(self._output(channel), channel, "dash")
        now = self._now()
        await self._require(box, channel)
        blacked = await self._check_airing(channel, box.region, now)
        scope = await self._cmaf_scope(box, channel, now, blacked)
        held = lease_param(request.query)
        if not held:
            # A player reloading the URL it was given, not the MPD's Location (FFmpeg's
            # DASH demuxer), keeps the box's lease on the channel instead of starting one
            # per reload.
            mine = self.leases.of_box(box.mac)
            held = mine.lease_id if mine is not None and mine.channel == channel else ""
        lease = await self._lease(box, channel, held)
        name = LIVE_NAMES["dash"]
        text = await self._edge_text(channel, box.region, name, ttl=MPD_TTL_SECONDS)
        routed = self._routed(request, box, scope, name, lease)
        base = routed.location.partition("?")[0].rpartition("/")[0] + "/"
        location = f"{self._base(request)}/live/{channel}/{name}?{LEASE_PARAM}={lease}"
        extra = token_query(request)
        if extra:
            location += f"&{extra}"
        return web.Response(
            text=rewrite_mpd(text, base_url=base, location=location),
            content_type=MPD_TYPE,
            headers={"Cache-Control": "no-store", LEASE_HEADER: lease},
        )
