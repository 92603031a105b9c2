"""``scripts/sizing.py``: a tiny real measurement gives plausible per-item Redis costs,
per-call Redis commands and the CDN controller's refresh commands, and the province
estimate (a pure function) scales with its targets as the README says, refuses targets out
of range, and gives the worked example's figures from its inputs."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.redisproc import RedisServer
from headend.sizing import Calls, Refresh, distinct_channels


@pytest.fixture(scope="module")
def sizing(repo_root: Path) -> ModuleType:
    """The script as a module (scripts/ is no package: its measurement module is found
    beside it, as when the script runs)."""
    sys.path.insert(0, str(repo_root / "scripts"))
    spec = importlib.util.spec_from_file_location("sizing", repo_root / "scripts" / "sizing.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sizing"] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


IDLE = Calls(sent=0.0, scripted=0.0, cpu_us=0.0)
# A controller replica's refresh: 9 commands, 2 an edge (the watch marks), 1 an other replica.
REFRESH = Refresh(
    fixed=Calls(sent=9.0, scripted=0.0, cpu_us=150.0),
    edge=Calls(sent=2.0, scripted=0.0, cpu_us=10.0),
    peer=Calls(sent=1.0, scripted=0.0, cpu_us=10.0),
    peer_edge=Calls(sent=0.0, scripted=0.0, cpu_us=0.2),
)


def measured(sizing: ModuleType) -> Any:
    """Round per-item costs near what this platform measures."""
    return sizing.Measured(
        subscriber=700.0,
        audit_entry=340.0,
        programme=530.0,
        segment=190.0,
        lease=400.0,
        programmes_per_day=33.0,
        empty_bytes=1_000_000,
        fixed_bytes=100_000.0,
        authorize=Calls(sent=2.0, scripted=6.0, cpu_us=40.0),
        heartbeat=Calls(sent=10.0, scripted=80.0, cpu_us=200.0),
        start=Calls(sent=10.0, scripted=120.0, cpu_us=280.0),
        guards=Calls(sent=0.7, scripted=0.0, cpu_us=3.0),
        refresh=REFRESH,
    )


def test_measures_plausible_costs_on_a_real_redis(repo_root: Path) -> None:
    tiny = "--sample-subscribers 400 --sample-channels 1 --sample-days 8"
    tiny += " --sample-archive-hours 1 --sample-leases 100 --sample-calls 50 --sample-edges 4"
    tiny += " --subscribers 1000000"
    proc = subprocess.run(
        [sys.executable, "scripts/sizing.py", "--json", *tiny.split()],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out = json.loads(proc.stdout)
    m, e = out["measured"], out["estimate"]
    assert 100 < m["subscriber"] < 20_000
    assert 50 < m["audit_entry"] < 5_000
    assert 100 < m["programme"] < 20_000
    assert 50 < m["segment"] < 2_000  # a sorted-set member of about 60 bytes
    assert 50 < m["lease"] < 5_000
    assert 30 < m["programmes_per_day"] < 36  # the seeded guide's ~43-minute programmes
    assert e["segments"] == 300 * 6 * 7 * 86_400 / 6  # default ladder: 6 rungs
    assert e["archive_bytes"] == pytest.approx(e["segments"] * m["segment"])
    assert e["redis_hosts"] >= 2
    # The playback calls' commands, counted on the real server: an Authorize is the MAC
    # index step and one script; a heartbeat's scripts include the viewing figures'.
    assert m["authorize"]["sent"] >= 2
    assert m["authorize"]["scripted"] > 0
    assert m["heartbeat"]["scripted"] > m["authorize"]["scripted"]
    assert m["start"]["sent"] >= 1
    for kind in ("authorize", "heartbeat", "start"):
        assert 0 < m[kind]["cpu_us"] < 100_000
    # One box polling every 6 s: fetch budget syncs (2 a poll), address checks (a MULTI of
    # 4 every 18 s) and lease notes (one SET every 42 s), about 0.69 a second.
    assert 0.5 < m["guards"]["sent"] < 1.0
    assert m["guards"]["scripted"] == 0
    # A controller refresh, counted: the registry read and the lease publish (a MULTI of
    # 6), the watch marks' HSET and EXPIRE an edge, one read of each other replica's counts.
    r = m["refresh"]
    assert [r[k]["sent"] for k in ("fixed", "edge", "peer", "peer_edge")] == [9, 2, 1, 0]
    assert e["controller_replicas"] == 2 * 32  # two front door hosts, a worker a core
    assert e["redis_controller"]["sent"] == pytest.approx(64 * (9 + 2 * e["controller_edges"] + 63))
    # Progress goes to stderr, so stdout stays JSON.
    assert "subscribers: 400" in proc.stderr


def test_estimate_scales_linearly_with_subscribers(sizing: ModuleType) -> None:
    m = measured(sizing)
    # Past the audit cap (1,000,000 entries) each subscriber adds only its own keys.
    one, two, three = (
        sizing.estimate(m, sizing.Targets(subscribers=n)) for n in (2_000_000, 4_000_000, 6_000_000)
    )
    assert two.dataset_bytes - one.dataset_bytes == pytest.approx(2_000_000 * (700 + 0.2 * 400))
    assert three.dataset_bytes - two.dataset_bytes == pytest.approx(
        two.dataset_bytes - one.dataset_bytes
    )
    assert (one.viewers, two.viewers) == (400_000, 800_000)
    assert two.edge_gbps_total == pytest.approx(2 * one.edge_gbps_total)
    assert (one.archive_bytes, one.epg_bytes) == (three.archive_bytes, three.epg_bytes)
    # Below the cap every subscriber's audit entry counts too.
    small, double = (sizing.estimate(m, sizing.Targets(subscribers=n)) for n in (100_000, 200_000))
    assert double.subscriber_bytes == pytest.approx(2 * small.subscriber_bytes)
    assert small.subscriber_bytes == pytest.approx(100_000 * (700 + 340))


def test_hosts_follow_the_dataset_and_the_host_size(sizing: ModuleType) -> None:
    m = measured(sizing)
    province = sizing.Targets()
    e = sizing.estimate(m, province)
    # The headroom: x1.2 fragmentation, x2 fork copy-on-write, buffers and the OS.
    assert e.host_ram_bytes == pytest.approx(
        e.dataset_bytes * 2.4 + sizing.BUFFERS_BYTES + sizing.OS_RESERVE_BYTES
    )
    assert e.redis_primaries_for_memory * e.usable_per_host_bytes >= e.dataset_bytes
    assert e.redis_primaries >= e.redis_primaries_for_memory
    # Commands that cost Redis no CPU: the memory alone decides, one process a host.
    free = replace(
        m, authorize=IDLE, heartbeat=IDLE, start=IDLE, guards=IDLE,
        refresh=Refresh(IDLE, IDLE, IDLE, IDLE),
    )  # fmt: skip
    memory_bound = sizing.estimate(free, province)
    assert memory_bound.redis_primaries == memory_bound.redis_primaries_for_memory == 2
    assert (memory_bound.redis_processes_per_host, memory_bound.redis_hosts) == (1, 4)
    big = sizing.estimate(m, replace(province, host_gib=256))
    assert (big.redis_primaries_for_memory, big.largest_part_fits) == (1, True)
    # 2 s segments triple the archive index; a 64 GiB host cannot hold it alone.
    short = sizing.estimate(m, replace(province, segment_seconds=2.0))
    assert short.segments == 3 * e.segments
    assert short.redis_primaries > e.redis_primaries
    assert not short.largest_part_fits
    # The farm's own cost model: the default ladder's units per channel.
    assert e.transcode_units == 300 * sizing.channel_cost("default")
    assert e.transcode_nodes == -(-e.transcode_units // province.node_capacity_units) + 1
    # Channels dearer than the units say: the measured CPU decides.
    dear = sizing.estimate(m, replace(province, default_channel_cores=4.0))
    assert dear.transcode_nodes == math.ceil(300 * 4.0 / 32) + 1


def test_worked_example_follows_from_its_inputs(sizing: ModuleType) -> None:
    m = measured(sizing)
    t = sizing.Targets()  # 5,000,000 subscribers, 20% watching, 300 channels, 2,000 villages
    e = sizing.estimate(m, t)
    assert (e.viewers, t.channels, t.village_edges) == (1_000_000, 300, 2_000)
    # 6 s segments: a reload every 6 s, an Authorize every 12 s (10 s cache, asked at the
    # next reload), a heartbeat every 20 s.
    assert (e.reloads, e.authorizes, e.heartbeats) == pytest.approx((1 / 6, 1 / 12, 1 / 20))
    assert e.frontdoor_rps == pytest.approx(1_000_000 / 6)
    assert e.frontdoor_cores == pytest.approx(1_000_000 / 6 / (14_300 * 0.5))
    assert e.frontdoor_cores_per_100k == pytest.approx(e.frontdoor_cores / 10)
    assert e.frontdoor_hosts == math.ceil(e.frontdoor_cores / 32) + 1
    assert e.subscriber_calls == pytest.approx(1_000_000 * (1 / 12 + 1 / 20))
    assert e.subscriber_cores == pytest.approx(e.subscriber_calls / 1_250)
    per_viewer = (2 / 12 + 10 / 20 + 0.7, 6 / 12 + 80 / 20, 40 / 12 + 200 / 20 + 3)
    r = e.redis_per_viewer
    assert (r.sent, r.scripted, r.cpu_us) == pytest.approx(per_viewer)
    assert e.redis_per_100k.sent == pytest.approx(100_000 * per_viewer[0])
    # The CDN controller: 2 front door hosts x 32 workers, each refreshing every second with
    # leases on (nearly) every one of the 2,000 edges, reading the 63 others' counts.
    assert (e.controller_replicas, e.controller_refreshes) == (64, 64.0)
    assert e.controller_edges == pytest.approx(2_000 * (1 - (1 - 1 / 2_000) ** (1e6 / 64)))
    assert 1_999 < e.controller_edges < 2_000
    edges = e.controller_edges
    per_refresh = (9 + 2 * edges + 63, 150 + 10 * edges + 63 * (10 + 0.2 * edges))
    assert (e.redis_controller.sent, e.redis_controller.cpu_us) == pytest.approx(
        (64 * per_refresh[0], 64 * per_refresh[1])
    )
    assert e.controller_peer_cores == pytest.approx(64 * 63 * (10 + 0.2 * edges) / 1e6)
    controller_cores = 64 * per_refresh[1] / 1e6
    # 1,000,000 viewers x us = cores, and the controller's.
    assert e.redis_cores == pytest.approx(per_viewer[2] + controller_cores)
    assert e.redis_primaries == math.ceil((per_viewer[2] + controller_cores) / 0.5)
    # Many small processes: 16 a 32-core host, if its RAM holds them with their headroom.
    process_gib = (e.dataset_bytes / e.redis_primaries * 2.4 + sizing.BUFFERS_BYTES) / 2**30
    assert e.redis_processes_per_host == min(16, int(62 // process_gib))
    assert e.redis_hosts == math.ceil(e.redis_primaries * 2 / e.redis_processes_per_host)
    assert e.redis_bytes_per_100k == pytest.approx(100_000 * (700 + 340 + 0.2 * 400))
    assert e.transcode_cores == pytest.approx(300 * 0.86)
    assert sizing.channel_cores(t, "passthrough") == pytest.approx(1 / 178)
    # 500 viewers a village on the 720p rung (3,000 + 128 kb/s).
    assert e.viewers_per_village == 500
    assert e.village_egress_mbps == pytest.approx(500 * 3.128)
    assert e.edges == 2_000
    assert e.edge_gbps_total == pytest.approx(1_000_000 * 3.128 / 1000)
    assert e.uplink_gbps_total == pytest.approx(2_000 * e.village_uplink_mbps / 1000)
    assert e.origin_gbps_total == pytest.approx(0.05 * e.uplink_gbps_total)
    assert e.parent_edges == math.ceil(e.uplink_gbps_total / 20)
    # A miss per segment of each watched channel's 720p rung (prefetch: the same, earlier).
    assert e.village_uplink_mbps == pytest.approx(e.village_channels * 3.128)
    assert 0 < e.village_channels < 300


def test_estimate_is_linear_in_viewers_and_monotonic_in_its_costs(sizing: ModuleType) -> None:
    m = measured(sizing)
    one, two = (sizing.estimate(m, sizing.Targets(viewer_share=s)) for s in (0.1, 0.2))
    for name in ("frontdoor_rps", "frontdoor_cores", "subscriber_calls"):
        assert getattr(two, name) == pytest.approx(2 * getattr(one, name)), name
    # Redis: the viewers' share (the controller's follows its replicas and edges).
    viewers_cores = [e.redis_cores - e.redis_controller.cpu_us / 1e6 for e in (one, two)]
    assert viewers_cores[1] == pytest.approx(2 * viewers_cores[0])
    assert two.redis_per_100k == one.redis_per_100k  # per viewer, whatever their number
    assert two.frontdoor_cores_per_100k == one.frontdoor_cores_per_100k
    # Shorter segments: more reloads and Authorize calls (a 10 s cache, 2 s reloads).
    short = sizing.estimate(m, sizing.Targets(segment_seconds=2.0))
    base = sizing.estimate(m, sizing.Targets())
    assert short.frontdoor_rps == pytest.approx(3 * base.frontdoor_rps)
    assert short.authorizes == pytest.approx(1 / 10)
    # A faster front door core needs fewer cores; an audio rendition doubles the reloads.
    fast = sizing.estimate(m, sizing.Targets(frontdoor_rps_per_core=28_600.0))
    assert fast.frontdoor_cores == pytest.approx(base.frontdoor_cores / 2)
    audio = sizing.estimate(m, sizing.Targets(playlists_per_viewer=2))
    assert audio.frontdoor_rps == pytest.approx(2 * base.frontdoor_rps)
    # Bigger villages watch more distinct channels, never more than there are.
    watched = [
        sizing.estimate(m, sizing.Targets(village_edges=n)).village_channels
        for n in (20_000, 2_000, 200)
    ]
    assert watched == sorted(watched)
    assert watched[-1] <= 300
    # Uniform popularity (Zipf 0): the closed form C (1 - (1 - 1/C)^v).
    assert distinct_channels(500, 300, 0.0) == pytest.approx(300 * (1 - (299 / 300) ** 500))
    low = sizing.estimate(m, sizing.Targets(profile="low", settle_rung="180p"))
    assert low.transcode_cores < base.transcode_cores
    assert low.viewer_mbps == pytest.approx(0.248)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("subscribers", 0, id="no-subscribers"),
        pytest.param("viewer_share", 1.5, id="share-over-one"),
        pytest.param("segment_seconds", 0.0, id="zero-segments"),
        pytest.param("frontdoor_rps_per_core", -1.0, id="negative-rate"),
        pytest.param("cpu_share", 0.0, id="no-cpu-share"),
        pytest.param("village_edges", 0, id="no-villages"),
        pytest.param("zipf", -0.5, id="negative-zipf"),
        pytest.param("settle_rung", "4k", id="unknown-rung"),
        pytest.param("refresh_seconds", 0.0, id="no-refresh-interval"),
        pytest.param("frontdoor_workers", -1, id="negative-workers"),
    ],
)
def test_refuses_targets_out_of_range(sizing: ModuleType, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        sizing.estimate(measured(sizing), replace(sizing.Targets(), **{field: value}))


def test_script_refuses_bad_targets_before_measuring(
    sizing: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        sizing.parse(["--settle-rung", "4k"])
    assert "settle_rung" in capsys.readouterr().err


def test_controller_writes_follow_edges_replicas_and_refresh(sizing: ModuleType) -> None:
    m = measured(sizing)
    base = sizing.estimate(m, sizing.Targets())
    # Linear in the edges a replica's leases are on: the watch marks, 2 commands an edge.
    for villages in (1_000, 4_000):
        e = sizing.estimate(m, sizing.Targets(village_edges=villages))
        assert e.controller_replicas == base.controller_replicas
        assert e.redis_controller.sent - base.redis_controller.sent == pytest.approx(
            64 * (2 + 63 * 0) * (e.controller_edges - base.controller_edges)
        )
    # A replica with few leases reaches only some edges (its share of the viewers).
    sparse = sizing.estimate(m, sizing.Targets(subscribers=50_000, village_edges=20_000))
    assert sparse.controller_edges == pytest.approx(
        20_000 * (1 - (1 - 1 / 20_000) ** (10_000 / 64))
    )
    assert sparse.controller_edges < 10_000 / 64
    # Half as often: half the cost. Fewer workers: fewer replicas, and far fewer peer reads.
    slow = sizing.estimate(m, sizing.Targets(refresh_seconds=2.0))
    assert slow.redis_controller.sent == pytest.approx(base.redis_controller.sent / 2)
    assert slow.controller_peer_cores == pytest.approx(base.controller_peer_cores / 2)
    few = sizing.estimate(m, sizing.Targets(frontdoor_workers=4))
    assert few.controller_replicas == 8
    assert few.controller_peer_cores == pytest.approx(
        8 * 7 * (10 + 0.2 * few.controller_edges) / 1e6
    )
    # The viewers' calls do not change with the controller.
    assert few.redis_per_viewer == base.redis_per_viewer
    assert few.redis_cores - few.redis_controller.cpu_us / 1e6 == pytest.approx(
        base.redis_cores - base.redis_controller.cpu_us / 1e6
    )


def test_the_report_says_when_the_lease_counts_outgrow_one_master(sizing: ModuleType) -> None:
    m = measured(sizing)
    for targets, over in ((sizing.Targets(), True), (sizing.Targets(frontdoor_workers=4), False)):
        e = sizing.estimate(m, targets)
        lines = sizing.components(m, targets, e)
        [row] = [line for line in lines if line.startswith("| Redis, CDN controller |")]
        assert f"{e.redis_controller.sent:,.0f} commands/s" in row
        assert f"{e.controller_replicas} replicas" in row
        [redis] = [line for line in lines if line.startswith("- Redis: ")]
        assert f"{e.controller_peer_cores:,.1f} of them reading lease counts" in redis
        assert ("more than the 50% of a core one primary" in redis) is over


@pytest.fixture
async def private_redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the session's redis-server (never the cluster: MONITOR is per node)."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


async def test_a_real_refresh_is_counted_on_a_real_redis(
    sizing: ModuleType, private_redis: aioredis.Redis
) -> None:
    # scripts/, on the path through the sizing fixture
    sizing_refresh = importlib.import_module("sizing_refresh")
    lines: list[str] = []
    cost = await sizing_refresh.measure_refresh(
        private_redis, edges=3, watched=2, rung="720p", progress=lines.append
    )
    # If Controller.refresh or EdgeStore changed what it sends, these would change: HGETALL
    # of the registry, MULTI DEL HSET EXPIRE ZADD ZREMRANGEBYSCORE ZRANGEBYSCORE EXEC, then
    # per edge HSET + EXPIRE of its watch hash, per other replica an HGETALL of its counts.
    assert (cost.fixed.sent, cost.edge.sent, cost.peer.sent, cost.peer_edge.sent) == (
        9.0, 2.0, 1.0, 0.0,
    )  # fmt: skip
    for calls in (cost.fixed, cost.edge, cost.peer, cost.peer_edge):
        assert calls.scripted == 0
        assert calls.cpu_us >= 0
    assert cost.fixed.cpu_us > 0
    assert "controller refresh (3 edges, 2 channels watched on each)" in lines[0]
    assert [key async for key in private_redis.scan_iter(match="cdn:*")] == []


@pytest.mark.parametrize(("edges", "watched"), [(1, 1), (3, 0)])
async def test_refresh_measurement_refuses_a_sample_too_small(
    sizing: ModuleType, private_redis: aioredis.Redis, edges: int, watched: int
) -> None:
    sizing_refresh = importlib.import_module("sizing_refresh")
    with pytest.raises(ValueError, match="edges must be at least 2 and watched at least 1"):
        await sizing_refresh.measure_refresh(
            private_redis, edges=edges, watched=watched, rung="720p", progress=print
        )
    assert await private_redis.dbsize() == 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        pytest.param(["--refresh-seconds", "0"], "refresh_seconds", id="refresh"),
        pytest.param(["--frontdoor-workers", "-2"], "frontdoor_workers", id="workers"),
        pytest.param(["--sample-edges", "1"], "2 edges (two sizes)", id="sample-edges"),
    ],
)
def test_script_refuses_bad_controller_figures_before_measuring(
    sizing: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit):
        sizing.parse(argv)
    assert named in capsys.readouterr().err


def test_refuses_a_guide_sample_too_small_to_leave_listpack_encoding(
    sizing: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        sizing.parse(["--sample-days", "4"])
    assert "--sample-days" in capsys.readouterr().err
