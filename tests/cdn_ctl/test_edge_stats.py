"""An edge's traffic counters (``edge_stats.js``) read by the health monitor: hit ratio and
uplink in use from known traffic through a real nginx, across its workers and restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cdn_ctl.domain import UNMEASURED, Edge, EdgeCounters, EdgeTraffic, Tier, traffic_between
from cdn_ctl.edge import EdgeProcess
from cdn_ctl.health import HealthMonitor, HealthPolicy, HttpProber
from cdn_ctl.signing import KeyRing, sign_path
from tests.support.cdn import EdgeFactory

BODY = b"s" * 18_800
# What the parent sends for every segment, byte for byte: the edge counts all of it.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nCache-Control: max-age=3600\r\n"
    + b"Content-Length: %d\r\n\r\n" % len(BODY)
    + BODY
)
POLICY = HealthPolicy(degraded_latency_ms=10_000)


class FixedOrigin:
    """A parent answering every request head with :data:`RESPONSE` (keep-alive), so the
    bytes an edge receives from it are known exactly."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def parent() -> AsyncIterator[FixedOrigin]:
    """A :class:`FixedOrigin` on a free port."""
    fixed = FixedOrigin()
    server = await asyncio.start_server(fixed._serve, "127.0.0.1", 0)
    fixed.port = server.sockets[0].getsockname()[1]
    yield fixed
    server.close()


def _registered(edge: EdgeProcess, uplink_mbps: float = 100.0) -> Edge:
    return Edge(
        edge.config.edge_id, "110101", Tier.EDGE, "127.0.0.1", edge.config.listen_port,
        100, 1000.0, uplink_mbps,
    )  # fmt: skip


async def _fetch(edge: EdgeProcess, ring: KeyRing, names: list[str]) -> list[str]:
    """GET each segment on a connection of its own (so both workers take some); the
    X-Cache of each."""
    statuses = []
    for name in names:
        url = edge.url + sign_path(
            ring,
            scope="live/ch1/",
            path=f"live/ch1/180p/{name}",
            expires_at=int(time.time()) + 60,
            client_ip=None,
        )
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert (resp.status, await resp.read()) == (200, BODY)
            statuses.append(resp.headers["X-Cache"])
    return statuses


@pytest.mark.slow
async def test_known_misses_then_hits_give_the_hit_ratio_and_upstream_bytes(
    parent: FixedOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=parent.address, workers=2)
    registered = _registered(edge)
    clock = [100.0]
    async with aiohttp.ClientSession() as http:
        prober = HttpProber(http, timeout_seconds=10, keys=ring)
        monitor = HealthMonitor(POLICY, probe=prober, clock=lambda: clock[0])
        await monitor.probe_round([registered])
        assert monitor.health()["e1"].traffic == UNMEASURED  # one reading: nothing to compare
        misses = [f"seg_{i:05d}.ts" for i in range(6)]
        assert await _fetch(edge, ring, misses) == ["MISS"] * 6
        assert await _fetch(edge, ring, misses[:2] * 5) == ["HIT"] * 10
        clock[0] = 110.0
        await monitor.probe_round([registered])
        traffic = monitor.health()["e1"].traffic
        counters = await prober.counters(registered)
    assert parent.requests == 6
    assert counters is not None
    assert (counters.hits, counters.misses, counters.upstream_bytes) == (10, 6, 6 * len(RESPONSE))
    assert traffic.cache_hit_ratio == pytest.approx(10 / 16)
    mbps = 6 * len(RESPONSE) * 8 / 1e6 / 10
    assert traffic.uplink_mbps_used == pytest.approx(mbps)
    assert traffic.uplink_use == pytest.approx(mbps / 100.0)


