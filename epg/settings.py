"""The EPG service's settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from epg.alerts.settings import AlertSettings
from epg.store.nownext import NOWNEXT_CACHE_CHANNELS
from headend.redisconn import RedisSettings
from headend.rpc import RpcSettings
from headend.settings import Env, env_choice, env_int, env_redis_url

DEFAULT_PORT = 50051


@dataclass(frozen=True, slots=True)
class EpgSettings:
    """Where the EPG listens, its Redis, and the bounds it enforces on input."""

    rpc: RpcSettings
    redis_url: str | None = None
    redis: RedisSettings = field(default_factory=RedisSettings)
    max_batch_programmes: int = 10_000
    max_upload_bytes: int = 256 * 1024 * 1024
    max_import_bytes: int = 1024 * 1024 * 1024
    changes_maxlen: int = 100_000
    # How long one read of the change stream waits; capped below the Redis socket
    # timeout (``headend.redisconn.block_ms``), so any value is safe.
    watch_block_ms: int = 5_000
    # How often the ``epg_guide_hours_ahead`` gauge is refreshed from the store.
    guide_status_seconds: int = 60
    # Channels whose NowNext answer a replica keeps in memory (``epg.store.nownext``).
    nownext_cache_channels: int = NOWNEXT_CACHE_CHANNELS
    alerts: AlertSettings = field(default_factory=AlertSettings)
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Env) -> EpgSettings:
        """Read ``EPG_*`` and ``ALERTS_*`` variables, ``REDIS_URL`` and ``REDIS_*``; errors name
        the variable."""
        return cls(
            rpc=RpcSettings.from_env(env, "EPG", default_port=DEFAULT_PORT),
            redis_url=env_redis_url(env),
            redis=RedisSettings.from_env(env),
            max_batch_programmes=env_int(
                env, "EPG_MAX_BATCH_PROGRAMMES", 10_000, low=1, high=100_000
            ),
            max_upload_bytes=env_int(
                env, "EPG_MAX_UPLOAD_BYTES", 256 * 1024 * 1024, low=1024, high=4 * 1024**3
            ),
            max_import_bytes=env_int(
                env, "EPG_MAX_IMPORT_BYTES", 1024**3, low=1024, high=16 * 1024**3
            ),
            changes_maxlen=env_int(env, "EPG_CHANGES_MAXLEN", 100_000, low=100, high=10**8),
            watch_block_ms=env_int(env, "EPG_WATCH_BLOCK_MS", 5_000, low=10, high=60_000),
            guide_status_seconds=env_int(env, "EPG_GUIDE_STATUS_SECONDS", 60, low=1, high=3600),
            nownext_cache_channels=env_int(
                env, "EPG_NOWNEXT_CACHE_CHANNELS", NOWNEXT_CACHE_CHANNELS, low=1, high=1_000_000
            ),
            alerts=AlertSettings.from_env(env),
            log_level=env_choice(
                env, "EPG_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ),
        )
