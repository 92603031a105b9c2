"""Settings for the transcode processes: control service, worker, origin (one each)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from epg.owners import OwnersSettings
from headend.contentkeys.kek import DEFAULT_BASE_URL, ContentKeySettings
from headend.redisconn import RedisSettings
from headend.rpc import ClientTls, RpcSettings
from headend.settings import (
    Env,
    Network,
    SettingsError,
    env_bool,
    env_channel_ids,
    env_choice,
    env_float,
    env_int,
    env_networks,
    env_optional,
    env_redis_url,
    env_secret,
    env_str,
    parse_networks,
    split_list,
)
from headend.tasks import Backoff
from transcode.alertcards import AlertCardSettings
from transcode.ladder import ProcessMode
from transcode.sourceurl import LIVE_SCHEMES, VOD_SCHEMES

DEFAULT_GRPC_PORT = 50053
DEFAULT_ORIGIN_PORT = 8080

# Only edges and mid-tiers fetch from the origin; the local stack's are on loopback.
DEFAULT_ORIGIN_NETWORKS = "127.0.0.0/8,::1/128"
# Administratively scoped multicast: where a headend's contribution feeds usually arrive.
DEFAULT_SOURCE_NETWORKS = "239.0.0.0/8"
DEFAULT_LIVE_SOURCE_SCHEMES = "udp,rtp,srt,file"
DEFAULT_VOD_SOURCE_SCHEMES = "file,http,https"


def _origin_root(env: Env) -> Path:
    return Path(env_str(env, "ORIGIN_ROOT", "./var/origin")).resolve()


def _work_dir(env: Env) -> Path | None:
    raw = env_optional(env, "TC_WORK_DIR")
    return None if raw is None else Path(raw).resolve()


def _schemes(env: Env, name: str, default: str, supported: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "") or default
    schemes = split_list(raw.lower())
    for scheme in schemes:
        if scheme not in supported:
            raise SettingsError(
                name, f"{scheme!r} is not a source scheme here (supported: {', '.join(supported)})"
            )
    return schemes


def _media_roots(env: Env) -> tuple[Path, ...]:
    raw = env.get("TC_MEDIA_ROOTS", "")
    roots = []
    for item in split_list(raw):
        if not item.startswith("/"):
            raise SettingsError("TC_MEDIA_ROOTS", f"needs absolute directories, got {item!r}")
        root = Path(item).resolve()
        if root == Path("/"):
            raise SettingsError("TC_MEDIA_ROOTS", "the file system root cannot be a media root")
        roots.append(root)
    return tuple(roots)


def _redis(env: Env) -> str:
    url = env_redis_url(env)
    if url is None:
        raise SettingsError(
            "REDIS_URL", "is required (a redis://, rediss://, unix:// or redis+sentinel:// URL)"
        )
    return url


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """How jobs are delivered, reclaimed, retried and dead-lettered."""

    max_deliveries: int = 3
    claim_idle_seconds: float = 30.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Env) -> QueueSettings:
        """Read ``TC_MAX_DELIVERIES``, ``TC_CLAIM_IDLE_SECONDS``, ``TC_RETRY_*_SECONDS``."""
        return cls(
            max_deliveries=env_int(env, "TC_MAX_DELIVERIES", 3, low=1, high=100),
            claim_idle_seconds=env_float(env, "TC_CLAIM_IDLE_SECONDS", 30.0, low=0.2, high=3600),
            retry_base_seconds=env_float(env, "TC_RETRY_BASE_SECONDS", 2.0, low=0, high=3600),
            retry_max_seconds=env_float(env, "TC_RETRY_MAX_SECONDS", 60.0, low=0, high=86_400),
        )


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Where jobs and channels may read from; ``transcode.sources`` enforces it."""

    live_schemes: tuple[str, ...] = split_list(DEFAULT_LIVE_SOURCE_SCHEMES)
    vod_schemes: tuple[str, ...] = split_list(DEFAULT_VOD_SOURCE_SCHEMES)
    networks: tuple[Network, ...] = parse_networks(DEFAULT_SOURCE_NETWORKS)
    media_roots: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> SourceSettings:
        """Read ``TC_LIVE_SOURCE_SCHEMES``, ``TC_VOD_SOURCE_SCHEMES``, ``TC_SOURCE_NETWORKS``
        and ``TC_MEDIA_ROOTS``."""
        return cls(
            live_schemes=_schemes(
                env, "TC_LIVE_SOURCE_SCHEMES", DEFAULT_LIVE_SOURCE_SCHEMES, LIVE_SCHEMES
            ),
            vod_schemes=_schemes(
                env, "TC_VOD_SOURCE_SCHEMES", DEFAULT_VOD_SOURCE_SCHEMES, VOD_SCHEMES
            ),
            networks=env_networks(env, "TC_SOURCE_NETWORKS", DEFAULT_SOURCE_NETWORKS),
            media_roots=_media_roots(env),
        )


