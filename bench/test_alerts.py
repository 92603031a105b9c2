"""Emergency alerts at the front door (issue 18): propagation, and the reload cost.

The real stack of the end-to-end tests with its emergency feed (Redis, EPG with the
AlertService, subscriber, two live channels transcoded from FFmpeg over UDP with 2 s
segments, the origin and its cut views, nginx edges, the routing face with the front
door).

**Propagation.** Boxes across 20 counties (:mod:`bench.alerting`, in client processes)
reload their variant playlist every target duration from random phases. One officer
issues an alert for 10 of the counties and a second confirms it; for every box inside,
the time from the confirmation to its first reload sent to the cut view (the decision)
and to its first playlist listing a segment of the feed (the content), median and max;
goal: max <= target duration + 2 s. Boxes outside must never be switched.

**Reload cost.** ``wrk`` drives one box's variant reload with no alert, with 50 alerts in
force over 5,000 region codes none of which covers the box, and with those and one more
that does (its reload is then signed for the cut view), rounds interleaved; goal >= 0.9
with 50 alerts (the short mode asserts 0.85). The 50 alerts are issued and confirmed
through the AlertService and read by the front door from it; the rounds swap the front
door's copy between them and none (its periodic re-read is held off for the run).

Full: 2,000 boxes, 3 client processes. ``BENCH_SHORT=1``: 200 boxes, 1 process, shorter
wrk rounds; the zero-false-switch and the bound are asserted in both modes.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.alerting import Box, Watchers
from bench.conftest import SHORT, Report, median
from bench.journey import TARGET_SECONDS, percentile
from bench.wrk import wrk_rate
from cdn_ctl.sim.stb import SetTopBox
from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Severity
from headend.redisproc import RedisServer
from headend.regions import PROVINCE_PREFIXES
from tests.support.journey import EMERGENCY, Stack, build_stack
from tests.support.world import LIVE, REGION, seed_boxes

BOXES = 200 if SHORT else 2_000
PROCESSES = 1 if SHORT else 3
COUNTIES = [f"4403{n:02d}" for n in range(1, 21)]
TARGETS = COUNTIES[:10]
# Seconds the boxes play before the alert, and after it.
WARMUP_SECONDS = 4.0
AFTER_SECONDS = 12.0
WRK_SECONDS = 3 if SHORT else 10
WRK_ROUNDS = 2 if SHORT else 3
ALERTS = 50
CODES_PER_ALERT = 100
# The goal is 0.9; short rounds on a loaded CI machine scatter a few points around it.
RELOAD_FLOOR = 0.85 if SHORT else 0.9
# wrk drives one box token far past a box's polls (see test_journey_load); the boxes all
# connect from 127.0.0.1; the alerts' copy is swapped by the reload rounds, not re-read.
DOOR = {
    "fetches_per_minute": 1_000_000,
    "max_connections_per_address": 50_000,
    "alert_refresh_seconds": 3600.0,
}


def _codes() -> list[str]:
    """5,000 county codes outside the boxes' own regions (province 44 and REGION's)."""
    provinces = sorted(p for p in PROVINCE_PREFIXES if p not in ("44", REGION[:2]))
    codes = [f"{p}{city:02d}{county:02d}" for p in provinces for city in range(1, 21)
             for county in range(1, 21)]  # fmt: skip
    return codes[: ALERTS * CODES_PER_ALERT]


def _alert(regions: tuple[str, ...], headline: str) -> Alert:
    return Alert(
        id="",
        severity=Severity.SEVERE,
        headline=headline,
        regions=regions,
        channel_ids=(LIVE,),
        feed_channel_id=EMERGENCY,
    )


async def _in_force(issuer: AlertClient, confirmer: AlertClient, alert: Alert, ident: str) -> None:
    issued = await issuer.issue(alert, alert_id=ident)
    await confirmer.confirm(issued.id)


async def _until_read(stack: Stack, count: int) -> None:
    alerts = stack.frontdoor.alerts
    while len(alerts.alerts) < count:
        alerts.changed()
        await asyncio.sleep(0.2)


async def _reload_cost(stack: Stack, issuer: AlertClient, confirmer: AlertClient) -> dict[str, Any]:
    codes = _codes()
    for i in range(ALERTS):
        chunk = tuple(codes[i * CODES_PER_ALERT : (i + 1) * CODES_PER_ALERT])
        await _in_force(issuer, confirmer, _alert(chunk, f"Test {i}"), f"load-{i:02d}")
    await _until_read(stack, ALERTS)
    elsewhere = stack.frontdoor.alerts.alerts
    await _in_force(issuer, confirmer, _alert((REGION,), "Here"), "load-here")
    await _until_read(stack, ALERTS + 1)
    here = stack.frontdoor.alerts.alerts
    async with aiohttp.ClientSession() as http:
        c1 = stack.world.boxes["c1"]
        box = SetTopBox(http, stack.url, mac=c1.mac, secret=c1.secret)
        await box.login()
        _, variant = await box.open_live(LIVE)
    rates: dict[str, list[float]] = {"none": [], "elsewhere": [], "here": []}
    for _ in range(WRK_ROUNDS):
        for name, held in (("none", ()), ("elsewhere", elsewhere), ("here", here)):
            stack.frontdoor.alerts.hold(held)
            rates[name].append(await wrk_rate(variant, box._auth(), WRK_SECONDS))
    # The propagation phase needs the real copy back (and no alert over REGION).
    stack.frontdoor.alerts.hold(elsewhere)
    return {name: median(values) for name, values in rates.items()}


async def _propagation(
    stack: Stack, boxes: list[Box], issuer: AlertClient, confirmer: AlertClient
) -> tuple[float, list[Any]]:
    watchers = Watchers(stack.url, boxes, EMERGENCY, WARMUP_SECONDS + AFTER_SECONDS, PROCESSES)
    await watchers.playing()
    await asyncio.sleep(WARMUP_SECONDS)
    issued = await issuer.issue(_alert(tuple(TARGETS), "Flood warning"), alert_id="flood")
    await confirmer.confirm(issued.id)
    confirmed = time.time()
    return confirmed, await watchers.runs()


async def _run(workdir: Path, redis_url: str) -> dict[str, Any]:
    async with build_stack(
        redis_url, workdir, edge_sessions=BOXES * 4, door=DOOR, emergency=True, access_log=False
    ) as stack:
        services = stack.services
        boxes: list[Box] = []
        per = BOXES // len(COUNTIES)
        for n, county in enumerate(COUNTIES):
            seeded = await seed_boxes(
                services.subscriber_target, services.api_key, per, region=county, first=n * per
            )
            boxes += [(b.mac, b.secret, county in TARGETS) for b in seeded]
        first, second = stack.emergency_keys
        async with (
            AlertClient(services.epg_target, first, tls=services.tls) as issuer,
            AlertClient(services.epg_target, second, tls=services.tls) as confirmer,
        ):
            rates = await _reload_cost(stack, issuer, confirmer)
            confirmed, runs = await _propagation(stack, boxes, issuer, confirmer)
    return {"rates": rates, "confirmed": confirmed, "runs": runs}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_alerts(benchmark: Any, report: Report, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(asyncio.run(_run(tmp_path, redis.url)))

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        redis.stop()
    rates, confirmed = result["rates"], result["confirmed"]
    watches = [w for r in result["runs"] for w in r.watches]
    errors = [e for r in result["runs"] for e in r.errors]
    inside = [w for w in watches if w.inside]
    decided = sorted(w.decided - confirmed for w in inside if w.decided) or [float("nan")]
    content = sorted(w.content - confirmed for w in inside if w.content) or [float("nan")]
    false_switches = [w for w in watches if not w.inside and (w.decided or w.content)]
    elsewhere = report.ratio(
        f"front door variant reload, {ALERTS} alerts over {ALERTS * CODES_PER_ALERT} region "
        "codes (none covering the box) vs no alert",
        rates["elsewhere"],
        rates["none"],
        unit="req/s",
    )
    here = report.ratio(
        "front door variant reload, the box's region under an alert (cut view) vs no alert",
        rates["here"],
        rates["none"],
        unit="req/s",
    )
    bound = TARGET_SECONDS + 2
    report.line(
        f"alert propagation, {len(inside)} of {len(watches)} boxes in {len(TARGETS)} of "
        f"{len(COUNTIES)} counties: to the cut view median {median(decided):.2f} s, "
        f"max {max(decided):.2f} s; to a playlist with the feed "
        f"median {median(content):.2f} s, p99 {percentile(content, 99):.2f} s, "
        f"max {max(content):.2f} s (bound {bound:.0f} s); "
        f"outside switched {len(false_switches)}; errors {len(errors)}"
    )
    benchmark.extra_info.update(
        {
            "boxes": len(watches),
            "reload_ratio_50_alerts": round(elsewhere, 3),
            "reload_ratio_cut": round(here, 3),
            "decided_median_s": round(median(decided), 3),
            "decided_max_s": round(max(decided), 3),
            "content_median_s": round(median(content), 3),
            "content_max_s": round(max(content), 3),
        }
    )
    assert errors == [], errors[:5]
    assert false_switches == []
    assert len(decided) == len(content) == len(inside)
    assert max(decided) <= bound
    assert elsewhere >= RELOAD_FLOOR
