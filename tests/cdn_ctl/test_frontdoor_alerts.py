"""Emergency alerts and picture blackouts at the front door, against real EPG (with its
AlertService) and subscriber gRPC servers, a real nginx edge and the real routing service:
which boxes' variant reloads and catch-up grants are cut to another picture, and when."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.signing import KeyRing
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.upstream import EpgCache, SubscriberCache
from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Severity
from headend.auth import KeyStore, Principal
from headend.seed import World
from tests.support.cdn import EdgeFactory, FakeOrigin, two_region_routing
from tests.support.world import (
    LIVE,
    OTHER_REGION,
    REGION,
    SPORT,
    Services,
    frontdoor_settings,
    seed_world,
    start_services,
)

FEED = "emergency.cn"
SLATE = "slate.cn"
AGENCY = Principal("emergency", "bj-eb")


@dataclass
class Doors:
    """Two front door replicas over one EPG, and two emergency officers' clients."""

    urls: list[str]
    frontdoors: list[FrontDoor]
    world: World
    services: Services
    issuer: AlertClient
    confirmer: AlertClient
    # Starts one more replica (its URL and front door), stopped with the others.
    start: Callable[..., Awaitable[tuple[str, FrontDoor]]]

    def box(self, label: str, http: aiohttp.ClientSession, replica: int = 0) -> SetTopBox:
        b = self.world.boxes[label]
        return SetTopBox(http, self.urls[replica], mac=b.mac, secret=b.secret)


