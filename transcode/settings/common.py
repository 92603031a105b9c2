"""What every transcode process reads alike: the default ports and networks, where sources
may come from, and how jobs are queued."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headend.settings import (
    Env,
    Network,
    SettingsError,
    env_float,
    env_int,
    env_networks,
    env_optional,
    env_redis_url,
    env_str,
    parse_networks,
    split_list,
)
from transcode.sourceurl import LIVE_SCHEMES, VOD_SCHEMES

DEFAULT_GRPC_PORT = 50053


DEFAULT_ORIGIN_PORT = 8080


# Only edges and mid-tiers fetch from the origin; the local stack's are on loopback.
DEFAULT_ORIGIN_NETWORKS = "127.0.0.0/8,::1/128"


# Administratively scoped multicast: where a headend's contribution feeds usually arrive.
DEFAULT_SOURCE_NETWORKS = "239.0.0.0/8"


DEFAULT_LIVE_SOURCE_SCHEMES = "udp,rtp,srt,file"


DEFAULT_VOD_SOURCE_SCHEMES = "file,http,https"


def origin_root(env: Env) -> Path:
    return Path(env_str(env, "ORIGIN_ROOT", "./var/origin")).resolve()


def work_dir(env: Env) -> Path | None:
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


def required_redis_url(env: Env) -> str:
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
