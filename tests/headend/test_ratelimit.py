"""The Redis rate limiter against a real Redis: windows, lockouts, replicas, cluster-safe keys."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from headend.errors import InvalidArgument, Unavailable
from headend.ratelimit import (
    InvalidLimit,
    Lockout,
    RateLimiter,
    RateLimitUnavailable,
    lockouts,
)
from headend.redisconn import connect
from headend.redisproc import RedisServer
from tests.support.redisha import ClusterSet


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis_url(redis_server: RedisServer, redis_cluster: ClusterSet | None) -> str:
    """The URL of the Redis the ``redis`` fixture talks to (a cluster's with TEST_REDIS)."""
    return redis_server.url if redis_cluster is None else redis_cluster.url


@pytest.fixture
async def replica(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A second, independent client: what another front-door replica would hold."""
    client = connect(redis_url)
    yield client
    await client.aclose()


def login(redis: aioredis.Redis, clock: Clock | None, **overrides: object) -> RateLimiter:
    options: dict[str, object] = {
        "name": "login",
        "limit": 3,
        "window_seconds": 10,
        "lockout_after": 3,
        "lockout_seconds": 60,
        "clock": clock,
    }
    options.update(overrides)
    return RateLimiter(redis, **options)  # type: ignore[arg-type]


async def test_hits_are_counted_in_a_sliding_window(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    seen = []
    for _ in range(3):
        seen.append(await limiter.hit("10.0.0.1"))
        clock.advance(1)
    assert [(d.allowed, d.remaining) for d in seen] == [(True, 2), (True, 1), (True, 0)]
    refused = await limiter.hit("10.0.0.1")  # t = 3: the first hit (t = 0) leaves at t = 10
    assert (refused.allowed, refused.retry_after_seconds, refused.remaining) == (False, 7.0, 0)
    assert (await limiter.hit("10.0.0.2")).allowed  # keys are independent
    clock.advance(6.999)
    assert not (await limiter.hit("10.0.0.1")).allowed  # refused hits were not counted...
    clock.advance(0.001)
    again = await limiter.hit("10.0.0.1")  # ...so the slot opens exactly when promised
    assert (again.allowed, again.remaining) == (True, 0)


async def test_redis_time_is_the_default_clock(redis: aioredis.Redis) -> None:
    limiter = RateLimiter(redis, name="api", limit=2, window_seconds=60)
    assert (await limiter.hit("k")).allowed
    assert (await limiter.hit("k")).allowed
    refused = await limiter.hit("k")
    assert not refused.allowed
    assert 59 < refused.retry_after_seconds <= 60
    assert (await limiter.check("k")).allowed is False


async def test_check_counts_nothing(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    for _ in range(5):
        decision = await limiter.check("k")
        assert (decision.allowed, decision.remaining, decision.locked) == (True, 3, False)
    assert [k async for k in redis.scan_iter(match="rl:*")] == []


async def test_lockout_after_n_failures_then_it_ends(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    first = await limiter.fail("alice")
    second = await limiter.fail("alice")
    assert [(d.allowed, d.remaining) for d in (first, second)] == [(True, 2), (True, 1)]
    third = await limiter.fail("alice")
    assert (third.allowed, third.locked, third.retry_after_seconds) == (False, True, 60.0)
    clock.advance(15)
    for decision in (
        await limiter.check("alice"),
        await limiter.hit("alice"),
        await limiter.fail("alice"),
    ):
        assert (decision.allowed, decision.locked, decision.retry_after_seconds) == (
            False,
            True,
            45.0,
        )
    assert (await limiter.check("bob")).allowed
    clock.advance(45)
    assert (await limiter.check("alice")).allowed
    assert (await limiter.fail("alice")).remaining == 2  # the count started afresh


async def test_failures_outside_the_window_do_not_add_up(
    redis: aioredis.Redis, clock: Clock
) -> None:
    limiter = login(redis, clock)
    for _ in range(10):
        decision = await limiter.fail("slow")
        clock.advance(6)  # never three failures within 10 s
        assert decision.allowed
    assert await limiter.locked() == []


async def test_success_resets_the_failure_count(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    await limiter.fail("alice")
    await limiter.fail("alice")
    await limiter.succeed("alice")
    assert (await limiter.fail("alice")).remaining == 2
    assert (await limiter.fail("alice")).allowed


async def test_success_does_not_lift_a_lock(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    for _ in range(3):
        await limiter.fail("alice")
    await limiter.succeed("alice")
    assert (await limiter.check("alice")).locked


async def test_operator_clear_and_the_locked_list(redis: aioredis.Redis, clock: Clock) -> None:
    limiter = login(redis, clock)
    other = login(redis, clock, name="pin", lockout_seconds=300)
    for _ in range(3):
        await limiter.fail("alice")
    clock.advance(20)
    for _ in range(3):
        await other.fail("box:aa:bb")
    assert await limiter.locked() == [Lockout("login", "alice", 40.0)]
    assert await lockouts(redis, clock=clock) == [
        Lockout("login", "alice", 40.0),
        Lockout("pin", "box:aa:bb", 300.0),
    ]
    assert await limiter.clear("alice") is True
    assert (await limiter.check("alice")).allowed
    assert await limiter.clear("alice") is False  # nothing left to clear
    assert await lockouts(redis, clock=clock) == [Lockout("pin", "box:aa:bb", 300.0)]


async def test_two_replicas_share_one_state(
    redis: aioredis.Redis, replica: aioredis.Redis, clock: Clock
) -> None:
    one, two = login(redis, clock), login(replica, clock)
    await one.hit("10.0.0.9")
    await two.hit("10.0.0.9")
    assert (await one.hit("10.0.0.9")).remaining == 0
    assert not (await two.hit("10.0.0.9")).allowed
    await one.fail("alice")
    await two.fail("alice")
    assert (await one.fail("alice")).locked
    assert (await two.check("alice")).locked
    assert await two.locked() == [Lockout("login", "alice", 60.0)]
    assert await two.clear("alice")
    assert (await one.check("alice")).allowed


async def test_concurrent_hits_never_exceed_the_limit(redis: aioredis.Redis) -> None:
    limiters = [RateLimiter(redis, name="burst", limit=10, window_seconds=60) for _ in range(4)]
    decisions = await asyncio.gather(*(limiters[i % 4].hit("k") for i in range(60)))
    assert sum(d.allowed for d in decisions) == 10


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("10.0.0.1", id="ip"),
        pytest.param("aa:bb:cc:00:00:01", id="mac"),
        pytest.param("{evil}*?[x]\\%20 ü", id="braces-and-globs"),
    ],
)
async def test_every_key_of_a_call_shares_one_hash_tag(
    redis: aioredis.Redis, clock: Clock, key: str
) -> None:
    limiter = login(redis, clock)
    keys = limiter.keys(key)
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert len(tags) == 1
    assert not set("{}*?[]\\") & set(tags.pop())  # no glob or brace character survives
    assert len({key_slot(k.encode()) for k in keys}) == 1
    await limiter.hit(key)
    for _ in range(3):
        await limiter.fail(key)
    stored = [k async for k in redis.scan_iter()]
    assert {k.decode() for k in stored} <= set(keys)
    assert await limiter.locked() == [Lockout("login", key, 60.0)]
    assert await limiter.clear(key)
    assert [k async for k in redis.scan_iter()] == []


async def test_unreachable_redis_raises_unavailable(tmp_path: Path) -> None:
    # No retries: how long a call waits before failing is the client's policy, not ours.
    client = aioredis.Redis(
        unix_socket_path=str(tmp_path / "nobody.sock"), retry=Retry(NoBackoff(), 0)
    )
    limiter = RateLimiter(client, name="login", limit=3, window_seconds=10, lockout_after=3)
    try:
        for call in (limiter.hit, limiter.check, limiter.fail, limiter.succeed, limiter.clear):
            with pytest.raises(RateLimitUnavailable) as info:
                await call("k")
            assert isinstance(info.value, Unavailable)
        with pytest.raises(RateLimitUnavailable):
            await limiter.locked()
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"name": "Login"}, "name", id="name-case"),
        pytest.param({"name": "a:b"}, "name", id="name-colon"),
        pytest.param({"limit": 0}, "limit", id="limit"),
        pytest.param({"window_seconds": 0}, "window_seconds", id="window"),
        pytest.param({"lockout_after": 0}, "lockout_after", id="lockout-after"),
        pytest.param({"lockout_seconds": -1}, "lockout_seconds", id="lockout-seconds"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    redis: aioredis.Redis, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidLimit) as info:
        login(redis, None, **options)
    assert isinstance(info.value, InvalidArgument)
    assert info.value.field == field


@pytest.mark.parametrize("key", ["", "k" * 513], ids=["empty", "too-long"])
async def test_bad_keys_are_refused(redis: aioredis.Redis, key: str) -> None:
    with pytest.raises(InvalidLimit):
        await login(redis, None).hit(key)


async def test_fail_needs_a_lockout(redis: aioredis.Redis) -> None:
    with pytest.raises(InvalidLimit):
        await RateLimiter(redis, name="api", limit=1, window_seconds=1).fail("k")


# The registration headend/cli.py does, without importing every package's commands.
ENTRY = (
    "import argparse, os, sys\n"
    "from headend import ratelimit_cli\n"
    "parser = argparse.ArgumentParser(prog='headend')\n"
    "url = os.environ['REDIS_URL']\n"
    "ratelimit_cli.register(parser.add_subparsers(required=True), lambda: url)\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


async def ratelimit_cli(url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        "ratelimit",
        *args,
        env={**os.environ, "REDIS_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_lists_and_clears_lockouts(redis: aioredis.Redis, redis_url: str) -> None:
    limiter = RateLimiter(
        redis, name="login", limit=5, window_seconds=60, lockout_after=2, lockout_seconds=600
    )
    for key in ("alice", "{odd} key"):
        await limiter.fail(key)
        await limiter.fail(key)
    code, out, _ = await ratelimit_cli(redis_url, "locked")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["NAME", "KEY", "RETRY_AFTER_SECONDS"]
    assert sorted(line[header.index("KEY") : header.index("RETRY")].rstrip() for line in lines) == [
        "alice",
        "{odd} key",
    ]
    code, out, _ = await ratelimit_cli(redis_url, "locked", "-o", "json")
    assert code == 0
    found = sorted((lock["name"], lock["key"]) for lock in json.loads(out))
    assert found == [("login", "alice"), ("login", "{odd} key")]
    assert all(0 < lock["retry_after_seconds"] <= 600 for lock in json.loads(out))
    code, out, _ = await ratelimit_cli(redis_url, "locked", "-o", "csv")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames == ["name", "key", "retry_after_seconds"]
    assert sorted(row["key"] for row in reader) == ["alice", "{odd} key"]
    code, out, _ = await ratelimit_cli(redis_url, "clear", "login", "{odd} key")
    assert (code, out.strip()) == (0, "cleared the lockout of login '{odd} key'")
    assert (await limiter.check("{odd} key")).allowed
    assert (await limiter.check("alice")).locked
    code, _, err = await ratelimit_cli(redis_url, "clear", "login", "{odd} key")
    assert code == 1
    assert "was not locked" in err
    code, out, _ = await ratelimit_cli(redis_url, "locked", "--name", "pin")
    assert (code, out) == (0, "")
    code, out, _ = await ratelimit_cli(redis_url, "locked", "--name", "pin", "-o", "json")
    assert (code, json.loads(out)) == (0, [])
