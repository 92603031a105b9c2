"""Real nginx edges in front of a fake origin: caching, cache lock, verification at the edge."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from cdn_ctl.domain import Tier
from cdn_ctl.edge import EdgeConfig, render_nginx_conf
from cdn_ctl.errors import EdgeStartError, InvalidEdge
from cdn_ctl.signing import KeyRing, SigningKey, sign_path
from tests.cdn_ctl.vectors import vector_path
from tests.support.cdn import EdgeFactory, FakeOrigin, eventually

pytestmark = pytest.mark.slow


def signed(
    ring: KeyRing, path: str, *, ttl: int = 60, ip: str | None = None, scope: str = "live/ch1/"
) -> str:
    return sign_path(ring, scope=scope, path=path, expires_at=int(time.time()) + ttl, client_ip=ip)


async def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_segment_fetched_twice_hits_origin_once(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    url = edge.url + signed(ring, "live/ch1/180p/seg_00012.ts")
    first = await get(url)
    second = await get(url)
    assert (first[0], second[0]) == (200, 200)
    assert first[1] == second[1]
    assert len(first[1]) > 1000
    assert (first[2]["X-Cache"], second[2]["X-Cache"]) == ("MISS", "HIT")
    assert origin.hits["/live/ch1/180p/seg_00012.ts"] == 1


async def test_cache_key_ignores_the_token(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """Two boxes with different tokens share one cached copy."""
    edge = await edges("e1", upstream=origin.address)
    a = await get(edge.url + signed(ring, "live/ch1/180p/seg_00013.ts", ip="127.0.0.1"))
    b = await get(edge.url + signed(ring, "live/ch1/180p/seg_00013.ts", ttl=120))
    assert (a[0], b[0], b[2]["X-Cache"]) == (200, 200, "HIT")
    assert origin.hits["/live/ch1/180p/seg_00013.ts"] == 1


async def _writing(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/nginx_status") as resp:
        text = await resp.text()
    return int(text.split("Writing: ")[1].split()[0])


async def _at_least(http: aiohttp.ClientSession, url: str, writing: int) -> bool:
    return await _writing(http, url) >= writing


async def test_concurrent_fetches_of_an_uncached_segment_make_one_upstream_fetch(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    origin.gate = asyncio.Event()
    url = edge.url + signed(ring, "live/ch1/180p/seg_00020.ts")
    async with aiohttp.ClientSession() as http:

        async def fetch() -> tuple[int, bytes]:
            async with http.get(url) as resp:
                return resp.status, await resp.read()

        tasks = [asyncio.create_task(fetch()) for _ in range(8)]
        await origin.arrived.wait()
        # Every box request is inside nginx (waiting on the lock) before the origin answers.
        async with aiohttp.ClientSession() as probe:
            await eventually(lambda: _at_least(probe, edge.url, 8 + 1))
        origin.gate.set()
        results = await asyncio.gather(*tasks)
    assert {status for status, _ in results} == {200}
    assert len({body for _, body in results}) == 1
    assert origin.hits["/live/ch1/180p/seg_00020.ts"] == 1


@pytest.mark.parametrize(
    ("make_path", "status"),
    [
        pytest.param(lambda r: signed(r, "live/ch1/master.m3u8", ttl=-5), 410, id="expired"),
        pytest.param(
            lambda r: signed(r, "live/ch1/master.m3u8").replace("/k2/", "/k9/"),
            403,
            id="unknown-kid",
        ),
        pytest.param(
            lambda r: (
                signed(r, "live/ch1/master.m3u8")[:-20]
                + "Q"
                + signed(r, "live/ch1/master.m3u8")[-19:]
            ),
            403,
            id="tampered",
        ),
        pytest.param(
            lambda r: signed(r, "live/ch1/master.m3u8").replace("live/ch1/", "live/ch2/"),
            403,
            id="other-scope",
        ),
        pytest.param(
            lambda r: signed(r, "live/ch1/master.m3u8", ip="10.9.9.9"), 403, id="other-client"
        ),
        pytest.param(lambda r: vector_path(2, "live/ch1/master.m3u8"), 410, id="vector-expired"),
        pytest.param(lambda r: "/live/ch1/master.m3u8", 403, id="unsigned"),
        pytest.param(lambda r: "/t/garbage/live/ch1/master.m3u8", 403, id="malformed"),
    ],
)
async def test_edge_refuses_bad_tokens_itself(
    origin: FakeOrigin,
    edges: EdgeFactory,
    ring: KeyRing,
    make_path,
    status: int,
) -> None:
    edge = await edges("e1", upstream=origin.address)
    got, _, _ = await get(edge.url + make_path(ring))
    assert got == status
    assert sum(origin.hits.values()) == 0


@pytest.mark.parametrize(
    ("index", "rest"),
    [
        pytest.param(0, "live/ch1/180p/index.m3u8", id="k1-unbound"),
        pytest.param(1, "live/ch1/180p/seg_00012.ts", id="k2-bound-127.0.0.1"),
        pytest.param(3, "catchup/ch1/720p/seg_00001.ts", id="k2-deep-scope"),
    ],
)
async def test_njs_accepts_the_python_vectors(
    origin: FakeOrigin, edges: EdgeFactory, index: int, rest: str
) -> None:
    edge = await edges("e1", upstream=origin.address)
    status, _, _ = await get(edge.url + vector_path(index, rest))
    assert status in (200, 404)  # 404: the fake origin has no such file; the edge let it through
    assert origin.hits["/" + rest] == 1


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _lines_at_least(path: Path, count: int) -> bool:
    return await asyncio.to_thread(_line_count, path) >= count


async def test_access_log_never_holds_the_token(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    path = signed(ring, "live/ch1/180p/seg_00012.ts")
    sig = path.split("/")[5]
    await get(edge.url + path)
    await get(edge.url + path.replace(sig, "A" * 43))
    # nginx writes the log line just after the response leaves.
    await eventually(lambda: _lines_at_least(edge.access_log, 2))
    text = edge.access_log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["path"] for line in lines] == ["/live/ch1/180p/seg_00012.ts"] * 2
    assert [line["status"] for line in lines] == [200, 403]
    assert sig not in text
    assert "/t/" not in text


async def test_master_playlist_gets_steering_and_pathway(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e7", upstream=origin.address, steering_base_url="http://127.0.0.1:8000")
    status, body, _ = await get(
        edge.url + signed(ring, "live/ch1/master.m3u8") + "?lease_id=s1&region=110101"
    )
    text = body.decode()
    assert status == 200
    steering = (
        '#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="http://127.0.0.1:8000/steering/ch1.json'
        '?base=e7&lease_id=s1&region=110101",PATHWAY-ID="e7"\n'
    )
    assert text.startswith(steering)
    assert '#EXT-X-STREAM-INF:PATHWAY-ID="e7",BANDWIDTH=800000' in text
    # The origin was asked without the token or the query.
    assert origin.hits["/live/ch1/master.m3u8"] == 1
    # The lease's old parameter name is still read, and passed on under the new one.
    _, body, _ = await get(
        edge.url + signed(ring, "live/ch1/master.m3u8") + "?session=s1&region=110101"
    )
    assert body.decode().startswith(steering)


async def test_key_rotation_reload(origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing) -> None:
    edge = await edges("e1", upstream=origin.address)
    old_url = edge.url + signed(KeyRing((ring.keys[0],), "k1"), "live/ch1/180p/index.m3u8")
    assert (await get(old_url))[0] == 200  # overlap: k1 still accepted
    new_ring = ring.rotated(SigningKey("k3", b"k3-secret-zzzzzzzzzz")).retired("k1")
    await edge.reload_keys(new_ring)
    new_url = edge.url + signed(new_ring, "live/ch1/180p/index.m3u8")
    for _ in range(3):
        assert (await get(new_url))[0] == 200
        assert (await get(old_url))[0] == 403


async def test_edge_start_failure_is_reported(tmp_path, ring: KeyRing) -> None:
    from cdn_ctl.edge import EdgeProcess
    from tests.support.net import free_port

    port = free_port()
    first = EdgeProcess(EdgeConfig("a1", port, "127.0.0.1:9"), prefix=tmp_path / "a1", keys=ring)
    second = EdgeProcess(EdgeConfig("a2", port, "127.0.0.1:9"), prefix=tmp_path / "a2", keys=ring)
    await first.start()
    try:
        with pytest.raises(EdgeStartError, match="Address already in use"):
            await second.start()
        assert not second.running
    finally:
        await first.stop()
    assert not first.running


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"edge_id": "Bad_Id"}, "edge_id", id="bad-id"),
        pytest.param({"listen_port": 0}, "listen_port", id="port"),
        pytest.param({"upstream": "origin"}, "upstream", id="upstream"),
        pytest.param({"steering_base_url": "http://x/;evil"}, "steering_base_url", id="injection"),
        pytest.param({"upstream": "127.0.0.1:80; evil"}, "upstream", id="upstream-injection"),
        pytest.param({"listen_host": "127.0.0.1:1 x;"}, "listen_host", id="host-injection"),
        pytest.param({"workers": 0}, "workers", id="no-workers"),
        pytest.param({"workers": "many"}, "workers", id="workers-word"),
        pytest.param({"worker_connections": 0}, "worker_connections", id="connections"),
        pytest.param({"header_timeout_seconds": 0}, "header_timeout_seconds", id="timeout"),
        pytest.param({"client_burst": 0}, "client_burst", id="burst"),
        pytest.param(
            {"trusted_children": ("127.0.0.1; allow all",)}, "trusted_children", id="child-inject"
        ),
        pytest.param({"limit_exempt": ("loopback",)}, "limit_exempt", id="exempt-not-a-network"),
    ],
)
def test_edge_config_refuses_bad_input(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"edge_id": "e1", "listen_port": 8101, "upstream": "127.0.0.1:8080"}
    with pytest.raises(InvalidEdge) as err:
        EdgeConfig(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_networks_are_rendered_canonical() -> None:
    config = EdgeConfig(
        "e1",
        8101,
        "127.0.0.1:8080",
        trusted_children=("10.0.0.7", "10.1.2.3/16"),
        limit_exempt=("::1",),
    )
    assert config.trusted_children == ("10.0.0.7/32", "10.1.0.0/16")
    assert config.limit_exempt == ("::1/128",)


def test_rendered_config_keeps_token_out_of_cache_key_and_logs(tmp_path) -> None:
    conf = render_nginx_conf(EdgeConfig("e1", 8101, "127.0.0.1:8080"), tmp_path)
    assert "proxy_cache_lock on;" in conf
    # The cache and the parent see the validated path (the token and query stripped).
    assert conf.count("proxy_cache_key $edge_path;") == 3
    assert conf.count("proxy_pass http://parent$edge_path;") == 3
    assert "$request " not in conf
    assert "$uri" not in conf
    # The raw URI is read once, by the validating map; the log shows $edge_log_path.
    assert conf.count("$request_uri") == 1
    assert '"path":"$edge_log_path"' in conf


async def test_village_edge_fills_from_its_mid_tier_parent(
    origin: FakeOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    mid = await edges(
        "mid1", upstream=origin.address, tier=Tier.MID, trusted_children=("127.0.0.1",)
    )
    village_a = await edges("va", upstream=f"127.0.0.1:{mid.config.listen_port}")
    village_b = await edges("vb", upstream=f"127.0.0.1:{mid.config.listen_port}")
    path = signed(ring, "live/ch1/180p/seg_00012.ts")
    a = await get(village_a.url + path)
    b = await get(village_b.url + path)
    assert (a[0], b[0]) == (200, 200)
    assert a[1] == b[1]
    # Two villages missed, their shared parent fetched from the origin once.
    assert (a[2]["X-Cache"], b[2]["X-Cache"]) == ("MISS", "MISS")
    assert origin.hits["/live/ch1/180p/seg_00012.ts"] == 1
    # Boxes may use the mid tier directly with a signed URL too.
    direct = await get(mid.url + path)
    assert (direct[0], direct[2]["X-Cache"]) == (200, "HIT")
