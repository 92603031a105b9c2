"""Start-over and timeshift at the front door, against real EPG and subscriber gRPC
servers, a real nginx edge and the real routing service: each is a catch-up window
signed into the path, granted by the same rights as catch-up (blackouts, programmes
barred from catch-up, channels without it, entitlement), in the forms IPTV players'
catch-up templates fill in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from cdn_ctl.errors import TokenInvalid
from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.signing import KeyRing, b64url, verify_path
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.upstream import EpgCache, SubscriberCache
from headend.seed import World
from headend.settings import SettingsError
from tests.support.cdn import EdgeFactory, FakeOrigin, eventually, two_region_routing
from tests.support.world import (
    LIVE,
    PREMIUM,
    REGION,
    SPORT,
    Services,
    black_out,
    frontdoor_settings,
    seed_world,
    start_services,
)


@dataclass
class Door:
    url: str
    frontdoor: FrontDoor
    world: World
    services: Services
    ring: KeyRing
    http: aiohttp.ClientSession

    async def box(self, label: str) -> SetTopBox:
        """The seeded box ``label``, logged in."""
        b = self.world.boxes[label]
        box = SetTopBox(self.http, self.url, mac=b.mac, secret=b.secret)
        await box.login()
        return box

    async def ask(self, box: SetTopBox, path: str) -> tuple[int, str, str]:
        """Status, reason (of a refusal) and the signed path (of a 302)."""
        async with self.http.get(
            self.url + path, headers=box._auth(), allow_redirects=False
        ) as resp:
            if resp.status == 302:
                return 302, "", "/" + resp.headers["Location"].split("/", 3)[3]
            body = await resp.json(content_type=None)
            return resp.status, body.get("reason", ""), ""


@pytest.fixture
async def door(
    redis: aioredis.Redis, origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> AsyncIterator[Door]:
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    edge = await edges("v1", upstream=origin.address)
    _router, routing = two_region_routing(edge.config.listen_port, ring)
    subscriber = SubscriberCache(
        services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0
    )
    epg = EpgCache(services.epg_target, services.api_key)
    async with aiohttp.ClientSession() as http:
        frontdoor = FrontDoor(
            frontdoor_settings(services), routing=routing, subscriber=subscriber, epg=epg,
            http=http,
        )  # fmt: skip
        app = create_box_app(frontdoor)
        await frontdoor.start()
        await asyncio.wait_for(epg.watching.wait(), 10)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            url = str(server.make_url("")).rstrip("/")
            yield Door(url, frontdoor, world, services, ring, http)
        finally:
            await server.close()
            await frontdoor.stop()
            await services.stop()


def _hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _window(door: Door, path: str) -> tuple[int, int]:
    """The window a signed path grants (the edge's own check of the signature)."""
    grant = verify_path(door.ring, path.split("?")[0], client_ip="127.0.0.1", now=0)
    _kind, _channel, w, first, last, _rest = grant.scope.split("/", 5)
    assert w == "w"
    return int(first), int(last)


async def test_startover_is_the_programme_on_air_from_its_start(door: Door) -> None:
    box = await door.box("c1")
    status, reason, path = await door.ask(box, f"/startover/{LIVE}/master.m3u8")
    assert (status, reason) == (302, "")
    hour = _hour()
    first = int(hour.timestamp())
    assert _window(door, path) == (first, first + 3600)
    assert path.split("?")[0].endswith(f"/catchup/{LIVE}/w/{first}/{first + 3600}/master.m3u8")
    # The window cannot be stretched to the previous programme: the signature breaks.
    wider = path.split("?")[0].replace(f"/w/{first}/", f"/w/{first - 3600}/")
    with pytest.raises(TokenInvalid):
        verify_path(door.ring, wider, client_ip="127.0.0.1", now=0)
    # The box holds a lease on the channel, as for catch-up.
    held = door.frontdoor.leases._held.values()
    assert [h.lease.channel for h in held] == [LIVE]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("utc={anchor}", id="utc"),
        pytest.param("start={anchor}", id="start"),
        pytest.param("offset={offset}", id="offset"),
    ],
)
async def test_timeshift_runs_from_the_anchor_to_the_end_of_the_programme_on_air(
    door: Door, query: str
) -> None:
    box = await door.box("c1")
    now = datetime.now(UTC).replace(microsecond=0)
    anchor = now - timedelta(minutes=10)
    filled = query.format(anchor=int(anchor.timestamp()), offset=600)
    status, reason, path = await door.ask(box, f"/timeshift/{LIVE}/master.m3u8?{filled}")
    assert (status, reason) == (302, "")
    first, last = _window(door, path)
    # ``offset`` counts back from the front door's own clock, a moment after ours.
    assert int(anchor.timestamp()) <= first <= int(anchor.timestamp()) + 5
    assert last == int(_hour().timestamp()) + 3600


async def test_catchup_takes_the_players_other_template_forms(door: Door) -> None:
    box = await door.box("c1")
    start = int((_hour() - timedelta(hours=1)).timestamp())
    status, _, path = await door.ask(
        box, f"/catchup/{LIVE}/master.m3u8?start={start}&duration=1800"
    )
    assert status == 302
    assert _window(door, path) == (start, start + 1800)
    programme = door.world.programmes["earlier"]
    status, _, path = await door.ask(box, f"/catchup/{LIVE}/master.m3u8?catchup-id={programme}")
    assert status == 302
    assert _window(door, path) == (start, start + 3600)


