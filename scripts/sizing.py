"""Sizing: what a province needs per component, from measured figures, and host counts.

The components: Redis (memory and commands), the front door, the subscriber service,
transcoding, village and county/city edges, origins.

Redis holds every piece of the platform's state in memory, so its size decides
how many Redis hosts a deployment needs, and the one way to know what an item
costs is to write it the way the platform does and watch ``used_memory``. This
script starts a private ``redis-server``, seeds it through the stores' own code
(``SubscriberStore.import_rows`` and ``start_lease``, ``EpgStore.write_programmes``,
``ArchiveIndex.record_many``: no key is written by hand), and reads ``INFO memory``
after ``MEMORY PURGE`` before and after each kind; then it runs the playback path's
calls (``Authorize``, ``Heartbeat``, ``StartSession``, the front door's guards) and the
CDN controller's refresh on that server and counts their commands and Redis CPU
(``sizing_measure.py``, beside this file). This file reports the figures:
:func:`headend.sizing.estimate`, which is pure, turns them, the benchmarks' throughput
figures (flags, defaulting to what was measured on this project's build machine) and a
province's targets into per-component needs and host counts.

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
    ENTITLEMENT_TTL_SECONDS,
    FRAGMENTATION,
    GIB,
    HEARTBEAT_SECONDS,
    OS_RESERVE_BYTES,
    PER,
    Estimate,
    Measured,
    Targets,
    channel_cores,
    check,
    estimate,
    watch_entries,
)
from transcode.farm.placement import channel_cost
from transcode.profiles import profile_names

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
    seg, mem = f"{t.segment_seconds:g} s", e.redis_primaries_for_memory
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
        f"{mem} primar{'y' if mem == 1 else 'ies'} x (1 + {t.redis_replicas} replica) = "
        f"{mem * (1 + t.redis_replicas)} Redis hosts for the memory"
        + ("" if e.largest_part_fits else "; the largest part alone does not fit one host")
        + ". The commands' CPU may need more (below).",
        "",
        *components(m, t, e),
    ]
    return "\n".join(lines)


def components(m: Measured, t: Targets, e: Estimate) -> list[str]:
    """The per-component table and the province's host counts, with what each rests on."""
    seg, per = f"{t.segment_seconds:g} s", f"{PER:,}"
    r = e.redis_per_100k
    controller = e.redis_controller.cpu_us / 1e6
    viewers = e.redis_cores - controller
    ladder = ", ".join(f"{name} {channel_cores(t, name):.3g}" for name in profile_names())
    return [
        f"Per component ({t.segment_seconds:g} s target duration, {t.cpu_share:.0%} of each "
        "core's measured ceiling planned at peak):",
        "",
        "| component | need | rests on |",
        "|---|---|---|",
        f"| front door | {e.frontdoor_cores_per_100k:.2f} cores per {per} viewers polling "
        f"({PER * e.reloads:,.0f} req/s) | {t.playlists_per_viewer} playlist reload per "
        f"viewer every {seg}; {t.frontdoor_rps_per_core:,.0f} req/s a core "
        "(`--frontdoor-rps-per-core`) |",
        f"| subscriber service | {e.subscriber_cores_per_100k:.2f} "
        f"cores per {per} viewers ({PER * (e.authorizes + e.heartbeats):,.0f} calls/s) | an "
        f"Authorize every {1 / e.authorizes:g} s (cached {ENTITLEMENT_TTL_SECONDS:g} s, asked "
        f"at the next reload), a Heartbeat every {1 / e.heartbeats:g} s ({HEARTBEAT_SECONDS:g} s "
        f"rounds); {t.subscriber_calls_per_core:,.0f} calls/s a core "
        "(`--subscriber-calls-per-core`) |",
        f"| Redis, ops | {r.sent:,.0f} commands/s sent + {r.scripted:,.0f} run by scripts, "
        f"{r.cpu_us / 1e6:.2f} Redis cores per {per} viewers | measured per call: Authorize "
        f"{m.authorize.sent:.0f} sent + {m.authorize.scripted:.0f} scripted, "
        f"{m.authorize.cpu_us:.0f} us; Heartbeat {m.heartbeat.sent:.0f} + "
        f"{m.heartbeat.scripted:.0f}, {m.heartbeat.cpu_us:.0f} us; front door guards "
        f"{m.guards.sent:.2f} a viewer-second, {m.guards.cpu_us:.1f} us (a zap: "
        f"{m.start.sent:.0f} + {m.start.scripted:.0f}, {m.start.cpu_us:.0f} us, not counted) |",
        controller_row(m, t, e),
        f"| Redis, memory | {human(e.redis_bytes_per_100k)} per {per} subscribers | "
        f"subscriber {m.subscriber:,.0f} B + audit {m.audit_entry:,.0f} B + "
        f"{t.viewer_share:.0%} x lease {m.lease:,.0f} B (archive and guide: per channel) |",
        f"| transcoding | {ladder} cores per channel | `--default-channel-cores`, "
        "`--low-channel-cores`, `--remux-channels-per-core` |",
        f"| remux (passthrough) | {t.remux_channels_per_core:,.0f} channels per core | "
        "`--remux-channels-per-core` |",
        f"| village edge, egress | {e.village_egress_mbps:,.0f} Mb/s | "
        f"{e.viewers_per_village:,.0f} viewers x {e.viewer_mbps:.3f} Mb/s ({t.settle_rung}, "
        "`--settle-rung`) |",
        f"| village edge, uplink | {e.village_uplink_mbps:,.0f} Mb/s | "
        f"{e.village_channels:.0f} of {t.channels} channels watched (Zipf {t.zipf:g}, "
        "`--zipf`); a miss per segment of the settle rung (edge prefetch fetches the same "
        "segments, earlier) |",
        "",
        f"Province: {e.viewers:,} viewers, {t.channels} channels ({t.profile}), "
        f"{t.village_edges:,} village edges; {t.host_cores}-core hosts, a spare in each role that "
        "has one:",
        f"- front door: {e.frontdoor_rps:,.0f} req/s = {e.frontdoor_cores:,.1f} cores -> "
        f"{e.frontdoor_hosts} hosts",
        f"- subscriber service: {e.subscriber_calls:,.0f} calls/s = "
        f"{e.subscriber_cores:,.1f} cores -> {e.subscriber_hosts} hosts",
        f"- Redis: {e.redis_cores:,.1f} cores of commands at peak ({viewers:,.1f} for the "
        f"viewers' calls, {controller:,.1f} for the CDN controller's refreshes, "
        f"{e.controller_peer_cores:,.1f} of them reading lease counts on the `{{leases}}` "
        "tag's one master"
        + (
            f", more than the {t.cpu_share:.0%} of a core one primary is planned at: fewer "
            "replicas (`--frontdoor-workers`) or a longer `--refresh-seconds`"
            if e.controller_peer_cores > t.cpu_share
            else ""
        )
        + "); a primary is one process "
        f"on one core, planned at {t.cpu_share:.0%} -> {e.redis_primaries} primaries (a "
        f"Cluster's masters; {e.redis_primaries_for_memory} for the memory alone) x "
        f"(1 + {t.redis_replicas}), {e.redis_processes_per_host} processes a {t.host_cores}-core "
        f"{t.host_gib} GiB host (one per two cores, each with its RAM headroom) -> "
        f"{e.redis_hosts} Redis hosts",
        f"- transcode nodes: {t.channels} x {e.channel_cores:.3g} cores = "
        f"{e.transcode_cores:,.0f} cores; {t.channels} x {channel_cost(t.profile)} units = "
        f"{e.transcode_units:,} units / {t.node_capacity_units} per node; the larger, "
        f"+ 1 spare = {e.transcode_nodes}",
        f"- village edges: {e.viewers:,} viewers x {e.viewer_mbps:.3f} Mb/s = "
        f"{e.edge_gbps_total:,.0f} Gb/s; one a village, {t.edge_gbps:g} Gb/s each = {e.edges:,}",
        f"- county/city edges: the villages' uplinks, {e.uplink_gbps_total:,.0f} Gb/s / "
        f"{t.edge_gbps:g} Gb/s = {e.parent_edges}",
        f"- origins: {1 - t.parent_hit_ratio:.0%} of the uplinks missed above the villages "
        f"(`--parent-hit-ratio`) = {e.origin_gbps_total:,.0f} Gb/s / "
        f"{t.origin_gbps:g} Gb/s per origin (at least 2) = {e.origins}; each keeps "
        f"{human(e.origin_disk_bytes)} of catch-up media (nominal ladder bitrates)",
    ]


