"""``python -m cdn_ctl.local``'s pieces: settings, start + register + stop of real edges."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from cdn_ctl.domain import Tier
from cdn_ctl.local import LocalEdges, LocalSettings, parse_edges, parse_networks, parse_workers
from cdn_ctl.signing import KeyRing
from cdn_ctl.store import EdgeStore
from headend.settings import SettingsError
from tests.support.cdn import FakeOrigin
from tests.support.net import free_port

pytestmark = pytest.mark.slow


def env(ring: KeyRing, **extra: str) -> dict[str, str]:
    return {"CDN_SIGNING_KEYS": ring.render(), "REDIS_URL": "unix:///tmp/x.sock", **extra}


async def test_start_register_twice_and_stop(
    tmp_path: Path, ring: KeyRing, origin: FakeOrigin, redis: aioredis.Redis
) -> None:
    a, b = free_port(), free_port()
    settings = LocalSettings.from_env(
        env(
            ring,
            CDN_LOCAL_EDGES=f"la:110101:{a},lb:110102:{b}",
            CDN_ORIGIN_ADDRESS=origin.address,
            CDN_EDGE_DIR=str(tmp_path),
        )
    )
    edges = LocalEdges(settings)
    await edges.start()
    try:
        await edges.register(redis)
        await edges.register(redis)  # idempotent: a restart of `headend up` updates
        stored = await EdgeStore(redis).all()
        assert [(e.edge_id, e.region, e.port, e.tier, e.version) for e in stored] == [
            ("la", "110101", a, Tier.EDGE, 2),
            ("lb", "110102", b, Tier.EDGE, 2),
        ]
        async with aiohttp.ClientSession() as http:
            for port in (a, b):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    assert resp.status == 200
    finally:
        await edges.stop()
    assert not any(p.running for p in edges.processes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a:110101", "id:region:port", id="no-port"),
        pytest.param("A:110101:8101", "edge_id", id="bad-id"),
        pytest.param("a:1101:8101", "region", id="bad-region"),
        pytest.param(" , ", "no edges", id="empty"),
    ],
)
def test_bad_edge_lists_name_the_variable(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_edges(text)
    assert err.value.name == "CDN_LOCAL_EDGES"
    assert message in str(err.value)


def test_keys_and_redis_are_required(ring: KeyRing) -> None:
    with pytest.raises(SettingsError) as no_keys:
        LocalSettings.from_env({"REDIS_URL": "unix:///x"})
    assert no_keys.value.name == "CDN_SIGNING_KEYS"
    with pytest.raises(SettingsError) as no_redis:
        LocalSettings.from_env({"CDN_SIGNING_KEYS": ring.render()})
    assert no_redis.value.name == "REDIS_URL"


def test_edge_limits_default_to_a_loopback_exemption(ring: KeyRing, tmp_path: Path) -> None:
    settings = LocalSettings.from_env(env(ring, CDN_EDGE_DIR=str(tmp_path)))
    config = LocalEdges(settings).processes[0].config
    assert (config.workers, config.client_requests_max) == ("auto", 256)
    assert (config.client_rate_per_second, config.client_burst) == (100, 200)
    assert config.limit_exempt == ("127.0.0.1/32", "::1/128")


def test_edge_limits_from_the_environment(ring: KeyRing, tmp_path: Path) -> None:
    settings = LocalSettings.from_env(
        env(
            ring,
            CDN_EDGE_DIR=str(tmp_path),
            CDN_EDGE_WORKERS="3",
            CDN_EDGE_CLIENT_REQUESTS="8",
            CDN_EDGE_CLIENT_RATE="5",
            CDN_EDGE_CLIENT_BURST="10",
            CDN_EDGE_LIMIT_EXEMPT="none",
        )
    )
    config = LocalEdges(settings).processes[0].config
    assert (config.workers, config.client_requests_max) == (3, 8)
    assert (config.client_rate_per_second, config.client_burst) == (5, 10)
    assert config.limit_exempt == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("CDN_EDGE_WORKERS", "0", id="workers-zero"),
        pytest.param("CDN_EDGE_WORKERS", "lots", id="workers-word"),
        pytest.param("CDN_EDGE_CLIENT_REQUESTS", "0", id="requests"),
        pytest.param("CDN_EDGE_CLIENT_RATE", "-1", id="rate"),
        pytest.param("CDN_EDGE_CLIENT_BURST", "x", id="burst"),
        pytest.param("CDN_EDGE_LIMIT_EXEMPT", "127.0.0.1; allow all", id="exempt-injection"),
    ],
)
def test_bad_edge_limits_name_the_variable(ring: KeyRing, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        LocalSettings.from_env(env(ring, **{name: value}))
    assert err.value.name == name


def test_networks_and_workers_parse() -> None:
    assert parse_networks("10.0.0.0/8, 192.168.1.7 ,::1") == (
        "10.0.0.0/8",
        "192.168.1.7/32",
        "::1/128",
    )
    assert parse_networks("none") == ()
    assert (parse_workers("auto"), parse_workers("4")) == ("auto", 4)
