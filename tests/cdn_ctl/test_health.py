"""Health hysteresis with an injected clock and scripted probes, and against a real nginx."""

from __future__ import annotations

import aiohttp
import pytest

from cdn_ctl.domain import Edge, Health, Tier
from cdn_ctl.errors import InvalidEdge
from cdn_ctl.health import HealthMonitor, HealthPolicy, HealthTracker, HttpProber, ProbeResult
from cdn_ctl.routing import Router
from tests.support.cdn import EdgeFactory, FakeOrigin

OK = ProbeResult(True, 5.0)
FAIL = ProbeResult(False, 2000.0)
SLOW = ProbeResult(True, 900.0)
POLICY = HealthPolicy(window=5, fall=3, rise=2, hold_down_seconds=30, degraded_latency_ms=500)


def feed(
    tracker: HealthTracker, results: list[ProbeResult], *, start: float, step: float = 1.0
) -> list[Health]:
    states = []
    for i, result in enumerate(results):
        tracker.observe(result, now=start + i * step)
        states.append(tracker.health.state)
    return states


def test_new_edge_comes_up_after_rise_good_probes() -> None:
    tracker = HealthTracker(POLICY, now=0)
    assert feed(tracker, [OK, OK, OK], start=0) == [Health.DOWN, Health.UP, Health.UP]


def test_down_after_k_of_n_failures_not_before() -> None:
    tracker = HealthTracker(POLICY, now=0)
    feed(tracker, [OK] * 5, start=0)
    states = feed(tracker, [FAIL, OK, FAIL, FAIL], start=10)
    assert states == [Health.DEGRADED, Health.DEGRADED, Health.DEGRADED, Health.DOWN]
    assert "3 of last 5 probes failed" in tracker.health.reason


def test_hold_down_keeps_a_recovered_edge_down() -> None:
    tracker = HealthTracker(POLICY, now=0)
    feed(tracker, [OK] * 5 + [FAIL] * 3, start=0)  # down at t=7
    assert tracker.health.state is Health.DOWN
    states = feed(tracker, [OK] * 20, start=8)  # t = 8 .. 27: inside the hold-down
    assert set(states) == {Health.DOWN}
    assert "hold-down" in tracker.health.reason
    # The window last held 3 failures at t=9: back 30 s later, not before.
    assert feed(tracker, [OK, OK], start=38) == [Health.DOWN, Health.UP]


def test_slow_probes_mark_degraded_before_down() -> None:
    tracker = HealthTracker(POLICY, now=0)
    feed(tracker, [OK] * 5, start=0)
    states = feed(tracker, [SLOW] * 3, start=5)
    assert states[-1] is Health.DEGRADED
    assert "latency" in tracker.health.reason


def test_flapping_edge_changes_routes_no_faster_than_the_hold_down() -> None:
    """An edge failing every other probe for ten minutes: its channel's route moves away
    at once, and comes back at most once per hold-down."""
    clock = [0.0]
    monitor = HealthMonitor(POLICY, probe=_never, clock=lambda: clock[0])
    router = Router()
    e1, e2 = _edge("e1", "110101"), _edge("e2", "110101")
    router.set_edges([e1, e2])
    for i in range(3):
        clock[0] = float(i)
        monitor.observe(e1, OK)
        monitor.observe(e2, OK)
    router.set_health(monitor.states())
    channel = next(
        f"ch{i}" for i in range(100) if router.route(f"ch{i}", "110101").edge.edge_id == "e1"
    )
    changes: list[tuple[float, str]] = [(clock[0], "e1")]
    raw_flips = 0
    previous_ok = True
    for i in range(3, 603):
        clock[0] = float(i)
        # 3 failed probes, then 10 good (first 5 minutes) or 40 good (next 5 minutes).
        period = 13 if i < 300 else 43
        ok = (i % period) >= 3
        raw_flips += ok != previous_ok
        previous_ok = ok
        monitor.observe(e2, OK)
        monitor.observe(e1, OK if ok else FAIL)
        router.set_health(monitor.states())
        edge = router.route(channel, "110101").edge.edge_id
        if edge != changes[-1][1]:
            changes.append((clock[0], edge))
    returns = [
        (t, t - prev) for (t, e), (prev, _) in zip(changes[1:], changes, strict=False) if e == "e1"
    ]
    assert raw_flips > 40
    assert len(returns) <= 600 / POLICY.hold_down_seconds
    assert returns, "the edge does come back once it stays healthy for the hold-down"
    assert min(gap for _, gap in returns) >= POLICY.hold_down_seconds
    # While it failed every 13 s it never came back: no bouncing viewers at all.
    assert all(t >= 300 for t, _ in returns)


async def _never(edge: Edge) -> ProbeResult:
    return OK


def _edge(edge_id: str, region: str, tier: Tier = Tier.EDGE, port: int = 8101) -> Edge:
    return Edge(edge_id, region, tier, "127.0.0.1", port, 100, 1000.0, 1000.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"fall": 6}, "health_fall", id="fall-over-window"),
        pytest.param({"rise": 0}, "health_rise", id="rise-zero"),
        pytest.param({"hold_down_seconds": -1}, "health_hold_down", id="negative-hold-down"),
    ],
)
def test_policy_refuses_bad_thresholds(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidEdge) as err:
        HealthPolicy(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


@pytest.mark.slow
async def test_real_stopped_nginx_goes_down_after_k_probes_and_loses_routes(
    origin: FakeOrigin, edges: EdgeFactory
) -> None:
    a = await edges("va", upstream=origin.address)
    b = await edges("vb", upstream=origin.address)
    ea = _edge("va", "110101", port=a.config.listen_port)
    eb = _edge("vb", "110102", port=b.config.listen_port)
    # Generous latency limits: a loaded CI box must not read as uplink trouble.
    policy = HealthPolicy(
        window=5, fall=3, rise=1, hold_down_seconds=30, degraded_latency_ms=10_000
    )
    clock = [0.0]
    async with aiohttp.ClientSession() as http:
        monitor = HealthMonitor(
            policy, probe=HttpProber(http, timeout_seconds=10), clock=lambda: clock[0]
        )
        router = Router()
        router.set_edges([ea, eb])
        await monitor.probe_round([ea, eb])
        router.set_health(monitor.states())
        assert monitor.states() == {"va": Health.UP, "vb": Health.UP}
        assert router.route("ch1", "110101").edge.edge_id == "va"
        await a.stop()
        states = []
        for i in range(3):
            clock[0] = 1.0 + i
            await monitor.probe_round([ea, eb])
            states.append(monitor.states()["va"])
        assert states == [Health.DEGRADED, Health.DEGRADED, Health.DOWN]
        router.set_health(monitor.states())
        chosen = {router.route(f"ch{i}", "110101").edge.edge_id for i in range(50)}
        assert chosen == {"vb"}
        assert monitor.health()["va"].failures == 3
