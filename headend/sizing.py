"""The capacity model behind the sizing guide: what ``scripts/sizing.py`` measures (Redis
bytes per item, Redis commands and CPU per playback call) and a province's targets in;
per component what the province needs, and host counts, out. Pure, so it can be checked
on its own.

Each figure rests on a measurement or on a named assumption (a field of
:class:`Targets`, a flag of the script): the front door's requests per core and the
subscriber service's calls per core are the benchmarks' (README, "Benchmarks"), a
channel's transcoding cores were measured with the channel's own FFmpeg command, and the
call rates per viewer follow the front door's own settings (how long it caches an
``Authorize``, how often it sends lease heartbeats) and the segment length. The CDN
controller's own Redis work follows its refresh (``CDN_REFRESH_SECONDS``) and its replicas
(every front door HTTP worker is one), not the viewers' calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.settings import CdnSettings
from subscriber.settings import SubscriberSettings
from transcode.farm.placement import channel_cost
from transcode.ladder import Rung
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
# Figures per 100,000 subscribers or viewers.
PER = 100_000


def setting_default(settings: type, name: str) -> float:
    """A settings dataclass field's default (what a deployment that sets nothing runs)."""
    default = next(f.default for f in fields(settings) if f.name == name)
    return float(default)  # type: ignore[arg-type]


def frontdoor_default(name: str) -> float:
    """A front door setting's default (what a box's calls follow)."""
    return setting_default(FrontDoorSettings, name)


# How long the front door trusts an Authorize answer, and how often it heartbeats a lease.
ENTITLEMENT_TTL_SECONDS = frontdoor_default("entitlement_ttl_seconds")
HEARTBEAT_SECONDS = frontdoor_default("heartbeat_seconds")
# How often each controller replica refreshes (CDN_REFRESH_SECONDS' default).
REFRESH_SECONDS = setting_default(CdnSettings, "refresh_seconds")


@dataclass(frozen=True, slots=True)
class Calls:
    """What one call (or one viewer-second) costs Redis: commands the caller sends, commands
    its scripts run, and the server's CPU."""

    sent: float
    scripted: float
    cpu_us: float

    def times(self, rate: float) -> Calls:
        """The cost of ``rate`` of these."""
        return Calls(self.sent * rate, self.scripted * rate, self.cpu_us * rate)

    def plus(self, other: Calls) -> Calls:
        """Both costs together."""
        return Calls(
            self.sent + other.sent, self.scripted + other.scripted, self.cpu_us + other.cpu_us
        )


@dataclass(frozen=True, slots=True)
class Refresh:
    """What one CDN controller replica's refresh (``Controller.refresh``) costs Redis: the
    registry read, its lease counts' publish, the other replicas' counts read, and each
    edge's watched ``channel/rung`` marked for the edge's prefetch sidecar (an HSET and an
    EXPIRE an edge: ``EdgeStore.mark_watched``)."""

    fixed: Calls  # per refresh, whatever the edges
    edge: Calls  # more per edge the replica's leases are on
    peer: Calls  # more per other live replica whose counts it reads
    peer_edge: Calls  # more per edge in each such replica's counts

    def per_refresh(self, edges: float, replicas: int) -> Calls:
        """One refresh of one of ``replicas`` replicas, each with leases on ``edges`` edges."""
        peers = self.peer.plus(self.peer_edge.times(edges)).times(replicas - 1)
        return self.fixed.plus(self.edge.times(edges)).plus(peers)


