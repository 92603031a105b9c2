"""Sizing: Redis bytes per subscriber, programme, archived segment and lease, and host counts.

Redis holds every piece of the platform's state in memory, so its size decides
how many Redis hosts a deployment needs, and the one way to know what an item
costs is to write it the way the platform does and watch ``used_memory``. This
script starts a private ``redis-server``, seeds it through the stores' own code
(``SubscriberStore.import_rows`` and ``start_lease``, ``EpgStore.write_programmes``,
``ArchiveIndex.record_many``: no key is written by hand), and reads ``INFO memory``
after ``MEMORY PURGE`` before and after each kind (``sizing_measure.py``, beside this
file). This file reports the figures: :func:`headend.sizing.estimate`, which is pure,
turns them and a province's targets into Redis memory with headroom and host counts.

Run: ``.venv/bin/python scripts/sizing.py`` (``make sizing``); ``--help`` lists the
targets, the sample sizes and the throughput assumptions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from sizing_measure import (  # scripts/, beside this file
    DURATIONS,
    Sample,
    measure,
)

from headend.sizing import (
    BUFFERS_BYTES,
    COW_FACTOR,
    FRAGMENTATION,
    GIB,
    OS_RESERVE_BYTES,
    Estimate,
    Measured,
    Targets,
    estimate,
)
from transcode.farm.placement import channel_cost

MIB = 1024**2
# Redis keeps hashes and sorted sets up to this many entries compact (the default
# hash-/zset-max-listpack-entries); a province's per-channel keys are far beyond it.
LISTPACK_ENTRIES = 128


# --- reporting ---------------------------------------------------------------------------


def human(n: float) -> str:
    """Bytes in binary units."""
    for unit, size in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def report(m: Measured, t: Targets, e: Estimate, sample: Sample) -> str:
    """The measured table and the province estimate, as the README shows them."""
    seg = f"{t.segment_seconds:g} s"
    ent = "account hash, box hash, MAC index, 2 entitlements"
    prog = "zh/en titles, description, category; index, id map"
    lines = [
        "| item | Redis bytes each (slope) |",
        "|---|---|",
        f"| subscriber ({ent}) | {m.subscriber:,.0f} |",
        f"| + its import audit entry (capped at {t.audit_maxlen:,}) | {m.audit_entry:,.0f} |",
        f"| guide programme ({prog}) | {m.programme:,.0f} |",
        f"| archived segment, one rung ({seg}) | {m.segment:,.0f} |",
        f"| live lease | {m.lease:,.0f} |",
        "",
        f"Sample: {sample.subscribers:,} subscribers, {sample.channels} channels x "
        f"{sample.days} days of guide ({m.programmes_per_day:.1f} programmes a channel a day), "
        f"{sample.archive_hours:g} h of archive x {e.rungs} rungs, {sample.leases:,} leases; "
        f"empty server {human(m.empty_bytes)}, fixed costs {human(m.fixed_bytes)}.",
        "",
        f"Province: {t.subscribers:,} subscribers, {t.channels} channels ({t.profile} ladder, "
        f"{e.rungs} rungs, {seg} segments), {t.catchup_days} days of catch-up, {t.epg_days} "
        f"days of guide, {t.viewer_share:.0%} watching ({e.viewers:,} leases)",
        "",
        "| part | items | Redis memory |",
        "|---|---|---|",
        f"| subscribers + audit | {t.subscribers:,} | {human(e.subscriber_bytes)} |",
        f"| guide | {e.programmes:,} programmes | {human(e.epg_bytes)} |",
        f"| catch-up archive index | {e.segments:,} segments | {human(e.archive_bytes)} |",
        f"| live leases | {e.viewers:,} | {human(e.lease_bytes)} |",
        f"| **dataset (used_memory)** | | **{human(e.dataset_bytes)}** |",
        "",
        f"RAM for it on one host: {human(e.host_ram_bytes)} = dataset x {FRAGMENTATION:g} "
        f"(fragmentation) x {COW_FACTOR:g} (fork copy-on-write, worst case) + "
        f"{human(BUFFERS_BYTES)} (replication and client buffers) + "
        f"{human(OS_RESERVE_BYTES)} (OS).",
        f"A {t.host_gib} GiB host carries a {human(e.usable_per_host_bytes)} dataset: "
        f"{e.redis_primaries} primar{'y' if e.redis_primaries == 1 else 'ies'} x "
        f"(1 + {t.redis_replicas} replica) = {e.redis_hosts} Redis hosts"
        + ("" if e.largest_part_fits else " (the largest part alone does not fit one host)")
        + ".",
        "",
        "Other roles (assumptions, not measurements):",
        f"- transcode nodes: {t.channels} x {channel_cost(t.profile)} units = "
        f"{e.transcode_units:,} units / {t.node_capacity_units} per node, + 1 spare = "
        f"{e.transcode_nodes}",
        f"- edges: {e.viewers:,} viewers x {t.viewer_mbps:g} Mb/s = "
        f"{e.edge_gbps_total:,.0f} Gb/s / {t.edge_gbps:g} Gb/s per edge = {e.edges}",
        f"- origins: {1 - t.edge_hit_ratio:.0%} edge misses = {e.origin_gbps_total:,.0f} Gb/s / "
        f"{t.origin_gbps:g} Gb/s per origin (at least 2) = {e.origins}; each keeps "
        f"{human(e.origin_disk_bytes)} of catch-up media (nominal ladder bitrates)",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Targets, Sample]:
    """Command-line flags -> the targets and the sample."""
    d, s = Targets(), Sample()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    targets = p.add_argument_group("province targets")
    targets.add_argument("--subscribers", type=int, default=d.subscribers)
    targets.add_argument("--channels", type=int, default=d.channels)
    targets.add_argument("--days", type=int, default=d.catchup_days, help="catch-up days")
    targets.add_argument("--epg-days", type=int, default=d.epg_days)
    targets.add_argument("--segment-seconds", type=float, default=d.segment_seconds)
    targets.add_argument("--viewer-share", type=float, default=d.viewer_share)
    targets.add_argument("--host-gib", type=int, default=d.host_gib, help="RAM per Redis host")
    targets.add_argument("--redis-replicas", type=int, default=d.redis_replicas)
    assumed = p.add_argument_group("throughput assumptions (not measured)")
    assumed.add_argument("--node-capacity-units", type=int, default=d.node_capacity_units)
    assumed.add_argument("--viewer-mbps", type=float, default=d.viewer_mbps)
    assumed.add_argument("--edge-gbps", type=float, default=d.edge_gbps)
    assumed.add_argument("--edge-hit-ratio", type=float, default=d.edge_hit_ratio)
    assumed.add_argument("--origin-gbps", type=float, default=d.origin_gbps)
    sample = p.add_argument_group("sample measured (each kind in two halves)")
    sample.add_argument("--sample-subscribers", type=int, default=s.subscribers)
    sample.add_argument("--sample-channels", type=int, default=s.channels)
    sample.add_argument("--sample-days", type=int, default=s.days)
    sample.add_argument("--sample-archive-hours", type=float, default=s.archive_hours)
    sample.add_argument("--sample-leases", type=int, default=s.leases)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    if min(a.sample_subscribers, a.sample_leases) < 2 or a.sample_channels < 1:
        p.error("samples: 2 subscribers and 2 leases at least (two halves), 1 channel")
    # Each half past the listpack limit (see Sample), so the slope is the large keys' cost.
    if a.sample_days // 2 * 24 * 60 / (sum(DURATIONS) / len(DURATIONS)) <= LISTPACK_ENTRIES:
        p.error("--sample-days: each half must hold more than 128 programmes a channel (>= 8)")
    if a.sample_archive_hours * 3600 / a.segment_seconds // 2 <= LISTPACK_ENTRIES:
        p.error("--sample-archive-hours: each half must hold more than 128 segments a rung")
    t = Targets(
        subscribers=a.subscribers, channels=a.channels, catchup_days=a.days,
        epg_days=a.epg_days, segment_seconds=a.segment_seconds, viewer_share=a.viewer_share,
        host_gib=a.host_gib, redis_replicas=a.redis_replicas,
        node_capacity_units=a.node_capacity_units, viewer_mbps=a.viewer_mbps,
        edge_gbps=a.edge_gbps, edge_hit_ratio=a.edge_hit_ratio, origin_gbps=a.origin_gbps,
    )  # fmt: skip
    sm = Sample(
        a.sample_subscribers, a.sample_channels, a.sample_days, a.sample_archive_hours,
        a.sample_leases,
    )  # fmt: skip
    return a, t, sm


def main(argv: list[str] | None = None) -> int:
    """Measure, then print the table and the estimate (or JSON with ``--json``)."""
    args, targets, sample = parse(argv)
    with tempfile.TemporaryDirectory(prefix="sizing-") as folder:
        measured = asyncio.run(measure(sample, targets.segment_seconds, Path(folder)))
    result = estimate(measured, targets)
    if args.json:
        out = {"measured": asdict(measured), "targets": asdict(targets)}
        out |= {"sample": asdict(sample), "estimate": asdict(result)}
        print(json.dumps(out, indent=2))
    else:
        print(report(measured, targets, result, sample))
    return 0


if __name__ == "__main__":
    sys.exit(main())
