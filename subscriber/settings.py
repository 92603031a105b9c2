"""The subscriber service's one settings object, read from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from epg.owners import OwnersSettings
from headend.redisconn import RedisSettings
from headend.rpc import RpcSettings
from headend.settings import Env, env_float, env_int, env_redis_url, env_str
from subscriber.reports.settings import ReportSettings

DEFAULT_PORT = 50052


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """Listening, Redis, the lease, idempotency and import bounds, and viewing reports."""

    rpc: RpcSettings = field(default_factory=RpcSettings)
    redis_url: str | None = None
    redis: RedisSettings = field(default_factory=RedisSettings)
    log_level: str = "info"
    # A lease that misses heartbeats for this long frees its slot.
    lease_ttl_seconds: float = 60.0
    # How long an ended lease stays reserved for its own box (a channel switch).
    lease_grace_seconds: float = 10.0
    default_max_streams: int = 2
    idempotency_ttl_seconds: int = 86_400
    # Rows per Lua call during bulk import (one Redis round trip each).
    import_batch_rows: int = 500
    # Bound on rows in one streamed chunk.
    import_chunk_rows_max: int = 5_000
    audit_maxlen: int = 1_000_000
    reports: ReportSettings = field(default_factory=ReportSettings)
    # The EPG, asked which channels a broadcaster owns (its viewing figures).
    owners: OwnersSettings = field(default_factory=OwnersSettings)

    @classmethod
    def from_env(cls, env: Env) -> SubscriberSettings:
        """Read the ``SUBSCRIBER_*`` and ``REPORTS_*`` variables, ``REDIS_URL``, ``REDIS_*``,
        ``EPG_TARGET`` and ``GRPC_CLIENT_*``."""
        return cls(
            rpc=RpcSettings.from_env(env, "SUBSCRIBER", default_port=DEFAULT_PORT),
            redis_url=env_redis_url(env),
            redis=RedisSettings.from_env(env),
            log_level=env_str(env, "SUBSCRIBER_LOG_LEVEL", "info"),
            lease_ttl_seconds=env_float(
                env, "SUBSCRIBER_LEASE_TTL_SECONDS", 60.0, low=1, high=3600
            ),
            lease_grace_seconds=env_float(
                env, "SUBSCRIBER_LEASE_GRACE_SECONDS", 10.0, low=0, high=600
            ),
            default_max_streams=env_int(env, "SUBSCRIBER_DEFAULT_MAX_STREAMS", 2, low=1, high=16),
            idempotency_ttl_seconds=env_int(
                env, "SUBSCRIBER_IDEMPOTENCY_TTL_SECONDS", 86_400, low=60, high=30 * 86_400
            ),
            import_batch_rows=env_int(env, "SUBSCRIBER_IMPORT_BATCH_ROWS", 500, low=1, high=5_000),
            import_chunk_rows_max=env_int(
                env, "SUBSCRIBER_IMPORT_CHUNK_ROWS_MAX", 5_000, low=1, high=50_000
            ),
            audit_maxlen=env_int(
                env, "SUBSCRIBER_AUDIT_MAXLEN", 1_000_000, low=1_000, high=100_000_000
            ),
            reports=ReportSettings.from_env(env),
            owners=OwnersSettings.from_env(env),
        )
