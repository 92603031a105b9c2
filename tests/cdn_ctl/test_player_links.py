"""Players with one URL: player links and the Xtream Codes endpoints, on a real front door
(port 0) over real EPG and subscriber gRPC servers, a real nginx edge and Redis."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from ipytv import playlist as ipytv_playlist
from lxml import etree

from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.frontdoor.policy import RedactedAccessLogger
from cdn_ctl.playerlinks import PlayerLinks, digest
from cdn_ctl.signing import KeyRing
from cdn_ctl.upstream import EpgCache, SubscriberCache
from headend.rpc import bearer, client_channel
from headend.seed import World
from protos import subscriber_pb2, subscriber_pb2_grpc
from tests.support.cdn import EdgeFactory, FakeOrigin, MovedClock, two_region_routing
from tests.support.security import login_box
from tests.support.subscriber import device_name
from tests.support.world import (
    CARRIER,
    LIVE,
    SPORT,
    Services,
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
    redis: aioredis.Redis
    monotonic: MovedClock[float]
    wall: MovedClock[datetime]

    async def login(self, http: aiohttp.ClientSession, label: str) -> str:
        return await login_box(http, self.url, self.world, label)

    async def link(self, http: aiohttp.ClientSession, token: str) -> dict[str, Any]:
        async with http.post(
            f"{self.url}/api/player-link", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 201, await resp.text()
            assert resp.headers["Cache-Control"] == "no-store"
            return dict(await resp.json())

    async def device(self, label: str, rpc: str, **fields: Any) -> None:
        """Block or unbind box ``label`` through the subscriber service."""
        mac = self.world.boxes[label].mac
        async with client_channel(self.services.subscriber_target) as chan:
            stub = subscriber_pb2_grpc.SubscriberServiceStub(chan)
            request = getattr(subscriber_pb2, f"{rpc}Request")(
                name=device_name(CARRIER, mac), **fields
            )
            await getattr(stub, rpc)(request, metadata=bearer(self.services.api_key))
        self.monotonic.now += 11  # past the front door's cached verdicts


@pytest.fixture
async def door(
    redis: aioredis.Redis, origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> AsyncIterator[Door]:
    services = await start_services(redis)
    world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    edge = await edges("v1", upstream=origin.address)
    _, routing = two_region_routing(edge.config.listen_port, ring)
    monotonic, wall = MovedClock(1000.0), MovedClock(datetime.now(UTC))
    subscriber = SubscriberCache(
        services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0, clock=monotonic
    )
    epg = EpgCache(services.epg_target, services.api_key)
    async with aiohttp.ClientSession() as http:
        frontdoor = FrontDoor(
            frontdoor_settings(services),
            routing=routing,
            subscriber=subscriber,
            epg=epg,
            http=http,
            links=PlayerLinks(redis),
            now=wall,
        )
        await frontdoor.start()
        await asyncio.wait_for(epg.watching.wait(), 10)
        server = TestServer(create_box_app(frontdoor), host="127.0.0.1")
        await server.start_server()
        try:
            yield Door(
                str(server.make_url("")).rstrip("/"),
                frontdoor, world, services, redis, monotonic, wall,
            )  # fmt: skip
        finally:
            await server.close()
            await frontdoor.stop()
            await services.stop()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def _channel_urls(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def _plays(http: aiohttp.ClientSession, master_url: str) -> str:
    """Open the master at ``master_url`` and one variant: the edge URL it redirects to."""
    status, _, body = await _get(http, master_url)
    assert status == 200, body
    variant = next(u for u in _channel_urls(body.decode()))
    base = master_url.split("?", 1)[0].rsplit("/", 1)[0]
    status, headers, body = await _get(http, f"{base}/{variant}")
    assert status == 302, body
    async with http.get(headers["Location"]) as resp:
        assert resp.status == 200
    return headers["Location"]


# ------------------------------------------------------------------------------ player links


async def test_player_link_serves_the_lineup_and_outlives_the_box_token(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        token = await door.login(http, "a1")
        link = await door.link(http, token)
        assert link["url"].startswith(f"{door.url}/p/")
        assert link["url"].endswith("/playlist.m3u")
        credential = link["url"].split("/")[-2]
        assert link["xtream"] == {
            "server": door.url,
            "username": link["xtream"]["username"],
            "password": credential,
        }
        # Only the digest is stored.
        keys = [_text(k) for k in await door.redis.keys("fd:pl:*")]
        assert credential not in "".join(keys)
        assert any(digest(credential) in k for k in keys)

        status, headers, body = await _get(http, link["url"])
        assert status == 200
        assert headers["Cache-Control"] == "no-store"
        urls = _channel_urls(body.decode())
        assert [u.split("?")[0] for u in urls] == [
            f"{door.url}/live/{LIVE}/master.m3u8",
            f"{door.url}/live/{SPORT}/master.m3u8",
        ]

        door.wall.now += timedelta(hours=13)
        # The box token from login has expired ...
        status, _, _ = await _get(http, f"{door.url}/lineup.m3u?token={token}")
        assert status == 401
        # ... the player link has not, and its fresh tokens play.
        status, _, body = await _get(http, link["url"])
        assert status == 200
        later = _channel_urls(body.decode())[0]
        await _plays(http, later)


async def test_each_fetch_mints_its_own_token_and_each_plays(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        link = await door.link(http, await door.login(http, "b1"))
        first = _channel_urls((await _get(http, link["url"]))[2].decode())[0]
        second = _channel_urls((await _get(http, link["url"]))[2].decode())[0]
        assert _token(first) != _token(second)
        for url in (first, second):
            location = await _plays(http, url)
            assert urlsplit(location).port != urlsplit(door.url).port  # on the edge


async def test_revoking_ends_the_link_at_once_and_a_new_link_replaces_the_old(
    door: Door,
) -> None:
    async with aiohttp.ClientSession() as http:
        token = await door.login(http, "c1")
        old = await door.link(http, token)
        new = await door.link(http, token)
        assert new["url"] != old["url"]
        assert (await _get(http, old["url"]))[0] == 404
        assert (await _get(http, new["url"]))[0] == 200
        async with http.delete(
            f"{door.url}/api/player-link", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 204
        for url in (old["url"], new["url"], new["guide"]):
            status, headers, body = await _get(http, url)
            assert status == 404
            assert headers["Content-Type"].split(";")[0] == "application/problem+json"
            problem = json.loads(body)
            assert problem == {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "no such player link",
                "reason": "player_link_unknown",
            }
    # Nothing of it is left in Redis.
    assert await door.redis.keys("fd:pl:*") == []


@pytest.mark.parametrize(
    ("rpc", "fields", "reason"),
    [
        pytest.param("BlockDevice", {"blocked": True}, "device_blocked", id="blocked"),
        pytest.param("UnbindDevice", {}, None, id="unbound"),
    ],
)
async def test_a_box_that_may_not_play_gets_nothing_through_its_link(
    door: Door, rpc: str, fields: dict[str, Any], reason: str | None
) -> None:
    async with aiohttp.ClientSession() as http:
        link = await door.link(http, await door.login(http, "c1"))
        assert (await _get(http, link["url"]))[0] == 200
        await door.device("c1", rpc, **fields)
        for url in (link["url"], link["guide"]):
            status, headers, body = await _get(http, url)
            assert status == 403, body
            assert headers["Content-Type"].split(";")[0] == "application/problem+json"
            problem = json.loads(body)
            assert b"#EXT" not in body
            if reason is not None:
                assert problem["reason"] == reason


async def test_player_guide_is_the_box_guide(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        token = await door.login(http, "a1")
        link = await door.link(http, token)
        status, headers, body = await _get(http, link["guide"])
        assert (status, headers["Cache-Control"]) == (200, "no-store")
        _, _, boxes = await _get(http, f"{door.url}/guide.xml.gz?token={token}")
    assert gzip.decompress(body) == gzip.decompress(boxes)
    root = etree.fromstring(gzip.decompress(body))
    assert [c.get("id") for c in root.findall("channel")] == [LIVE, SPORT]


# ------------------------------------------------------------------------------------ Xtream


async def _xtream(door: Door, http: aiohttp.ClientSession, label: str) -> tuple[str, str]:
    link = await door.link(http, await door.login(http, label))
    return link["xtream"]["username"], link["xtream"]["password"]


async def test_get_php_parses_in_a_real_iptv_playlist_parser(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        user, password = await _xtream(door, http, "a1")
        status, headers, body = await _get(
            http,
            f"{door.url}/get.php?username={user}&password={password}&type=m3u_plus&output=ts",
        )
        assert status == 200
        assert headers["Content-Type"].startswith("audio/x-mpegurl")
        parsed = ipytv_playlist.loads(body.decode())
        assert parsed.length() == 2
        news, sport = parsed.get_channels()
        assert news.name == "News One"
        assert news.attributes["tvg-id"] == LIVE
        assert news.attributes["tvg-chno"] == "1"
        assert news.attributes["catchup-days"] == "1"
        assert sport.attributes["tvg-id"] == SPORT
        # The guide is the player's own, not a token's (which would die with the token).
        guide = parsed.get_attribute("x-tvg-url")
        assert guide.startswith(f"{door.url}/p/{password}/guide.xml.gz")
        assert (await _get(http, guide))[0] == 200
        await _plays(http, news.url)


async def test_player_api_answers_in_the_xtream_format(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        user, password = await _xtream(door, http, "a1")
        api = f"{door.url}/player_api.php?username={user}&password={password}"
        status, headers, body = await _get(http, api)
        assert (status, headers["Cache-Control"]) == (200, "no-store")
        account = json.loads(body)
        # Field by field against the Xtream Codes player API (see cdn_ctl.frontdoor.xtream).
        info = account["user_info"]
        assert info["username"] == user
        assert info["password"] == password
        assert info["auth"] == 1
        assert info["status"] == "Active"
        assert info["exp_date"] is None
        assert info["is_trial"] == "0"
        assert info["active_cons"] == "0"
        assert info["max_connections"] == "1"
        assert info["allowed_output_formats"] == ["m3u8", "ts"]
        assert int(info["created_at"]) == int(door.wall.now.timestamp())
        server = account["server_info"]
        assert server["url"] == "127.0.0.1"
        assert server["port"] == str(urlsplit(door.url).port)
        assert server["server_protocol"] == "http"
        assert server["timezone"] == "UTC"
        assert server["timestamp_now"] == int(door.wall.now.timestamp())

        status, _, body = await _get(http, f"{api}&action=get_live_categories")
        categories = json.loads(body)
        assert status == 200
        assert all(set(c) == {"category_id", "category_name", "parent_id"} for c in categories)
        assert all(isinstance(c["category_id"], str) for c in categories)

        status, _, body = await _get(http, f"{api}&action=get_live_streams")
        streams = json.loads(body)
        assert [s["epg_channel_id"] for s in streams] == [LIVE, SPORT]
        news = streams[0]
        assert news["stream_type"] == "live"
        assert news["stream_id"] == news["num"] == 1
        assert news["name"] == "News One"
        assert news["tv_archive"] == 1
        assert news["tv_archive_duration"] == 1
        assert news["category_id"] in {c["category_id"] for c in categories}

        one = news["category_id"]
        _, _, body = await _get(http, f"{api}&action=get_live_streams&category_id={one}")
        assert [s["category_id"] for s in json.loads(body)] == [one] * len(
            [s for s in streams if s["category_id"] == one]
        )


async def test_xtream_stream_url_redirects_to_the_box_master_and_plays(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        user, password = await _xtream(door, http, "b1")
        for ext in ("ts", "m3u8"):
            status, headers, _ = await _get(http, f"{door.url}/live/{user}/{password}/1.{ext}")
            assert status == 302
            location = headers["Location"]
            assert location.startswith(f"{door.url}/live/{LIVE}/master.m3u8?token=")
            await _plays(http, location)
        # A channel the box is not entitled to is no stream of this player.
        status, headers, _ = await _get(http, f"{door.url}/live/{user}/{password}/3.ts")
        assert status == 403
        assert headers["Content-Type"].split(";")[0] == "application/problem+json"
        # The box's own variant paths still work beside the Xtream route.
        token = await door.login(http, "b1")
        await _plays(http, f"{door.url}/live/{LIVE}/master.m3u8?token={token}")


async def test_xmltv_php_is_the_box_guide_uncompressed(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        user, password = await _xtream(door, http, "a1")
        status, _, body = await _get(
            http, f"{door.url}/xmltv.php?username={user}&password={password}"
        )
    assert status == 200
    assert [c.get("id") for c in etree.fromstring(body).findall("channel")] == [LIVE, SPORT]


async def test_wrong_xtream_credentials_are_refused_alike(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        user, password = await _xtream(door, http, "a1")
        other_user, _ = await _xtream(door, http, "c1")
        wrong = [
            (user, password[:-1] + ("A" if password[-1] != "A" else "B")),
            (other_user, password),
            ("", password),
            (user, ""),
        ]
        for u, p in wrong:
            status, _, body = await _get(
                http, f"{door.url}/player_api.php?username={u}&password={p}"
            )
            assert (status, json.loads(body)) == (200, {"user_info": {"auth": 0}})
            status, headers, body = await _get(
                http, f"{door.url}/get.php?username={u}&password={p}"
            )
            assert status == 401
            assert headers["Content-Type"].split(";")[0] == "application/problem+json"
            assert (json.loads(body))["reason"] == "login_failed"
            assert b"#EXT" not in body


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        pytest.param("/p/" + "A" * 43 + "/playlist.m3u", "/p/-/playlist.m3u", id="player-link"),
        pytest.param("/live/p0123456789/" + "b" * 43 + "/1.ts", "/live/p0123456789/-/1.ts",
                     id="xtream-stream"),
        pytest.param(f"/live/{LIVE}/180p/index.m3u8", f"/live/{LIVE}/180p/index.m3u8",
                     id="box-path-unchanged"),
    ],
)  # fmt: skip
def test_access_log_never_records_a_player_credential(
    caplog: pytest.LogCaptureFixture, path: str, logged: str
) -> None:
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        RedactedAccessLogger(logger, "").log(
            make_mocked_request("GET", path), web.Response(status=200), 0.01
        )
    assert caplog.records[-1].path == logged  # type: ignore[attr-defined]


async def test_a_front_door_without_player_links_answers_404(door: Door) -> None:
    bare = FrontDoor(
        door.frontdoor.settings,
        routing=door.frontdoor.routing,
        subscriber=door.frontdoor.subscriber,
        epg=door.frontdoor.epg,
        http=door.frontdoor.http,
    )
    server = TestServer(create_box_app(bare), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            status, headers, _ = await _get(
                http, str(server.make_url(f"/p/{'A' * 43}/playlist.m3u"))
            )
    finally:
        await server.close()
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")


async def test_a_record_left_behind_by_a_crash_does_not_revive_a_replaced_link(
    door: Door,
) -> None:
    async with aiohttp.ClientSession() as http:
        token = await door.login(http, "c1")
        old = await door.link(http, token)
        credential = old["url"].split("/")[-2]
        record_key = f"fd:pl:{{{digest(credential)}}}"
        record = await door.redis.get(record_key)
        assert record is not None
        await door.link(http, token)
        # A crash between replacing the box's pointer and deleting the old record.
        await door.redis.set(record_key, record)
        assert (await _get(http, old["url"]))[0] == 404