@pytest.mark.slow
async def test_a_restarted_edge_counts_from_zero_without_a_negative_ratio(
    parent: FixedOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=parent.address)
    registered = _registered(edge)
    clock = [0.0]
    async with aiohttp.ClientSession() as http:
        prober = HttpProber(http, timeout_seconds=10, keys=ring)
        monitor = HealthMonitor(POLICY, probe=prober, clock=lambda: clock[0])
        await _fetch(edge, ring, ["a.ts", "a.ts", "a.ts", "b.ts"])
        before = await prober.counters(registered)
        await monitor.probe_round([registered])
        await edge.stop()
        await edge.start()
        # The cache survives the restart: one hit and one miss, since the restart.
        assert await _fetch(edge, ring, ["a.ts", "c.ts"]) == ["HIT", "MISS"]
        clock[0] = 5.0
        await monitor.probe_round([registered])
        after = await prober.counters(registered)
    assert before is not None
    assert after is not None
    assert after.epoch != before.epoch
    traffic = monitor.health()["e1"].traffic
    assert traffic.cache_hit_ratio == pytest.approx(0.5)
    assert traffic.uplink_mbps_used == pytest.approx(len(RESPONSE) * 8 / 1e6 / 5)


@pytest.mark.slow
async def test_counts_of_workers_replaced_by_a_reload_stay_in_the_sums(
    parent: FixedOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """A reload (key rotation) replaces every worker: the new ones count in files of their
    own, and the edge reports the sum over old and new, cumulative, in the same epoch."""
    edge = await edges("e1", upstream=parent.address, workers=1)
    registered = _registered(edge)
    async with aiohttp.ClientSession() as http:
        prober = HttpProber(http, timeout_seconds=10, keys=ring)
        assert await _fetch(edge, ring, ["a.ts", "b.ts"]) == ["MISS", "MISS"]
        before = await prober.counters(registered)
        await edge.reload_keys(ring)
        assert await _fetch(edge, ring, ["a.ts", "c.ts", "b.ts"]) == ["HIT", "MISS", "HIT"]
        after = await prober.counters(registered)
    assert before is not None
    assert after is not None
    assert len(list((edge.prefix / "stats").iterdir())) == 2  # one file per worker pid
    assert after.epoch == before.epoch
    assert (after.hits, after.misses, after.upstream_bytes) == (2, 3, 3 * len(RESPONSE))


@pytest.mark.slow
async def test_without_the_keys_or_with_wrong_ones_nothing_is_measured(
    parent: FixedOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=parent.address)
    registered = _registered(edge)
    stranger = KeyRing.parse("k2:" + "A" * 43, "k2")
    async with aiohttp.ClientSession() as http:
        for keys in (None, stranger):
            monitor = HealthMonitor(POLICY, probe=HttpProber(http, timeout_seconds=10, keys=keys))
            for _ in range(2):
                await monitor.probe_round([registered])
            assert monitor.health()["e1"].traffic == UNMEASURED
            assert (
                await HttpProber(http, timeout_seconds=10, keys=keys).counters(registered) is None
            )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            EdgeCounters("a", 10, 10, 0),
            EdgeCounters("a", 40, 20, 1_000_000),
            EdgeTraffic(0.75, 0.8, 0.08),
            id="deltas",
        ),
        pytest.param(
            EdgeCounters("a", 10, 10, 5_000_000),
            EdgeCounters("b", 3, 1, 1_000_000),
            EdgeTraffic(0.75, 0.8, 0.08),
            id="new-epoch",
        ),
        pytest.param(
            EdgeCounters("a", 10, 10, 5_000_000),
            EdgeCounters("a", 3, 1, 1_000_000),
            EdgeTraffic(0.75, 0.8, 0.08),
            id="counters-went-down",
        ),
        pytest.param(
            EdgeCounters("a", 10, 10, 0),
            EdgeCounters("a", 10, 10, 0),
            EdgeTraffic(-1.0, 0.0, 0.0),
            id="idle",
        ),
    ],
)
def test_traffic_between_two_readings(
    before: EdgeCounters, after: EdgeCounters, expected: EdgeTraffic
) -> None:
    got = traffic_between(before, after, seconds=10.0, uplink_mbps=10.0)
    assert got.cache_hit_ratio == pytest.approx(expected.cache_hit_ratio)
    assert got.uplink_mbps_used == pytest.approx(expected.uplink_mbps_used)
    assert got.uplink_use == pytest.approx(expected.uplink_use)
