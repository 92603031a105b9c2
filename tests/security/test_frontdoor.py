"""Attacks on the public face a set-top box talks to, and on the admin listener beside it.

Every test asserts the refusal AND that nothing changed: no stream slot reserved on an
edge, no lease started, no URL signed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from urllib.parse import urlsplit

import aiohttp
import jwt
import pytest
import yarl

from cdn_ctl.server import LOGIN_PER_BOX
from cdn_ctl.signing import sign_path, verify_path
from headend.auth import ADMIN, PLAYBACK, Principal
from headend.ratelimit import clear_lockout
from protos import subscriber_pb2
from tests.support.security import Platform, close_all, closed_by_peer, get, half_requests
from tests.support.world import LIVE, REGION, SESSION_KEY, set_status

pytestmark = pytest.mark.slow

BOX_PATHS = [
    "/lineup.m3u",
    "/guide.xml.gz",
    f"/live/{LIVE}/master.m3u8",
    f"/live/{LIVE}/180p/index.m3u8?lease_id=0123456789abcdef",
    f"/live/{LIVE}/master-cmaf.m3u8",
    f"/live/{LIVE}/manifest.mpd",
    f"/live/{LIVE}/manifest.mpd?lease_id=0123456789abcdef",
    f"/live/{LIVE}/180p/cmaf.m3u8?lease_id=0123456789abcdef",
    f"/catchup/{LIVE}/master.m3u8?utc=1700000000&utcend=1700003600",
    f"/catchup/{LIVE}/master-cmaf.m3u8?utc=1700000000&utcend=1700003600",
    f"/catchup/{LIVE}/manifest.mpd?utc=1700000000&utcend=1700003600",
    f"/keys/{LIVE}/{'0' * 32}",
    f"/keys/asset/film-001/{'0' * 32}",
    f"/startover/{LIVE}/master.m3u8",
    f"/timeshift/{LIVE}/master.m3u8?offset=600",
    f"/timeshift/{LIVE}/master.m3u8?utc=1700000000",
]
CATCHUP = f"/catchup/{LIVE}/master.m3u8"
ADMIN_PATHS = [
    f"/route/live/{LIVE}/180p/index.m3u8?region={REGION}",
    f"/route/catchup/{LIVE}/w/1700000000/1700003600/master.m3u8?region={REGION}",
    f"/debug/route?channel={LIVE}&region={REGION}",
    "/metrics",
    f"/steering/{LIVE}.json?base=v1&region={REGION}",
    "/multicast",
]


def forged(**claims: object) -> str:
    """A token signed with the real session key but with the given claims."""
    now = int(time.time())
    body = {
        "aud": "headend-stb",
        "jti": "forged",
        "car": "acme",
        "sub": "carol",
        "mac": "02:00:00:00:00:04",
        "reg": REGION,
        "ver": 1,
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims)
    return jwt.encode(body, SESSION_KEY, algorithm="HS256", headers={"kid": "s1"})


def widened(token: str, claim: str = "mtcd.ah.0") -> str:
    """``token`` with its device profile claim swapped for a wider one, not re-signed."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["dp"] = claim
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{raw}.{signature}"


BAD_TOKENS = [
    pytest.param("", id="none"),
    pytest.param("garbage", id="garbage"),
    pytest.param(forged(exp=int(time.time()) - 10, iat=int(time.time()) - 100), id="expired"),
    pytest.param(
        jwt.encode({"sub": "carol"}, b"x" * 32, algorithm="HS256", headers={"kid": "s1"}),
        id="other-key",
    ),
    pytest.param(forged(iat=int(time.time()) + 3600), id="issued-in-the-future"),
    pytest.param(
        forged(iat=int(time.time()), exp=int(time.time()) + 10 * 365 * 86_400), id="ten-years"
    ),
    pytest.param(forged(jti=None), id="no-token-id"),
    # The device profile claim (cdn_ctl.boxtoken): only what a login could have written.
    pytest.param(widened(forged(dp="t.a.360")), id="profile-widened-unsigned"),
    pytest.param(forged(dp="tx.a.0"), id="profile-unknown-format"),
    pytest.param(forged(dp="t.a.99999"), id="profile-too-tall"),
    pytest.param(forged(dp=720), id="profile-not-text"),
    pytest.param(
        jwt.encode({"sub": "carol"}, "", algorithm="none", headers={"kid": "s1"}), id="alg-none"
    ),
]


