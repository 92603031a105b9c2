"""Content keys at the front door (``GET /keys/...``): the real CDN process (front door and
routing) over real EPG and subscriber gRPC servers, real Redis, a real
``ContentKeyStore`` holding keys of two channels, and a real nginx edge in front of a
stand-in origin."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from cdn_ctl.edge import EdgeProcess
from cdn_ctl.frontdoor.keys import KeyDelivery, grants_key, lease_note_key
from cdn_ctl.frontdoor.policy import redacted_path
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.server import RoutingProcess
from cdn_ctl.signing import KeyRing, SigningKey, b64url, sign_path
from headend.contentkeys import (
    ContentKey,
    ContentKeySettings,
    ContentKeyStore,
    KekRing,
    scope_for_asset,
    scope_for_channel,
)
from headend.seed import World
from headend.settings import SettingsError
from tests.support.cdn import FakeOrigin
from tests.support.security import login_box, routing_process
from tests.support.world import (
    LIVE,
    OTHER_REGION,
    REGION,
    SPORT,
)

RING = KeyRing((SigningKey("k1", b"frontdoor-keys-edge-secret"),), "k1")
KEKS = KekRing.generate("kek1")
ROTATION = 600
OCTETS = "application/octet-stream"


@dataclass
class KeyDoor:
    url: str
    process: RoutingProcess
    world: World
    store: ContentKeyStore
    redis: aioredis.Redis
    edge: EdgeProcess
    origin: FakeOrigin

    async def login(self, http: aiohttp.ClientSession, label: str) -> str:
        return await login_box(http, self.url, self.world, label)

    async def watch(self, http: aiohttp.ClientSession, token: str, channel: str) -> str:
        """Start live playback of ``channel`` (its master): the lease id."""
        async with http.get(f"{self.url}/live/{channel}/master.m3u8", headers=_auth(token)) as resp:
            assert resp.status == 200, await resp.text()
            return resp.headers["X-Lease-Id"]

    async def key(self, channel: str, at: datetime) -> ContentKey:
        """The channel's key for the rotation period holding ``at``."""
        period = int(at.timestamp()) // ROTATION
        return await self.store.key_for(
            scope_for_channel(channel), period, rotation_seconds=ROTATION
        )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def fetch(
    http: aiohttp.ClientSession, url: str, token: str = ""
) -> tuple[int, dict[str, str], bytes]:
    headers = _auth(token) if token else {}
    async with http.get(url, headers=headers, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def refused(http: aiohttp.ClientSession, url: str, token: str = "") -> tuple[int, str]:
    headers = _auth(token) if token else {}
    async with http.get(url, headers=headers, allow_redirects=False) as resp:
        body = await resp.json()
        assert set(body) >= {"error", "reason", "message"}
        return resp.status, str(body["reason"])


@pytest.fixture
async def keydoor(
    redis: aioredis.Redis, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[KeyDoor]:
    """The CDN process with content keys on; ``@pytest.mark.door(**overrides)`` changes
    front door settings for one test."""
    marker = request.node.get_closest_marker("door")
    origin = FakeOrigin()
    await origin.start()
    try:
        # One nginx, registered in both regions the world's boxes live in.
        async with routing_process(
            redis,
            tmp_path,
            origin.address,
            RING,
            replica_id="keys",
            regions=(REGION, OTHER_REGION),
            door=marker.kwargs if marker is not None else {},
            content_keys=ContentKeySettings(keks=KEKS, rotation_seconds=ROTATION),
            refresh_seconds=0.2,
            probe_interval_seconds=0.2,
        ) as door:
            yield KeyDoor(
                door.url,
                door.process,
                door.world,
                ContentKeyStore(redis, KEKS),
                redis,
                door.edge,
                origin,
            )
    finally:
        await origin.stop()


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------- live keys


async def test_a_box_with_a_live_lease_gets_its_channels_key(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "a1")
        await keydoor.watch(http, token, LIVE)
        status, headers, body = await fetch(http, f"{keydoor.url}/keys/{LIVE}/{key.key_id}", token)
        assert (status, body) == (200, key.key)
        assert headers["Content-Type"] == OCTETS
        assert headers["Cache-Control"] == "no-store"
        # Players without headers pass the token in the query, as on every box route.
        url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}?token={token}"
        assert (await fetch(http, url))[2] == key.key


async def test_no_token_or_an_expired_one_is_401(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    door = keydoor.process.frontdoor
    assert door is not None
    box = keydoor.world.boxes["a1"]
    expired, _ = door.signer.issue(
        carrier="acme",
        subscriber="alice",
        mac=box.mac,
        region=REGION,
        version=1,
        now=_now() - timedelta(days=2),
    )
    url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
    async with aiohttp.ClientSession() as http:
        assert await refused(http, url) == (401, "session_missing")
        assert await refused(http, url, expired) == (401, "session_expired")
        assert await refused(http, url, "garbage") == (401, "session_invalid")


async def test_a_box_without_a_lease_on_the_channel_is_403(keydoor: KeyDoor) -> None:
    live, sport = await keydoor.key(LIVE, _now()), await keydoor.key(SPORT, _now())
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        url = f"{keydoor.url}/keys/{LIVE}/{live.key_id}"
        assert await refused(http, url, token) == (403, "no_lease")
        # A lease on one channel opens that channel's keys only.
        await keydoor.watch(http, token, SPORT)
        assert await refused(http, url, token) == (403, "no_lease")
        assert (await fetch(http, f"{keydoor.url}/keys/{SPORT}/{sport.key_id}", token))[2] == (
            sport.key
        )


async def test_a_stopped_lease_opens_no_more_keys(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        lease = await keydoor.watch(http, token, LIVE)
        assert (await fetch(http, url, token))[0] == 200
        async with http.post(
            f"{keydoor.url}/api/stop?lease_id={lease}", headers=_auth(token)
        ) as resp:
            assert resp.status == 204
        assert await refused(http, url, token) == (403, "no_lease")


async def test_another_channels_or_an_unknown_key_id_is_404(keydoor: KeyDoor) -> None:
    sport = await keydoor.key(SPORT, _now())
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        await keydoor.watch(http, token, LIVE)
        for key_id in (sport.key_id, "0" * 32, "not-a-key-id", "A" * 32):
            url = f"{keydoor.url}/keys/{LIVE}/{key_id}"
            assert await refused(http, url, token) == (404, "key_not_found"), key_id


async def test_a_revoked_key_is_403(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    await keydoor.store.revoke(scope_for_channel(LIVE), key.key_id, principal="test")
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        await keydoor.watch(http, token, LIVE)
        url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
        assert await refused(http, url, token) == (403, "key_revoked")


@pytest.mark.door(live_key_window_seconds=6 * 3600)
async def test_a_key_spanning_a_programme_blacked_out_in_the_region_is_403(
    keydoor: KeyDoor,
) -> None:
    # news1.cn's programme three hours ahead is blacked out in REGION (a1's), not in b1's.
    hour = _now().replace(minute=0, second=0, microsecond=0)
    blacked = await keydoor.key(LIVE, hour + timedelta(hours=3, minutes=15))
    current = await keydoor.key(LIVE, _now())
    async with aiohttp.ClientSession() as http:
        a1 = await keydoor.login(http, "a1")
        b1 = await keydoor.login(http, "b1")
        await keydoor.watch(http, a1, LIVE)
        await keydoor.watch(http, b1, LIVE)
        url = f"{keydoor.url}/keys/{LIVE}/{blacked.key_id}"
        assert await refused(http, url, a1) == (403, "blacked_out")
        assert (await fetch(http, url, b1))[2] == blacked.key
        assert (await fetch(http, f"{keydoor.url}/keys/{LIVE}/{current.key_id}", a1))[0] == 200


@pytest.mark.door(live_key_window_seconds=60)
async def test_a_catch_up_grant_opens_exactly_the_keys_overlapping_its_window(
    keydoor: KeyDoor,
) -> None:
    hour = _now().replace(minute=0, second=0, microsecond=0)
    start, stop = hour - timedelta(hours=1), hour
    inside = [await keydoor.key(LIVE, start), await keydoor.key(LIVE, stop - timedelta(seconds=1))]
    before = await keydoor.key(LIVE, start - timedelta(seconds=1))
    after = await keydoor.key(LIVE, stop + timedelta(hours=2))
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "a1")
        for key in inside:
            url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
            assert await refused(http, url, token) == (403, "no_lease")
        window = f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
        status, _, _ = await fetch(
            http, f"{keydoor.url}/catchup/{LIVE}/master.m3u8?{window}", token
        )
        assert status == 302
        for key in inside:
            url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
            assert (await fetch(http, url, token))[2] == key.key
        for key in (before, after):
            url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
            assert await refused(http, url, token) == (403, "no_lease")
    mac = keydoor.world.boxes["a1"].mac
    assert 0 < await keydoor.redis.ttl(grants_key(mac, LIVE)) <= 3600 + 300 + 1


async def test_asset_keys_need_only_a_valid_box_token(keydoor: KeyDoor) -> None:
    key = await keydoor.store.key_for(scope_for_asset("film-001"), 0, rotation_seconds=ROTATION)
    url = f"{keydoor.url}/keys/asset/film-001/{key.key_id}"
    async with aiohttp.ClientSession() as http:
        assert await refused(http, url) == (401, "session_missing")
        token = await keydoor.login(http, "e1")
        status, headers, body = await fetch(http, url, token)
        assert (status, body, headers["Cache-Control"]) == (200, key.key, "no-store")
        other = f"{keydoor.url}/keys/asset/film-002/{key.key_id}"
        assert await refused(http, other, token) == (404, "key_not_found")


@pytest.mark.door(key_requests_per_minute=5)
async def test_key_requests_are_rate_limited_per_token(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        await keydoor.watch(http, token, LIVE)
        statuses = []
        for _ in range(7):
            status, headers, _ = await fetch(http, url, token)
            statuses.append(status)
        assert statuses == [200] * 5 + [429] * 2
        assert int(headers["Retry-After"]) >= 1
        assert await refused(http, url, token) == (429, "rate_limited")
        # Another box's budget is its own.
        other = await keydoor.login(http, "c1")
        await keydoor.watch(http, other, LIVE)
        assert (await fetch(http, url, other))[0] == 200


async def test_key_bytes_ids_and_tokens_never_reach_the_log(
    keydoor: KeyDoor, caplog: pytest.LogCaptureFixture
) -> None:
    key = await keydoor.key(LIVE, _now())
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "b1")
        await keydoor.watch(http, token, LIVE)
        assert (await fetch(http, f"{keydoor.url}/keys/{LIVE}/{key.key_id}", token))[0] == 200
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert f"/keys/{LIVE}/-" in logged
    for secret in (key.key_id, key.key.hex(), token, repr(key.key)):
        assert secret not in logged
    assert redacted_path(f"/keys/asset/film-001/{key.key_id}") == "/keys/asset/film-001/-"


async def test_the_edge_refuses_key_paths_and_never_asks_the_origin(keydoor: KeyDoor) -> None:
    key = await keydoor.key(LIVE, _now())
    edge = f"http://127.0.0.1:{keydoor.edge.config.listen_port}"
    signed = sign_path(
        RING,
        scope="keys/",
        path=f"keys/{LIVE}/{key.key_id}",
        expires_at=int(time.time()) + 60,
    )
    async with aiohttp.ClientSession() as http:
        for path in (f"/keys/{LIVE}/{key.key_id}", signed, "/keys/asset/film-001/" + "0" * 32):
            status, _, body = await fetch(http, edge + path)
            assert status == 404, path
            assert key.key not in body
    assert not [p for p in keydoor.origin.hits if "keys" in p]


# ------------------------------------------------------------------- across replicas


async def test_a_lease_polled_on_one_replica_opens_keys_on_another(
    redis: aioredis.Redis,
) -> None:
    store = ContentKeyStore(redis, KEKS)

    def replica() -> KeyDelivery:
        return KeyDelivery(
            store,
            redis,
            limiter=None,
            cache_seconds=5.0,
            live_window_seconds=1800,
            grace_seconds=300,
        )

    polled, other = replica(), replica()
    mac = "02:00:00:00:00:aa"
    await polled.noted(mac, "lease-1", LIVE)
    assert await other.leased(mac, LIVE)
    assert not await other.leased(mac, SPORT)
    assert 0 < await redis.ttl(lease_note_key(mac)) <= 120
    await other.ended(mac, "lease-0")  # an older lease of the box: the note stays
    assert await polled.leased(mac, LIVE)
    await other.ended(mac, "lease-1")
    assert not await other.leased(mac, LIVE)


# ------------------------------------------------------------------------------ settings


def _env(**extra: str) -> dict[str, str]:
    return {
        "FRONTDOOR_SESSION_KEYS": "s1:" + b64url(b"s" * 32),
        "FRONTDOOR_API_KEY": "hk_test",
        **extra,
    }


def test_key_settings_are_read_from_the_environment() -> None:
    settings = FrontDoorSettings.from_env(
        _env(
            FRONTDOOR_KEY_REQUESTS_PER_MINUTE="30",
            FRONTDOOR_KEY_CACHE_SECONDS="2.5",
            FRONTDOOR_LIVE_KEY_WINDOW_SECONDS="900",
        )
    )
    assert settings is not None
    assert (
        settings.key_requests_per_minute,
        settings.key_cache_seconds,
        settings.live_key_window_seconds,
    ) == (30, 2.5, 900.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("FRONTDOOR_KEY_REQUESTS_PER_MINUTE", "0", id="no-requests"),
        pytest.param("FRONTDOOR_KEY_CACHE_SECONDS", "3600", id="cache-too-long"),
        pytest.param("FRONTDOOR_LIVE_KEY_WINDOW_SECONDS", "5", id="window-too-short"),
    ],
)
def test_bad_key_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        FrontDoorSettings.from_env(_env(**{name: value}))
    assert name in str(caught.value)


# ---------------------------------------------------------------------------- metrics


async def test_logins_refusals_key_requests_and_routes_are_counted(keydoor: KeyDoor) -> None:
    """Known traffic through the real process, counted on its one registry: two logins (one
    refused), three key requests (one refused for want of a lease, one for no token), and
    the live variant's redirect placing the lease."""
    registry = keydoor.process.metrics.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    key = await keydoor.key(LIVE, _now())
    url = f"{keydoor.url}/keys/{LIVE}/{key.key_id}"
    async with aiohttp.ClientSession() as http:
        token = await keydoor.login(http, "a1")
        async with http.post(
            f"{keydoor.url}/api/login", json={"mac": "02:00:00:00:00:01", "secret": "wrong"}
        ) as resp:
            assert resp.status == 401
        assert (await refused(http, url, token)) == (403, "no_lease")
        assert (await refused(http, url)) == (401, "session_missing")
        lease_id = await keydoor.watch(http, token, LIVE)
        assert (await fetch(http, url, token))[0] == 200
        variant = f"{keydoor.url}/live/{LIVE}/180p/index.m3u8?lease_id={lease_id}"
        for _ in range(2):
            assert (await fetch(http, variant, token))[0] == 302
    assert value("cdn_routes_total", level="county", decision="lease_placed") == 1
    assert value("cdn_routes_total", level="county", decision="lease_kept") == 1
    assert value("cdn_box_logins_total", outcome="ok") == 1
    assert value("cdn_box_logins_total", outcome="login_failed") == 1
    assert value("cdn_key_requests_total", outcome="ok") == 1
    assert value("cdn_key_requests_total", outcome="no_lease") == 1
    assert value("cdn_key_requests_total", outcome="session_missing") == 1
    assert value("cdn_box_refusals_total", reason="login_failed") == 1
    assert value("cdn_box_refusals_total", reason="no_lease") == 1
    assert value("cdn_box_refusals_total", reason="session_missing") == 1
