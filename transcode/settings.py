"""Settings for the transcode processes: control service, worker, origin (one each)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from headend.rpc import RpcSettings
from headend.settings import (
    Env,
    SettingsError,
    env_choice,
    env_float,
    env_int,
    env_optional,
    env_redis_url,
    env_str,
)
from transcode.ladder import ProcessMode

DEFAULT_GRPC_PORT = 50053
DEFAULT_ORIGIN_PORT = 8080


def _origin_root(env: Env) -> Path:
    return Path(env_str(env, "ORIGIN_ROOT", "./var/origin")).resolve()


def _work_dir(env: Env) -> Path | None:
    raw = env_optional(env, "TC_WORK_DIR")
    return None if raw is None else Path(raw).resolve()


def _redis(env: Env) -> str:
    url = env_redis_url(env)
    if url is None:
        raise SettingsError("REDIS_URL", "is required (redis://, rediss:// or unix:// URL)")
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
class ControlSettings:
    """The gRPC control service (jobs and live channels, plus archive retention)."""

    rpc: RpcSettings
    redis_url: str
    origin_root: Path
    queue: QueueSettings
    retention_interval_seconds: float = 60.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Env) -> ControlSettings:
        """Read ``TRANSCODE_GRPC_*``, ``REDIS_URL``, ``ORIGIN_ROOT``, ``TC_*``, ``LOG_LEVEL``."""
        return cls(
            rpc=RpcSettings.from_env(env, "TRANSCODE", default_port=DEFAULT_GRPC_PORT),
            redis_url=_redis(env),
            origin_root=_origin_root(env),
            queue=QueueSettings.from_env(env),
            retention_interval_seconds=env_float(
                env, "TC_RETENTION_INTERVAL_SECONDS", 60.0, low=0.1, high=86_400
            ),
            log_level=env_str(env, "LOG_LEVEL", "info"),
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

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker resets its delivery's idle time: well inside the claim timeout."""
        return max(0.05, self.queue.claim_idle_seconds / 3)

    @classmethod
    def from_env(cls, env: Env) -> WorkerSettings:
        """Read ``REDIS_URL``, ``ORIGIN_ROOT``, ``TC_WORK_DIR``, ``TC_WORKER_NAME``,
        ``TC_PROCESS_MODE``, ``TC_WORKER_METRICS_PORT`` and the queue settings."""
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
        )


@dataclass(frozen=True, slots=True)
class OriginSettings:
    """The HTTP origin."""

    redis_url: str
    origin_root: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_ORIGIN_PORT
    live_max_age_seconds: int = 1
    epg_target: str | None = None
    epg_api_key: str | None = None
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Env) -> OriginSettings:
        """Read ``REDIS_URL``, ``ORIGIN_ROOT``, ``ORIGIN_HOST``, ``ORIGIN_PORT``,
        ``ORIGIN_LIVE_MAX_AGE_SECONDS`` and ``ORIGIN_EPG_TARGET`` / ``ORIGIN_EPG_API_KEY``
        (catch-up by programme id)."""
        epg_target = env_optional(env, "ORIGIN_EPG_TARGET")
        epg_key = env_optional(env, "ORIGIN_EPG_API_KEY")
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
            epg_target=epg_target,
            epg_api_key=epg_key,
            log_level=env_str(env, "LOG_LEVEL", "info"),
        )