@pytest.mark.parametrize("token", BAD_TOKENS)
async def test_no_box_path_answers_without_a_valid_token(platform: Platform, token: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in BOX_PATHS:
            status, _, body = await get(http, platform.url + path, token=token)
            assert status == 401, (path, body)
            assert "#EXT" not in body
            assert "/t/" not in body
        async with http.post(
            f"{platform.url}/api/stop?lease_id=0123456789abcdef",
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 401
    assert platform.reserved == 0
    assert platform.process.frontdoor is not None
    assert platform.process.frontdoor.leases.get("0123456789abcdef") is None


async def test_routing_debug_metrics_and_steering_are_not_on_the_public_port(
    platform: Platform,
) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        for path in ADMIN_PATHS:
            for auth in ("", token):
                status, headers, body = await get(http, platform.url + path, token=auth)
                assert status in (401, 404), (path, status)
                assert "Location" not in headers
                assert "edge" not in body
                assert "cdn_" not in body
        # The region in the query decided nothing and reserved nothing.
        status, _, body = await get(http, f"{platform.url}/healthz")
        assert (status, body.strip()) == (200, '{"status": "ok"}')
    assert platform.reserved == 0


@pytest.mark.parametrize(
    "principal",
    [
        pytest.param(None, id="no-key"),
        pytest.param(PLAYBACK, id="playback"),
        pytest.param(Principal("carrier", "acme"), id="carrier"),
        pytest.param(Principal("broadcaster", "demo"), id="broadcaster"),
    ],
)
async def test_admin_listener_wants_an_admin_key(
    platform: Platform, principal: Principal | None
) -> None:
    token = "" if principal is None else (await platform.keys.create(principal))[1]
    async with aiohttp.ClientSession() as http:
        for path in ADMIN_PATHS:
            status, headers, _ = await get(http, platform.admin_url + path, token=token)
            assert status == (401 if principal is None else 403), path
            assert "Location" not in headers
    assert platform.reserved == 0


async def test_admin_route_without_a_lease_reserves_nothing(platform: Platform) -> None:
    _, key = await platform.keys.create(ADMIN)
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            status, headers, _ = await get(http, platform.admin_url + ADMIN_PATHS[0], token=key)
            assert status == 302
            assert "lease_id=" not in headers["Location"]
        status, _, body = await get(http, platform.admin_url + ADMIN_PATHS[2], token=key)
        assert status == 200
        assert '"decision"' in body
    assert platform.reserved == 0


async def test_unauthenticated_flood_leaves_capacity_for_real_boxes(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *(get(http, platform.url + BOX_PATHS[3]) for _ in range(400))
        )
        assert {status for status, _, _ in results} == {401}
        assert platform.reserved == 0
        token = await platform.login(http, "c1")
        status, headers, text = await get(http, platform.url + BOX_PATHS[2], token=token)
        assert status == 200, text
        variant = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id={headers['X-Lease-Id']}"
        status, headers, _ = await get(http, variant, token=token)
        assert status == 302
    assert platform.reserved == 1


async def test_live_urls_are_short_lived_and_a_suspension_stops_the_next_reload(
    platform: Platform,
) -> None:
    services = platform.services
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        _, headers, _ = await get(http, platform.url + BOX_PATHS[2], token=token)
        variant = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id={headers['X-Lease-Id']}"
        status, headers, _ = await get(http, variant, token=token)
        assert status == 302
        path = urlsplit(headers["Location"]).path
        grant = verify_path(platform.ring, path, client_ip="127.0.0.1", now=time.time())
        ttl = platform.process.routing.settings.url_ttl_seconds
        assert grant.scope == f"live/{LIVE}/"
        assert grant.expires_at <= time.time() + ttl + 1
        await set_status(
            services.subscriber_target,
            services.api_key,
            "carol",
            subscriber_pb2.SUBSCRIBER_STATUS_SUSPENDED,
        )
        deadline = time.monotonic() + 10
        while True:
            status, _, body = await get(http, variant, token=token)
            if status != 302 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 403
        assert "subscriber_suspended" in body


async def test_catch_up_is_signed_for_exactly_its_window(platform: Platform) -> None:
    programme = platform.world.programmes["earlier"]
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        status, headers, body = await get(
            http,
            f"{platform.url}/catchup/{LIVE}/master.m3u8?programme={programme}",
            token=token,
        )
        assert status == 302, body
        location = urlsplit(headers["Location"])
        grant = verify_path(platform.ring, location.path, client_ip="127.0.0.1", now=time.time())
        parts = grant.scope.strip("/").split("/")
        assert parts[:3] == ["catchup", LIVE, "w"]
        first, last = int(parts[3]), int(parts[4])
        grace = platform.process.routing.settings.catchup_url_grace_seconds
        assert grant.expires_at <= time.time() + (last - first) + grace + 1
        token_part = location.path.split(f"catchup/{LIVE}/")[0]
        edge = platform.edge.url
        # The same signature for another window, or for the live channel, is refused.
        for other in (
            f"catchup/{LIVE}/w/{first - 3600}/{last}/master.m3u8",
            f"catchup/{LIVE}/w/{first}/{last + 3600}/master.m3u8",
            f"live/{LIVE}/master.m3u8",
        ):
            async with http.get(f"{edge}{token_part}{other}") as resp:
                assert resp.status == 403, other
        # Nothing outside the window reached the origin.
        assert all(f"/w/{first}/{last}/" in path for path in platform.origin.hits)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"/startover/{LIVE}/master.m3u8", id="start-over"),
        pytest.param(f"/timeshift/{LIVE}/master.m3u8?offset=600", id="timeshift"),
    ],
)
async def test_start_over_and_timeshift_are_signed_for_exactly_their_window(
    platform: Platform, path: str
) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        status, headers, body = await get(http, platform.url + path, token=token)
        assert status == 302, body
        location = urlsplit(headers["Location"])
        grant = verify_path(platform.ring, location.path, client_ip="127.0.0.1", now=time.time())
        parts = grant.scope.strip("/").split("/")
        assert parts[:3] == ["catchup", LIVE, "w"]
        first, last = int(parts[3]), int(parts[4])
        # It ends with the programme on air, which the front door's rights checked.
        assert last == int(datetime.now(UTC).replace(minute=0, second=0).timestamp()) + 3600
        grace = platform.process.routing.settings.catchup_url_grace_seconds
        assert grant.expires_at <= time.time() + (last - first) + grace + 1
        token_part = location.path.split(f"catchup/{LIVE}/")[0]
        # Stretched back into the programme before, or on into the next: refused.
        for other in (
            f"catchup/{LIVE}/w/{first - 3600}/{last}/master.m3u8",
            f"catchup/{LIVE}/w/{first}/{last + 3600}/master.m3u8",
            f"catchup/{LIVE}/w/{first}/{last}/../../../../live/{LIVE}/master.m3u8",
        ):
            async with http.get(f"{platform.edge.url}{token_part}{other}") as resp:
                assert resp.status in (400, 403), other
        assert all(f"/w/{first}/{last}/" in p for p in platform.origin.hits)


