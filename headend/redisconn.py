"""The one place Redis clients are built: timeouts, keepalive, health checks and retries.

redis-py's defaults moved under us (8.x times every read out after 5 s, which
cut ``XREAD BLOCK 5000`` feeds every few seconds), so nothing here is left to
the library: every client of every service and CLI comes from :func:`connect`
with the settings below, read once from the environment
(:meth:`RedisSettings.from_env`).

Blocking reads (``XREAD``/``XREADGROUP BLOCK``, ``BLPOP``...) must return
well before the socket timeout fires, or the library reports an outage that
is not one. Stores therefore never pass a block time straight to Redis: they
pass it through :func:`block_ms`, which caps it at :data:`BLOCK_SHARE` of the
client's socket timeout (the rest absorbs a loaded host's scheduling delays;
a quiet feed just asks again).

An outage is an expected state: a connection or timeout error is retried a
few times with exponential backoff and jitter (a restart or failover often
takes well under a second), and then raised as ``redis.exceptions.ConnectionError``
/ ``TimeoutError``, which every face maps to "unavailable, retry shortly".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError

from headend.errors import Unavailable
from headend.settings import Env, SettingsError, env_bool, env_float, env_int

# The part of the socket timeout a blocking read may wait for.
BLOCK_SHARE = 0.5


class RedisUnreachable(Unavailable):
    """Raised when a process cannot reach Redis at start-up (``REDIS_URL`` named)."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How every Redis client connects, waits, checks its connections and retries."""

    # Longest wait for one reply; also bounds a blocking read (see ``block_ms``).
    socket_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 2.0
    # A connection idle this long is PINGed before use (0: never), so a pooled
    # connection that died with a Redis restart is found before a command is lost on it.
    health_check_seconds: float = 10.0
    # TCP keepalive on redis:// and rediss:// connections (Unix sockets have none).
    keepalive: bool = True
    # Connection and timeout errors are retried this often, backing off
    # exponentially (with jitter) from ``retry_base_seconds`` to ``retry_cap_seconds``.
    retries: int = 3
    retry_base_seconds: float = 0.05
    retry_cap_seconds: float = 1.0
    # Connections one client may open: as many as the calls a gRPC server admits at once
    # (redis-py's default of 100 failed heartbeats with "Too many connections" at load).
    max_connections: int = 1000

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        """Read the ``REDIS_*`` client variables; ``SettingsError`` names a bad one."""
        return cls(
            socket_timeout_seconds=env_float(
                env, "REDIS_SOCKET_TIMEOUT_SECONDS", 5.0, low=1.0, high=300.0
            ),
            connect_timeout_seconds=env_float(
                env, "REDIS_CONNECT_TIMEOUT_SECONDS", 2.0, low=0.1, high=60.0
            ),
            health_check_seconds=env_float(
                env, "REDIS_HEALTH_CHECK_SECONDS", 10.0, low=0.0, high=3600.0
            ),
            keepalive=env_bool(env, "REDIS_KEEPALIVE", True),
            retries=env_int(env, "REDIS_RETRIES", 3, low=0, high=20),
            retry_base_seconds=env_float(
                env, "REDIS_RETRY_BASE_SECONDS", 0.05, low=0.001, high=10.0
            ),
            retry_cap_seconds=env_float(env, "REDIS_RETRY_CAP_SECONDS", 1.0, low=0.001, high=60.0),
            max_connections=env_int(env, "REDIS_MAX_CONNECTIONS", 1000, low=4, high=100_000),
        )

    def validate(self) -> None:
        """Refuse values no client could work with, naming the variable."""
        if not 1.0 <= self.socket_timeout_seconds <= 300.0:
            raise SettingsError("REDIS_SOCKET_TIMEOUT_SECONDS", "must be between 1 and 300")
        if not 0.1 <= self.connect_timeout_seconds <= 60.0:
            raise SettingsError("REDIS_CONNECT_TIMEOUT_SECONDS", "must be between 0.1 and 60")
        if not 0.0 <= self.health_check_seconds <= 3600.0:
            raise SettingsError("REDIS_HEALTH_CHECK_SECONDS", "must be between 0 and 3600")
        if not 0 <= self.retries <= 20:
            raise SettingsError("REDIS_RETRIES", "must be between 0 and 20")
        if self.retry_base_seconds <= 0:
            raise SettingsError("REDIS_RETRY_BASE_SECONDS", "must be positive")
        if not 4 <= self.max_connections <= 100_000:
            raise SettingsError("REDIS_MAX_CONNECTIONS", "must be between 4 and 100000")
        if self.retry_cap_seconds < self.retry_base_seconds:
            raise SettingsError(
                "REDIS_RETRY_CAP_SECONDS", "must be at least REDIS_RETRY_BASE_SECONDS"
            )

    @property
    def max_block_ms(self) -> int:
        """The longest block a blocking read may ask for on these clients."""
        return _cap_ms(self.socket_timeout_seconds)

    def client_kwargs(self, url: str) -> dict[str, Any]:
        """The keyword arguments :func:`connect` gives ``Redis.from_url`` for ``url``."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_seconds,
            "socket_connect_timeout": self.connect_timeout_seconds,
            "health_check_interval": self.health_check_seconds,
            "max_connections": self.max_connections,
            # BusyLoadingError (a restarted Redis reading its AOF) is a ConnectionError.
            "retry": Retry(
                EqualJitterBackoff(cap=self.retry_cap_seconds, base=self.retry_base_seconds),
                self.retries,
            ),
        }
        # Unix socket connections take no keepalive argument at all.
        if url.startswith(("redis://", "rediss://")):
            kwargs["socket_keepalive"] = self.keepalive
        return kwargs


def _cap_ms(socket_timeout_seconds: float) -> int:
    return max(1, int(socket_timeout_seconds * BLOCK_SHARE * 1000))


def connect(url: str, settings: RedisSettings | None = None, *, name: str = "") -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) with ``settings``;
    ``name`` is shown by ``CLIENT LIST``. Connects lazily, on the first command."""
    kwargs = (settings or RedisSettings()).client_kwargs(url)
    if name:
        kwargs["client_name"] = name
    return Redis.from_url(url, **kwargs)


async def connect_checked(
    url: str, settings: RedisSettings | None = None, *, name: str = ""
) -> Redis:
    """:func:`connect`, then PING: ``RedisUnreachable`` (naming ``REDIS_URL``) if it fails."""
    client = connect(url, settings, name=name)
    try:
        await client.ping()
    except (RedisError, OSError) as err:
        await client.aclose()
        raise RedisUnreachable(f"cannot reach Redis at REDIS_URL: {err}") from err
    return client


def block_ms(redis: Any, wanted_ms: int) -> int:
    """``wanted_ms`` capped so a blocking read on ``redis`` returns before its socket
    times out (the one place that rule lives; every blocking read goes through it)."""
    kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", None)
    timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    wanted = max(1, int(wanted_ms))  # BLOCK 0 would mean "forever"
    if not timeout:
        return wanted
    return min(wanted, _cap_ms(float(timeout)))