@dataclass(frozen=True, slots=True)
class Measured:
    """Redis bytes per item (slopes over the second half of each sample), fixed costs, and
    what the playback path's calls cost Redis."""

    subscriber: float  # account hash, box hash, MAC index, subscriber-set entry, 2 ents
    audit_entry: float  # the ImportSubscribers audit entry each new subscriber adds
    programme: float  # guide entry with its index, id map and share of its change entry
    segment: float  # one archived segment of one rung
    lease: float  # one live lease (sorted-set entry and its metadata)
    programmes_per_day: float  # per channel, in the seeded guide
    empty_bytes: int  # used_memory of the private server before seeding
    fixed_bytes: float  # what the samples cost beyond slope x count (keys' own overhead)
    # Per call, one call at a time (the store's batching of concurrent calls only lowers
    # these): an Authorize, a lease Heartbeat, a StartSession (a zap).
    authorize: Calls
    heartbeat: Calls
    start: Calls
    # The front door's own Redis use (fetch budget sync, address watch, lease note) per
    # viewer-second of one box polling at the sampled target duration.
    guards: Calls
    # The CDN controller's refresh, measured with as many watched channels an edge as the
    # province's targets give one replica (``watch_entries``).
    refresh: Refresh


@dataclass(frozen=True, slots=True)
class Targets:
    """A province's size and the assumptions host counts rest on."""

    subscribers: int = 5_000_000
    channels: int = 300
    catchup_days: int = 7
    epg_days: int = 14  # past catch-up days plus the week ahead
    profile: str = "default"
    segment_seconds: float = 6.0  # also the target duration a player reloads at
    viewer_share: float = 0.20  # concurrent viewers / subscribers at peak
    village_edges: int = 2_000
    host_gib: int = 64  # RAM of one Redis host
    redis_replicas: int = 1  # replicas per primary (Sentinel failover)
    audit_maxlen: int = SubscriberSettings().audit_maxlen
    # Measured on this project's 2-core build machine, 2026-11-30 (flags override them):
    # - the front door's variant reload (token, entitlement and blackout from cache, lease
    #   touch, fetch budget, routing, signing, 302) on one event loop, from the benchmarks'
    #   report lines behind the README's rows: journey load, 14,289 req/s (the row's 0.43
    #   of trivial aiohttp's 33,005); alerts, 14,289-14,655 with no alert. The routing 302
    #   path alone (its row): 21,900-29,100 on 2 workers sharing both cores with wrk.
    frontdoor_rps_per_core: float = 14_300.0
    # - Authorize on one subscriber server whose 32 callers share its process
    #   (bench/test_redis_ha.py short mode's one-node baseline: 2,190-2,800 calls/s).
    subscriber_calls_per_core: float = 2_500.0
    # - CPU-s per media second of one channel's own FFmpeg command (``live_command`` on
    #   ``plan_live``, as bench/test_live_encryption.py runs an epoch, without the
    #   publisher: about 1% there) from a 1080p25 6 Mb/s H.264 TS made as the live density
    #   bench's feed, 12 s, 2 rounds: default ladder (6 rungs) 0.85-0.87, low 0.156-0.158.
    default_channel_cores: float = 0.86
    low_channel_cores: float = 0.16
    # - passthrough: 0.0056 CPU-s per channel-second (the live density row), 178 a core.
    remux_channels_per_core: float = 178.0
    # Assumptions, not measurements (flags override them):
    playlists_per_viewer: int = 1  # media playlists a player reloads (2: audio rendition)
    cpu_share: float = 0.5  # of a core's measured ceiling planned at peak (front door etc.)
    host_cores: int = 32  # cores of a front door, subscriber or transcode host
    node_capacity_units: int = 4 * 32  # TC_NODE_CAPACITY's default rule on a 32-core host
    settle_rung: str = "720p"  # the ladder rung viewers settle on (its nominal bitrate)
    zipf: float = 0.8  # channel popularity (the CDN simulation's lower exponent)
    edge_gbps: float = 20.0  # what one nginx edge host delivers at its planned ceiling
    # Share of the village edges' misses the county/city edges above them serve from cache.
    parent_hit_ratio: float = 0.95
    origin_gbps: float = 20.0  # what one origin host serves to edges
    # The CDN controller: each front door HTTP worker (CDN_HTTP_WORKERS a host) is a replica
    # refreshing every refresh_seconds (CDN_REFRESH_SECONDS). 0 workers: one per core.
    frontdoor_workers: int = 0
    refresh_seconds: float = REFRESH_SECONDS