@dataclass(frozen=True, slots=True)
class MulticastSettings:
    """How a node runs its channels' multicast outputs (``transcode.live.multicast``), one
    process per channel, which reads these same variables."""

    # Off: a node on no managed network sends nothing even for channels that have an output.
    enabled: bool = True
    # How often the process reads the rung's live playlist for a new segment.
    poll_seconds: float = 0.2
    # Segments sent from the live edge at the start: the newest and those before it (one of
    # buffer against publishing jitter).
    start_segments: int = 2
    # More than this many segments waiting (the rung's rate exceeds the mux rate, a stall):
    # jump to the newest, the timeline kept continuous.
    max_behind_segments: int = 3
    # Nothing new published for this long (the node stopped publishing): the process exits,
    # sending nulls, PAT/PMT and PCR until then so boxes hold sync.
    idle_exit_seconds: float = 30.0
    # A segment file larger than this is refused (skipped and logged).
    max_segment_bytes: int = 64 << 20
    # The sending thread spins (yielding) for the last part of each wait, for even gaps
    # (0: sleep only; bench/test_multicast.py measures both).
    spin_microseconds: int = 200
    # A command the process is started through, e.g. ``ip vrf exec mgmt`` or ``ip netns
    # exec iptv`` where the managed network's interface lives in a VRF or namespace.
    exec_prefix: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> MulticastSettings:
        """Read the ``TC_MULTICAST_*`` variables."""
        return cls(
            enabled=env_bool(env, "TC_MULTICAST_ENABLED", True),
            poll_seconds=env_float(env, "TC_MULTICAST_POLL_SECONDS", 0.2, low=0.01, high=5),
            start_segments=env_int(env, "TC_MULTICAST_START_SEGMENTS", 2, low=1, high=10),
            max_behind_segments=env_int(env, "TC_MULTICAST_MAX_BEHIND_SEGMENTS", 3, low=2, high=50),
            idle_exit_seconds=env_float(
                env, "TC_MULTICAST_IDLE_EXIT_SECONDS", 30.0, low=1, high=3600
            ),
            max_segment_bytes=env_int(
                env, "TC_MULTICAST_MAX_SEGMENT_BYTES", 64 << 20, low=188, high=1 << 31
            ),
            spin_microseconds=env_int(
                env, "TC_MULTICAST_SPIN_MICROSECONDS", 200, low=0, high=100_000
            ),
            exec_prefix=tuple(env_str(env, "TC_MULTICAST_EXEC_PREFIX", "").split()),
        )


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """How live channels are supervised: restarts, store outages, a full disk, stopping."""

    # A channel's supervisor or publisher that fails is restarted after this, doubling to the cap.
    restart_first_seconds: float = 0.5
    restart_max_seconds: float = 10.0
    # While Redis is unreachable, each channel's index backlog and status are retried this often.
    store_retry_seconds: float = 0.5
    # One attempt to write to Redis (and a stop's attempt to save its state) gives up after this.
    store_timeout_seconds: float = 2.0
    # A channel stopped by a full disk resumes once this many segments of its ladder fit.
    disk_headroom_segments: int = 4
    disk_poll_seconds: float = 1.0
    # Each of a channel's tasks gets this long to stop before it is abandoned (and logged).
    stop_seconds: float = 5.0
    # A source is switched away from after this long frozen, black or silent (0: not checked),
    # or after this many transport-stream continuity errors within the window (0: not checked).
    freeze_seconds: float = 10.0
    black_seconds: float = 10.0
    silence_seconds: float = 20.0
    cc_errors: int = 50
    cc_window_seconds: float = 10.0
    # A preferred source that failed is taken back once it has read healthy for this long.
    source_holddown_seconds: float = 30.0
    # A running channel's thumbnail (the console's mosaic) is taken at most this often while
    # the console reads it (0: off).
    thumbnail_seconds: float = 10.0
    # Channels whose udp/rtp source is read through a splice relay, its SCTE-35 signals
    # carried into the playlists ("*": every channel; empty: none).
    scte35_channels: frozenset[str] = frozenset()
    # Channels' multicast outputs (``TC_MULTICAST_*``).
    multicast: MulticastSettings = field(default_factory=MulticastSettings)

    @property
    def restart_backoff(self) -> Backoff:
        """The restart delays of a channel's failed tasks."""
        return Backoff(
            first_seconds=self.restart_first_seconds,
            cap_seconds=self.restart_max_seconds,
            jitter=0.1,
        )

    @classmethod
    def from_env(cls, env: Env) -> LiveSettings:
        """Read the ``TC_LIVE_*`` variables (restarts, store, disk headroom, stopping, source
        health and hold-down), ``TC_THUMBNAIL_SECONDS``, ``TC_SCTE35_CHANNELS`` and
        ``TC_MULTICAST_*``."""
        first = env_float(env, "TC_LIVE_RESTART_FIRST_SECONDS", 0.5, low=0.01, high=60)
        cap = env_float(env, "TC_LIVE_RESTART_MAX_SECONDS", 10.0, low=0.01, high=600)
        if cap < first:
            raise SettingsError(
                "TC_LIVE_RESTART_MAX_SECONDS", "must not be below TC_LIVE_RESTART_FIRST_SECONDS"
            )
        return cls(
            restart_first_seconds=first,
            restart_max_seconds=cap,
            store_retry_seconds=env_float(
                env, "TC_LIVE_STORE_RETRY_SECONDS", 0.5, low=0.05, high=30
            ),
            store_timeout_seconds=env_float(
                env, "TC_LIVE_STORE_TIMEOUT_SECONDS", 2.0, low=0.1, high=60
            ),
            disk_headroom_segments=env_int(
                env, "TC_LIVE_DISK_HEADROOM_SEGMENTS", 4, low=1, high=1000
            ),
            disk_poll_seconds=env_float(env, "TC_LIVE_DISK_POLL_SECONDS", 1.0, low=0.05, high=60),
            stop_seconds=env_float(env, "TC_LIVE_STOP_SECONDS", 5.0, low=0.5, high=300),
            freeze_seconds=env_float(env, "TC_LIVE_FREEZE_SECONDS", 10.0, low=0, high=3600),
            black_seconds=env_float(env, "TC_LIVE_BLACK_SECONDS", 10.0, low=0, high=3600),
            silence_seconds=env_float(env, "TC_LIVE_SILENCE_SECONDS", 20.0, low=0, high=3600),
            cc_errors=env_int(env, "TC_LIVE_CC_ERRORS", 50, low=0, high=1_000_000),
            cc_window_seconds=env_float(env, "TC_LIVE_CC_WINDOW_SECONDS", 10.0, low=0.1, high=3600),
            source_holddown_seconds=env_float(
                env, "TC_LIVE_SOURCE_HOLDDOWN_SECONDS", 30.0, low=0.5, high=3600
            ),
            thumbnail_seconds=env_float(env, "TC_THUMBNAIL_SECONDS", 10.0, low=0, high=3600),
            scte35_channels=env_channel_ids(env, "TC_SCTE35_CHANNELS"),
            multicast=MulticastSettings.from_env(env),
        )


