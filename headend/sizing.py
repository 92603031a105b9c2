"""The capacity model behind the sizing guide: per-item Redis costs measured by
``scripts/sizing.py`` and a province's targets in, Redis memory with headroom and host
counts out. Pure, so it can be checked on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass

from subscriber.settings import SubscriberSettings
from transcode.farm.placement import channel_cost
from transcode.profiles import resolve_profile

GIB = 1024**3

# Headroom, documented in the README's sizing section:
# - A BGSAVE or AOF rewrite forks; every page the parent writes while the child runs is
#   copied. The worst case (a write touching every page, e.g. archive indexing spread
#   over every channel's sorted sets during a long rewrite) copies all of it: x2.
COW_FACTOR = 2.0
# - jemalloc fragmentation (RSS over used_memory) for append-mostly data with a
#   retention sweep deleting the oldest segments: about 1.1 in practice, 1.2 allowed.
FRAGMENTATION = 1.2
# - Replication backlog plus one replica's output buffer during a full resync
#   (``client-output-buffer-limit replica 256mb``) plus the AOF and client buffers.
BUFFERS_BYTES = 1 * GIB
# - What the OS, sshd, the Sentinel and the exporters keep on a Redis host.
OS_RESERVE_BYTES = 2 * GIB


@dataclass(frozen=True, slots=True)
class Measured:
    """Redis bytes per item (slopes over the second half of each sample) and fixed costs."""

    subscriber: float  # account hash, box hash, MAC index, subscriber-set entry, 2 ents
    audit_entry: float  # the ImportSubscribers audit entry each new subscriber adds
    programme: float  # guide entry with its index, id map and share of its change entry
    segment: float  # one archived segment of one rung
    lease: float  # one live lease (sorted-set entry and its metadata)
    programmes_per_day: float  # per channel, in the seeded guide
    empty_bytes: int  # used_memory of the private server before seeding
    fixed_bytes: float  # what the samples cost beyond slope x count (keys' own overhead)


@dataclass(frozen=True, slots=True)
class Targets:
    """A province's size and the assumptions host counts rest on."""

    subscribers: int = 5_000_000
    channels: int = 300
    catchup_days: int = 7
    epg_days: int = 14  # past catch-up days plus the week ahead
    profile: str = "default"
    segment_seconds: float = 6.0
    viewer_share: float = 0.20  # concurrent viewers / subscribers at peak
    host_gib: int = 64  # RAM of one Redis host
    redis_replicas: int = 1  # replicas per primary (Sentinel failover)
    audit_maxlen: int = SubscriberSettings().audit_maxlen
    # Assumptions, not measurements (flags override them):
    node_capacity_units: int = 4 * 32  # TC_NODE_CAPACITY's default rule on a 32-core host
    viewer_mbps: float = 3.0  # average delivered bitrate per viewer (the 720p rung)
    edge_gbps: float = 20.0  # what one nginx edge host delivers at its planned ceiling
    edge_hit_ratio: float = 0.95  # share of edge requests served from the edge's cache
    origin_gbps: float = 20.0  # what one origin host serves to edges


@dataclass(frozen=True, slots=True)
class Estimate:
    """Redis memory and host counts for one set of targets."""

    rungs: int
    segments: int
    programmes: int
    viewers: int
    subscriber_bytes: float
    epg_bytes: float
    archive_bytes: float
    lease_bytes: float
    dataset_bytes: float  # used_memory the data needs
    host_ram_bytes: float  # RAM that dataset needs on one host, with every headroom
    usable_per_host_bytes: float  # dataset one host of host_gib carries with the headroom
    redis_primaries: int
    redis_hosts: int
    largest_part_fits: bool  # the biggest service's data fits on one host
    transcode_units: int
    transcode_nodes: int
    edge_gbps_total: float
    edges: int
    origin_gbps_total: float
    origins: int
    origin_disk_bytes: float  # catch-up media each origin keeps (nominal ladder bitrates)


def estimate(m: Measured, t: Targets) -> Estimate:
    """Redis memory and host counts for ``t`` from the measured per-item costs ``m``."""
    profile = resolve_profile(t.profile, segment_seconds=t.segment_seconds)
    rungs = len(profile.rungs)
    segments = round(t.channels * rungs * t.catchup_days * 86_400 / t.segment_seconds)
    programmes = round(t.channels * t.epg_days * m.programmes_per_day)
    viewers = round(t.subscribers * t.viewer_share)
    # The audit stream is capped (SUBSCRIBER_AUDIT_MAXLEN), so its cost stops growing.
    subscriber_bytes = t.subscribers * m.subscriber + min(t.subscribers, t.audit_maxlen) * (
        m.audit_entry
    )
    epg_bytes = programmes * m.programme
    archive_bytes = segments * m.segment
    lease_bytes = viewers * m.lease
    dataset = m.empty_bytes + m.fixed_bytes + subscriber_bytes + epg_bytes
    dataset += archive_bytes + lease_bytes
    host_ram = dataset * FRAGMENTATION * COW_FACTOR + BUFFERS_BYTES + OS_RESERVE_BYTES
    usable = max(0.0, (t.host_gib * GIB - BUFFERS_BYTES - OS_RESERVE_BYTES)) / (
        FRAGMENTATION * COW_FACTOR
    )
    primaries = max(1, math.ceil(dataset / usable)) if usable else 0
    largest = max(subscriber_bytes + lease_bytes, epg_bytes, archive_bytes)
    units = t.channels * channel_cost(t.profile)
    edge_gbps = viewers * t.viewer_mbps / 1000
    origin_gbps = edge_gbps * (1 - t.edge_hit_ratio)
    ladder_bps = sum((r.video_kbps + r.audio_kbps) * 1000 for r in profile.rungs)
    return Estimate(
        rungs=rungs,
        segments=segments,
        programmes=programmes,
        viewers=viewers,
        subscriber_bytes=subscriber_bytes,
        epg_bytes=epg_bytes,
        archive_bytes=archive_bytes,
        lease_bytes=lease_bytes,
        dataset_bytes=dataset,
        host_ram_bytes=host_ram,
        usable_per_host_bytes=usable,
        redis_primaries=primaries,
        redis_hosts=primaries * (1 + t.redis_replicas),
        largest_part_fits=bool(usable) and largest <= usable,
        transcode_units=units,
        # One node more than the channels need, so a drain or a dead node has somewhere to go.
        transcode_nodes=math.ceil(units / t.node_capacity_units) + 1,
        edge_gbps_total=edge_gbps,
        edges=math.ceil(edge_gbps / t.edge_gbps),
        origin_gbps_total=origin_gbps,
        # At least two: each origin holds the whole archive, so one can be lost.
        origins=max(2, math.ceil(origin_gbps / t.origin_gbps)),
        origin_disk_bytes=t.channels * ladder_bps / 8 * t.catchup_days * 86_400,
    )


# --- measuring ---------------------------------------------------------------------------