@dataclass(frozen=True, slots=True)
class Estimate:
    """Redis memory, per-component needs and host counts for one set of targets."""

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
    redis_bytes_per_100k: float  # subscribers (with audit) and their share of leases
    # Per viewer-second: variant reloads at the front door, Authorize and Heartbeat calls.
    reloads: float
    authorizes: float
    heartbeats: float
    redis_per_viewer: Calls  # per viewer-second: the calls' and the front door's own
    redis_per_100k: Calls  # per second, for 100,000 viewers
    redis_cores: float  # Redis server CPU at peak: every viewer, and the CDN controller
    redis_primaries: int  # for the memory, and for the CPU at cpu_share of one core each
    redis_primaries_for_memory: int
    redis_processes_per_host: int  # by cores (one per two) and by RAM with the headroom
    redis_hosts: int
    largest_part_fits: bool  # the biggest service's data fits on one host
    frontdoor_rps: float
    frontdoor_cores_per_100k: float  # at cpu_share of the measured ceiling
    frontdoor_cores: float
    frontdoor_hosts: int
    # The CDN controller: its replicas, the edges one replica's leases are on (expected),
    # refreshes a second (every replica), their Redis cost a second and, of its CPU, the
    # other replicas' lease counts read (the ``{leases}`` hash tag: one Cluster master).
    controller_replicas: int
    controller_edges: float
    controller_refreshes: float
    redis_controller: Calls
    controller_peer_cores: float
    subscriber_calls: float  # per second at peak
    subscriber_cores_per_100k: float  # viewers, at cpu_share of the measured ceiling
    subscriber_cores: float
    subscriber_hosts: int
    channel_cores: float  # one channel of the province's profile
    transcode_cores: float
    transcode_units: int
    transcode_nodes: int
    viewer_mbps: float  # the settle rung's nominal bitrate
    viewers_per_village: float
    village_egress_mbps: float
    village_channels: float  # distinct channels watched in a village (expected)
    # A miss per segment of each watched channel's settle rung: with edge prefetch the same
    # segments (the sidecar fetches only the rungs boxes play), earlier.
    village_uplink_mbps: float
    edge_gbps_total: float
    edges: int
    uplink_gbps_total: float  # every village edge's uplink
    parent_edges: int  # county/city edges serving those uplinks
    origin_gbps_total: float
    origins: int
    origin_disk_bytes: float  # catch-up media each origin keeps (nominal ladder bitrates)


def channel_cores(t: Targets, profile: str) -> float:
    """Transcoding cores one live channel on ``profile`` takes (measured, per profile)."""
    if profile == "passthrough":
        return 1 / t.remux_channels_per_core
    return {"default": t.default_channel_cores, "low": t.low_channel_cores}[profile]


def distinct_channels(viewers: float, channels: int, zipf: float) -> float:
    """Channels at least one of ``viewers`` watches (expected), each viewer choosing one
    channel independently with Zipf(``zipf``) popularity over ``channels``."""
    weights = [1 / rank**zipf for rank in range(1, channels + 1)]
    total = sum(weights)
    return sum(1 - (1 - w / total) ** viewers for w in weights)


def check(t: Targets) -> None:
    """``ValueError`` naming the first target out of range (or a rung not in the ladder)."""
    positive = (
        "subscribers", "channels", "segment_seconds", "village_edges", "host_gib",
        "frontdoor_rps_per_core", "subscriber_calls_per_core", "default_channel_cores",
        "low_channel_cores", "remux_channels_per_core", "playlists_per_viewer", "host_cores",
        "node_capacity_units", "edge_gbps", "origin_gbps", "refresh_seconds",
    )  # fmt: skip
    for name in positive:
        if not getattr(t, name) > 0:
            raise ValueError(f"{name} must be positive")
    for name in ("viewer_share", "cpu_share"):
        if not 0 < getattr(t, name) <= 1:
            raise ValueError(f"{name} must be in (0, 1]")
    if not 0 <= t.parent_hit_ratio <= 1:
        raise ValueError("parent_hit_ratio must be in [0, 1]")
    for name in ("catchup_days", "epg_days", "redis_replicas", "zipf", "frontdoor_workers"):
        if getattr(t, name) < 0:
            raise ValueError(f"{name} must not be negative")
    settle_rung(t)


