"""The CDN controller's settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from cdn_ctl.errors import CdnError
from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.health import HealthPolicy
from cdn_ctl.routing import RoutePolicy, RoutingSettings
from cdn_ctl.signing import KeyRing
from headend.contentkeys import ContentKeySettings
from headend.redisconn import RedisSettings
from headend.rpc import RpcSettings
from headend.settings import (
    Env,
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_redis_url,
    env_secret,
    env_str,
)

# Settings that were renamed: a deployment still setting the old name is told, not ignored.
_RENAMED = {
    "CDN_SESSION_TTL_SECONDS": "CDN_LEASE_TTL_SECONDS",
    "CDN_SESSION_MBPS": "CDN_LEASE_MBPS",
}


@dataclass(frozen=True, slots=True)
class CdnSettings:
    """Everything ``python -m cdn_ctl`` needs."""

    rpc: RpcSettings
    keys: KeyRing
    redis_url: str | None = None
    redis: RedisSettings = field(default_factory=RedisSettings)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_workers: int = 1
    # The admin listener: routing decisions, steering, debug, metrics (admin API key).
    admin_host: str = "127.0.0.1"
    admin_port: int = 8001
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    route_policy: RoutePolicy = field(default_factory=RoutePolicy)
    probe_interval_seconds: float = 2.0
    refresh_seconds: float = 1.0
    replica_id: str = ""
    log_level: str = "info"
    # The set-top box front door on the same HTTP port (None: routing face only).
    frontdoor: FrontDoorSettings | None = None
    # The content keys the front door hands to boxes (``CONTENT_KEKS`` unset: none).
    content_keys: ContentKeySettings = field(default_factory=ContentKeySettings)

    @classmethod
    def from_env(cls, env: Env) -> CdnSettings:
        """Read ``CDN_*``, ``REDIS_URL``, ``REDIS_*``, ``LOG_LEVEL``, ``FRONTDOOR_*``,
        ``CONTENT_KEK*``/``CONTENT_KEY_*``; ``SettingsError`` names a bad one."""
        raw_keys = env_secret(env, "CDN_SIGNING_KEYS")
        if raw_keys is None:
            raise SettingsError(
                "CDN_SIGNING_KEYS", "required: kid:base64url-secret[,kid:secret...] (>= 16 bytes)"
            )
        for old, new in _RENAMED.items():
            if old in env:
                raise SettingsError(old, f"renamed to {new}: set that instead")
        try:
            keys = KeyRing.parse(raw_keys, env_str(env, "CDN_SIGNING_ACTIVE_KID", ""))
        except CdnError as err:
            raise SettingsError("CDN_SIGNING_KEYS", err.message) from err
        try:
            health = HealthPolicy(
                window=env_int(env, "CDN_HEALTH_WINDOW", 5, low=1, high=100),
                fall=env_int(env, "CDN_HEALTH_FALL", 3, low=1, high=100),
                rise=env_int(env, "CDN_HEALTH_RISE", 2, low=1, high=100),
                hold_down_seconds=env_float(env, "CDN_HOLD_DOWN_SECONDS", 30.0, low=0, high=3600),
                degraded_latency_ms=env_float(
                    env, "CDN_DEGRADED_LATENCY_MS", 500.0, low=1, high=60_000
                ),
                probe_timeout_seconds=env_float(
                    env, "CDN_PROBE_TIMEOUT_SECONDS", 2.0, low=0.05, high=60
                ),
            )
        except CdnError as err:
            raise SettingsError("CDN_HEALTH_FALL", err.message) from err
        return cls(
            rpc=RpcSettings.from_env(env, "CDN", default_port=50054),
            keys=keys,
            redis_url=env_redis_url(env),
            redis=RedisSettings.from_env(env),
            http_host=env_str(env, "CDN_HTTP_HOST", "127.0.0.1"),
            http_port=env_int(env, "CDN_HTTP_PORT", 8000, low=0, high=65535),
            http_workers=env_int(env, "CDN_HTTP_WORKERS", 1, low=1, high=64),
            admin_host=env_str(env, "CDN_ADMIN_HOST", "127.0.0.1"),
            admin_port=env_int(env, "CDN_ADMIN_PORT", 8001, low=0, high=65535),
            routing=RoutingSettings(
                url_ttl_seconds=env_int(env, "CDN_URL_TTL_SECONDS", 30, low=5, high=3600),
                catchup_url_grace_seconds=env_int(
                    env, "CDN_CATCHUP_URL_GRACE_SECONDS", 300, low=0, high=3600
                ),
                bind_client_ip=env_bool(env, "CDN_BIND_CLIENT_IP", True),
                lease_ttl_seconds=env_int(env, "CDN_LEASE_TTL_SECONDS", 60, low=5, high=86_400),
                steering_ttl_seconds=env_int(env, "CDN_STEERING_TTL_SECONDS", 10, low=1, high=3600),
            ),
            health=health,
            route_policy=RoutePolicy(
                balance_factor=env_float(env, "CDN_BALANCE_FACTOR", 1.25, low=1.0, high=10.0),
                lease_mbps=env_float(env, "CDN_LEASE_MBPS", 4.0, low=0.01, high=10_000),
                channel_mbps=env_float(env, "CDN_CHANNEL_MBPS", 8.0, low=0.01, high=10_000),
            ),
            probe_interval_seconds=env_float(
                env, "CDN_PROBE_INTERVAL_SECONDS", 2.0, low=0.05, high=600
            ),
            refresh_seconds=env_float(env, "CDN_REFRESH_SECONDS", 1.0, low=0.05, high=600),
            replica_id=env_str(env, "CDN_REPLICA_ID", f"{socket.gethostname()}-{os.getpid()}"),
            log_level=env_str(env, "LOG_LEVEL", "info"),
            frontdoor=FrontDoorSettings.from_env(env),
            content_keys=ContentKeySettings.from_env(env),
        )
