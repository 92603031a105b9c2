"""``scripts/sizing.py``: a tiny real measurement gives plausible per-item Redis costs, and
the province estimate (a pure function) scales with its targets as the README says."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


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
    )


def test_measures_plausible_costs_on_a_real_redis(repo_root: Path) -> None:
    tiny = "--sample-subscribers 400 --sample-channels 1 --sample-days 8"
    tiny += " --sample-archive-hours 1 --sample-leases 100 --subscribers 1000000"
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
    assert e.redis_hosts == e.redis_primaries * 2
    assert e.redis_primaries * e.usable_per_host_bytes >= e.dataset_bytes
    big = sizing.estimate(m, replace(province, host_gib=256))
    assert (big.redis_primaries, big.largest_part_fits) == (1, True)
    # 2 s segments triple the archive index; a 64 GiB host cannot hold it alone.
    short = sizing.estimate(m, replace(province, segment_seconds=2.0))
    assert short.segments == 3 * e.segments
    assert short.redis_primaries > e.redis_primaries
    assert not short.largest_part_fits
    # The farm's own cost model: the default ladder's units per channel.
    assert e.transcode_units == 300 * sizing.channel_cost("default")
    assert e.transcode_nodes == -(-e.transcode_units // province.node_capacity_units) + 1


def test_refuses_a_guide_sample_too_small_to_leave_listpack_encoding(
    sizing: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        sizing.parse(["--sample-days", "4"])
    assert "--sample-days" in capsys.readouterr().err
