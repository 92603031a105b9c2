"""The front door's defences on their own: forwarded addresses, token binding, the
fleet-wide fetch limit (real Redis), the open-file limit."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import ip_network
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import make_mocked_request

from cdn_ctl.frontdoor.guard import AddressWatch, ClientAddresses, FetchLimiter
from cdn_ctl.frontdoor.settings import TokenBinding
from headend.settings import parse_networks


class _Transport:
    """The peer address a request came from (what aiohttp reads as ``request.remote``)."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 1234) if name == "peername" else default


def _request(peer: str, forwarded: str = "") -> Any:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return make_mocked_request("GET", "/lineup.m3u", headers=headers, transport=_Transport(peer))


PROXIES = ClientAddresses(parse_networks("10.0.0.0/8, 192.0.2.1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        pytest.param("198.51.100.7", "203.0.113.9", "198.51.100.7", id="untrusted-peer"),
        pytest.param("10.1.1.1", "203.0.113.9", "203.0.113.9", id="trusted-proxy"),
        pytest.param("10.1.1.1", "203.0.113.9, 10.2.2.2", "203.0.113.9", id="proxy-chain"),
        pytest.param("10.1.1.1", "1.2.3.4, 203.0.113.9", "203.0.113.9", id="client-prefix"),
        pytest.param("10.1.1.1", "junk, 203.0.113.9", "203.0.113.9", id="junk-left"),
        pytest.param("10.1.1.1", "203.0.113.9, junk", "10.1.1.1", id="junk-right"),
        pytest.param("10.1.1.1", "", "10.1.1.1", id="no-header"),
        pytest.param("10.1.1.1", "10.3.3.3", "10.3.3.3", id="all-trusted"),
    ],
)
def test_forwarded_for_is_read_only_from_trusted_proxies(
    peer: str, forwarded: str, client: str
) -> None:
    assert PROXIES.of(_request(peer, forwarded)) == client


def test_networks_are_parsed_with_a_clear_error() -> None:
    assert parse_networks("10.0.0.0/8,::1") == (ip_network("10.0.0.0/8"), ip_network("::1/128"))
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks("10.0.0.0/8,not-a-net")


@pytest.mark.parametrize(
    ("mode", "client", "admitted"),
    [
        pytest.param("none", "198.51.100.7", True, id="none"),
        pytest.param("address", "203.0.113.9", True, id="address-same"),
        pytest.param("address", "203.0.113.10", False, id="address-other"),
        pytest.param("prefix", "203.0.113.200", True, id="prefix-same-24"),
        pytest.param("prefix", "203.0.114.9", False, id="prefix-other-24"),
        pytest.param("prefix", "::1", False, id="prefix-other-family"),
        pytest.param("prefix", "garbage", False, id="prefix-garbage"),
    ],
)
def test_token_binding(mode: str, client: str, admitted: bool) -> None:
    assert TokenBinding(mode).admits("203.0.113.9", client) is admitted


class Clock:
    """Wall time the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_020.0

    def __call__(self) -> float:
        return self.now


async def test_fetch_limit_holds_across_replicas(redis: aioredis.Redis) -> None:
    clock = Clock()
    one = FetchLimiter(redis, per_minute=10, clock=clock)
    two = FetchLimiter(redis, per_minute=10, clock=clock)
    assert all(one.allow("tok") for _ in range(6))
    await one.sync()
    # The second replica sees the first one's six after a sync: four more, then refused.
    await two.sync()
    assert two.allow("tok")  # its own first request also sends the fleet count round
    await two.sync()
    assert [two.allow("tok") for _ in range(4)] == [True, True, True, False]
    assert one.allow("other")
    clock.now += 60  # a new minute
    assert two.allow("tok")


async def test_fetch_limit_counts_locally_while_redis_is_away(redis: aioredis.Redis) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = FetchLimiter(dead, per_minute=3, clock=Clock())
    assert [limiter.allow("tok") for _ in range(4)] == [True, True, True, False]
    await limiter.sync()  # keeps its counts for the next sync; raises nothing
    assert not limiter.allow("tok")
    await dead.aclose()


async def test_address_watch_refuses_the_address_too_many(redis: aioredis.Redis) -> None:
    watch = AddressWatch(redis, max_addresses=2, window_seconds=60)
    assert await watch.allow("tok", "203.0.113.1")
    assert await watch.allow("tok", "203.0.113.2")
    assert not await watch.allow("tok", "203.0.113.3")
    assert await watch.allow("other", "203.0.113.3")


def test_open_file_limit_is_raised_towards_the_connection_cap() -> None:
    script = (
        "import resource\n"
        "from cdn_ctl.frontdoor.guard import raise_fd_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "got = raise_fd_limit(4096)\n"
        "assert got == min(4096, hard), got\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == got\n"
        "assert raise_fd_limit(100) == got  # never lowered\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


async def test_a_locked_address_is_refused_from_memory_for_a_bounded_time(
    redis: aioredis.Redis,
) -> None:
    from cdn_ctl.frontdoor.guard import LoginGuard
    from headend.ratelimit import RateLimiter

    def lockout(name: str, failures: int) -> RateLimiter:
        return RateLimiter(
            redis, name=name, limit=failures, window_seconds=60, lockout_after=failures
        )

    clock = Clock()
    guard = LoginGuard(
        per_box=lockout("box", 5), per_address=lockout("address", 2), memo_seconds=5, clock=clock
    )
    for i in range(2):
        await guard.failed(f"02:00:00:00:00:0{i}", "203.0.113.9")
    assert await guard.address_wait("203.0.113.9") > 0
    # The lockout is remembered: even with Redis emptied (an operator's clear), a flood
    # from this address is refused without a round trip until the memo runs out.
    await redis.flushall()
    assert await guard.address_wait("203.0.113.9") > 0
    clock.now += 5.1
    assert await guard.address_wait("203.0.113.9") == 0
    assert await guard.box_wait("02:00:00:00:00:00") == 0
