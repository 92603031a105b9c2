"""The front door's start-over and timeshift routes: live, from an earlier point.

Both are catch-up windows whose end is still ahead, granted by the one catch-up grant
(:meth:`cdn_ctl.frontdoor.playback.Playback._grant_window`: the same window, channel,
entitlement, catch-up and blackout rules, the same lease, key grant and 302 signed
for exactly ``/catchup/{ch}/w/{from}/{to}/``). The origin serves such a window as an
EVENT playlist that grows with the archive and gains ENDLIST once the window has ended
(``transcode.archive.window_state``), and says ``EXT-X-START`` at its first segment so
players begin there, not at its live edge. Until the window has settled its playlists
carry the live Cache-Control, so edges keep them as briefly as live ones.

- **Start-over** is the programme on air now, from its start to its stop.
- **Timeshift** is anchored at the instant asked for (at most the channel's timeshift
  depth back, :meth:`FrontDoorSettings.timeshift_depth`) and runs to the stop of the
  programme on air now: a grant never reaches a programme whose rights it has not
  checked, and the playlist keeps every segment from the anchor, so the viewer can
  rewind to it and play forward into the live edge. When it ends the box asks again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from aiohttp import web

from cdn_ctl.errors import CatchupRefused, ProgrammeUnknown
from cdn_ctl.frontdoor.playback import Playback
from cdn_ctl.frontdoor.policy import epoch, seconds
from cdn_ctl.upstream import on_air


def anchor(query: Mapping[str, str], now: datetime) -> datetime:
    """Where a timeshift starts: ``utc`` (or its other name ``start``), epoch seconds, or
    ``offset`` seconds before now (the forms Kodi's and TiviMate's templates fill in)."""
    if "utc" not in query and "start" not in query and "offset" in query:
        return now - timedelta(seconds=seconds(query, "offset"))
    return epoch(query, "utc" if "utc" in query or "start" not in query else "start")


class Timeshift(Playback):
    """Start-over and timeshift handlers over the catch-up grant."""

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
