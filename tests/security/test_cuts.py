"""Attacks on cut views: the real origin over a real archive, alone and behind a real nginx
edge. A cut shows another channel, so nothing but a grant naming the cut reaches it, and a
malformed cut is refused (400 or 404, never a file) by the origin and the edge."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yarl

from cdn_ctl.edge import EdgeProcess
from cdn_ctl.signing import KeyRing, sign_path
from tests.support.cdn import edge_factory, rotation_ring
from tests.transcode.cut_site import CUT, START, WINDOW, make_cut_site
from transcode.origin import start_origin
from transcode.settings import OriginSettings

pytestmark = pytest.mark.slow

SECRET = b"outside-the-origin-root"
VIEW = f"live/ch1/{CUT}/180p/index.m3u8"
LONG = "a" * 129


@dataclass
class Site:
    origin: str
    edge: EdgeProcess
    ring: KeyRing
    http: aiohttp.ClientSession

    async def get(self, url: str) -> tuple[int, bytes]:
        # As sent: no client-side normalising of dots or escapes.
        async with self.http.get(yarl.URL(url, encoded=True), allow_redirects=False) as response:
            return response.status, await response.read()

    def signed(self, scope: str, path: str) -> str:
        return sign_path(self.ring, scope=scope, path=path, expires_at=int(time.time()) + 60)


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    await make_cut_site(redis, root)
    (tmp_path / "secret.ts").write_bytes(SECRET)
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    ring = rotation_ring()
    async with edge_factory(tmp_path / "edges", ring) as make, aiohttp.ClientSession() as http:
        edge = await make("e1", upstream=f"127.0.0.1:{port}")
        yield Site(f"http://127.0.0.1:{port}", edge, ring, http)
    await runner.cleanup()


def _refused(body: bytes) -> None:
    assert SECRET not in body
    assert b"ch1-" not in body
    assert b"alert-" not in body


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(f"/live/ch1/x/al!rt/{START}-0/180p/index.m3u8", 400, id="bad-feed"),
        pytest.param(f"/live/ch1/x/{LONG}/{START}-0/180p/index.m3u8", 400, id="overlong-feed"),
        pytest.param(f"/live/ch1/x/.alert/{START}-0/180p/index.m3u8", 400, id="dot-feed"),
        pytest.param(f"/live/ch1/x/alert/{START + 9}-{START}/180p/index.m3u8", 400,
                     id="reversed"),
        pytest.param(f"/live/ch1/x/alert/{START}-{START}/180p/index.m3u8", 400, id="empty"),
        pytest.param("/live/ch1/x/alert/0-0/180p/index.m3u8", 400, id="zero-start"),
        pytest.param(f"/live/ch1/x/alert/{START}-/180p/index.m3u8", 400, id="no-end"),
        pytest.param(f"/live/ch1/x/alert/{'9' * 13}-0/180p/index.m3u8", 400, id="overlong-time"),
        pytest.param(f"/live/ch1/x/alert/{START}.5-0/180p/index.m3u8", 400, id="fraction"),
        pytest.param("/live/ch1/x/alert/%2e%2e/180p/index.m3u8", 400, id="encoded-dots"),
        pytest.param(f"/live/ch1/{CUT}/{LONG}/index.m3u8", 404, id="overlong-rung"),
        pytest.param(f"/live/ch1/{CUT}/180p/feed/%2e%2e/0000000507.ts", 404, id="dots-frung"),
        pytest.param(f"/live/ch1/{CUT}/180p/feed/360p/..%2f..%2f..%2fsecret.ts", 404,
                     id="escaping-segment"),
        pytest.param(f"/live/ch1/{CUT}/180p/feed/360p/507.ts", 404, id="not-canonical"),
        pytest.param(f"/live/ch1/x/ch1/{START}-0/180p/index.m3u8", 400, id="feed-is-the-channel"),
        # Inside the cut, but long behind the live window: a live cut is no way into the
        # feed's archive.
        pytest.param(f"/live/ch1/x/alert/{START}-0/180p/feed/360p/0000000500.ts", 404,
                     id="feed-behind-the-live-window"),
    ],
)  # fmt: skip
async def test_the_origin_refuses_malformed_cuts(site: Site, path: str, status: int) -> None:
    got, body = await site.get(site.origin + path)
    assert got == status
    assert json.loads(body)["error"] in ("InvalidRequest", "ContentNotFound")
    _refused(body)


async def test_the_edge_serves_a_cut_only_to_its_own_grant(site: Site) -> None:
    own = site.signed(f"live/ch1/{CUT}/", VIEW)
    status, body = await site.get(site.edge.url + own)
    assert status == 200
    assert b"feed/360p/0000000507.ts" in body
    # The channel's grant, a broader one, and the window's grant do not reach the view.
    for scope, path in (
        ("live/ch1/", VIEW),
        ("live/", VIEW),
        (f"catchup/ch1/{WINDOW}/", f"catchup/ch1/{WINDOW}/{CUT}/180p/index.m3u8"),
    ):
        status, body = await site.get(site.edge.url + site.signed(scope, path))
        assert status == 403, scope
        _refused(body)


@pytest.mark.parametrize(
    ("rest", "status"),
    [
        pytest.param(f"live/ch1/x/alert/{START}-0/../../180p/index.m3u8", 400, id="dot-dot"),
        pytest.param(f"live/ch1/x/alert/{START}-0/%2e%2e/180p/index.m3u8", 400, id="encoded"),
        pytest.param(f"live/ch1/x/alert/{START}-0/180p//index.m3u8", 400, id="double-slash"),
        pytest.param(f"live/ch1/x/{'a' * 1100}/{START}-0/180p/index.m3u8", 400, id="overlong"),
    ],
)  # fmt: skip
async def test_the_edge_refuses_malformed_cut_paths_itself(
    site: Site, rest: str, status: int
) -> None:
    token = site.signed(f"live/ch1/x/alert/{START}-0/", f"live/ch1/x/alert/{START}-0/")
    got, body = await site.get(
        site.edge.url + token + rest.removeprefix(f"live/ch1/x/alert/{START}-0/")
    )
    assert got == status
    _refused(body)


async def test_a_signed_but_malformed_cut_is_the_origin_s_400_through_the_edge(
    site: Site,
) -> None:
    """The routing service never signs a reversed cut (``cdn_ctl.domain.Cut``); if a key
    did, the origin still refuses it."""
    scope = f"live/ch1/x/alert/{START + 9}-{START}/"
    status, body = await site.get(site.edge.url + site.signed(scope, scope + "180p/index.m3u8"))
    assert status == 400
    _refused(body)
