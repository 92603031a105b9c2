"""The front door's listings: the box's lineup (M3U) and guide (XMLTV).

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor` (which owns the state declared
below). Both list the box's entitled channels only; a blacked-out programme shows as the
slate entry, and while an emergency alert reaches the box its entry leads the lineup and
replaces the programmes it covers in the guide (the guide is then cached for 30 s, not
300, so boxes pick up its end soon). A channel the box plays from a multicast group
(:func:`~cdn_ctl.frontdoor.policy.delivery`: its device profile lists multicast and the
group reaches its region) is listed with the group's URL, one it plays as CMAF-HLS or
DASH (its profile prefers those and the channel is published as CMAF) with the front
door's CMAF master or MPD, but while an alert reaches the box its entry and the channels
it replaces stay MPEG-TS HLS, so a box that tunes to them plays the alert through the
front door.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from aiohttp import web

from cdn_ctl.boxtoken import BoxToken
from cdn_ctl.frontdoor.playback import TOKEN, token_query
from cdn_ctl.frontdoor.players import M3U_TYPE
from cdn_ctl.frontdoor.policy import (
    HLS_TS,
    Delivery,
    alert_entry,
    alert_programme,
    delivery,
    slate_for,
)
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.upstream import EpgCache, SubscriberCache
from cdn_ctl.upstream.alerts import AlertCache
from cdn_ctl.upstream.outputs import LiveDirectory
from epg.domain import Channel, Programme, rights
from epg.xmltv import write_xmltv


class Listings:
    """Lineup and guide handlers; the state they use is the front door's."""

    settings: FrontDoorSettings
    subscriber: SubscriberCache
    epg: EpgCache
    alerts: AlertCache
    outputs: LiveDirectory | None
    _now: Callable[[], datetime]
    _base: Callable[[web.Request], str]

    async def _entitled(self, box: BoxToken) -> list[Channel]:
        channels = await self.epg.channels()
        allowed = await self.subscriber.channels(box.carrier, box.subscriber)
        return [channels[c] for c in sorted(allowed) if c in channels]

    def deliveries(self, box: BoxToken, channels: Iterable[Channel]) -> dict[str, Delivery]:
        """How ``box`` plays each of ``channels`` live when not as MPEG-TS HLS (its
        profile's choice, :func:`~cdn_ctl.frontdoor.policy.delivery`); those left out play
        MPEG-TS HLS through the front door, as does every channel an emergency alert in
        force for the box replaces: only that shows the alert's cut view."""
        directory = self.outputs
        if directory is None:
            return {}
        region, profile = box.region, box.profile
        alerts = self.alerts.reaching(region, self._now())
        found = (
            (c.id, delivery(directory.get(c.id), profile=profile, region=region))
            for c in channels
            if not any(a.reaches(c.id, region) for a in alerts)
        )
        return {channel: how for channel, how in found if how.format != "hls-ts"}

    def live_urls(self, box: BoxToken, channels: Iterable[Channel]) -> dict[str, str]:
        """The channels ``box`` plays from a multicast group, with the group's URL."""
        return {c: how.url for c, how in self.deliveries(box, channels).items() if how.url}

    async def lineup(self, request: web.Request) -> web.Response:
        """``GET /lineup.m3u``: the entitled channels as extended M3U."""
        text = await self.lineup_text(request[TOKEN], self._base(request), token_query(request))
        return web.Response(text=text, content_type=M3U_TYPE, headers={"Cache-Control": "no-store"})

    async def lineup_text(self, box: BoxToken, base: str, query: str, guide_url: str = "") -> str:
        """The box's lineup; ``query`` (``token=...``) goes on every URL in it. While an
        emergency alert reaches the box, its entry comes first (on the first of the box's
        channels it replaces, which plays the alert)."""
        channels = await self._entitled(box)
        how = self.deliveries(box, channels)
        entries = [
            LineupEntry(
                c.id, c.number, c.name(), c.logo_url, c.group, c.catchup_days,
                live_url=how.get(c.id, HLS_TS).url,
                manifest=how.get(c.id, HLS_TS).name or HLS_TS.name,
            )
            for c in channels
        ]  # fmt: skip
        for alert in self.alerts.reaching(box.region, self._now()):
            replaced = [c for c in channels if alert.reaches(c.id, box.region)]
            if replaced:
                entries.insert(0, alert_entry(alert, replaced[0].id))
                break
        guide = guide_url or f"{base}/guide.xml.gz"
        return render_m3u(entries, base_url=base, guide_url=guide, query=query)

    async def guide(self, request: web.Request) -> web.Response:
        """``GET /guide.xml.gz``: XMLTV of the entitled channels, blackouts as slates,
        emergency alerts over the programmes they replace (kept briefly while one is on)."""
        box = request[TOKEN]
        alerted = bool(self.alerts.reaching(box.region, self._now()))
        return web.Response(
            body=await self.guide_data(box),
            content_type="application/gzip",
            headers={"Cache-Control": f"private, max-age={30 if alerted else 300}"},
        )

    async def guide_data(self, box: BoxToken, *, compress: bool = True) -> bytes:
        """The box's guide as XMLTV (gzipped): entitled channels, blackouts as slates, the
        alerts in force for the box over the programmes they replace."""
        now = self._now()
        channels = await self._entitled(box)
        future = now + timedelta(days=self.settings.guide_future_days)
        alerts = self.alerts.reaching(box.region, now)
        programmes: list[Programme] = []
        for channel in channels:
            days = min(self.settings.guide_past_days, channel.catchup_days)
            past = now - timedelta(days=days)
            on = [a for a in alerts if a.reaches(channel.id, box.region)]
            for p in await self.epg.programmes(channel.id, now):
                if p.stop <= past or p.start >= future:
                    continue
                alert = next((a for a in on if a.overlaps(p.start, p.stop)), None)
                if alert is not None:
                    programmes.append(alert_programme(p, alert))
                elif rights.blacked_out(p, box.region):
                    programmes.append(slate_for(p))
                else:
                    programmes.append(p)
        return write_xmltv(channels, programmes, compress=compress)
