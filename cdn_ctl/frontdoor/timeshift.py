"""The front door's catch-up, start-over and timeshift routes: windows of the archive.

Catch-up is a window asked for (a programme, or ``utc`` to ``utcend``). Start-over and
timeshift are live, from an earlier point: catch-up windows whose end is still ahead.
All three are granted by the one catch-up grant (:meth:`Timeshift._grant_window`: the
same window, channel, entitlement, catch-up and blackout rules, the same lease, key
grant and 302 signed for exactly ``/catchup/{ch}/w/{from}/{to}/``). A window that
overlaps an emergency alert or a cue blackout for the box's region is granted as a cut
window showing the alert's feed or the slate over that part
(:meth:`~cdn_ctl.frontdoor.playback.Playback._window_cut`); a programme blacked out
there is refused. A box whose device profile leaves rungs of the window's master out
gets that master from the front door instead of the 302 (:meth:`Timeshift._window_master`).

The origin serves a window that ends ahead as an EVENT playlist that grows with the
archive and gains ENDLIST once the window has ended (``transcode.archive.window_state``),
and says ``EXT-X-START`` at its first segment so players begin there, not at its live
edge. Until the window has settled its playlists
carry the live Cache-Control, so edges keep them as briefly as live ones.

- **Start-over** is the programme on air now, from its start to its stop.
- **Timeshift** is anchored at the instant asked for (at most the channel's timeshift
  depth back, :meth:`FrontDoorSettings.timeshift_depth`) and runs to the stop of the
  programme on air now: a grant never reaches a programme whose rights it has not
  checked, and the playlist keeps every segment from the anchor, so the viewer can
  rewind to it and play forward into the live edge. When it ends the box asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.domain import LEASE_PARAM, Redirect, Scope, lease_param
from cdn_ctl.errors import (
    BadPlayRequest,
    BlackedOut,
    CatchupRefused,
    ProgrammeUnknown,
)
from cdn_ctl.frontdoor.playback import (
    ALERTS_WAIT_SECONDS,
    MASTER_NAME,
    MASTER_URL_SECONDS,
    MPD_TYPE,
    PLAYLIST_TYPE,
    TOKEN,
    Playback,
    log,
    master_key,
)
from cdn_ctl.frontdoor.policy import (
    FORMAT_OF,
    LIVE_NAMES,
    epoch,
    hls_ts_only,
    require_offered,
    rewrite_mpd,
    seconds,
)
from cdn_ctl.frontdoor.profiles import offer_for
from cdn_ctl.frontdoor.rungs import absolute_master, offer, unrestricted
from cdn_ctl.upstream import on_air
from cdn_ctl.web import redirect_response
from epg.domain import Channel, rights
from transcode.names import MPD_NAME


def anchor(query: Mapping[str, str], now: datetime) -> datetime:
    """Where a timeshift starts: ``utc`` (or its other name ``start``), epoch seconds, or
    ``offset`` seconds before now (the forms Kodi's and TiviMate's templates fill in)."""
    if "utc" not in query and "start" not in query and "offset" in query:
        return now - timedelta(seconds=seconds(query, "offset"))
    return epoch(query, "utc" if "utc" in query or "start" not in query else "start")


class Timeshift(Playback):
    """Catch-up, start-over and timeshift handlers over the one catch-up grant."""

    _base: Callable[[web.Request], str]

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
        name = request.path.rpartition("/")[2]  # its routes end with a manifest's name
        return await self._grant_window(request, channel, start, stop, now, name=name)

    async def _grant_window(
        self,
        request: web.Request,
        channel: Channel,
        start: datetime,
        stop: datetime,
        now: datetime,
        *,
        name: str = MASTER_NAME,
    ) -> web.Response:
        """The rights of ``[start, stop)`` for the box (window, channel, entitlement, every
        programme in it), then its lease and the 302 signed for exactly that window's
        manifest ``name`` (its MPEG-TS or CMAF-HLS master, or its MPD): the one grant
        behind catch-up, start-over and timeshift. CMAF-HLS and DASH are granted for a
        channel published as CMAF, never through a cut view (MPEG-TS only)."""
        box = request[TOKEN]
        channel_id = channel.id
        fmt = FORMAT_OF[name]
        if fmt != "hls-ts":
            require_offered(self._output(channel_id), channel_id, fmt, kind="catchup")
        longest = timedelta(hours=self.settings.catchup_max_hours)
        _refuse(rights.window_refusal(start, stop, now, longest=longest))
        _refuse(rights.channel_refusal(channel, start, now))
        await self._require(box, channel_id)
        for p in rights.overlapping(await self.epg.programmes(channel_id, now), start, stop):
            _refuse(rights.programme_refusal(p, box.region), programme=p.id)
        await self.alerts.ready(ALERTS_WAIT_SECONDS)
        cut = await self._window_cut(channel_id, box.region, start, stop, now)
        if cut is not None and fmt != "hls-ts":
            raise hls_ts_only(channel_id, "picture_switched", kind="catchup")
        lease = await self._lease(box, channel_id, lease_param(request.query))
        scope = Scope("catchup", channel_id, int(start.timestamp()), int(stop.timestamp()), cut=cut)
        response = await self._window_master(request, box, scope, lease, name)
        if self.keys is not None:
            await self.keys.grant(box.mac, channel_id, start, stop)
        return response

    async def _window_master(
        self, request: web.Request, box: BoxToken, scope: Scope, lease: str, name: str
    ) -> web.Response:
        """The window's master for the box: the 302 to its edge, unless the box's device
        profile leaves rungs of it out. Then the front door answers in the edge's place
        with the edge's own master (fetched with the query the 302 names: the box's lease
        and region), the rungs left out and every URI absolute on the very URL the 302
        would have named, so the box plays from the edge just as after a 302 (a player
        resolves the master's URIs against the redirect target).
        Fetched only when the channel's ladder may have a rung the profile leaves out
        (:meth:`_ladder_drops`), and the plain 302 whenever the edge does not answer: the
        box plays, unfiltered."""
        redirect = self._routed(request, box, scope, name, lease)
        if name == LIVE_NAMES["dash"]:
            return await self._window_mpd(request, redirect, scope)
        if unrestricted(box.profile) or not self._ladder_drops(scope.channel, box):
            return redirect_response(redirect)
        text = await self._edge_master(redirect, scope, name)
        if text is None:
            return redirect_response(redirect)
        offered = offer_for(text, box, channel=scope.channel, kind="catchup", metrics=self.metrics)
        if not offered.dropped:
            return redirect_response(redirect)
        base = redirect.location.partition("?")[0].rpartition("/")[0] + "/"
        return web.Response(
            text=absolute_master(offered.text, base=base),
            content_type=PLAYLIST_TYPE,
            headers={
                "Cache-Control": "no-store",
                "X-Route-Reason": redirect.reason,
                "X-Route-Edge": redirect.edge.edge_id,
            },
        )

    async def _window_mpd(
        self, request: web.Request, redirect: Redirect, scope: Scope
    ) -> web.Response:
        """The window's MPD, served by the front door as the live one is (a DASH player
        picks its rungs itself, so nothing is left out): the edge's MPD with a ``BaseURL``
        on the very URL the 302 would have named, and a ``Location`` back here with the
        lease, for a window still growing (its MPD is dynamic). Players differ on whether
        they resolve an MPD's URLs against a redirect's target (FFmpeg's DASH demuxer does
        not), so the MPD says where. The plain 302 when the edge does not answer."""
        text = await self._edge_master(redirect, scope, MPD_NAME)
        if text is None:
            return redirect_response(redirect)
        base = redirect.location.partition("?")[0].rpartition("/")[0] + "/"
        again = request.rel_url.update_query({LEASE_PARAM: redirect.lease_id})
        return web.Response(
            text=rewrite_mpd(text, base_url=base, location=f"{self._base(request)}{again}"),
            content_type=MPD_TYPE,
            headers={
                "Cache-Control": "no-store",
                "X-Route-Reason": redirect.reason,
                "X-Route-Edge": redirect.edge.edge_id,
            },
        )

    def _ladder_drops(self, channel: str, box: BoxToken) -> bool:
        """Does the channel's ladder, as its live master the front door holds shows it,
        have a rung the box's profile leaves out? Never fetched for this (a catch-up
        grant reaches nothing outside its window): without a copy, a height cap is taken
        to matter and a codec rule alone not (no HEVC rung has been seen)."""
        held = self._masters.get(master_key(channel))
        if held is None:
            return bool(box.profile.max_height)
        return offer(held.text, box.profile).dropped > 0

    async def _edge_master(self, redirect: Redirect, scope: Scope, name: str) -> str | None:
        """The window's master from the redirect's edge (unbound, short-lived URL, the
        box's lease and region in the query), or None when it does not answer 200."""
        prefix = self.routing.sign(scope, lifetime_seconds=MASTER_URL_SECONDS, client_ip=None)
        query = redirect.location.partition("?")[2]
        url = f"http://{redirect.edge.address}{prefix}{scope.path}{name}"
        if query:
            url += f"?{query}"
        edge_id = redirect.edge.edge_id
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                if resp.status == 200:
                    return await resp.text()
                log.warning(
                    "edge refused the window master fetch",
                    extra={"edge_id": edge_id, "status": resp.status},
                )
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning(
                "edge did not answer the window master fetch",
                extra={"edge_id": edge_id, "error": type(err).__name__},
            )
        return None

    async def _catchup_channel(self, request: web.Request) -> Channel:
        """The request's channel, from the guide (404 for one the guide does not have)."""
        channel = (await self.epg.channels()).get(self._channel(request))
        if channel is None:
            raise ProgrammeUnknown("no such channel", reason="unknown_channel")
        return channel

    async def startover(self, request: web.Request) -> web.Response:
        """``GET /startover/{ch}/master.m3u8``: the programme on air now, from its start."""
        channel = await self._catchup_channel(request)
        now = self._now()
        current = on_air(await self.epg.programmes(channel.id, now), now)
        if current is None:
            raise ProgrammeUnknown("nothing is on air on this channel", reason="nothing_on_air")
        return await self._grant_window(request, channel, current.start, current.stop, now)

    async def timeshift(self, request: web.Request) -> web.Response:
        """``GET /timeshift/{ch}/master.m3u8?utc=`` (or ``start=``, or ``offset=``): live
        from that instant on, up to the end of the programme on air now."""
        channel = await self._catchup_channel(request)
        now = self._now()
        start = anchor(request.query, now)
        longest = timedelta(hours=self.settings.catchup_max_hours)
        depth = min(self.settings.timeshift_depth(channel.id), longest)
        if depth <= timedelta(0):
            raise CatchupRefused("this channel has no timeshift", reason="timeshift_disabled")
        if start < now - depth:
            hours = depth.total_seconds() / 3600
            raise CatchupRefused(
                f"older than the channel's timeshift of {hours:g} h", reason="outside_timeshift"
            )
        programmes = await self.epg.programmes(channel.id, now)
        current = on_air(programmes, now)
        later = [p.start for p in programmes if p.start > now]
        # Nothing on air: up to the next programme, else as far as a window may reach.
        until = current.stop if current else min(later, default=start + longest)
        stop = min(until, start + longest)
        return await self._grant_window(request, channel, start, stop, now)


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
