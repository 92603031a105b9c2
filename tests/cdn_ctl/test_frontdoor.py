"""The set-top box front door against real EPG and subscriber gRPC servers, a real nginx
edge (in front of the fake origin) and the real routing service."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from cdn_ctl.domain import Health
from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.frontdoor.policy import RedactedAccessLogger, rewrite_master
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.routing import Router
from cdn_ctl.signing import KeyRing, b64url, verify_path
from cdn_ctl.sim.stb import BoxRefused, SetTopBox
from cdn_ctl.upstream import EpgCache, SubscriberCache
from epg.domain import Programme, Rights, Text
from epg.domain.rights import blacked_out
from headend import regions
from headend.seed import World
from headend.settings import SettingsError
from protos import subscriber_pb2
from tests.support.cdn import EdgeFactory, FakeOrigin, MovedClock, eventually, two_region_routing
from tests.support.world import (
    LIVE,
    PREMIUM,
    REGION,
    SPORT,
    Services,
    black_out,
    frontdoor_settings,
    seed_world,
    set_status,
    start_services,
)
from transcode import hls_parse


@dataclass
class Door:
    url: str
    frontdoor: FrontDoor
    world: World
    services: Services
    router: Router
    clock: MovedClock[float]
    ring: KeyRing

    def box(
        self, label: str, http: aiohttp.ClientSession, *, token_in_query: bool = False
    ) -> SetTopBox:
        b = self.world.boxes[label]
        return SetTopBox(http, self.url, mac=b.mac, secret=b.secret, token_in_query=token_in_query)


@pytest.fixture
async def door(
    redis: aioredis.Redis, origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> AsyncIterator[Door]:
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    edge = await edges("v1", upstream=origin.address)
    router, routing = two_region_routing(edge.config.listen_port, ring)
    settings = frontdoor_settings(services)
    clock = MovedClock(1000.0)
    subscriber = SubscriberCache(
        services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0, clock=clock
    )
    epg = EpgCache(services.epg_target, services.api_key)
    async with aiohttp.ClientSession() as http:
        frontdoor = FrontDoor(settings, routing=routing, subscriber=subscriber, epg=epg, http=http)
        app = create_box_app(frontdoor)
        await frontdoor.start()
        await asyncio.wait_for(epg.watching.wait(), 10)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield Door(
                str(server.make_url("")).rstrip("/"),
                frontdoor, world, services, router, clock, ring,
            )  # fmt: skip
        finally:
            await server.close()
            await frontdoor.stop()
            await services.stop()


async def _status(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json(content_type=None)
    return resp.status, body.get("reason", "")


# ------------------------------------------------------------------------- login, lineup, guide


async def test_login_returns_a_token_and_where_to_go(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        body = await door.box("a1", http).login()
    assert set(body) == {"token", "expires_at", "lineup_url", "guide_url"}
    assert body["lineup_url"] == f"{door.url}/lineup.m3u"
    assert body["guide_url"] == f"{door.url}/guide.xml.gz"
    session = door.frontdoor.verify(body["token"])
    assert (session.subscriber, session.region) == ("alice", REGION)


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        pytest.param({"mac": "02:00:00:00:00:01", "secret": "wrong"}, 401, "login_failed",
                     id="wrong-secret"),
        pytest.param({"mac": "02:00:00:00:00:99", "secret": "x" * 20}, 401, "login_failed",
                     id="unknown-mac"),
        pytest.param({"mac": "02:00:00:00:00:01"}, 401, "login_failed", id="no-secret"),
    ],
)  # fmt: skip
async def test_bad_login_is_refused_and_issues_nothing(
    door: Door, payload: dict[str, str], status: int, reason: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{door.url}/api/login", json=payload) as resp,
    ):
        assert await _status(resp) == (status, reason)
        assert "token" not in await resp.json()


async def test_lineup_lists_only_entitled_channels_with_catchup_attributes(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("a1", http, token_in_query=True)
        await box.login()
        channels = await box.lineup()
    assert [c.channel_id for c in channels] == [LIVE, SPORT]
    news = channels[0]
    assert (news.name, news.number, news.catchup_days) == ("News One", 1, 1)
    # A box that can only pass ?token= gets it on every URL it is given.
    assert news.url == f"{door.url}/live/{LIVE}/master.m3u8?token={box.token}"
    assert news.catchup_source.endswith("&utc={utc}&utcend={utcend}")
    assert channels[1].catchup_source == ""


async def test_guide_is_gzip_xmltv_of_entitled_channels_with_blackouts_as_slates(
    door: Door,
) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("a1", http)
        await box.login()
        guide = await box.guide()
        async with http.get(f"{door.url}/guide.xml.gz", headers=box._auth()) as resp:
            raw = gzip.decompress(await resp.read())
    assert guide.channels == (LIVE, SPORT)
    assert PREMIUM not in {c for c, _, _ in guide.programmes}
    titles = [t for c, _, t in guide.programmes if c == SPORT]
    assert titles == ["Not available in your region"]  # the Derby is blacked out in 11xxxx
    root = etree.fromstring(raw)
    slate = root.find(f"programme[@channel='{SPORT}']/icon")
    assert slate is not None
    assert slate.get("src") == "http://slates.example/sport.png"
    news = [t for c, _, t in guide.programmes if c == LIVE]
    assert "Not available in your region" in news  # the programme 3 h ahead
    assert len(news) >= 24  # now-1 day (its catch-up days) .. the end of the seeded day


async def test_guide_for_another_region_shows_the_real_programme(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        guide = await box.guide()
    assert [t for c, _, t in guide.programmes if c == SPORT] == ["Derby"]


# ------------------------------------------------------------------------------- live playback


async def test_live_master_starts_a_lease_and_variants_come_back_to_the_front_door(
    door: Door, ring: KeyRing
) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        lease, variant = await box.open_live(LIVE)
        assert variant == f"{door.url}/live/{LIVE}/180p/index.m3u8?lease_id={lease}"
        async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
        async with http.get(location) as resp:
            assert resp.status == 200
            assert "#EXT-X-MEDIA-SEQUENCE:12" in await resp.text()
    assert door.frontdoor.leases.get(lease) is not None
    path = location.split("127.0.0.1", 1)[1].split("/", 1)[1]
    grant = verify_path(ring, "/" + path.split("?")[0], client_ip="127.0.0.1", now=0)
    assert grant.scope == f"live/{LIVE}/"
    assert f"lease_id={lease}" in location


async def test_the_old_session_parameter_still_names_the_lease(door: Door) -> None:
    """``?session=`` was the lease's name before ``?lease_id=``; boxes may send it for a release."""
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        lease, variant = await box.open_live(LIVE)
        old_style = variant.replace("lease_id=", "session=")
        async with http.get(old_style, headers=box._auth(), allow_redirects=False) as resp:
            assert resp.status == 302
            assert f"lease_id={lease}" in resp.headers["Location"]
        async with http.post(f"{door.url}/api/stop?session={lease}", headers=box._auth()) as resp:
            assert resp.status == 204
    assert door.frontdoor.leases.get(lease) is None


