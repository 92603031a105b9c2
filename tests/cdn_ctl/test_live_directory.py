"""Multicast in the lineup: the rule, the front door's directory of the channels' groups
(read from a real transcode server on port 0), the lineup and the player paths over real
EPG and subscriber servers, the admin listener's view, the CLI and the settings."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from cdn_ctl import cli
from cdn_ctl.frontdoor.app import FrontDoor, create_box_app
from cdn_ctl.frontdoor.policy import delivery
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.http import RoutingFace, create_app
from cdn_ctl.lineup import LineupEntry, render_m3u
from cdn_ctl.metrics import CdnMetrics
from cdn_ctl.playerlinks import PlayerLinks
from cdn_ctl.server import RoutingProcess
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing, b64url
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.upstream import EpgCache, SubscriberCache
from cdn_ctl.upstream.outputs import LiveDirectory
from epg.alerts.domain import Alert, Severity
from headend.auth import PLAYBACK, KeyStore, Principal
from headend.clitools import EXIT_AUTH, EXIT_USAGE
from headend.rpc import RpcSettings
from headend.seed import World
from headend.settings import SettingsError
from subscriber.client import SubscriberClient
from subscriber.domain import DeviceProfile
from tests.support.cdn import two_region_routing
from tests.support.frontdoor_rig import Control, control_service
from tests.support.security import login_box
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
from transcode.client import TranscodeClient
from transcode.domain import Multicast, MulticastProtocol
from transcode.jobs import PackageFormat
from transcode.outputs import LiveOutput

PROVINCE = REGION[:2] + "0000"
# News for the boxes' province over RTP; sport for the other region, plain UDP.
NEWS_GROUP = Multicast("239.10.0.1", 5000, regions=(PROVINCE,))
SPORT_GROUP = Multicast("239.10.0.2", 5002, protocol=MulticastProtocol.UDP, regions=(OTHER_REGION,))
NEWS_URL, SPORT_URL = "rtp://@239.10.0.1:5000", "udp://@239.10.0.2:5002"
PLAIN = "plain.cn"
# The carrier's default device profile here: its boxes join groups where one reaches them
# (a box whose profile does not list multicast never gets one: test_device_profiles.py).
JOINS = DeviceProfile("acme", "default", "", (), ("multicast", "hls-ts"), ("h264",))


def _output(running: bool = True, regions: tuple[str, ...] = (PROVINCE,)) -> LiveOutput:
    return LiveOutput(LIVE, Multicast("239.10.0.1", 5000, regions=regions), running)


# ------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("output", "region", "url"),
    [
        pytest.param(_output(), REGION, NEWS_URL, id="province-covers-county"),
        pytest.param(_output(regions=(REGION,)), REGION, NEWS_URL, id="same-county"),
        pytest.param(_output(regions=(OTHER_REGION, REGION[:4] + "00")), REGION, NEWS_URL,
                     id="one-of-several"),
        pytest.param(_output(), OTHER_REGION, "", id="other-region"),
        pytest.param(_output(running=False), REGION, "", id="stopped"),
        pytest.param(_output(regions=()), REGION, "", id="no-regions"),
        pytest.param(_output(), "", "", id="box-without-region"),
        pytest.param(None, REGION, "", id="no-output"),
    ],
)  # fmt: skip
def test_only_a_running_group_covering_the_box_is_given(
    output: LiveOutput | None, region: str, url: str
) -> None:
    assert delivery(output, profile=JOINS, region=region).url == url


def test_a_multicast_entry_is_its_group_without_token_and_catchup_stays_hls() -> None:
    entries = [
        LineupEntry(LIVE, 1, "News", "", "News", 1, live_url=NEWS_URL),
        LineupEntry(SPORT, 2, "Sport", "", "Sport", 0),
    ]
    text = render_m3u(entries, base_url="http://fd", guide_url="http://fd/g", query="token=t")
    lines = text.splitlines()
    assert lines[2] == NEWS_URL
    assert 'catchup-source="http://fd/catchup/news1.cn/master.m3u8?token=t&utc=' in lines[1]
    assert lines[4] == "http://fd/live/sport.cn/master.m3u8?token=t"


# ---------------------------------------------------------------------- a transcode server


@pytest.fixture
async def transcode(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Control]:
    """The control service (channels kept in Redis, no node runs them): news and sport
    with multicast groups, one more channel without, published as CMAF too."""
    channels: dict[str, dict[str, object]] = {
        LIVE: {"multicast": NEWS_GROUP},
        SPORT: {"multicast": SPORT_GROUP},
        PLAIN: {"formats": (PackageFormat.TS, PackageFormat.CMAF)},
    }
    async with control_service(redis, tmp_path, channels) as control:
        yield control


def _value(metrics: CdnMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_directory_keeps_the_last_copy_while_transcode_is_down(
    transcode: Control,
) -> None:
    metrics = CdnMetrics()
    directory = LiveDirectory.connect(
        transcode.target, transcode.playback_key, metrics=metrics, timeout_seconds=1.0
    )
    try:
        assert directory.get(LIVE) is None
        assert directory.read_at is None
        assert await directory.refresh()
        assert [o.channel for o in directory.outputs()] == [LIVE, PLAIN, SPORT]
        news = directory.get(LIVE)
        assert news == LiveOutput(LIVE, NEWS_GROUP, running=True)
        # Every channel, with its packagings (TS, which every channel has, left out).
        assert directory.get(PLAIN) == LiveOutput(PLAIN, None, True, (PackageFormat.CMAF,))
        assert directory.read_at is not None
        assert directory.last_error == ""
        await transcode.server.stop(0)
        assert not await directory.refresh()
        assert not await directory.refresh()
        assert directory.get(LIVE) == news  # the last good copy, kept
        assert [o.channel for o in directory.outputs()] == [LIVE, PLAIN, SPORT]
        assert directory.last_error.startswith("ServiceUnavailable")
    finally:
        await directory.close()
    assert _value(metrics, "cdn_live_directory_reads_total", outcome="ok") == 1
    assert _value(metrics, "cdn_live_directory_reads_total", outcome="failed") == 2
    assert _value(metrics, "cdn_live_directory_outputs") == 3


async def test_the_front_door_reads_its_directory_as_a_supervised_task(
    transcode: Control, redis: aioredis.Redis, ring: KeyRing
) -> None:
    services = await start_services(redis)
    settings = CdnSettings(
        rpc=RpcSettings(port=0),
        keys=ring,
        frontdoor=frontdoor_settings(
            services, transcode_target=transcode.target, multicast_refresh_seconds=3600
        ),
    )
    try:
        async with aiohttp.ClientSession() as http:
            process = RoutingProcess(settings, redis=redis, http=http)
            frontdoor, directory = process.frontdoor, process.face.outputs
            assert frontdoor is not None
            assert directory is not None
            assert directory is frontdoor.outputs
            await frontdoor.start()
            try:
                await asyncio.wait_for(directory.loaded.wait(), 10)
                assert [o.channel for o in directory.outputs()] == [LIVE, PLAIN, SPORT]
                assert "live-outputs" in {t.name for t in process.supervisor.statuses()}
            finally:
                await frontdoor.stop()
                await process.supervisor.close()
    finally:
        await services.stop()


async def test_directory_is_bounded_and_refused_keys_change_nothing(
    transcode: Control, redis: aioredis.Redis
) -> None:
    async with TranscodeClient(transcode.target, transcode.playback_key) as client:
        bounded = LiveDirectory(source=client, max_outputs=1)
        assert await bounded.refresh()
        assert [o.channel for o in bounded.outputs()] == [LIVE]
    _, carrier = await KeyStore(redis).create(Principal("carrier", "acme"))
    refused = LiveDirectory.connect(transcode.target, carrier)
    try:
        assert not await refused.refresh()
        assert refused.outputs() == []
        assert refused.read_at is None
        assert refused.last_error.startswith("PermissionDenied")
    finally:
        await refused.close()


# ----------------------------------------------------------------------- the front door


@dataclass
class Door:
    url: str
    frontdoor: FrontDoor
    world: World
    services: Services
    transcode: Control

    def box(self, label: str, http: aiohttp.ClientSession) -> SetTopBox:
        b = self.world.boxes[label]
        return SetTopBox(http, self.url, mac=b.mac, secret=b.secret, token_in_query=True)


@pytest.fixture
async def door(redis: aioredis.Redis, transcode: Control, ring: KeyRing) -> AsyncIterator[Door]:
    """A front door whose directory reads ``transcode`` (read once here; the tests read it
    again when they change a channel), player links on; its background tasks do not run,
    so the alerts are what a test holds."""
    services = await start_services(redis)
    _, routing = two_region_routing(1, ring)  # the lineup routes nothing
    settings = frontdoor_settings(services, transcode_target=transcode.target)
    try:
        world = await seed_world(services.epg_target, services.subscriber_target, services.api_key)
        async with SubscriberClient(services.subscriber_target, services.api_key) as carrier:
            await carrier.define_device_profile(JOINS)
        async with aiohttp.ClientSession() as http:
            frontdoor = FrontDoor(
                settings,
                routing=routing,
                subscriber=SubscriberCache(
                    services.subscriber_target, services.api_key, entitlement_ttl_seconds=10.0
                ),
                epg=EpgCache(services.epg_target, services.api_key),
                http=http,
                links=PlayerLinks(redis),
            )
            server = TestServer(create_box_app(frontdoor), host="127.0.0.1")
            try:
                assert frontdoor.outputs is not None
                assert await frontdoor.outputs.refresh()
                await server.start_server()
                url = str(server.make_url("")).rstrip("/")
                yield Door(url, frontdoor, world, services, transcode)
            finally:
                await server.close()
                await frontdoor.stop()
    finally:
        await services.stop()


async def _lineup(door: Door, label: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as http:
        box = door.box(label, http)
        await box.login()
        return {c.channel_id: c.url for c in await box.lineup()}


async def test_boxes_in_a_group_region_get_the_group_and_the_others_hls(door: Door) -> None:
    alice = await _lineup(door, "a1")  # REGION, inside news's province
    assert alice[LIVE] == NEWS_URL
    assert alice[SPORT].startswith(f"{door.url}/live/{SPORT}/master.m3u8?token=")
    bob = await _lineup(door, "b1")  # OTHER_REGION: sport's
    assert bob[LIVE].startswith(f"{door.url}/live/{LIVE}/master.m3u8?token=")
    assert bob[SPORT] == SPORT_URL


async def test_a_stopped_channel_is_hls_again_after_the_next_read(door: Door) -> None:
    assert (await _lineup(door, "b1"))[SPORT] == SPORT_URL
    async with TranscodeClient(door.transcode.target, door.transcode.admin_key) as client:
        await client.stop_channel(SPORT)
    assert door.frontdoor.outputs is not None
    assert await door.frontdoor.outputs.refresh()
    assert (await _lineup(door, "b1"))[SPORT].startswith(f"{door.url}/live/{SPORT}/")


async def test_an_alert_entry_and_the_channels_it_replaces_stay_hls(door: Door) -> None:
    now = datetime.now(UTC)
    door.frontdoor.alerts.hold([
        Alert("flood-1", Severity.EXTREME, "Flood", (PROVINCE,), channel_ids=(LIVE,),
              feed_channel_id=SPORT, in_force_from=now - timedelta(minutes=1)),
    ])  # fmt: skip
    async with aiohttp.ClientSession() as http:
        box = door.box("a1", http)
        await box.login()
        entries = await box.lineup()
    alert, *rest = entries
    assert (alert.channel_id, alert.name) == (LIVE, "⚠ Flood")
    assert alert.url.startswith(f"{door.url}/live/{LIVE}/master.m3u8?token=")
    news = next(c for c in rest if c.channel_id == LIVE)
    assert news.url.startswith(f"{door.url}/live/{LIVE}/master.m3u8?token=")
    # Bob's region is outside the alert: his groups stand.
    assert (await _lineup(door, "b1"))[SPORT] == SPORT_URL


async def test_player_links_follow_the_rule_and_xtream_streams_stay_hls(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        token = await login_box(http, door.url, door.world, "a1")
        async with http.post(
            f"{door.url}/api/player-link", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 201, await resp.text()
            link = await resp.json()
        async with http.get(link["url"]) as resp:
            playlist = await resp.text()
        urls = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert urls[0] == NEWS_URL
        assert urls[1].startswith(f"{door.url}/live/{SPORT}/master.m3u8?token=")
        user, password = link["xtream"]["username"], link["xtream"]["password"]
        api = f"{door.url}/player_api.php?username={user}&password={password}"
        async with http.get(f"{api}&action=get_live_streams") as resp:
            streams = {s["epg_channel_id"]: s for s in await resp.json()}
        assert streams[LIVE]["direct_source"] == NEWS_URL
        assert streams[SPORT]["direct_source"] == ""
        async with http.get(f"{door.url}/get.php?username={user}&password={password}") as resp:
            assert NEWS_URL in (await resp.text()).splitlines()
        number = streams[LIVE]["stream_id"]
        async with http.get(
            f"{door.url}/live/{user}/{password}/{number}.ts", allow_redirects=False
        ) as resp:
            assert resp.status == 302
            assert resp.headers["Location"].startswith(f"{door.url}/live/{LIVE}/master.m3u8?")


# --------------------------------------------------------------- the admin view, the CLI


async def test_admin_listener_lists_the_groups_per_channel(
    transcode: Control, redis: aioredis.Redis, ring: KeyRing
) -> None:
    _, routing = two_region_routing(1, ring)
    directory = LiveDirectory.connect(transcode.target, transcode.playback_key)
    keys = KeyStore(redis)
    _, playback = await keys.create(PLAYBACK)
    faces = {
        "on": RoutingFace(routing=routing, outputs=directory),
        "off": RoutingFace(routing=routing),
    }
    found: dict[str, Any] = {}
    try:
        assert await directory.refresh()
        async with aiohttp.ClientSession() as http:
            for name, face in faces.items():
                server = TestServer(create_app(face, authenticator=keys), host="127.0.0.1")
                await server.start_server()
                try:
                    url = str(server.make_url("/multicast"))
                    auth = {"Authorization": f"Bearer {transcode.admin_key}"}
                    async with http.get(url, headers=auth) as resp:
                        assert resp.status == 200
                        found[name] = await resp.json()
                    async with http.get(
                        url, headers={"Authorization": f"Bearer {playback}"}
                    ) as resp:
                        assert resp.status == 403
                finally:
                    await server.close()
    finally:
        await directory.close()
    assert found["off"] == {"enabled": False, "outputs": []}
    view = found["on"]
    assert (view["enabled"], view["last_error"]) == (True, "")
    assert datetime.fromisoformat(view["read_at"]).tzinfo is not None
    assert view["outputs"] == [
        {"channel": LIVE, "group": "239.10.0.1", "port": 5000, "protocol": "rtp",
         "url": NEWS_URL, "regions": [PROVINCE], "running": True},
        {"channel": SPORT, "group": "239.10.0.2", "port": 5002, "protocol": "udp",
         "url": SPORT_URL, "regions": [OTHER_REGION], "running": True},
    ]  # fmt: skip


def _cli(output: str) -> argparse.Namespace:
    return argparse.Namespace(output=output)


async def test_cli_lists_the_groups_as_a_table_and_as_json(transcode: Control) -> None:
    env = {"TRANSCODE_TARGET": transcode.target, "HEADEND_API_KEY": transcode.admin_key}
    # The command runs its own event loop: off this test's.
    table, as_json = io.StringIO(), io.StringIO()
    assert await asyncio.to_thread(cli.run_multicast, _cli("table"), env=env, out=table) == 0
    assert await asyncio.to_thread(cli.run_multicast, _cli("json"), env=env, out=as_json) == 0
    header, news, sport = table.getvalue().splitlines()
    assert re.split(r"\s{2,}", header) == ["CHANNEL", "GROUP", "PORT", "PROTOCOL", "REGIONS",
                                          "RUNNING"]  # fmt: skip
    assert re.split(r"\s{2,}", news) == [LIVE, "239.10.0.1", "5000", "rtp", PROVINCE, "true"]
    assert sport.split()[0] == SPORT
    rows = json.loads(as_json.getvalue())
    assert [r["channel"] for r in rows] == [LIVE, SPORT]
    assert rows[1] == {
        "channel": SPORT, "group": "239.10.0.2", "port": 5002, "protocol": "udp", "ttl": 16,
        "interface": "", "rung": "", "mux_rate_kbps": 0, "regions": [OTHER_REGION],
        "url": SPORT_URL, "running": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("env", "status"),
    [
        pytest.param({}, EXIT_USAGE, id="no-key"),
        pytest.param({"HEADEND_API_KEY": "hk_0000000000000000_" + "x" * 43}, EXIT_AUTH,
                     id="unknown-key"),
    ],
)  # fmt: skip
async def test_cli_without_a_valid_key_fails_and_prints_nothing(
    transcode: Control, env: dict[str, str], status: int
) -> None:
    out = io.StringIO()
    env = {"TRANSCODE_TARGET": transcode.target, **env}
    assert await asyncio.to_thread(cli.run_multicast, _cli("json"), env=env, out=out) == status
    assert out.getvalue() == ""


# ------------------------------------------------------------------------------ settings


def _env(**extra: str) -> dict[str, str]:
    return {
        "FRONTDOOR_SESSION_KEYS": f"s1:{b64url(b'x' * 32)}",
        "FRONTDOOR_API_KEY": "hk_0000000000000000_" + "x" * 43,
        **extra,
    }


def test_settings_name_the_transcode_target_and_refresh() -> None:
    off = FrontDoorSettings.from_env(_env())
    assert off is not None
    assert (off.transcode_target, off.multicast_refresh_seconds) == ("", 30.0)
    assert LiveDirectory.of(off) is None
    on = FrontDoorSettings.from_env(
        _env(FRONTDOOR_TRANSCODE_TARGET="tc:50053", FRONTDOOR_MULTICAST_REFRESH_SECONDS="5")
    )
    assert on is not None
    assert (on.transcode_target, on.multicast_refresh_seconds) == ("tc:50053", 5.0)


@pytest.mark.parametrize("value", ["0", "3601", "soon"])
def test_a_bad_refresh_interval_is_refused_by_name(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        FrontDoorSettings.from_env(_env(FRONTDOOR_MULTICAST_REFRESH_SECONDS=value))
    assert "FRONTDOOR_MULTICAST_REFRESH_SECONDS" in str(info.value)
