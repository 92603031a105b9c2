"""What stands between the public internet and the front door's handlers.

- :class:`ClientAddresses`: the box's address, from ``X-Forwarded-For`` only
  when the peer is a trusted proxy (else the peer itself), so IP-bound URLs
  work behind a load balancer and nobody can claim another address.
- :class:`ConnectionLimits`: a cap on open connections, in total and per
  address, enforced as connections are accepted (slow-loris floods are
  closed before they cost a file descriptor each for minutes).
- :class:`AddressWatch`: a box token used from more addresses at once than a
  box has is refused and logged (a leaked or shared token).
- :class:`FetchLimiter`: requests per box token per minute, counted in-process
  (no I/O on the hot path) and summed across replicas through Redis every
  ``sync_seconds``, so the limit holds for the whole fleet within that bound.
- :class:`LoginGuard`: failed logins per box and per address, with lockouts an
  operator can clear (``headend ratelimit clear login-box <mac>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web
from redis.exceptions import RedisError

from headend.errors import Unavailable
from headend.settings import Network

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# X-Forwarded-For entries read at most (a long header is not a reason to work hard).
_MAX_HOPS = 16
# How long a guard leaves an unreachable Redis alone before trying it again.
_STORE_RETRY_SECONDS = 1.0


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class ClientAddresses:
    """The calling box's address, trusting forwarded headers only from trusted proxies."""

    def __init__(self, trusted: Iterable[Network] = ()) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr in net for net in self._trusted)

    def of(self, request: web.BaseRequest) -> str:
        """The nearest untrusted address on the path: the peer, or, when the peer is a
        trusted proxy, the right-most ``X-Forwarded-For`` entry that is not one."""
        peer = request.remote or ""
        if not self._trusted:
            return peer
        addr = _address(peer)
        if addr is None or not self._is_trusted(addr):
            return peer
        hops = request.headers.get("X-Forwarded-For", "").split(",")[-_MAX_HOPS:]
        for hop in reversed(hops):
            hop_addr = _address(hop)
            if hop_addr is None:
                # A malformed entry: everything left of it was written by the client.
                return str(addr)
            addr = hop_addr
            if not self._is_trusted(addr):
                return str(addr)
        return str(addr)


def raise_fd_limit(wanted: int) -> int:
    """Lift this process's open-file limit towards ``wanted`` (up to the hard limit) and
    return it: Debian's default soft limit (1024) would make the connection cap moot,
    every socket past it failing with EMFILE instead of being refused cleanly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class ConnectionLimits:
    """Caps on open connections (total and per address) for one aiohttp server."""

    def __init__(self, *, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.open = 0
        self.refused = 0
        self._per: Counter[str] = Counter()
        self._owner: dict[int, str] = {}

    def install(self, server: Any) -> None:
        """Wrap ``server.connection_made``/``connection_lost`` (an aiohttp ``web.Server``)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else ""
            if self.open >= self.max_total or self._per[address] >= self.max_per_address:
                self.refused += 1
                transport.abort()
                return
            self.open += 1
            self._per[address] += 1
            self._owner[id(handler)] = address

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            address = self._owner.pop(id(handler), None)
            if address is not None:
                self.open -= 1
                self._per[address] -= 1
                if self._per[address] <= 0:
                    del self._per[address]
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost


