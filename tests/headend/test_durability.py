"""What an acknowledged write means with replicas: ``WAIT`` on the write's own connection.

Real redis-server master and replica on loopback (no Sentinel needed for this).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
from redis.asyncio import Redis

from headend.redisconn import (
    Durability,
    RedisSettings,
    WriteNotReplicated,
    confirm_later,
    connect,
)
from headend.redisproc import RedisServer
from headend.settings import SettingsError
from subscriber.errors import StoreUnavailable
from subscriber.store import SubscriberStore
from subscriber.store.base import Claim
from subscriber.store.codec import idempotency_key
from tests.support.net import free_port

ASYNC = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its (synced) replica."""
    base = tmp_path_factory.mktemp("durability")
    # No diskless-sync delay: the replica syncs at once (Redis waits 5 s by default).
    master = RedisServer(base / "m", port=free_port(), args=("--repl-diskless-sync-delay", "0"))
    master.start()
    replica = RedisServer(
        base / "r", port=free_port(), args=("--replicaof", "127.0.0.1", str(master.port))
    )
    replica.start()
    with redis.Redis(port=replica.port) as client:
        for _ in range(200):
            if client.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.05)
    yield master, replica
    replica.stop()
    master.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def master(pair: tuple[RedisServer, RedisServer]) -> AsyncIterator[Redis]:
    client = connect(pair[0].url)
    await client.flushall()
    yield client
    await client.aclose()


@ASYNC
async def test_a_write_is_acknowledged_once_the_replica_has_it(
    master: Redis, pair: tuple[RedisServer, RedisServer]
) -> None:
    await Durability(replicas=1).write(master, lambda c: c.set("k", "v"))
    # Acknowledged means on the replica already (no waiting here).
    with redis.Redis(port=pair[1].port) as replica:
        assert replica.get("k") == b"v"


@ASYNC
async def test_too_few_replicas_is_a_retryable_error_not_an_acknowledgement(
    master: Redis,
) -> None:
    with pytest.raises(WriteNotReplicated, match="confirmed by 1 of 2"):
        await Durability(replicas=2, timeout_seconds=0.2).write(master, lambda c: c.set("k", "2"))
    # WriteNotReplicated is a redis TimeoutError: every face already maps it to
    # "unavailable, retry"; the write itself did reach the master.
    assert isinstance(WriteNotReplicated("x"), redis.exceptions.TimeoutError)
    assert await master.get("k") == b"2"


@ASYNC
async def test_within_confirm_later_writes_do_not_wait_and_the_last_confirms_them(
    master: Redis,
) -> None:
    strict = Durability(replicas=2, timeout_seconds=0.2)
    with confirm_later():
        await strict.write(master, lambda c: c.set("a", "1"))  # would fail if it waited
    with pytest.raises(WriteNotReplicated):
        await strict.write(master, lambda c: c.set("record", "1"))


@ASYNC
async def test_no_replicas_asked_means_no_wait_at_all(master: Redis) -> None:
    assert await Durability().write(master, lambda c: c.set("k", "3")) is True


def test_durability_settings_are_read_and_bounded() -> None:
    settings = RedisSettings.from_env(
        {"REDIS_WRITE_REPLICAS": "1", "REDIS_WRITE_TIMEOUT_SECONDS": "0.5"}
    )
    assert settings.durability == Durability(1, 0.5)
    with pytest.raises(SettingsError, match="REDIS_WRITE_REPLICAS"):
        RedisSettings.from_env({"REDIS_WRITE_REPLICAS": "17"})
    with pytest.raises(SettingsError, match="REDIS_WRITE_TIMEOUT_SECONDS"):
        RedisSettings.from_env({"REDIS_WRITE_TIMEOUT_SECONDS": "0"})


def test_the_sentinel_password_never_shows_in_the_settings_repr() -> None:
    settings = RedisSettings.from_env({"REDIS_SENTINEL_PASSWORD": "hunter2"})
    assert settings.sentinel_password == "hunter2"
    assert "hunter2" not in repr(settings)


@ASYNC
async def test_a_sentinel_client_finds_no_master_as_unavailable_not_a_hang() -> None:
    # Nothing listens on these ports: the client gives up within its timeouts.
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/mymaster/0"
    client = connect(url, RedisSettings(retries=0, connect_timeout_seconds=0.2))
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.set("k", "v")
    finally:
        await client.aclose()


@ASYNC
async def test_a_replayed_idempotent_response_is_confirmed_like_the_first(
    master: Redis,
) -> None:
    """A request whose record no replica confirmed was not acknowledged; its retry must not
    be acknowledged either until a replica has the record (a stale master promoted in a
    second failover lost 9 replayed subscribers so, before this)."""
    strict = SubscriberStore(master, durability=Durability(replicas=2, timeout_seconds=0.2))
    claim = await strict.idempotency_claim("c1", "k1", "fp", 60)
    assert isinstance(claim, Claim)
    with pytest.raises(StoreUnavailable):
        await strict.idempotency_finish(claim, "fp", b"response", 60)
    with pytest.raises(StoreUnavailable):
        await strict.idempotency_claim("c1", "k1", "fp", 60)
    # With a replica to confirm it the replay is the first response, its expiry kept.
    one = SubscriberStore(master, durability=Durability(replicas=1, timeout_seconds=1.0))
    assert await one.idempotency_claim("c1", "k1", "fp", 60) == b"response"
    assert 0 < await master.ttl(idempotency_key("c1", "k1")) <= 60