async def test_one_stream_per_box_and_the_replaced_player_is_refused(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        _, first, _ = await get(http, platform.url + BOX_PATHS[2], token=token)
        _, second, _ = await get(http, platform.url + BOX_PATHS[2], token=token)
        old, new = first["X-Lease-Id"], second["X-Lease-Id"]
        assert old != new
        base = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id="
        status, _, body = await get(http, base + old, token=token)
        assert status == 409
        assert "lease_replaced" in body
        status, _, _ = await get(http, base + new, token=token)
        assert status == 302
        assert platform.reserved == 1
        # alice has one stream for two boxes: her second box is refused while the first plays.
        a1, a2 = await platform.login(http, "a1"), await platform.login(http, "a2")
        assert (await get(http, platform.url + BOX_PATHS[2], token=a1))[0] == 200
        status, _, body = await get(http, platform.url + BOX_PATHS[2], token=a2)
        assert status == 429
        assert "stream_limit" in body


async def _from(address: str, url: str, token: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        status, _, _ = await get(http, url, token=token)
        return status


@pytest.mark.door(max_addresses_per_token=3)
async def test_a_token_used_from_too_many_addresses_is_refused(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
    url = platform.url + "/lineup.m3u"
    for address in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        assert await _from(address, url, token) == 200
    assert await _from("127.0.0.4", url, token) == 403
    assert platform.reserved == 0


async def test_forwarded_headers_from_untrusted_peers_are_ignored(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        _, headers, _ = await get(http, platform.url + BOX_PATHS[2], token=token)
        variant = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id={headers['X-Lease-Id']}"
        _, headers, _ = await get(
            http, variant, token=token, headers={"X-Forwarded-For": "198.51.100.7"}
        )
    grant = verify_path(
        platform.ring, urlsplit(headers["Location"]).path, client_ip="127.0.0.1", now=time.time()
    )
    assert grant.client_ip == "127.0.0.1"


@pytest.mark.door(trusted_proxies=(ip_network("127.0.0.1/32"),))
async def test_a_trusted_proxy_names_the_box_address(platform: Platform) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    box = platform.world.boxes["c1"]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{platform.url}/api/login",
            json={"mac": box.mac, "secret": box.secret},
            headers=forwarded,
        ) as resp:
            token = (await resp.json())["token"]
        _, headers, _ = await get(http, platform.url + BOX_PATHS[2], token=token, headers=forwarded)
        variant = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id={headers['X-Lease-Id']}"
        _, headers, _ = await get(http, variant, token=token, headers=forwarded)
    path = urlsplit(headers["Location"]).path
    grant = verify_path(platform.ring, path, client_ip="198.51.100.7", now=time.time())
    assert grant.client_ip == "198.51.100.7"


async def _login(
    http: aiohttp.ClientSession, url: str, mac: str, secret: str
) -> tuple[int, dict[str, str], str]:
    async with http.post(f"{url}/api/login", json={"mac": mac, "secret": secret}) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_login_lockout_per_box_until_the_operator_clears_it(platform: Platform) -> None:
    box = platform.world.boxes["c1"]
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            status, _, _ = await _login(http, platform.url, box.mac, "wrong-secret")
            assert status == 401
        status, headers, body = await _login(http, platform.url, box.mac, box.secret)
        assert status == 429
        assert "login_locked" in body
        assert int(headers["Retry-After"]) > 0
        # The operator's unlock (what `headend ratelimit clear login-box <mac>` does).
        assert await clear_lockout(platform.redis, LOGIN_PER_BOX, box.mac)
        status, _, body = await _login(http, platform.url, box.mac, box.secret)
        assert status == 200, body


@pytest.mark.door(login_failures_per_address=5)
async def test_login_brute_force_from_one_address_is_locked_out(platform: Platform) -> None:
    box = platform.world.boxes["e1"]
    async with aiohttp.ClientSession() as http:
        for i in range(5):
            status, _, _ = await _login(http, platform.url, f"02:00:00:00:ff:{i:02x}", "guess")
            assert status == 401
        status, _, body = await _login(http, platform.url, box.mac, box.secret)
        assert status == 429
        assert "login_locked" in body


@pytest.mark.door(fetches_per_minute=20)
async def test_fetches_per_session_are_limited(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        statuses = [
            (await get(http, platform.url + "/lineup.m3u", token=token))[0] for _ in range(30)
        ]
    assert statuses[:20] == [200] * 20
    assert set(statuses[20:]) == {429}


@pytest.mark.door(idle_timeout_seconds=1.0)
async def test_slow_clients_are_cut_off_and_boxes_still_served(platform: Platform) -> None:
    port = int(urlsplit(platform.url).port or 0)
    conns = await half_requests("127.0.0.1", port, 300)
    try:
        async with aiohttp.ClientSession() as http:
            token = await platform.login(http, "c1")
            assert (await get(http, platform.url + "/lineup.m3u", token=token))[0] == 200
        closed = await asyncio.gather(*(closed_by_peer(c, 10) for c in conns))
        assert all(closed)
    finally:
        close_all(conns)


@pytest.mark.door(max_connections_per_address=50)
async def test_connections_per_address_are_capped(platform: Platform) -> None:
    port = int(urlsplit(platform.url).port or 0)
    conns = []
    try:
        for _ in range(60):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=("127.0.0.2", 0)
            )
            conns.append((reader, writer))
        refused = await asyncio.gather(*(closed_by_peer(c, 1) for c in conns[50:]))
        assert all(refused)
        async with aiohttp.ClientSession() as http:
            assert (await get(http, platform.url + "/healthz"))[0] == 200
    finally:
        close_all(conns)


async def test_an_unverified_query_token_is_never_copied(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        status, _, text = await get(
            http, platform.url + "/lineup.m3u?token=evil%22injected", token=token
        )
        assert status == 200
        assert "evil" not in text
        assert "token=" not in text
        status, _, text = await get(http, f"{platform.url}/lineup.m3u?token={token}")
        assert status == 200
        assert f"token={token}" in text


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param(
            f"/catchup/{LIVE}/master.m3u8?utc=999999999999&utcend=999999999999",
            "bad_window",
            id="far-future",
        ),
        pytest.param(
            f"/catchup/{LIVE}/master.m3u8?utc=%C2%B2&utcend=5", "bad_window", id="unicode-digit"
        ),
        pytest.param(f"/catchup/{LIVE}/master.m3u8?utc=-5&utcend=5", "bad_window", id="negative"),
        pytest.param(
            f"/catchup/{LIVE}/master.m3u8?programme={'x' * 500}",
            "unknown_programme",
            id="long-programme",
        ),
        pytest.param("/live/%0d%0aX/master.m3u8", "bad_channel", id="crlf-channel"),
        pytest.param("/live/%0d%0aX/manifest.mpd", "bad_channel", id="mpd-crlf-channel"),
        pytest.param("/live/%2E%2E/master-cmaf.m3u8", "", id="cmaf-dots-channel"),
        # The platform's channel is MPEG-TS only: no lease, its HLS master named.
        pytest.param(f"/live/{LIVE}/manifest.mpd", "format_not_offered", id="mpd-not-cmaf"),
        pytest.param(
            f"/live/{LIVE}/master-cmaf.m3u8", "format_not_offered", id="cmaf-master-not-cmaf"
        ),
        pytest.param(
            f"/catchup/{LIVE}/manifest.mpd?utc=1700000000&utcend=1700003600",
            "format_not_offered",
            id="catchup-mpd-not-cmaf",
        ),
        pytest.param(
            f"/catchup/{LIVE}/manifest.mpd?utc=%C2%B2&utcend=5",
            "bad_window",
            id="catchup-mpd-unicode-digit",
        ),
        pytest.param("/startover/%0d%0aX/master.m3u8", "bad_channel", id="startover-crlf"),
        pytest.param(
            f"/timeshift/{LIVE}/master.m3u8?offset=%C2%B2", "bad_window", id="offset-unicode-digit"
        ),
        pytest.param(
            f"/timeshift/{LIVE}/master.m3u8?offset=9999999999", "bad_window", id="offset-huge"
        ),
        pytest.param(
            f"/timeshift/{LIVE}/master.m3u8?offset=999999999", "outside_timeshift", id="too-far"
        ),
        pytest.param(f"/timeshift/{LIVE}/master.m3u8", "bad_window", id="no-anchor"),
        pytest.param(
            f"/catchup/{LIVE}/master.m3u8?start=1&duration=-5", "bad_window", id="negative-duration"
        ),
        pytest.param(f"/keys/{LIVE}/{'0' * 32}", "key_not_found", id="key-unknown"),
        pytest.param(f"/keys/{LIVE}/{'Z' * 32}", "key_not_found", id="key-id-not-hex"),
        pytest.param(f"/keys/{LIVE}/..%2F{'0' * 32}", "", id="key-traversal"),
        pytest.param("/keys/%0d%0aX/" + "0" * 32, "", id="key-crlf-channel"),
        pytest.param("/keys/asset/%2E%2E/" + "0" * 32, "", id="key-asset-dots"),
        pytest.param(f"/live/{LIVE}/..%2F..%2Fetc/index.m3u8?lease_id=x", "", id="traversal"),
    ],
)
async def test_odd_requests_get_a_clear_4xx(platform: Platform, path: str, reason: str) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        status, _, body = await get(http, platform.url + path, token=token)
    assert 400 <= status < 500, body
    assert reason in body
    assert platform.reserved == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 3000 + b"]" * 3000, id="nested"),
        pytest.param(b'{"mac": "' + b"a" * 10_000 + b'"}', id="huge"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'{"mac": ["x"], "secret": {"a": 1}}', id="wrong-types"),
    ],
)
async def test_bad_login_bodies_are_refused_cleanly(platform: Platform, body: bytes) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{platform.url}/api/login", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status in (400, 401, 413)
            assert "Traceback" not in await resp.text()