async def test_the_lineups_template_filled_for_the_programme_on_air_is_a_start_over(
    door: Door,
) -> None:
    box = await door.box("c1")
    (news,) = [c for c in await box.lineup() if c.channel_id == LIVE]
    hour = int(_hour().timestamp())
    # What Kodi and TiviMate do for "play from start": the template, with the programme's times.
    filled = news.catchup_source.replace("{utc}", str(hour)).replace("{utcend}", str(hour + 3600))
    assert filled.startswith(f"{door.url}/catchup/{LIVE}/master.m3u8?")
    status, reason, path = await door.ask(box, filled.removeprefix(door.url))
    assert (status, reason) == (302, "")
    assert _window(door, path) == (hour, hour + 3600)


async def _black_out_the_current_programme(door: Door) -> None:
    epg = door.frontdoor.epg
    hour = _hour()
    generation = epg.generation
    services = door.services
    await black_out(
        services.epg_target, services.api_key, LIVE, hour, hour + timedelta(hours=1), REGION
    )

    async def changed() -> bool:
        return epg.generation > generation

    await asyncio.wait_for(eventually(changed), 10)


async def test_a_blacked_out_programme_is_refused_for_both_but_not_elsewhere(door: Door) -> None:
    await _black_out_the_current_programme(door)
    here, elsewhere = await door.box("c1"), await door.box("b1")
    for path in (f"/startover/{LIVE}/master.m3u8", f"/timeshift/{LIVE}/master.m3u8?offset=60"):
        assert (await door.ask(here, path))[:2] == (403, "blacked_out")
        assert (await door.ask(elsewhere, path))[0] == 302


@pytest.mark.parametrize(
    ("channel", "query", "status", "reason"),
    [
        # Two hours back reaches the programme barred from catch-up.
        pytest.param(LIVE, "offset={barred}", 403, "catchup_not_allowed", id="barred-programme"),
        pytest.param(LIVE, "offset=11000", 403, "outside_timeshift", id="beyond-the-depth"),
        pytest.param(LIVE, "offset=0", 403, "not_yet_aired", id="now"),
        pytest.param(LIVE, "utc=x", 400, "bad_window", id="malformed"),
        pytest.param(LIVE, "offset=-5", 400, "bad_window", id="negative-offset"),
        pytest.param(SPORT, "offset=60", 403, "catchup_disabled", id="channel-without-catchup"),
        pytest.param(PREMIUM, "offset=60", 403, "not_entitled", id="not-entitled"),
    ],
)
async def test_timeshift_refusals(
    door: Door, channel: str, query: str, status: int, reason: str
) -> None:
    # Three hours deep, so the barred programme is within reach and the rights refuse it.
    door.frontdoor.settings = replace(door.frontdoor.settings, timeshift_hours=3.0)
    now = datetime.now(UTC)
    barred = int((now - (_hour() - timedelta(hours=2) + timedelta(minutes=5))).total_seconds())
    box = await door.box("c1")
    path = f"/timeshift/{channel}/master.m3u8?{query.format(barred=barred)}"
    assert (await door.ask(box, path))[:2] == (status, reason)
    assert door.frontdoor.leases._held == {}


@pytest.mark.parametrize(
    ("channel", "status", "reason"),
    [
        pytest.param(SPORT, 403, "catchup_disabled", id="channel-without-catchup"),
        # Nothing on air is said before entitlement, as catch-up's unknown programme is.
        pytest.param(PREMIUM, 404, "nothing_on_air", id="nothing-on-air"),
    ],
)
async def test_startover_refusals(door: Door, channel: str, status: int, reason: str) -> None:
    box = await door.box("c1")
    assert (await door.ask(box, f"/startover/{channel}/master.m3u8"))[:2] == (status, reason)
    assert door.frontdoor.leases._held == {}


async def test_a_channel_without_timeshift_refuses_it_but_keeps_start_over(door: Door) -> None:
    door.frontdoor.settings = replace(
        door.frontdoor.settings, timeshift_channel_hours=((LIVE, 0.0),)
    )
    box = await door.box("c1")
    refused = await door.ask(box, f"/timeshift/{LIVE}/master.m3u8?offset=60")
    assert refused[:2] == (403, "timeshift_disabled")
    assert (await door.ask(box, f"/startover/{LIVE}/master.m3u8"))[0] == 302


def test_timeshift_depth_settings() -> None:
    env = {
        "FRONTDOOR_SESSION_KEYS": f"k1:{b64url(b'x' * 32)}",
        "FRONTDOOR_API_KEY": "key",
        "FRONTDOOR_TIMESHIFT_HOURS": "3",
        "FRONTDOOR_TIMESHIFT_CHANNEL_HOURS": "news1.cn=1.5, sport.cn=0",
    }
    settings = FrontDoorSettings.from_env(env)
    assert settings is not None
    assert settings.timeshift_depth("news1.cn") == timedelta(hours=1.5)
    assert settings.timeshift_depth("sport.cn") == timedelta(0)
    assert settings.timeshift_depth("other.cn") == timedelta(hours=3)
    for bad in ("news1.cn", "news1.cn=25", "=2", "news1.cn=nan", "news1.cn=x"):
        with pytest.raises(SettingsError) as info:
            FrontDoorSettings.from_env({**env, "FRONTDOOR_TIMESHIFT_CHANNEL_HOURS": bad})
        assert info.value.name == "FRONTDOOR_TIMESHIFT_CHANNEL_HOURS"
