"""Cue blackouts at the front door, against the real stack of the alerts' tests (real EPG
server with its CueService, real subscriber server, a real nginx edge, the real routing
service, two front door replicas): which boxes' variant reloads and catch-up grants are
cut to the slate channel, and when."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from cdn_ctl.frontdoor.app import FrontDoor
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.upstream import EpgCache
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind
from epg.cues.rules import START_NOW
from headend.auth import PLAYBACK, KeyStore
from tests.cdn_ctl import test_frontdoor_alerts
from tests.cdn_ctl.test_frontdoor_alerts import (  # the stack and its probes, shared
    FEED,
    SLATE,
    Doors,
    _flood,
    _switched,
    _until,
    _where,
)
from tests.support.world import LIVE, OTHER_REGION, REGION

# The alerts' stack, a fixture of this module too.
doors = test_frontdoor_alerts.doors


@pytest.fixture
async def cues(doors: Doors) -> AsyncIterator[CueClient]:
    """An admin's ``CueService`` client on the stack's EPG."""
    async with CueClient(doors.services.epg_target, doors.services.api_key) as client:
        yield client


def _blackout(**changes: Any) -> Cue:
    """A ten-minute break on the news channel, starting now, blacking out REGION's county."""
    cue = Cue(
        id="",
        channel_id=LIVE,
        kind=CueKind.BREAK,
        start=START_NOW,
        duration_seconds=600.0,
        blackout_regions=(REGION,),
        description="regional rights: local match",
    )
    return replace(cue, **changes)


def _slate(cue: Cue) -> str:
    """The cut view to the slate over the cue, as a box's reload is signed for it."""
    start, end = int(cue.start.timestamp()), math.ceil(cue.end.timestamp())
    return f"/live/{LIVE}/x/{SLATE}/{start}-{end}/"


async def _known(frontdoor: FrontDoor, cue: Cue) -> None:
    """Wait until ``frontdoor`` holds ``cue`` as stored (its feed brought the change)."""

    async def check() -> bool:
        held = await frontdoor.epg.cues(cue.channel_id, datetime.now(UTC))
        return (cue.id, cue.end) in {(c.id, c.end) for c in held}

    await _until(check)


async def test_a_cue_blackout_switches_its_county_to_the_slate_and_no_other(
    doors: Doors, cues: CueClient
) -> None:
    assert OTHER_REGION[:2] != REGION[:2]
    async with aiohttp.ClientSession() as http:
        inside, outside = doors.box("c1", http), doors.box("b1", http)
        assert "/x/" not in await _where(inside, http)
        epg = doors.frontdoors[0].epg
        drops = epg.drops
        cue = await cues.insert(_blackout())
        location = await _switched(inside, http, _slate(cue))
        # The feed's change named the channel's cues: the rest of the cache was kept.
        assert epg.drops == drops
        assert f"{_slate(cue)}180p/index.m3u8?" in location, location
        assert "/x/" not in await _where(outside, http)
        # The other replica learnt it from the same feed.
        await _switched(doors.box("e1", http, replica=1), http, _slate(cue))
        metrics = doors.frontdoors[0].metrics
        assert metrics is not None
        assert metrics.picture_switches.labels("blackout")._value.get() >= 1
        assert metrics.picture_switches.labels("alert")._value.get() == 0