class AddressWatch:
    """Refuses a box token seen from more than ``max_addresses`` addresses within
    ``window_seconds`` (across replicas, through Redis); the check costs I/O only when a
    token shows up from an address this replica has not confirmed recently."""

    def __init__(
        self,
        redis: Any,
        *,
        max_addresses: int,
        window_seconds: float,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self._max = max_addresses
        self._window = window_seconds
        self._clock = clock
        self._confirmed: dict[tuple[str, str], float] = {}
        # After a failed check the store is left alone this long: a box request
        # must not wait for Redis's retries while it is down.
        self._skip_until = 0.0

    def confirmed(self, token_id: str, address: str) -> bool:
        """Was the token confirmed from ``address`` recently (a request that needs no I/O
        and no coroutine: the hot path's answer)?"""
        seen = self._confirmed.get((token_id, address))
        return seen is not None and self._clock() - seen < self._window / 4

    async def allow(self, token_id: str, address: str) -> bool:
        """False when the token is in use from too many addresses at once."""
        if self.confirmed(token_id, address):
            return True
        now = self._clock()
        key = (token_id, address)
        if now < self._skip_until:
            return True
        name = f"fd:addr:{{{token_id}}}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(name, {address: now})
                pipe.zremrangebyscore(name, 0, now - self._window)
                pipe.zcard(name)
                pipe.expire(name, int(self._window) + 1)
                _, _, count, _ = await pipe.execute()
        except (RedisError, OSError):
            # The store is down: this check cannot be made; the others still are.
            self._skip_until = now + _STORE_RETRY_SECONDS
            return True
        if len(self._confirmed) > 100_000:
            self._confirmed.clear()
        if int(count) > self._max:
            log.warning(
                "box token used from several addresses at once",
                extra={"token_id": token_id, "client": address, "addresses": int(count)},
            )
            return False
        self._confirmed[key] = now
        return True


class FetchLimiter:
    """Box requests per token per minute, summed across replicas every ``sync_seconds``;
    ``name`` tells apart the budgets kept this way (``fd:<name>:{<token>}:<minute>``)."""

    def __init__(
        self,
        redis: Any,
        *,
        per_minute: int,
        name: str = "fetch",
        sync_seconds: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self.name = name
        self.per_minute = per_minute
        self.sync_seconds = sync_seconds
        self._clock = clock
        self._minute = self._now_minute()
        self._minute_ends = (self._minute + 1) * 60  # when allow() must roll over
        self._local: Counter[str] = Counter()  # this minute, this replica
        self._unsent: Counter[str] = Counter()
        self._fleet: dict[str, int] = {}  # this minute, every replica (last sync)

    def _now_minute(self) -> int:
        return int(self._clock() // 60)

    def _roll(self) -> None:
        minute = self._now_minute()
        if minute != self._minute:
            self._minute = minute
            self._minute_ends = (minute + 1) * 60
            self._local.clear()
            self._unsent.clear()
            self._fleet.clear()

    def allow(self, token_id: str) -> bool:
        """Count one request; False once the token is over its per-minute budget (every
        box request passes here: each count is read and written once)."""
        if self._clock() >= self._minute_ends:
            self._roll()
        local = self._local[token_id] + 1
        self._local[token_id] = local
        unsent = self._unsent[token_id] + 1
        self._unsent[token_id] = unsent
        fleet = self._fleet.get(token_id)
        return (local if fleet is None else max(local, fleet + unsent)) <= self.per_minute

    async def sync(self) -> None:
        """Send this replica's new counts and read back the fleet's totals."""
        self._roll()
        if not self._unsent:
            return
        sending, minute = dict(self._unsent), self._minute
        self._unsent.clear()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for token_id, n in sending.items():
                    name = f"fd:{self.name}:{{{token_id}}}:{minute}"
                    pipe.incrby(name, n)
                    pipe.expire(name, 120)
                results = await pipe.execute()
        except (RedisError, OSError):
            # Keep counting locally; the next sync sends what this one could not.
            self._unsent.update(sending)
            return
        if minute == self._minute:
            for token_id, total in zip(sending, results[::2], strict=True):
                self._fleet[token_id] = int(total)

    async def run(self) -> None:
        """Sync every ``sync_seconds`` until cancelled (run under a ``Supervisor``; an
        outage is not a failure here: :meth:`sync` keeps counting locally)."""
        while True:
            await asyncio.sleep(self.sync_seconds)
            await self.sync()


class Throttle(Protocol):
    """A failed-attempt lockout per key (``headend.ratelimit.RateLimiter``)."""

    async def check(self, key: str) -> Any: ...
    async def fail(self, key: str) -> Any: ...
    async def succeed(self, key: str) -> None: ...


class LoginGuard:
    """Failed logins per box (MAC) and per address, each locked out past its limit.

    A success forgets the box's failures but not the address's: one good box behind
    an address must not reset the count of an attacker guessing from it. An address
    lockout seen once is remembered in-process for at most ``memo_seconds``, so a
    brute-force flood from a locked address costs no Redis round trip and no body
    parsing per attempt (an operator's unlock of an address reaches every replica
    within that bound; a box's unlock at once). When Redis cannot be
    reached the guard lets logins through (logged): the subscriber service still
    checks every secret.
    """

    def __init__(
        self,
        *,
        per_box: Throttle,
        per_address: Throttle,
        memo_seconds: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._box = per_box
        self._address = per_address
        self._memo_seconds = memo_seconds
        self._clock = clock
        self._locked: dict[str, float] = {}  # address -> locked until (monotonic)

    def _remembered(self, address: str) -> float:
        until = self._locked.get(address)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locked[address]
            return 0.0
        return left

    def _remember(self, address: str, decision: Any) -> float:
        if decision.allowed:
            return 0.0
        wait = float(decision.retry_after_seconds)
        if len(self._locked) > 100_000:
            self._locked.clear()
        self._locked[address] = self._clock() + min(wait, self._memo_seconds)
        return wait

    async def address_wait(self, address: str) -> float:
        """Seconds until ``address`` may try a login again (0: now); checked before the
        request body is even read, from memory while a lockout is remembered."""
        remembered = self._remembered(address)
        if remembered:
            return remembered
        try:
            return self._remember(address, await self._address.check(address))
        except Unavailable:
            log.warning("login throttle unavailable: letting the login through")
            return 0.0

    async def box_wait(self, mac: str) -> float:
        """Seconds until box ``mac`` may try a login again (0: now); always asks Redis, so
        an operator's unlock of a box takes effect at once."""
        try:
            decision = await self._box.check(mac)
        except Unavailable:
            log.warning("login throttle unavailable: letting the login through")
            return 0.0
        return 0.0 if decision.allowed else float(decision.retry_after_seconds)

    async def failed(self, mac: str, address: str) -> None:
        """Count a failed login against the box and the address."""
        with contextlib.suppress(Unavailable):
            await self._box.fail(mac)
            self._remember(address, await self._address.fail(address))

    async def succeeded(self, mac: str) -> None:
        """The box proved its secret."""
        with contextlib.suppress(Unavailable):
            await self._box.succeed(mac)
