"""Several HTTP worker processes (``CDN_HTTP_WORKERS``) sharing the admin port: one scrape,
whichever worker answers it, shows every worker's series, labelled, and their totals."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.parser import text_string_to_metric_families

from cdn_ctl.server import _routing
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing
from cdn_ctl.workers import merge
from headend.auth import ADMIN, KeyStore
from headend.metrics import render
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings
from tests.support.cdn import eventually
from tests.support.net import free_port
from tests.support.redisha import ClusterSet

REQUESTS = 40


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_merge_labels_each_workers_series_under_one_family() -> None:
    texts = {}
    for worker, count in (("0", 2), ("1", 3)):
        registry = CollectorRegistry()
        PromCounter("x_total", "X.", ["reason"], registry=registry).labels("a").inc(count)
        texts[worker] = render(registry).decode()
    merged = merge(texts).decode()
    assert merged.count("# TYPE x_total counter") == 1
    assert sorted((s["worker"], s["reason"], v) for s, v in _samples(merged, "x_total")) == [
        ("0", "a", 2.0),
        ("1", "a", 3.0),
    ]


@pytest.mark.slow
async def test_two_workers_traffic_sums_to_what_was_sent_in_one_scrape(
    redis: aioredis.Redis,
    redis_server: RedisServer,
    redis_cluster: ClusterSet | None,
    keys: KeyStore,
    ring: KeyRing,
) -> None:
    """REQUESTS routing requests, each on a connection of its own, land on both workers (the
    kernel spreads connections over the sockets sharing the port); each worker counts the
    ones it refused (no edge is registered), and one scrape adds them up exactly."""
    _, admin = await keys.create(ADMIN)
    settings = CdnSettings(
        rpc=RpcSettings(port=0),
        keys=ring,
        redis_url=redis_server.url if redis_cluster is None else redis_cluster.url,
        admin_port=free_port(),
        http_workers=2,
        replica_id="mp",
        refresh_seconds=0.2,
        probe_interval_seconds=0.2,
    )
    base = f"http://127.0.0.1:{settings.admin_port}"
    auth = {"Authorization": f"Bearer {admin}"}

    async def scrape(http: aiohttp.ClientSession) -> str:
        async with http.get(f"{base}/metrics", headers=auth) as resp:
            assert resp.status == 200
            return await resp.text()

    async with _routing(settings, redis), aiohttp.ClientSession() as http:

        async def both_up() -> bool:
            stale = _samples(await scrape(http), "cdn_routing_state_stale")
            return {labels["worker"] for labels, _ in stale} == {"0", "1"}

        await eventually(both_up)
        for _ in range(REQUESTS):
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as one,
                one.get(f"{base}/route/live/ch1/master.m3u8?region=110101", headers=auth) as resp,
            ):
                assert resp.status == 503
        text = await scrape(http)
    per_worker: Counter[str] = Counter()
    for labels, value in _samples(text, "cdn_route_failures_total"):
        assert labels["error"] == "NoEdgeAvailable"
        per_worker[labels["worker"]] += int(value)
    assert sum(per_worker.values()) == REQUESTS
    assert set(per_worker) == {"0", "1"}, per_worker  # both workers took some
