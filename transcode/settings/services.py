"""Settings of the transcode processes a host runs: the control service, the VOD worker and
the origin."""

from __future__ import annotations

import os
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
    env_choice,
    env_float,
    env_int,
    env_networks,
    env_optional,
    env_secret,
    env_str,
    parse_networks,
)
from transcode.alertcards import AlertCardSettings
from transcode.ladder import ProcessMode
from transcode.settings.common import (
    DEFAULT_GRPC_PORT,
    DEFAULT_ORIGIN_NETWORKS,
    DEFAULT_ORIGIN_PORT,
    QueueSettings,
    SourceSettings,
    origin_root,
    required_redis_url,
    work_dir,
)
from transcode.settings.live import CueSyncSettings, LiveSettings, NodeSettings


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
            redis_url=required_redis_url(env),
            origin_root=origin_root(env),
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
            redis_url=required_redis_url(env),
            origin_root=origin_root(env),
            work_dir=work_dir(env),
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
            redis_url=required_redis_url(env),
            origin_root=origin_root(env),
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