async def test_a_pending_cue_switches_nobody_until_it_starts(doors: Doors, cues: CueClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    cue = await cues.insert(_blackout(start=start, duration_seconds=60.0))
    await _known(doors.frontdoors[0], cue)
    async with aiohttp.ClientSession() as http:
        inside = doors.box("c1", http)
        assert "/x/" not in await _where(inside, http)
        assert datetime.now(UTC) < cue.start, "the machine took the whole lead time"
        await asyncio.sleep((cue.start - datetime.now(UTC)).total_seconds())
        await _switched(inside, http, _slate(cue))


async def test_cancelling_a_running_cue_returns_the_boxes_after_the_linger(
    doors: Doors, cues: CueClient
) -> None:
    linger = timedelta(seconds=5)
    url, _frontdoor = await doors.start(alert_linger_seconds=linger.total_seconds())
    async with aiohttp.ClientSession() as http:
        b = doors.world.boxes["c1"]
        box = SetTopBox(http, url, mac=b.mac, secret=b.secret)
        cue = await cues.insert(_blackout())
        await _switched(box, http, _slate(cue))
        cancelled = await cues.cancel(LIVE, cue.id)
        assert cancelled.end < cue.end
        # Ended now: the box keeps the slate up to the join back, for the linger...
        await _switched(box, http, _slate(cancelled))

        async def back() -> bool:
            return "/x/" not in await _where(box, http)

        await _until(back, seconds=linger.total_seconds() + 10)
        # ...and not a moment less.
        assert datetime.now(UTC) >= cancelled.end + linger


async def test_a_cue_without_blackout_regions_switches_nobody(
    doors: Doors, cues: CueClient
) -> None:
    cue = await cues.insert(_blackout(blackout_regions=()))
    await _known(doors.frontdoors[0], cue)
    async with aiohttp.ClientSession() as http:
        assert "/x/" not in await _where(doors.box("c1", http), http)


async def test_an_alert_in_force_wins_over_a_cue_blackout(doors: Doors, cues: CueClient) -> None:
    async with aiohttp.ClientSession() as http:
        inside = doors.box("c1", http)
        cue = await cues.insert(_blackout())
        await _switched(inside, http, _slate(cue))
        await doors.issuer.issue(_flood(drill=True), alert_id="drill-cue")
        await _switched(inside, http, f"/live/{LIVE}/x/{FEED}/")


async def test_without_a_slate_channel_a_cue_blackout_is_refused(
    doors: Doors, cues: CueClient
) -> None:
    url, _frontdoor = await doors.start(blackout_channel="")
    async with aiohttp.ClientSession() as http:
        inside, outside = (
            SetTopBox(http, url, mac=b.mac, secret=b.secret)
            for b in (doors.world.boxes["c1"], doors.world.boxes["b1"])
        )
        for box in (inside, outside):
            await box.login()
        await cues.insert(_blackout())

        async def refused() -> bool:
            async with http.get(
                inside.url(f"/live/{LIVE}/master.m3u8"), headers=inside._auth()
            ) as r:
                return r.status == 403 and (await r.json())["reason"] == "blacked_out"

        await _until(refused)
        assert "/x/" not in await _where(outside, http)


async def _grant(box: SetTopBox, http: aiohttp.ClientSession, path: str) -> tuple[int, str]:
    """A catch-up kind of request: its status, and where it was sent (or why not)."""
    if not box.token:
        await box.login()
    async with http.get(box.url(path), headers=box._auth(), allow_redirects=False) as resp:
        if resp.status == 302:
            return resp.status, resp.headers["Location"]
        return resp.status, (await resp.json())["reason"]


def _window(start: datetime, stop: datetime) -> str:
    return (
        f"/catchup/{LIVE}/master.m3u8?utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
    )


async def test_catch_up_over_a_cue_blackout_shows_the_slate_in_its_county(
    doors: Doors, cues: CueClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Ran 50 s ago for 20 s (the EPG takes a start up to a minute back).
    cue = await cues.insert(_blackout(start=now - timedelta(seconds=50), duration_seconds=20.0))
    await _known(doors.frontdoors[0], cue)
    start, stop = now - timedelta(minutes=30), now
    async with aiohttp.ClientSession() as http:
        status, location = await _grant(doors.box("c1", http), http, _window(start, stop))
        assert status == 302, location
        window = f"/catchup/{LIVE}/w/{int(start.timestamp())}/{int(stop.timestamp())}/"
        assert f"{window}x/{SLATE}/{int(cue.start.timestamp())}-" in location, location
        status, location = await _grant(doors.box("b1", http), http, _window(start, stop))
        assert status == 302, location
        assert "/x/" not in location
        # A window the cue does not reach is the channel's own.
        before = (start, cue.start - timedelta(seconds=5))
        status, location = await _grant(doors.box("c1", http), http, _window(*before))
        assert (status, "/x/" in location) == (302, False), location


async def test_catch_up_over_two_blackouts_apart_is_refused(doors: Doors, cues: CueClient) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = await cues.insert(_blackout(start=now - timedelta(seconds=50), duration_seconds=10.0))
    second = await cues.insert(_blackout(start=now - timedelta(seconds=30), duration_seconds=10.0))
    await _known(doors.frontdoors[0], second)
    async with aiohttp.ClientSession() as http:
        inside = doors.box("c1", http)
        # One cut shows one stretch: the channel between them cannot be kept, nor hidden.
        status, reason = await _grant(inside, http, _window(now - timedelta(minutes=5), now))
        assert (status, reason) == (403, "blacked_out")
        # Each alone is a cut.
        for cue in (first, second):
            status, location = await _grant(inside, http, _window(cue.start, cue.end))
            assert status == 302, location
            assert f"x/{SLATE}/{int(cue.start.timestamp())}-" in location, location
        status, location = await _grant(
            doors.box("b1", http), http, _window(now - timedelta(minutes=5), now)
        )
        assert (status, "/x/" in location) == (302, False), location


async def test_timeshift_into_a_running_cue_blackout_shows_the_slate(
    doors: Doors, cues: CueClient
) -> None:
    cue = await cues.insert(_blackout())
    await _known(doors.frontdoors[0], cue)
    async with aiohttp.ClientSession() as http:
        path = f"/timeshift/{LIVE}/master.m3u8?offset=120"
        status, location = await _grant(doors.box("c1", http), http, path)
        assert status == 302, location
        assert f"x/{SLATE}/{int(cue.start.timestamp())}-" in location, location
        status, location = await _grant(doors.box("b1", http), http, path)
        assert (status, "/x/" in location) == (302, False), location


async def test_a_front_door_started_after_the_cue_switches_from_its_first_answer(
    doors: Doors, cues: CueClient
) -> None:
    cue = await cues.insert(_blackout())
    url, _frontdoor = await doors.start(wait=False)
    async with aiohttp.ClientSession() as http:
        b = doors.world.boxes["a1"]
        box = SetTopBox(http, url, mac=b.mac, secret=b.secret)
        assert _slate(cue) in await _where(box, http)


async def test_the_front_doors_playback_key_reads_the_cues(
    doors: Doors, cues: CueClient, redis: aioredis.Redis
) -> None:
    _, key = await KeyStore(redis).create(PLAYBACK)
    cue = await cues.insert(_blackout())
    cache = EpgCache(doors.services.epg_target, key)
    try:
        held = await cache.cues(LIVE, datetime.now(UTC))
    finally:
        await cache.close()
    assert [c.id for c in held] == [cue.id]