async def test_variant_polls_heartbeat_in_batches_not_per_request(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        _lease, variant = await box.open_live(LIVE)
        for _ in range(5):
            async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
                assert resp.status == 302
    leases = door.frontdoor.leases
    before = leases.beats
    assert await leases.beat() == 1  # five polls, one heartbeat
    assert leases.beats == before + 1
    assert await leases.beat() == 0  # nothing used since


async def test_second_box_over_the_stream_limit_gets_429_with_retry_after(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        first, second = door.box("a1", http), door.box("a2", http)
        await first.login()
        await second.login()
        await first.open_live(LIVE)
        with pytest.raises(BoxRefused) as info:
            await second.open_live(LIVE)
    assert (info.value.status, info.value.reason) == (429, "stream_limit")
    assert info.value.retry_after == "5"


async def test_stopping_frees_the_slot_for_another_box(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        first, second = door.box("a1", http), door.box("a2", http)
        await first.login()
        await second.login()
        lease, _ = await first.open_live(LIVE)
        await first.stop(lease)
        assert door.frontdoor.leases.get(lease) is None
        # The slot is reserved for the same box for a short grace period only; a
        # channel switch by the first box reuses it, the second box must wait.
        with pytest.raises(BoxRefused):
            await second.open_live(LIVE)


@pytest.mark.parametrize(
    ("box", "channel", "status", "reason"),
    [
        pytest.param("a1", PREMIUM, 403, "not_entitled", id="not-entitled"),
        pytest.param("a1", SPORT, 403, "blacked_out", id="blacked-out-now"),
        pytest.param("a1", "bad..id", 400, "bad_channel", id="malformed-channel"),
    ],
)
async def test_live_refusals_carry_a_reason(
    door: Door, box: str, channel: str, status: int, reason: str
) -> None:
    async with aiohttp.ClientSession() as http:
        b = door.box(box, http)
        await b.login()
        with pytest.raises(BoxRefused) as info:
            await b.open_live(channel)
    assert (info.value.status, info.value.reason) == (status, reason)
    assert door.frontdoor.leases._held == {}  # refused before any lease was taken


async def test_blacked_out_elsewhere_plays_here(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)  # OTHER_REGION
        await box.login()
        lease, _ = await box.open_live(SPORT)
    assert lease


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param("", "session_missing", id="missing"),
        pytest.param("not-a-jwt", "session_invalid", id="garbage"),
        pytest.param("tampered", "session_invalid", id="tampered"),
        pytest.param("expired", "session_expired", id="expired"),
    ],
)
async def test_bad_or_expired_sessions_get_401(door: Door, token: str, reason: str) -> None:
    signer = door.frontdoor.signer
    good, _ = signer.issue(carrier="acme", subscriber="alice", mac="02:00:00:00:00:01",
                           region=REGION, version=1, now=datetime.now(UTC))  # fmt: skip
    if token == "tampered":
        head, claims, sig = good.split(".")
        token = f"{head}.{claims[:-2]}{'A' if claims[-2] != 'A' else 'B'}{claims[-1]}.{sig}"
    elif token == "expired":
        token, _ = signer.issue(carrier="acme", subscriber="alice", mac="02:00:00:00:00:01",
                                region=REGION, version=1,
                                now=datetime.now(UTC) - timedelta(days=2))  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for path in ("/lineup.m3u", f"/live/{LIVE}/master.m3u8"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.get(f"{door.url}{path}", headers=headers) as resp:
                assert await _status(resp) == (401, reason)
    assert door.frontdoor.leases._held == {}


async def test_no_edge_gives_503_with_retry_after(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        _lease, variant = await box.open_live(LIVE)
        door.router.set_health({"v1": Health.DOWN, "v2": Health.DOWN})
        async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
            assert await _status(resp) == (503, "no_edge")
            assert resp.headers["Retry-After"] == "5"


# ------------------------------------------------------------------------ cache invalidation


async def test_suspension_reaches_a_playing_box_within_the_entitlement_ttl(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        _lease, variant = await box.open_live(LIVE)
        await set_status(door.services.subscriber_target, door.services.api_key, "bob",
                         subscriber_pb2.SUBSCRIBER_STATUS_SUSPENDED)  # fmt: skip

        async def poll() -> int:
            async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
                return resp.status

        assert await poll() == 302  # the cached verdict still holds within the TTL
        door.clock.now += 10.0  # the TTL (10 s here) has passed
        async with http.get(variant, headers=box._auth(), allow_redirects=False) as resp:
            assert await _status(resp) == (403, "subscriber_suspended")
        # A new play is refused at once: starting a lease asks the service.
        with pytest.raises(BoxRefused) as info:
            await box.open_live(SPORT)
        assert info.value.status == 403


async def test_an_epg_change_reaches_the_front_door_through_the_change_feed(door: Door) -> None:
    epg = door.frontdoor.epg
    async with aiohttp.ClientSession() as http:
        box = door.box("a1", http)
        await box.login()
        lease, _ = await box.open_live(LIVE)
        await box.stop(lease)
        # Black the current news programme out in the box's region.
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        generation = epg.generation
        await black_out(
            door.services.epg_target,
            door.services.api_key,
            LIVE,
            hour,
            hour + timedelta(hours=1),
            REGION,
        )

        async def changed() -> bool:
            return epg.generation > generation

        await asyncio.wait_for(eventually(changed), 10)
        with pytest.raises(BoxRefused) as info:
            await box.open_live(LIVE)
    assert (info.value.status, info.value.reason) == (403, "blacked_out")


# ---------------------------------------------------------------------------------- catch-up


async def test_catchup_window_is_signed_into_the_path(door: Door, ring: KeyRing) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, stop = now - timedelta(minutes=30), now - timedelta(minutes=20)
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        location = await box.open_catchup(LIVE, start, stop)
    first, last = int(start.timestamp()), int(stop.timestamp())
    path = "/" + location.split("/", 3)[3].split("?")[0]
    assert path.endswith(f"/catchup/{LIVE}/w/{first}/{last}/master.m3u8")
    grant = verify_path(ring, path, client_ip="127.0.0.1", now=0)
    assert grant.scope == f"catchup/{LIVE}/w/{first}/{last}/"
    # Widening the window breaks the signature.
    wider = path.replace(f"/w/{first}/", f"/w/{first - 86_400}/")
    from cdn_ctl.errors import TokenInvalid

    with pytest.raises(TokenInvalid):
        verify_path(ring, wider, client_ip="127.0.0.1", now=0)


@pytest.mark.parametrize(
    ("channel", "hours_ago", "length_minutes", "status", "reason"),
    [
        pytest.param(LIVE, 1.9, 30, 403, "catchup_not_allowed", id="programme-barred"),
        pytest.param(LIVE, 30, 30, 403, "outside_catchup_days", id="too-old"),
        pytest.param(SPORT, 0.5, 10, 403, "catchup_disabled", id="channel-without-catchup"),
        pytest.param(LIVE, -1, 10, 403, "not_yet_aired", id="future"),
        pytest.param(LIVE, 8, 7 * 60, 400, "bad_window", id="too-long"),
        pytest.param(PREMIUM, 1, 10, 403, "not_entitled", id="not-entitled"),
    ],
)
async def test_catchup_refusals(
    door: Door, channel: str, hours_ago: float, length_minutes: int, status: int, reason: str
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = hour - timedelta(hours=hours_ago) if channel != LIVE or hours_ago != 1.9 else (
        hour - timedelta(hours=2) + timedelta(minutes=5))  # fmt: skip
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        with pytest.raises(BoxRefused) as info:
            await box.open_catchup(channel, start, start + timedelta(minutes=length_minutes))
    assert (info.value.status, info.value.reason) == (status, reason)
    assert door.frontdoor.leases._held == {}


async def test_catchup_by_programme_id(door: Door) -> None:
    programme = door.world.programmes["earlier"]
    async with aiohttp.ClientSession() as http:
        box = door.box("b1", http)
        await box.login()
        async with http.get(
            f"{door.url}/catchup/{LIVE}/master.m3u8?programme={programme}",
            headers=box._auth(),
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
            assert "/w/" in resp.headers["Location"]
        async with http.get(
            f"{door.url}/catchup/{LIVE}/master.m3u8?programme={door.world.programmes['barred']}",
            headers=box._auth(),
        ) as resp:
            assert await _status(resp) == (403, "catchup_not_allowed")


# ------------------------------------------------------------------------------------- pure


def test_access_log_never_records_tokens(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.test_utils import make_mocked_request

    logger = logging.getLogger("test.access")
    access = RedactedAccessLogger(logger, "")
    request = make_mocked_request(
        "GET", "/live/news1.cn/master.m3u8?token=SECRET.JWT", headers={"Authorization": "Bearer X"}
    )
    with caplog.at_level(logging.INFO, logger="test.access"):
        access.log(request, web.Response(status=200), 0.01)
    record = caplog.records[-1]
    assert record.path == "/live/news1.cn/master.m3u8"  # type: ignore[attr-defined]
    assert "SECRET" not in repr(record.__dict__)
    assert "Bearer" not in repr(record.__dict__)


def test_master_rewrite_points_variants_back_with_the_lease() -> None:
    edge_master = (
        "#EXTM3U\n"
        '#EXT-X-CONTENT-STEERING:SERVER-URI="http://x/steering/c.json",PATHWAY-ID="e1"\n'
        '#EXT-X-STREAM-INF:PATHWAY-ID="e1",BANDWIDTH=800000\n'
        "180p/index.m3u8\n"
        '#EXT-X-I-FRAME-STREAM-INF:PATHWAY-ID="e1",BANDWIDTH=1,URI="180p/iframe.m3u8"\n'
    )
    assert rewrite_master(edge_master, query="lease_id=abc") == (
        "#EXTM3U\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000\n"
        "180p/index.m3u8?lease_id=abc\n"
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="180p/iframe.m3u8?lease_id=abc"\n'
    )


_TRACKS_MASTER = (
    "#EXTM3U\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",LANGUAGE="zh",NAME="中文",DEFAULT=YES,'
    'AUTOSELECT=YES,URI="audio-zh/index.m3u8"\n'
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",LANGUAGE="yue",NAME="粤语",DEFAULT=NO,'
    'AUTOSELECT=YES,URI="audio-yue/index.m3u8"\n'
    '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="yue",NAME="粤语",DEFAULT=NO,'
    'AUTOSELECT=NO,URI="subs-yue/index.m3u8"\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="audio",SUBTITLES="subs"\n'
    "180p/index.m3u8\n"
)


@pytest.mark.parametrize(
    ("region", "defaults"),
    [
        pytest.param("440305", ["NO", "YES"], id="a-county-of-the-province"),
        pytest.param("440100", ["YES", "NO"], id="a-city-with-its-own"),
        pytest.param("110101", ["YES", "NO"], id="elsewhere-the-channels"),
    ],
)
def test_a_region_default_audio_language_moves_default_where_the_channel_has_it(
    region: str, defaults: list[str]
) -> None:
    settings = FrontDoorSettings(
        "", "", "", (), "", audio_languages=(("440000", "yue"), ("440100", "zh"))
    )
    text = rewrite_master(
        _TRACKS_MASTER, query="lease_id=a", audio_language=settings.audio_language(region)
    )
    master = hls_parse.parse_master(text)
    audio = [r for r in master.renditions if r.type == "AUDIO"]
    assert ["YES" if r.default else "NO" for r in audio] == defaults
    assert all(r.uri.endswith("?lease_id=a") for r in master.renditions)
    # Subtitles are never switched on by region.
    assert [r.default for r in master.renditions if r.type == "SUBTITLES"] == [False]
    # A region language the channel does not have changes nothing.
    assert rewrite_master(_TRACKS_MASTER, query="q=1", audio_language="bo") == rewrite_master(
        _TRACKS_MASTER, query="q=1"
    )


def test_region_audio_languages_setting() -> None:
    env = {
        "FRONTDOOR_SESSION_KEYS": f"k1:{b64url(b'x' * 32)}",
        "FRONTDOOR_API_KEY": "key",
        "FRONTDOOR_AUDIO_LANGUAGES": "440000=yue, 540000=tib",
    }
    settings = FrontDoorSettings.from_env(env)
    assert settings is not None
    assert settings.audio_languages == (("440000", "yue"), ("540000", "bo"))
    assert (settings.audio_language("440305"), settings.audio_language("110101")) == ("yue", "")
    for bad in ("440000", "44=yue", "440000=Cantonese", "990000=yue"):
        with pytest.raises(SettingsError) as info:
            FrontDoorSettings.from_env({**env, "FRONTDOOR_AUDIO_LANGUAGES": bad})
        assert info.value.name == "FRONTDOOR_AUDIO_LANGUAGES"


@pytest.mark.parametrize(
    ("blackout", "box", "covered"),
    [
        pytest.param("110101", "110101", True, id="same-county"),
        pytest.param("110100", "110101", True, id="city"),
        pytest.param("110000", "110230", True, id="province"),
        pytest.param("110102", "110101", False, id="other-county"),
        pytest.param("120000", "110101", False, id="other-province"),
        pytest.param("440300", "440403", False, id="other-city"),
    ],
)
def test_blackout_regions_follow_the_division_hierarchy(
    blackout: str, box: str, covered: bool
) -> None:
    assert regions.covers(blackout, box) is covered
    now = datetime.now(UTC)
    p = Programme("p", LIVE, now, now + timedelta(hours=1), (Text("", "x"),),
                  rights=Rights(blackout_regions=(blackout,)))  # fmt: skip
    assert blacked_out(p, box) is covered


# ------------------------------------------------------------------------- process wiring


def _env(door: Door, **extra: str) -> dict[str, str]:
    return {
        "CDN_SIGNING_KEYS": door.ring.render(),
        "CDN_HTTP_PORT": "0",
        "CDN_GRPC_PORT": "0",
        "FRONTDOOR_SESSION_KEYS": f"s1:{b64url(b'x' * 32)}",
        "FRONTDOOR_API_KEY": door.services.api_key,
        "FRONTDOOR_EPG_TARGET": door.services.epg_target,
        "FRONTDOOR_SUBSCRIBER_TARGET": door.services.subscriber_target,
        **extra,
    }


async def test_python_m_cdn_ctl_serves_the_front_door_on_the_routing_port(
    door: Door, redis: aioredis.Redis
) -> None:
    from cdn_ctl.server import RoutingProcess
    from cdn_ctl.settings import CdnSettings

    settings = CdnSettings.from_env(_env(door))
    assert settings.frontdoor is not None
    assert settings.frontdoor.entitlement_ttl_seconds == 10.0
    async with aiohttp.ClientSession() as http:
        process = RoutingProcess(settings, redis=redis, http=http)
        port = await process.start()
        try:
            b = door.world.boxes["a1"]
            box = SetTopBox(http, f"http://127.0.0.1:{port}", mac=b.mac, secret=b.secret)
            await box.login()
            assert [c.channel_id for c in await box.lineup()] == [LIVE, SPORT]
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200  # the routing face is still there
        finally:
            await process.stop()


async def test_without_session_keys_the_front_door_is_off(door: Door) -> None:
    from cdn_ctl.settings import CdnSettings

    env = _env(door)
    del env["FRONTDOOR_SESSION_KEYS"]
    assert CdnSettings.from_env(env).frontdoor is None


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        pytest.param({"FRONTDOOR_API_KEY": None}, "FRONTDOOR_API_KEY", id="no-api-key"),
        pytest.param({"FRONTDOOR_SESSION_KEYS": "s1:c2hvcnQ"}, "FRONTDOOR_SESSION_KEYS",
                     id="short-key"),
        pytest.param({"FRONTDOOR_SESSION_KEYS": "nokid"}, "FRONTDOOR_SESSION_KEYS",
                     id="no-kid"),
        pytest.param({"FRONTDOOR_ENTITLEMENT_TTL_SECONDS": "0"},
                     "FRONTDOOR_ENTITLEMENT_TTL_SECONDS", id="ttl-zero"),
    ],
)  # fmt: skip
async def test_bad_front_door_settings_name_the_variable(
    door: Door, change: dict[str, str | None], variable: str
) -> None:
    from cdn_ctl.settings import CdnSettings
    from headend.settings import SettingsError

    env = _env(door)
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(SettingsError) as info:
        CdnSettings.from_env(env)
    assert variable in str(info.value)