def controller_row(m: Measured, t: Targets, e: Estimate) -> str:
    """The CDN controller's refreshes: what they cost Redis a second, and what it rests on."""
    c, f = e.redis_controller, m.refresh
    workers = t.frontdoor_workers or t.host_cores
    return (
        f"| Redis, CDN controller | {c.sent:,.0f} commands/s, {c.cpu_us / 1e6:.2f} Redis cores "
        f"({e.controller_replicas} replicas, each with leases on {e.controller_edges:,.0f} "
        f"edges, refreshing every {t.refresh_seconds:g} s) | measured per refresh: "
        f"{f.fixed.sent:.0f} commands + {f.edge.sent:.0f} an edge (the watch marks' HSET and "
        f"EXPIRE) + {f.peer.sent:.0f} an other replica (its lease counts); "
        f"{f.fixed.cpu_us:.0f} us + {f.edge.cpu_us:.1f} us an edge ({watch_entries(t):.0f} "
        f"channels watched on it) + {f.peer_edge.cpu_us:.2f} us an edge of each other "
        f"replica's counts; {e.frontdoor_hosts} front door hosts x {workers} workers "
        "(`--frontdoor-workers`), `--refresh-seconds` |"
    )


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
    targets.add_argument("--village-edges", type=int, default=d.village_edges)
    targets.add_argument("--host-gib", type=int, default=d.host_gib, help="RAM per Redis host")
    targets.add_argument("--redis-replicas", type=int, default=d.redis_replicas)
    targets.add_argument(
        "--frontdoor-workers", type=int, default=d.frontdoor_workers,
        help="CDN_HTTP_WORKERS of a front door host, each a CDN controller replica (0: one a "
        "core)",
    )  # fmt: skip
    targets.add_argument(
        "--refresh-seconds", type=float, default=d.refresh_seconds,
        help="CDN_REFRESH_SECONDS: how often each controller replica refreshes",
    )  # fmt: skip
    bench = p.add_argument_group("throughput measured on the build machine (README: Benchmarks)")
    bench.add_argument(
        "--frontdoor-rps-per-core", type=float, default=d.frontdoor_rps_per_core,
        help="variant reloads a second one front door core answers (journey-load row's wrk "
        "rounds: 14,289 req/s on one event loop, 0.43 of trivial aiohttp)",
    )  # fmt: skip
    bench.add_argument(
        "--subscriber-calls-per-core", type=float, default=d.subscriber_calls_per_core,
        help="Authorize calls a second one subscriber server core answers "
        "(bench/test_redis_ha.py baseline: 2,190-2,800)",
    )  # fmt: skip
    bench.add_argument(
        "--default-channel-cores", type=float, default=d.default_channel_cores,
        help="cores of one live channel on the default ladder (its FFmpeg command, 1080p25)",
    )  # fmt: skip
    bench.add_argument(
        "--low-channel-cores", type=float, default=d.low_channel_cores,
        help="cores of one live channel on the low ladder",
    )  # fmt: skip
    bench.add_argument(
        "--remux-channels-per-core", type=float, default=d.remux_channels_per_core,
        help="passthrough channels one core remuxes (live density row: 0.0056 CPU-s a "
        "channel-second)",
    )  # fmt: skip
    assumed = p.add_argument_group("assumptions (not measured)")
    assumed.add_argument(
        "--playlists-per-viewer", type=int, default=d.playlists_per_viewer,
        help="media playlists a player reloads each target duration (2 with an audio rendition)",
    )  # fmt: skip
    assumed.add_argument(
        "--cpu-share", type=float, default=d.cpu_share,
        help="share of a core's measured ceiling planned at peak (front door, subscriber, Redis)",
    )  # fmt: skip
    assumed.add_argument(
        "--host-cores", type=int, default=d.host_cores,
        help="cores of a front door, subscriber or transcode host",
    )  # fmt: skip
    assumed.add_argument(
        "--node-capacity-units", type=int, default=d.node_capacity_units,
        help="TC_NODE_CAPACITY of a transcode node (4 units a core by default)",
    )  # fmt: skip
    assumed.add_argument(
        "--settle-rung", default=d.settle_rung,
        help="the ladder rung viewers settle on (its nominal bitrate is a viewer's)",
    )  # fmt: skip
    assumed.add_argument("--zipf", type=float, default=d.zipf, help="channel popularity exponent")
    assumed.add_argument(
        "--edge-gbps", type=float, default=d.edge_gbps,
        help="what one nginx edge host delivers at its planned ceiling",
    )  # fmt: skip
    assumed.add_argument(
        "--parent-hit-ratio", type=float, default=d.parent_hit_ratio,
        help="share of village edge misses the county/city edges serve from cache",
    )  # fmt: skip
    assumed.add_argument(
        "--origin-gbps", type=float, default=d.origin_gbps,
        help="what one origin host serves to the edges",
    )  # fmt: skip
    sample = p.add_argument_group("sample measured (each kind in two halves)")
    sample.add_argument("--sample-subscribers", type=int, default=s.subscribers)
    sample.add_argument("--sample-channels", type=int, default=s.channels)
    sample.add_argument("--sample-days", type=int, default=s.days)
    sample.add_argument("--sample-archive-hours", type=float, default=s.archive_hours)
    sample.add_argument("--sample-leases", type=int, default=s.leases)
    sample.add_argument(
        "--sample-calls", type=int, default=s.calls,
        help="Authorize, Heartbeat and StartSession calls counted and timed, each",
    )  # fmt: skip
    sample.add_argument(
        "--sample-edges", type=int, default=s.edges,
        help="edges registered, with the measured controller replica's leases on each",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    if (
        min(a.sample_subscribers, a.sample_leases, a.sample_edges) < 2
        or min(a.sample_channels, a.sample_calls) < 1
    ):
        p.error(
            "samples: 2 subscribers, 2 leases (two halves) and 2 edges (two sizes) at least, "
            "1 channel, 1 call"
        )
    # Each half past the listpack limit (see Sample), so the slope is the large keys' cost.
    if a.sample_days // 2 * 24 * 60 / (sum(DURATIONS) / len(DURATIONS)) <= LISTPACK_ENTRIES:
        p.error("--sample-days: each half must hold more than 128 programmes a channel (>= 8)")
    if a.sample_archive_hours * 3600 / a.segment_seconds // 2 <= LISTPACK_ENTRIES:
        p.error("--sample-archive-hours: each half must hold more than 128 segments a rung")
    t = Targets(
        subscribers=a.subscribers, channels=a.channels, catchup_days=a.days,
        epg_days=a.epg_days, segment_seconds=a.segment_seconds, viewer_share=a.viewer_share,
        village_edges=a.village_edges, host_gib=a.host_gib, redis_replicas=a.redis_replicas,
        frontdoor_rps_per_core=a.frontdoor_rps_per_core,
        subscriber_calls_per_core=a.subscriber_calls_per_core,
        default_channel_cores=a.default_channel_cores, low_channel_cores=a.low_channel_cores,
        remux_channels_per_core=a.remux_channels_per_core,
        playlists_per_viewer=a.playlists_per_viewer, cpu_share=a.cpu_share,
        host_cores=a.host_cores, node_capacity_units=a.node_capacity_units,
        settle_rung=a.settle_rung, zipf=a.zipf, edge_gbps=a.edge_gbps,
        parent_hit_ratio=a.parent_hit_ratio, origin_gbps=a.origin_gbps,
        frontdoor_workers=a.frontdoor_workers, refresh_seconds=a.refresh_seconds,
    )  # fmt: skip
    try:
        check(t)  # before anything is measured
    except ValueError as err:
        p.error(str(err))
    sm = Sample(
        a.sample_subscribers, a.sample_channels, a.sample_days, a.sample_archive_hours,
        a.sample_leases, a.sample_calls, a.sample_edges,
    )  # fmt: skip
    return a, t, sm


def main(argv: list[str] | None = None) -> int:
    """Measure, then print the table and the estimate (or JSON with ``--json``)."""
    args, targets, sample = parse(argv)
    with tempfile.TemporaryDirectory(prefix="sizing-") as folder:
        # As many channels watched on each sample edge as one replica marks in the province.
        watched = max(1, round(watch_entries(targets)))
        measured = asyncio.run(
            measure(
                sample,
                targets.segment_seconds,
                Path(folder),
                watched=watched,
                rung=targets.settle_rung,
            )
        )
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
