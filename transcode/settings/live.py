"""Settings of the live farm: channels, multicast output, nodes and their processes, and
the cue sync."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from headend.contentkeys.kek import ContentKeySettings
from headend.redisconn import RedisSettings
from headend.settings import (
    Env,
    SettingsError,
    env_bool,
    env_channel_ids,
    env_float,
    env_int,
    env_optional,
    env_str,
)
from headend.tasks import Backoff
from transcode.settings.common import SourceSettings, origin_root, required_redis_url


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
            redis_url=required_redis_url(env),
            origin_root=origin_root(env),
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