def settle_rung(t: Targets) -> Rung:
    """The rung viewers settle on, from the province's ladder."""
    rungs = resolve_profile(t.profile).rungs
    found = next((r for r in rungs if r.name == t.settle_rung), None)
    if found is None:
        names = ", ".join(r.name for r in rungs)
        raise ValueError(f"settle_rung: {t.settle_rung!r} is not a rung of {t.profile} ({names})")
    return found


def peak_viewers(t: Targets) -> int:
    """Concurrent viewers (live leases) at peak."""
    return round(t.subscribers * t.viewer_share)


def frontdoor_hosts(t: Targets) -> int:
    """Front door hosts for the peak's variant reloads, one more so one can fail (>= 2)."""
    reloads = peak_viewers(t) * t.playlists_per_viewer / t.segment_seconds
    cores = reloads / (t.frontdoor_rps_per_core * t.cpu_share)
    return max(2, math.ceil(cores / t.host_cores) + 1)


def controller_replicas(t: Targets) -> int:
    """CDN controller replicas: every front door host's HTTP workers (the spare's too)."""
    return frontdoor_hosts(t) * (t.frontdoor_workers or t.host_cores)


def controller_edges(t: Targets) -> float:
    """Village edges one controller replica holds leases on (expected): its share of the
    viewers, each on one of them."""
    edges, leases = t.village_edges, peak_viewers(t) / controller_replicas(t)
    return edges * (1 - (1 - 1 / edges) ** leases)


def watch_entries(t: Targets) -> float:
    """``channel/rung`` entries one replica marks on one edge a refresh (expected): the
    distinct channels its share of a village's viewers watch, on the settle rung."""
    viewers = peak_viewers(t) / t.village_edges / controller_replicas(t)
    return distinct_channels(viewers, t.channels, t.zipf)


