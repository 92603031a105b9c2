"""The CDN routing simulation (issue 6): this router against round-robin, plain
consistent hashing, Traffic Control-style nearest-point hashing and bounded-load
hashing without region awareness, at Zipf alpha 0.8 and 1.0.

Everything is seeded, so the table is the same on every run; the benchmark
times one full simulation of this router (the baseline routers run in the
same call). Goals, asserted in both modes (deterministic):

- max/mean edge load <= 1.25;
- request hit ratio within 3 points of plain consistent hashing (or better);
- less backhaul than bounded-load spill without region awareness.
"""

from __future__ import annotations

import pytest

from bench.conftest import SHORT, Report
from cdn_ctl.sim.simulate import Result, Scenario, run, table

TICKS = 200 if SHORT else 600
WARMUP = 50 if SHORT else 100


@pytest.mark.parametrize("alpha", [0.8, 1.0])
def test_routing_simulation(benchmark, report: Report, alpha: float) -> None:
    scenario = Scenario(alpha=alpha, ticks=TICKS, warmup_ticks=WARMUP)
    results: list[Result] = benchmark.pedantic(run, args=(scenario,), rounds=1, iterations=1)
    by_name = {r.name: r for r in results}
    ours = by_name["this router"]
    plain = by_name["consistent hash"]
    spill = by_name["bounded-load, no region"]
    text = table(results)
    print(f"\n{text}")
    report.line(f"cdn simulation alpha={alpha} ({TICKS} ticks):\n{text}")
    report.ratio(f"cdn sim alpha={alpha}: hit ratio vs plain CH", ours.hit_ratio, plain.hit_ratio)
    report.ratio(
        f"cdn sim alpha={alpha}: backhaul vs bounded-load no region",
        ours.backhaul_gbit,
        spill.backhaul_gbit,
        unit="Gbit",
    )
    benchmark.extra_info.update(
        {
            "alpha": alpha,
            "table": text,
            "max_mean_load": ours.max_mean_load,
            "hit_ratio": ours.hit_ratio,
            "hit_ratio_plain_ch": plain.hit_ratio,
            "backhaul_ratio_vs_region_unaware": ours.backhaul_gbit / spill.backhaul_gbit,
        }
    )
    assert ours.max_mean_load <= 1.25
    assert ours.hit_ratio >= plain.hit_ratio - 0.03
    assert ours.backhaul_gbit < spill.backhaul_gbit