async def test_session_token_of_another_box_cannot_stop_its_stream(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        c1 = await platform.login(http, "c1")
        e1 = await platform.login(http, "e1")
        _, headers, _ = await get(http, platform.url + BOX_PATHS[2], token=c1)
        lease = headers["X-Lease-Id"]
        async with http.post(
            f"{platform.url}/api/stop?lease_id={lease}", headers={"Authorization": f"Bearer {e1}"}
        ) as resp:
            assert resp.status == 204
        variant = f"{platform.url}/live/{LIVE}/180p/index.m3u8?lease_id={lease}"
        status, _, _ = await get(http, variant, token=c1)
        assert status == 302
    assert platform.reserved == 1


def test_token_times_are_checked_with_small_leeway() -> None:
    from cdn_ctl.boxtoken import LEEWAY, MAX_LIFETIME, BoxTokenInvalid, BoxTokenSigner

    signer = BoxTokenSigner({"s1": SESSION_KEY}, active_kid="s1")
    now = datetime.now(UTC)
    token = forged(iat=int((now + LEEWAY * 2).timestamp()))
    with pytest.raises(BoxTokenInvalid):
        signer.verify(token, now=now)
    token = forged(
        iat=int(now.timestamp()), exp=int((now + MAX_LIFETIME + timedelta(days=1)).timestamp())
    )
    with pytest.raises(BoxTokenInvalid):
        signer.verify(token, now=now)
    # A few seconds of skew between replicas is fine.
    token = forged(iat=int((now + timedelta(seconds=5)).timestamp()))
    assert signer.verify(token, now=now).token_id == "forged"


# ------------------------------------------------------------------- players with one URL

FAKE_CREDENTIAL = "A" * 43
FAKE_USER = "p0123456789"


def player_paths(user: str, password: str) -> list[str]:
    """Every public path a player reaches with a credential instead of a box token."""
    login = f"username={user}&password={password}"
    return [
        f"/p/{password}/playlist.m3u",
        f"/p/{password}/guide.xml.gz",
        f"/get.php?{login}&type=m3u_plus&output=ts",
        f"/xmltv.php?{login}",
        f"/live/{user}/{password}/1.ts",
        f"/live/{user}/{password}/1.m3u8",
    ]


async def _player_link(platform: Platform, http: aiohttp.ClientSession, token: str) -> dict:
    async with http.post(
        f"{platform.url}/api/player-link", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def _refused_as_a_player(
    platform: Platform, http: aiohttp.ClientSession, user: str, password: str
) -> None:
    for path in player_paths(user, password):
        status, headers, body = await get(http, platform.url + path)
        assert status in (401, 404), (path, status, body)
        if password:  # with empty segments no route matches: aiohttp's plain 404
            assert headers["Content-Type"].startswith("application/problem+json"), path
        assert "Location" not in headers
        assert "#EXT" not in body
        assert "/t/" not in body
        assert "token=" not in body
    status, _, body = await get(
        http, f"{platform.url}/player_api.php?username={user}&password={password}"
    )
    assert (status, body) == (200, '{"user_info": {"auth": 0}}')
    assert platform.reserved == 0


async def test_player_paths_refuse_unknown_credentials_and_need_no_box_token(
    platform: Platform,
) -> None:
    async with aiohttp.ClientSession() as http:
        await _refused_as_a_player(platform, http, FAKE_USER, FAKE_CREDENTIAL)
        await _refused_as_a_player(platform, http, "", "")
        # Managing a link needs the box token.
        for token in ("", "garbage"):
            async with http.post(
                f"{platform.url}/api/player-link",
                headers={"Authorization": f"Bearer {token}"} if token else {},
            ) as resp:
                assert resp.status == 401
    assert await platform.redis.keys("fd:pl:*") == []


async def test_a_revoked_or_replaced_credential_is_refused_like_an_unknown_one(
    platform: Platform,
) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        first = await _player_link(platform, http, token)
        second = await _player_link(platform, http, token)
        old = first["xtream"]
        await _refused_as_a_player(platform, http, old["username"], old["password"])
        status, _, _ = await get(http, second["url"])
        assert status == 200
        async with http.delete(
            f"{platform.url}/api/player-link", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 204
        new = second["xtream"]
        await _refused_as_a_player(platform, http, new["username"], new["password"])
        # Another box's username with this box's (revoked) password is no better.
        other = (await _player_link(platform, http, await platform.login(http, "b1")))["xtream"]
        await _refused_as_a_player(platform, http, other["username"], new["password"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/player_api.php?username={u}&password={p}&action=get_vod", 400,
                     id="unknown-action"),
        pytest.param("/player_api.php?username={u}&password={p}&action=get_live_streams"
                     "&category_id=1%27%20OR%201=1", 400, id="category-injection"),
        pytest.param("/player_api.php?username={u}&password={p}&action=get_live_streams"
                     "&category_id=" + "9" * 50, 400, id="category-long"),
        pytest.param("/get.php?username={u}&password={p}&type=../../etc/passwd", 400,
                     id="bad-type"),
        pytest.param("/get.php?username={u}&password={p}&output=rtmp%0d%0aX", 400,
                     id="bad-output"),
        pytest.param("/get.php?username={u}&password=" + "x" * 3000, 401, id="long-password"),
        pytest.param("/get.php?username=" + "u" * 3000 + "&password={p}", 401, id="long-user"),
        pytest.param("/get.php?username={u}&password={p}%00", 401, id="nul-password"),
        pytest.param("/p/" + "A" * 3000 + "/playlist.m3u", 404, id="long-credential"),
        pytest.param("/p/{p}/..%2F..%2Flineup.m3u", 404, id="traversal-credential"),
        pytest.param("/live/{u}/{p}/..%2F..%2Fetc%2Fpasswd.ts", 401, id="traversal-stream"),
        pytest.param("/live/{u}/{p}/1%2F..%2F2.ts", 401, id="slash-stream"),
        pytest.param("/live/{u}/{p}/-1.ts", 401, id="negative-stream"),
        pytest.param("/live/{u}/{p}/99999999999.ts", 401, id="huge-stream"),
        pytest.param("/live/{u}/{p}/1.mkv", 401, id="other-extension"),
        pytest.param("/live/{u}/{p}/999.ts", 403, id="not-entitled-stream"),
    ],
)  # fmt: skip
async def test_malformed_player_requests_get_a_clear_4xx(
    platform: Platform, path: str, status: int
) -> None:
    async with aiohttp.ClientSession() as http:
        link = (await _player_link(platform, http, await platform.login(http, "c1")))["xtream"]
        url = platform.url + path.format(u=link["username"], p=link["password"])
        # encoded=True: the request goes out exactly as written (no client-side normalising).
        async with http.get(yarl.URL(url, encoded=True), allow_redirects=False) as resp:
            body = await resp.text(errors="replace")
            # A malformed stream path is not a player route: the box-token check refuses it.
            assert resp.status == status, body
            assert "Location" not in resp.headers
            assert "#EXT" not in body
            assert "Traceback" not in body
    assert platform.reserved == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/p/{p}/playlist.m3u", id="post-playlist"),
        pytest.param("DELETE", "/p/{p}/guide.xml.gz", id="delete-guide"),
        pytest.param("POST", "/player_api.php?username={u}&password={p}", id="post-player-api"),
        pytest.param("PUT", "/get.php?username={u}&password={p}", id="put-get-php"),
        pytest.param("POST", "/xmltv.php?username={u}&password={p}", id="post-xmltv"),
        pytest.param("PUT", "/api/player-link", id="put-player-link"),
        pytest.param("POST", "/live/{u}/{p}/1.ts", id="post-stream"),
    ],
)
async def test_player_paths_allow_only_their_methods(
    platform: Platform, method: str, path: str
) -> None:
    async with aiohttp.ClientSession() as http:
        link = (await _player_link(platform, http, await platform.login(http, "c1")))["xtream"]
        url = platform.url + path.format(u=link["username"], p=link["password"])
        async with http.request(method, url, allow_redirects=False) as resp:
            body = await resp.text()
            # The box-token check answers first where the path is also a box path.
            assert resp.status in (401, 405), (resp.status, body)
            assert "#EXT" not in body
            assert "auth" not in body
    assert platform.reserved == 0