@pytest.fixture
async def doors(
    redis: aioredis.Redis, origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> AsyncIterator[Doors]:
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    edge = await edges("v1", upstream=origin.address)
    _router, routing = two_region_routing(edge.config.listen_port, ring)
    keys = KeyStore(redis)
    _, first = await keys.create(AGENCY)
    _, second = await keys.create(AGENCY)
    started: list[tuple[TestServer, FrontDoor]] = []
    async with (
        aiohttp.ClientSession() as http,
        AlertClient(services.epg_target, first) as issuer,
        AlertClient(services.epg_target, second) as confirmer,
    ):

        async def door(*, wait: bool = True, **overrides: Any) -> tuple[str, FrontDoor]:
            settings = frontdoor_settings(
                services, **{"alert_linger_seconds": 0, "blackout_channel": SLATE, **overrides}
            )
            subscriber = SubscriberCache(
                services.subscriber_target, services.api_key, entitlement_ttl_seconds=1.0
            )
            epg = EpgCache(services.epg_target, services.api_key)
            frontdoor = FrontDoor(
                settings, routing=routing, subscriber=subscriber, epg=epg, http=http,
                metrics=CdnMetrics(),
            )  # fmt: skip
            server = TestServer(create_box_app(frontdoor), host="127.0.0.1")
            await frontdoor.start()
            await asyncio.wait_for(epg.watching.wait(), 10)
            if wait:
                await asyncio.wait_for(frontdoor.alerts.loaded.wait(), 10)
            await server.start_server()
            started.append((server, frontdoor))
            return str(server.make_url("")).rstrip("/"), frontdoor

        try:
            replicas = [await door(), await door()]
            yield Doors(
                [u for u, _ in replicas], [f for _, f in replicas], world, services,
                issuer, confirmer, door,
            )  # fmt: skip
        finally:
            for server, frontdoor in started:
                await server.close()
                await frontdoor.stop()
            await services.stop()


def _flood(**changes: Any) -> Alert:
    alert = Alert(
        id="",
        severity=Severity.SEVERE,
        headline="Flood warning: move to high ground",
        description="The river will overtop its banks tonight.",
        regions=(REGION,),
        feed_channel_id=FEED,
        language="en",
    )
    return replace(alert, **changes)


async def _where(box: SetTopBox, http: aiohttp.ClientSession, channel: str = LIVE) -> str:
    """Where the box's next live variant reload is sent (the signed path at the edge)."""
    if not box.token:
        await box.login()
    _lease, variant = await box.open_live(channel)
    async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


def _cut(alert: Alert) -> str:
    return f"/live/{LIVE}/x/{alert.playout_channel_id}/"


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Poll ``check`` (each poll is real requests) until it holds, for up to ``seconds``."""

    async def poll() -> None:
        while True:
            if await check():
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), seconds)


async def _switched(box: SetTopBox, http: aiohttp.ClientSession, part: str) -> str:
    found = ""

    async def check() -> bool:
        nonlocal found
        found = await _where(box, http)
        return part in found

    await _until(check)
    return found


async def test_a_confirmed_alert_switches_the_boxes_in_its_county_and_no_other(
    doors: Doors,
) -> None:
    async with aiohttp.ClientSession() as http:
        inside, outside = doors.box("c1", http), doors.box("b1", http)
        issued = await doors.issuer.issue(_flood(), alert_id="flood-1")
        # Pending: one officer alone switches nobody.
        assert "/x/" not in await _where(inside, http)
        confirmed = await doors.confirmer.confirm(issued.id)
        assert confirmed.in_force_from is not None
        location = await _switched(inside, http, _cut(confirmed))
        start = int(confirmed.in_force_from.timestamp())
        assert f"/x/{FEED}/{start}-0/180p/index.m3u8" in location
        assert "/x/" not in await _where(outside, http)
        # The other replica learnt it from the same feed.
        other = doors.box("e1", http, replica=1)
        await _switched(other, http, _cut(confirmed))
        switches = doors.frontdoors[0].metrics
        assert switches is not None
        assert switches.picture_switches.labels("alert")._value.get() >= 1


async def test_cancelling_returns_the_boxes_to_their_channel(doors: Doors) -> None:
    async with aiohttp.ClientSession() as http:
        inside = doors.box("c1", http)
        issued = await doors.issuer.issue(_flood(drill=True), alert_id="drill-1")
        # A drill needs no second officer.
        await _switched(inside, http, _cut(issued))
        cancelled = await doors.issuer.cancel(issued.id, reason="drill over")
        assert cancelled.in_force_until is not None

        async def back() -> bool:
            return "/x/" not in await _where(inside, http)

        await _until(back)


async def test_an_alert_for_named_channels_leaves_the_others(doors: Doors) -> None:
    async with aiohttp.ClientSession() as http:
        inside = doors.box("c1", http)
        issued = await doors.issuer.issue(
            _flood(drill=True, channel_ids=(SPORT,)), alert_id="sport-only"
        )
        assert issued.in_force_from is not None
        assert "/x/" not in await _where(inside, http)


async def test_a_front_door_started_later_knows_the_alert_in_force(doors: Doors) -> None:
    issued = await doors.issuer.issue(_flood(drill=True), alert_id="drill-2")
    # A replica (re)started after the alert: its first answers wait for the alerts.
    url, _frontdoor = await doors.start(wait=False)
    async with aiohttp.ClientSession() as http:
        b = doors.world.boxes["a1"]
        box = SetTopBox(http, url, mac=b.mac, secret=b.secret)
        assert _cut(issued) in await _where(box, http)


async def test_catch_up_of_the_alert_period_shows_the_alert(doors: Doors) -> None:
    issued = await doors.issuer.issue(_flood(drill=True), alert_id="drill-3")
    assert issued.in_force_from is not None
    start = issued.in_force_from - timedelta(minutes=30)
    stop = issued.in_force_from + timedelta(seconds=5)
    await asyncio.sleep(5)  # the window must have begun and be inside the catch-up bound
    async with aiohttp.ClientSession() as http:
        for label, cut in (("c1", True), ("b1", False)):
            box = doors.box(label, http)
            await box.login()
            query = f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
            async with http.get(
                box.url(f"/catchup/{LIVE}/master.m3u8?{query}"),
                headers=box._auth(),
                allow_redirects=False,
            ) as resp:
                assert resp.status == 302, await resp.text()
                location = resp.headers["Location"]
            assert (f"/x/{FEED}/" in location) is cut, location


async def test_lineup_and_guide_show_the_alert_while_it_is_in_force(doors: Doors) -> None:
    issued = await doors.issuer.issue(_flood(drill=True), alert_id="drill-4")
    async with aiohttp.ClientSession() as http:
        inside, outside = doors.box("c1", http), doors.box("b1", http)
        for box in (inside, outside):
            await box.login()
        async with http.get(inside.url("/lineup.m3u"), headers=inside._auth()) as resp:
            lines = (await resp.text()).splitlines()
        assert "[DRILL" in lines[1]
        assert issued.headline in lines[1]
        assert lines[2].startswith(f"{doors.urls[0]}/live/")
        async with http.get(outside.url("/lineup.m3u"), headers=outside._auth()) as resp:
            assert issued.headline not in await resp.text()
        async with http.get(inside.url("/guide.xml.gz"), headers=inside._auth()) as resp:
            assert resp.headers["Cache-Control"] == "private, max-age=30"
            guide = gzip.decompress(await resp.read()).decode()
        assert issued.headline in guide
        assert "Emergency" in guide
        await doors.issuer.cancel(issued.id)

        async def gone() -> bool:
            async with http.get(inside.url("/lineup.m3u"), headers=inside._auth()) as resp:
                return issued.headline not in await resp.text()

        await _until(gone)


async def test_a_blackout_switches_the_picture_to_the_slate_in_its_region_only(
    doors: Doors,
) -> None:
    # sport.cn's programme on air now is blacked out in REGION's province.
    async with aiohttp.ClientSession() as http:
        inside, outside = doors.box("c1", http), doors.box("b1", http)
        location = await _where(inside, http, SPORT)
        assert f"/live/{SPORT}/x/{SLATE}/" in location
        assert "/x/" not in await _where(outside, http, SPORT)
        assert OTHER_REGION != REGION


async def test_without_a_slate_channel_a_blackout_is_still_refused(doors: Doors) -> None:
    url, _frontdoor = doors.urls[0], doors.frontdoors[0]
    settings = replace(doors.frontdoors[0].settings, blackout_channel="")
    doors.frontdoors[0].settings = settings
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(
            http, url, mac=doors.world.boxes["c1"].mac, secret=doors.world.boxes["c1"].secret
        )
        await box.login()
        async with http.get(box.url(f"/live/{SPORT}/master.m3u8"), headers=box._auth()) as resp:
            assert resp.status == 403
            assert (await resp.json())["reason"] == "blacked_out"


async def test_a_blackout_wins_over_an_alert_that_has_ended(doors: Doors) -> None:
    _url, frontdoor = await doors.start(alert_linger_seconds=300)
    async with aiohttp.ClientSession() as http:
        b = doors.world.boxes["c1"]
        box = SetTopBox(http, _url, mac=b.mac, secret=b.secret)
        issued = await doors.issuer.issue(_flood(drill=True), alert_id="drill-5")
        assert f"/live/{SPORT}/x/{FEED}/" in await _where(box, http, SPORT)
        await doors.issuer.cancel(issued.id)

        async def lingering() -> bool:
            return all(a.in_force_until is not None for a in frontdoor.alerts.alerts)

        await _until(lingering)
        # Still lingering for news (the box crosses the join back)...
        assert _cut(issued) in await _where(box, http)
        # ...but sport's blackout is on now: the slate.
        assert f"/live/{SPORT}/x/{SLATE}/" in await _where(box, http, SPORT)
