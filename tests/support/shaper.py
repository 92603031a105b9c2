"""A user-space shaping proxy: a link's latency and loss, where the kernel has no ``netem``.

This kernel has ``tbf`` and ``htb`` but no ``netem`` (``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"), so the rural link lab (:mod:`tests.support.lab`)
shapes bandwidth in the kernel and adds latency and loss here: an asyncio TCP proxy on
the lab's service address that forwards every connection to the same port on loopback.
The link a connection crosses is chosen by the client's address (each village's boxes
come from their own subnet); connections from elsewhere (the host's own health probes)
pass unshaped.

The model, per connection and direction, on the chunks the proxy reads (at most
:data:`CHUNK` bytes, in order; a later chunk never overtakes an earlier one):

- **latency**: each chunk is released ``one_way_ms`` after it arrived. A new connection's
  first request also waits one round trip more: TCP's handshake, which the kernel made
  over the lab's veth in no time.
- **loss** (Mathis et al., "The macroscopic behavior of the TCP congestion avoidance
  algorithm", 1997): a chunk of ``n`` segments (MSS 1448 bytes) loses one with probability
  ``1 - (1 - p)^n``, and such a chunk waits one round trip more (the fast retransmit's
  repair, head-of-line blocking every byte behind it); and the connection's throughput is
  paced at TCP Reno's steady-state bound ``MSS / RTT * sqrt(3 / 2p)`` (about 236 kb/s at
  1% loss and 300 ms one way, a 600 ms round trip): the congestion window halving on each loss.
  Slow start is not modelled (nor the ``tbf`` queue's own drops, which real TCP over the
  veth repairs in microseconds), so short transfers are slightly optimistic and long ones
  at the Mathis bound.

The random draws come from a seeded :class:`random.Random`, so a run is repeatable for
the same traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

MSS = 1448
CHUNK = 16 * 1024


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One kind of link: bandwidth (the kernel's ``tbf``), one-way latency and loss."""

    name: str
    rate_kbps: int
    one_way_ms: float
    loss: float = 0.0

    @property
    def rtt_seconds(self) -> float:
        """The round trip the latency makes."""
        return 2 * self.one_way_ms / 1000

    def paced_bps(self) -> float:
        """TCP Reno's steady-state throughput bound at this loss (inf when lossless)."""
        if self.loss <= 0:
            return math.inf
        return MSS * 8 / self.rtt_seconds * math.sqrt(1.5 / self.loss)


Links = Callable[[str], LinkProfile | None]


class _Direction:
    """One direction of one connection: when each chunk may be released."""

    def __init__(self, link: LinkProfile, rng: random.Random, *, handshake: bool) -> None:
        self.link = link
        self.rng = rng
        self.released = 0.0  # when the previous chunk was released (monotonic)
        self.pending_handshake = handshake

    def release_at(self, arrived: float, size: int) -> float:
        link = self.link
        at = arrived + link.one_way_ms / 1000
        if self.pending_handshake:
            at += link.rtt_seconds
            self.pending_handshake = False
        if link.loss > 0:
            if self.rng.random() < 1 - (1 - link.loss) ** math.ceil(size / MSS):
                at += link.rtt_seconds
            at = max(at, self.released + size * 8 / link.paced_bps())
        self.released = max(at, self.released)
        return self.released


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: _Direction | None
) -> None:
    """Copy ``reader`` to ``writer``, each chunk released when ``direction`` says."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while chunk := await reader.read(CHUNK):
            now = time.monotonic()
            await queue.put((direction.release_at(now, len(chunk)) if direction else now, chunk))
        await queue.put((0.0, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            at, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reading


class ShapingProxy:
    """Listens on ``host`` for every port given and forwards to ``127.0.0.1`` on that port."""

    def __init__(self, host: str, links: Links, *, seed: int = 21) -> None:
        self.host = host
        self.links = links
        self.rng = random.Random(seed)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self, ports: Iterable[int]) -> None:
        """Start forwarding each of ``ports``."""
        for port in ports:
            server = await asyncio.start_server(
                functools.partial(self._accepted, port=port), self.host, port
            )
            self._servers.append(server)

    async def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = self.links(writer.get_extra_info("peername")[0])
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        self._writers |= {writer, up_writer}
        up = _Direction(link, self.rng, handshake=True) if link else None
        down = _Direction(link, self.rng, handshake=False) if link else None
        try:
            await asyncio.gather(_pump(reader, up_writer, up), _pump(up_reader, writer, down))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # every pump sees its connection end
        for server in self._servers:
            await server.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def links_by_subnet(subnets: dict[str, LinkProfile]) -> Links:
    """A client address's link: the profile of the subnet (CIDR) that holds it."""
    networks = [(ipaddress.ip_network(cidr), link) for cidr, link in subnets.items()]

    def link(address: str) -> LinkProfile | None:
        ip = ipaddress.ip_address(address)
        return next((lk for net, lk in networks if ip in net), None)

    return link


@contextlib.asynccontextmanager
async def shaping_proxy(
    host: str, ports: Iterable[int], links: Links, *, seed: int = 21
) -> AsyncIterator[ShapingProxy]:
    """A running :class:`ShapingProxy`, closed on the way out."""
    proxy = ShapingProxy(host, links, seed=seed)
    try:
        await proxy.listen(ports)
        yield proxy
    finally:
        await proxy.close()
