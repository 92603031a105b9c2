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

A ``redis+sentinel://`` URL (:mod:`headend.redisurl`) gives a client that asks the
Sentinels for the master on every new connection: after a failover, the
connections to the old master fail (a demoted master's ``READONLY`` reply
included), are dropped, and the retries above reconnect to the new one. A
write in flight at the failover fails with a connection or timeout error
("unavailable, retry"), never a hang: every socket has a timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.errors import Unavailable
from headend.redisurl import (
    is_cluster,
    is_sentinel,
    parse_cluster_url,
    parse_sentinel_url,
    redact,
)
from headend.settings import Env, SettingsError, env_bool, env_float, env_int, env_secret

# The part of the socket timeout a blocking read may wait for.
BLOCK_SHARE = 0.5
T = TypeVar("T")
# Set while a request defers its writes' confirmation to its last write (:func:`confirm_later`).
_CONFIRM_LATER: ContextVar[bool] = ContextVar("confirm_later", default=False)


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
    # Acknowledged provisioning and EPG writes wait (WAIT) until this many replicas have
    # them, for at most ``write_timeout_seconds`` (see :class:`Durability`); 0: no wait.
    write_replicas: int = 0
    write_timeout_seconds: float = 1.0
    # gRPC health says NOT_SERVING once Redis has been unreachable this long (storehealth).
    unreachable_grace_seconds: float = 15.0
    # The Sentinels' own password (``redis+sentinel://`` URLs), when they require one.
    sentinel_password: str | None = field(default=None, repr=False)

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
            write_replicas=env_int(env, "REDIS_WRITE_REPLICAS", 0, low=0, high=16),
            write_timeout_seconds=env_float(
                env, "REDIS_WRITE_TIMEOUT_SECONDS", 1.0, low=0.01, high=60.0
            ),
            unreachable_grace_seconds=env_float(
                env, "REDIS_UNREACHABLE_GRACE_SECONDS", 15.0, low=1.0, high=3600.0
            ),
            sentinel_password=env_secret(env, "REDIS_SENTINEL_PASSWORD"),
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
        if not 0 <= self.write_replicas <= 16:
            raise SettingsError("REDIS_WRITE_REPLICAS", "must be between 0 and 16")
        if not 0.01 <= self.write_timeout_seconds <= 60.0:
            raise SettingsError("REDIS_WRITE_TIMEOUT_SECONDS", "must be between 0.01 and 60")
        if not 4 <= self.max_connections <= 100_000:
            raise SettingsError("REDIS_MAX_CONNECTIONS", "must be between 4 and 100000")
        if self.retry_cap_seconds < self.retry_base_seconds:
            raise SettingsError(
                "REDIS_RETRY_CAP_SECONDS", "must be at least REDIS_RETRY_BASE_SECONDS"
            )

    @property
    def durability(self) -> Durability:
        """What an acknowledged provisioning or EPG write waits for."""
        return Durability(self.write_replicas, self.write_timeout_seconds)

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
        if url.startswith(("redis://", "rediss://")) or is_sentinel(url) or is_cluster(url):
            kwargs["socket_keepalive"] = self.keepalive
        return kwargs


class WriteNotReplicated(RedisTimeoutError):
    """The master applied a write but too few replicas confirmed it in time: the caller
    hears "unavailable, retry" (a retry is safe: every such write is idempotent or
    reports that it already happened) rather than an acknowledgement a failover could
    take back."""


@dataclass(frozen=True, slots=True)
class Durability:
    """What "acknowledged" means for a write: on the master alone (``replicas`` 0), or
    also on ``replicas`` replicas (Redis ``WAIT``), confirmed within ``timeout_seconds``.

    ``WAIT`` counts the writes of its own connection, so the write and the ``WAIT`` run
    on one connection taken from the pool (:meth:`write`). A Sentinel failover promotes
    the most up-to-date replica; with ``replicas`` >= 1 every acknowledged write is on
    at least one replica, so no acknowledged write is lost when the master dies (unless
    every replica holding it dies too).

    A write that WAIT could not confirm did happen on the master: its outcome is
    unknown to the caller. A request that records its response for retries (an
    idempotency record) therefore runs its writes under :func:`confirm_later` and
    confirms only the record, its last write: replication keeps the master's order,
    so a replica that has the record has every write before it, and a retry with the
    same key replays the response instead of running the change again.
    """

    replicas: int = 0
    timeout_seconds: float = 1.0

    async def write(self, redis: Any, run: Callable[[Any], Awaitable[T]]) -> T:
        """``run(client)``: the write, on ``redis`` or one connection of it; then WAIT.

        Raises :class:`WriteNotReplicated` when fewer replicas confirmed it in time.
        """
        if self.replicas == 0 or _CONFIRM_LATER.get():
            return await run(redis)
        async with redis.client() as one:
            result = await run(one)
            confirmed = int(await one.wait(self.replicas, int(self.timeout_seconds * 1000)))
        if confirmed < self.replicas:
            raise WriteNotReplicated(
                f"write confirmed by {confirmed} of {self.replicas} replica(s) within "
                f"{self.timeout_seconds:g} s (REDIS_WRITE_REPLICAS)"
            )
        return result