def _default_capacity() -> int:
    return 4 * (os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One transcode node: who it is, what it can carry, how long its channel leases last."""

    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    group: str = ""
    # Capacity units (``transcode.farm.placement.channel_cost``): 4 per CPU core by default.
    capacity_units: int = field(default_factory=_default_capacity)
    lease_seconds: float = 6.0
    # How often placement runs (a PUBLISH on ``tc:farm:wake`` runs it at once).
    tick_seconds: float = 1.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def renew_seconds(self) -> float:
        """How often leases are renewed: three times per lease."""
        return self.lease_seconds / 3

    @classmethod
    def from_env(cls, env: Env) -> NodeSettings:
        """Read ``TC_NODE_ID``, ``TC_NODE_GROUP``, ``TC_NODE_CAPACITY``,
        ``TC_NODE_LEASE_SECONDS``, ``TC_NODE_TICK_SECONDS``, ``TC_NODE_METRICS_PORT``."""
        node_id = env_str(env, "TC_NODE_ID", "") or f"{socket.gethostname()}-{os.getpid()}"
        # The id is also the last part of the node's resource name (nodes/{node}).
        if not re.fullmatch(r"[^|/\s]{1,128}", node_id) or not node_id.isprintable():
            raise SettingsError(
                "TC_NODE_ID", "must be at most 128 printable characters without '|', '/' or spaces"
            )
        metrics = env_optional(env, "TC_NODE_METRICS_PORT")
        return cls(
            node_id=node_id,
            group=env_str(env, "TC_NODE_GROUP", ""),
            capacity_units=env_int(
                env, "TC_NODE_CAPACITY", _default_capacity(), low=0, high=100_000
            ),
            lease_seconds=env_float(env, "TC_NODE_LEASE_SECONDS", 6.0, low=0.5, high=600),
            tick_seconds=env_float(env, "TC_NODE_TICK_SECONDS", 1.0, low=0.05, high=60),
            metrics_port=None
            if metrics is None
            else env_int(env, "TC_NODE_METRICS_PORT", 0, low=0, high=65535),
            metrics_host=env_str(env, "TC_NODE_METRICS_HOST", "127.0.0.1"),
        )


@dataclass(frozen=True, slots=True)
class NodeProcessSettings:
    """A standalone ``python -m transcode node`` process."""

    redis_url: str
    origin_root: Path
    node: NodeSettings = field(default_factory=NodeSettings)
    log_level: str = "info"
    redis: RedisSettings = field(default_factory=RedisSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    # The KEK ring, key URI base and default rotation of encrypted channels.
    content_keys: ContentKeySettings = field(default_factory=ContentKeySettings)

    @classmethod
    def from_env(cls, env: Env) -> NodeProcessSettings:
        """Read ``REDIS_URL``, ``ORIGIN_ROOT``, ``TC_NODE_*``, ``TC_LIVE_*``, the sources,
        ``CONTENT_KEY*``."""
        return cls(
            redis_url=_redis(env),
            origin_root=_origin_root(env),
            node=NodeSettings.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "info"),
            redis=RedisSettings.from_env(env),
            sources=SourceSettings.from_env(env),
            live=LiveSettings.from_env(env),
            content_keys=ContentKeySettings.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class CueSyncSettings:
    """The cue reconciler (``transcode.cuesync``): its pace and window, and the channels whose
    programme boundaries are signalled (``"*"``: every one). Its EPG key is the alert
    cards' (``TC_ALERTS_API_KEY``, the farm's EPG playback key)."""

    interval_seconds: float = 2.0
    lookahead_seconds: float = 600.0
    late_seconds: float = 30.0
    programme_channels: frozenset[str] = frozenset()
    programme_seconds: float = 30.0

    def signals_programmes(self, channel_id: str) -> bool:
        """Are ``channel_id``'s programme boundaries signalled?"""
        return "*" in self.programme_channels or channel_id in self.programme_channels

    @classmethod
    def from_env(cls, env: Env) -> CueSyncSettings:
        """Read ``TC_CUE_SYNC_SECONDS``, ``TC_CUE_LOOKAHEAD_SECONDS``, ``TC_CUE_LATE_SECONDS``,
        ``TC_PROGRAMME_CUE_CHANNELS`` and ``TC_PROGRAMME_CUE_SECONDS``."""
        settings = cls(
            interval_seconds=env_float(env, "TC_CUE_SYNC_SECONDS", 2.0, low=0.1, high=300),
            lookahead_seconds=env_float(env, "TC_CUE_LOOKAHEAD_SECONDS", 600.0, low=1, high=86_400),
            late_seconds=env_float(env, "TC_CUE_LATE_SECONDS", 30.0, low=0, high=3600),
            programme_channels=env_channel_ids(env, "TC_PROGRAMME_CUE_CHANNELS"),
            programme_seconds=env_float(env, "TC_PROGRAMME_CUE_SECONDS", 30.0, low=1, high=3600),
        )
        # A signal is queued at the latest one read before it is due: the window must reach
        # past the next read of the cues and of the guide.
        if settings.lookahead_seconds < max(settings.interval_seconds, settings.programme_seconds):
            raise SettingsError(
                "TC_CUE_LOOKAHEAD_SECONDS",
                "must be at least TC_CUE_SYNC_SECONDS and TC_PROGRAMME_CUE_SECONDS",
            )
        return settings


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """The gRPC control service (jobs and live channels, plus archive retention)."""

    rpc: RpcSettings
    redis_url: str
    origin_root: Path
    queue: QueueSettings
    retention_interval_seconds: float = 60.0
    log_level: str = "info"
    redis: RedisSettings = field(default_factory=RedisSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    # The control process also runs a transcode node (single-host installs, ``headend up``).
    embedded_node: bool = True
    node: NodeSettings = field(default_factory=NodeSettings)
    # An encrypted job's rotation when its request names none; the KEKs for key retention.
    content_keys: ContentKeySettings = field(default_factory=ContentKeySettings)
    # The EPG, asked which channels a broadcaster owns (its live status and thumbnails).
    owners: OwnersSettings = field(default_factory=OwnersSettings)
    # The card channels of emergency alerts, read from the same EPG (off without a key).
    alert_cards: AlertCardSettings = field(default_factory=AlertCardSettings)
    # The cues and programme boundaries queued for the live channels (with the same key).
    cue_sync: CueSyncSettings = field(default_factory=CueSyncSettings)

    @classmethod
    def from_env(cls, env: Env) -> ControlSettings:
        """Read ``TRANSCODE_GRPC_*``, ``REDIS_URL``, ``ORIGIN_ROOT``, ``TC_*`` (the alert
        cards' ``TC_ALERT*``, the cues' ``TC_CUE_*`` and ``TC_PROGRAMME_CUE_*`` too),
        ``LOG_LEVEL``, ``CONTENT_KEY*``, ``EPG_TARGET`` and ``GRPC_CLIENT_*``."""
        return cls(
            rpc=RpcSettings.from_env(env, "TRANSCODE", default_port=DEFAULT_GRPC_PORT),
            redis_url=_redis(env),
            origin_root=_origin_root(env),
            queue=QueueSettings.from_env(env),
            retention_interval_seconds=env_float(
                env, "TC_RETENTION_INTERVAL_SECONDS", 60.0, low=0.1, high=86_400
            ),
            log_level=env_str(env, "LOG_LEVEL", "info"),
            redis=RedisSettings.from_env(env),
            sources=SourceSettings.from_env(env),
            live=LiveSettings.from_env(env),
            embedded_node=env_bool(env, "TC_EMBEDDED_NODE", True),
            node=NodeSettings.from_env(env),
            content_keys=ContentKeySettings.from_env(env),
            owners=OwnersSettings.from_env(env),
            alert_cards=AlertCardSettings.from_env(env),
            cue_sync=CueSyncSettings.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """One ``headend worker`` process."""

    redis_url: str
    origin_root: Path
    work_dir: Path | None
    queue: QueueSettings
    consumer: str
    process_mode: ProcessMode = ProcessMode.SINGLE
    metrics_port: int | None = None
    host: str = "127.0.0.1"
    log_level: str = "info"
    redis: RedisSettings = field(default_factory=RedisSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    # The KEK ring, key URI base and provider for encrypted jobs (CONTENT_KEKS is checked
    # when a job asks for encryption, so a worker of clear jobs needs none).
    content_keys: ContentKeySettings = field(default_factory=ContentKeySettings)

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker resets its delivery's idle time: well inside the claim timeout."""
        return max(0.05, self.queue.claim_idle_seconds / 3)

    @classmethod
    def from_env(cls, env: Env) -> WorkerSettings:
        """Read ``REDIS_URL``, ``ORIGIN_ROOT``, ``TC_WORK_DIR``, ``TC_WORKER_NAME``,
        ``TC_PROCESS_MODE``, ``TC_WORKER_METRICS_PORT``, the queue, source and content key
        settings."""
        metrics = env_optional(env, "TC_WORKER_METRICS_PORT")
        return cls(
            redis_url=_redis(env),
            origin_root=_origin_root(env),
            work_dir=_work_dir(env),
            queue=QueueSettings.from_env(env),
            consumer=env_str(env, "TC_WORKER_NAME", f"{socket.gethostname()}-{os.getpid()}"),
            process_mode=ProcessMode(
                env_choice(env, "TC_PROCESS_MODE", "single", ("single", "per_rung"))
            ),
            metrics_port=None
            if metrics is None
            else env_int(env, "TC_WORKER_METRICS_PORT", 0, low=0, high=65535),
            host=env_str(env, "TC_WORKER_METRICS_HOST", "127.0.0.1"),
            log_level=env_str(env, "LOG_LEVEL", "info"),
            redis=RedisSettings.from_env(env),
            sources=SourceSettings.from_env(env),
            content_keys=ContentKeySettings.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class OriginSettings:
    """The HTTP origin."""

    redis_url: str
    origin_root: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_ORIGIN_PORT
    live_max_age_seconds: int = 1
    allowed_networks: tuple[Network, ...] = parse_networks(DEFAULT_ORIGIN_NETWORKS)
    epg_target: str | None = None
    epg_api_key: str | None = None
    # How the EPG client dials: the shared GRPC_CLIENT_* TLS settings (None: plaintext).
    epg_tls: ClientTls | None = None
    log_level: str = "info"
    redis: RedisSettings = field(default_factory=RedisSettings)
    # CONTENT_KEY_BASE_URL: where catch-up playlists send boxes for content keys.
    content_key_base_url: str = DEFAULT_BASE_URL

    @classmethod
    def from_env(cls, env: Env) -> OriginSettings:
        """Read ``REDIS_URL``, ``ORIGIN_ROOT``, ``ORIGIN_HOST``, ``ORIGIN_PORT``,
        ``ORIGIN_LIVE_MAX_AGE_SECONDS``, ``ORIGIN_EPG_TARGET`` / ``ORIGIN_EPG_API_KEY``
        (catch-up by programme id, over TLS per ``GRPC_CLIENT_*``) and
        ``CONTENT_KEY_BASE_URL``."""
        epg_target = env_optional(env, "ORIGIN_EPG_TARGET")
        epg_key = env_secret(env, "ORIGIN_EPG_API_KEY")
        if (epg_target is None) != (epg_key is None):
            raise SettingsError(
                "ORIGIN_EPG_TARGET", "ORIGIN_EPG_TARGET and ORIGIN_EPG_API_KEY go together"
            )
        return cls(
            redis_url=_redis(env),
            origin_root=_origin_root(env),
            host=env_str(env, "ORIGIN_HOST", "127.0.0.1"),
            port=env_int(env, "ORIGIN_PORT", DEFAULT_ORIGIN_PORT, low=0, high=65535),
            live_max_age_seconds=env_int(env, "ORIGIN_LIVE_MAX_AGE_SECONDS", 1, low=0, high=60),
            allowed_networks=env_networks(env, "ORIGIN_ALLOWED_NETWORKS", DEFAULT_ORIGIN_NETWORKS),
            epg_target=epg_target,
            epg_api_key=epg_key,
            epg_tls=ClientTls.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "info"),
            redis=RedisSettings.from_env(env),
            content_key_base_url=ContentKeySettings.from_env(env).base_url,
        )