@pytest.mark.door(fetches_per_minute=20)
async def test_player_link_fetches_are_limited(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        link = await _player_link(platform, http, await platform.login(http, "c1"))
        answers = [await get(http, link["url"]) for _ in range(30)]
    assert [status for status, _, _ in answers[:20]] == [200] * 20
    assert {status for status, _, _ in answers[20:]} == {429}
    _, headers, body = answers[-1]
    assert headers["Content-Type"].startswith("application/problem+json")
    assert headers["Retry-After"]
    assert '"reason": "rate_limited"' in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_key_paths_allow_only_get(platform: Platform, method: str) -> None:
    async with aiohttp.ClientSession() as http:
        token = await platform.login(http, "c1")
        async with http.request(
            method,
            f"{platform.url}/keys/{LIVE}/{'0' * 32}",
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 405
            assert await resp.read() != bytes(16)


async def test_edges_never_serve_or_forward_key_paths(platform: Platform) -> None:
    edge = f"http://127.0.0.1:{platform.edge.config.listen_port}"
    expires = int(time.time()) + 60
    signed = sign_path(
        platform.ring, scope="keys/", path=f"keys/{LIVE}/{'0' * 32}", expires_at=expires
    )
    async with aiohttp.ClientSession() as http:
        for path in (f"/keys/{LIVE}/{'0' * 32}", signed, "/keys/asset/film-001/" + "1" * 32):
            status, _, _ = await get(http, edge + path)
            assert status in (403, 404), path
    assert not [path for path in platform.origin.hits if "keys" in path]