@contextlib.contextmanager
def confirm_later() -> Iterator[None]:
    """Within it, :meth:`Durability.write` does not wait: the request confirms its last
    write, which confirms the ones before it (see :class:`Durability`)."""
    token = _CONFIRM_LATER.set(True)
    try:
        yield
    finally:
        _CONFIRM_LATER.reset(token)


# The default: a write is acknowledged once the master has it.
ON_MASTER = Durability()


def _cap_ms(socket_timeout_seconds: float) -> int:
    return max(1, int(socket_timeout_seconds * BLOCK_SHARE * 1000))


def connect(url: str, settings: RedisSettings | None = None, *, name: str = "") -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://`` or
    ``redis+sentinel://``) with ``settings``; ``name`` is shown by ``CLIENT LIST``.
    Connects lazily, on the first command."""
    settings = settings or RedisSettings()
    kwargs = settings.client_kwargs(url)
    if name:
        kwargs["client_name"] = name
    if is_sentinel(url):
        return _sentinel_master(url, settings, kwargs)
    if is_cluster(url):
        if settings.write_replicas:
            # WAIT needs the write's own connection, which a cluster client does not lend.
            raise SettingsError(
                "REDIS_WRITE_REPLICAS",
                "is not supported on Redis Cluster: set min-replicas-to-write on its masters",
            )
        return _cluster(url, kwargs)  # type: ignore[return-value]
    return Redis.from_url(url, **kwargs)


def _cluster(url: str, kwargs: dict[str, Any]) -> RedisCluster:
    """A Redis Cluster client: commands go to the node owning their keys' slot, so a
    script or transaction keeps its keys in one slot (one hash tag, see ARCHITECTURE)."""
    target = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        **kwargs,
    )


class _SentinelRedis(Redis):
    """A master client that also closes its connections to the Sentinels."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.sentinels.sentinels if self.sentinels is not None else ():
            await client.aclose()


def _sentinel_master(url: str, settings: RedisSettings, kwargs: dict[str, Any]) -> Redis:
    target = parse_sentinel_url(url)
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": settings.connect_timeout_seconds,
            "socket_connect_timeout": settings.connect_timeout_seconds,
            "password": settings.sentinel_password,
            # A Sentinel that does not answer is skipped for the next one at once; the
            # master client's own retries (above) pace the whole discovery.
            "retry": Retry(NoBackoff(), 0),
        },
    )
    client = sentinel.master_for(
        target.service,
        redis_class=_SentinelRedis,
        db=target.db,
        username=target.username,
        password=target.password,
        **kwargs,
    )
    client.sentinels = sentinel
    return client


async def connect_checked(
    url: str, settings: RedisSettings | None = None, *, name: str = ""
) -> Redis:
    """:func:`connect`, then PING: ``RedisUnreachable`` (naming ``REDIS_URL``) if it fails."""
    client = connect(url, settings, name=name)
    try:
        await client.ping()
    except (RedisError, OSError) as err:
        await client.aclose()
        raise RedisUnreachable(f"cannot reach Redis at REDIS_URL ({redact(url)}): {err}") from err
    return client


def block_ms(redis: Any, wanted_ms: int) -> int:
    """``wanted_ms`` capped so a blocking read on ``redis`` returns before its socket
    times out (the one place that rule lives; every blocking read goes through it)."""
    # A single-server client keeps them in its pool; a cluster client on itself.
    kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", None) or getattr(
        redis, "connection_kwargs", None
    )
    timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    wanted = max(1, int(wanted_ms))  # BLOCK 0 would mean "forever"
    if not timeout:
        return wanted
    return min(wanted, _cap_ms(float(timeout)))