def estimate(m: Measured, t: Targets) -> Estimate:
    """Redis memory, per-component needs and host counts for ``t`` from ``m``; a
    ``ValueError`` names a target out of range."""
    check(t)
    profile = resolve_profile(t.profile, segment_seconds=t.segment_seconds)
    settle = settle_rung(t)
    rungs = len(profile.rungs)
    segments = round(t.channels * rungs * t.catchup_days * 86_400 / t.segment_seconds)
    programmes = round(t.channels * t.epg_days * m.programmes_per_day)
    viewers = peak_viewers(t)
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
    largest = max(subscriber_bytes + lease_bytes, epg_bytes, archive_bytes)

    # A player reloads each media playlist once a target duration; the front door asks
    # Authorize again at the first reload past its cache's TTL, and heartbeats each lease
    # used since the last round once a round.
    target = t.segment_seconds
    reloads = t.playlists_per_viewer / target
    authorizes = 1 / (target * math.ceil(ENTITLEMENT_TTL_SECONDS / target))
    heartbeats = 1 / max(HEARTBEAT_SECONDS, target)
    per_viewer = m.authorize.times(authorizes).plus(m.heartbeat.times(heartbeats))
    per_viewer = per_viewer.plus(m.guards)
    # Every controller replica refreshes on its own clock, whatever the viewers' calls; the
    # watch marks are written whether or not the edges run a prefetch sidecar.
    replicas = controller_replicas(t)
    on_edges = controller_edges(t)
    refreshes = replicas / t.refresh_seconds
    controller = m.refresh.per_refresh(on_edges, replicas).times(refreshes)
    peer_reads = m.refresh.peer.plus(m.refresh.peer_edge.times(on_edges))
    peer_cores = peer_reads.times(refreshes * (replicas - 1)).cpu_us / 1e6
    redis_cores = viewers * per_viewer.cpu_us / 1e6 + controller.cpu_us / 1e6
    by_memory = max(1, math.ceil(dataset / usable)) if usable else 0
    primaries = max(by_memory, math.ceil(redis_cores / t.cpu_share))
    # A host runs one Redis process (primary or replica) per two cores (the other core:
    # its forks, I/O, the OS), as many as its RAM holds with each one's headroom.
    process_ram = dataset / primaries * FRAGMENTATION * COW_FACTOR + BUFFERS_BYTES
    per_host = min(t.host_cores // 2, int((t.host_gib * GIB - OS_RESERVE_BYTES) // process_ram))

    frontdoor_core = t.frontdoor_rps_per_core * t.cpu_share
    frontdoor_cores = viewers * reloads / frontdoor_core
    subscriber_core = t.subscriber_calls_per_core * t.cpu_share
    subscriber_calls = viewers * (authorizes + heartbeats)
    subscriber_cores = subscriber_calls / subscriber_core

    per_channel = channel_cores(t, t.profile)
    units = t.channels * channel_cost(t.profile)
    # The farm places by units; the measured CPU may need more nodes than they say.
    nodes = max(math.ceil(units / t.node_capacity_units),
                math.ceil(t.channels * per_channel / t.host_cores))  # fmt: skip

    viewer_mbps = (settle.video_kbps + settle.audio_kbps) / 1000
    ladder_bps = sum((r.video_kbps + r.audio_kbps) * 1000 for r in profile.rungs)
    per_village = viewers / t.village_edges
    watched = distinct_channels(per_village, t.channels, t.zipf)
    edge_gbps = viewers * viewer_mbps / 1000
    uplink_gbps = t.village_edges * watched * viewer_mbps / 1000
    origin_gbps = uplink_gbps * (1 - t.parent_hit_ratio)
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
        redis_bytes_per_100k=PER * (m.subscriber + t.viewer_share * m.lease)
        + min(PER, t.audit_maxlen) * m.audit_entry,
        reloads=reloads,
        authorizes=authorizes,
        heartbeats=heartbeats,
        redis_per_viewer=per_viewer,
        redis_per_100k=per_viewer.times(PER),
        redis_cores=redis_cores,
        redis_primaries=primaries,
        redis_primaries_for_memory=by_memory,
        redis_processes_per_host=per_host,
        redis_hosts=math.ceil(primaries * (1 + t.redis_replicas) / per_host) if per_host else 0,
        largest_part_fits=bool(usable) and largest <= usable,
        frontdoor_rps=viewers * reloads,
        frontdoor_cores_per_100k=PER * reloads / frontdoor_core,
        frontdoor_cores=frontdoor_cores,
        frontdoor_hosts=frontdoor_hosts(t),
        controller_replicas=replicas,
        controller_edges=on_edges,
        controller_refreshes=refreshes,
        redis_controller=controller,
        controller_peer_cores=peer_cores,
        subscriber_calls=subscriber_calls,
        subscriber_cores_per_100k=PER * (authorizes + heartbeats) / subscriber_core,
        subscriber_cores=subscriber_cores,
        subscriber_hosts=max(2, math.ceil(subscriber_cores / t.host_cores) + 1),
        channel_cores=per_channel,
        transcode_cores=t.channels * per_channel,
        transcode_units=units,
        # One node more than the channels need, so a drain or a dead node has somewhere to go.
        transcode_nodes=nodes + 1,
        viewer_mbps=viewer_mbps,
        viewers_per_village=per_village,
        village_egress_mbps=per_village * viewer_mbps,
        village_channels=watched,
        village_uplink_mbps=watched * viewer_mbps,
        edge_gbps_total=edge_gbps,
        # One edge a village at least; more where a village outgrows one host.
        edges=max(t.village_edges, math.ceil(edge_gbps / t.edge_gbps)),
        uplink_gbps_total=uplink_gbps,
        parent_edges=math.ceil(uplink_gbps / t.edge_gbps),
        origin_gbps_total=origin_gbps,
        # At least two: each origin holds the whole archive, so one can be lost.
        origins=max(2, math.ceil(origin_gbps / t.origin_gbps)),
        origin_disk_bytes=t.channels * ladder_bps / 8 * t.catchup_days * 86_400,
    )
