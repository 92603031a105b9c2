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
- **the first window** (every link): what arrives while nothing is in flight in that
  direction (an answer after its request) is a burst; its first 16 kB
  (:data:`INITIAL_WINDOW`: TCP's initial window of 10 segments, and about the window a
  1%-loss link holds, Mathis's ``1.22 / sqrt(p)`` = 12 segments) come one way's latency
  after they arrived, the rest of the burst no sooner than a round trip later (the ACK
  clock: the sender waits for the first window's acknowledgements). Without it a 24 kB
  segment would be one chunk at the first byte and 8 kB more a moment later, and a
  player that times from the first byte (as hls.js does) would see 3x the link's rate.
  Slow start beyond that first round is not modelled (nor the ``tbf`` queue's own drops,
  which real TCP over the veth repairs in microseconds), so long transfers run at the
  Mathis bound from their second round.

The random draws come from a seeded :class:`random.Random`, so a run is repeatable for
the same traffic.

**Service time.** The proxy also times each request's answer without the link in it:
from the moment it wrote a request's first chunk to the service until the answer's first
chunk came back (:class:`ServiceTimes`, by port and by kind of request: login, master,
playlist, segment). That splits a box's startup into link and platform: a slow master
seen by a box is either its round trips or the front door's own time, and this says
which.

**Its own process.** The QoE bench runs the front door in its own process's event loop;
a proxy sharing that loop would add the front door's queueing to every chunk of every
link (an edge's segment would wait behind masters being answered), which no real link
does. :func:`proxy_process` runs the proxy in a process of its own (``spawn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import multiprocessing
import queue
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MSS = 1448
CHUNK = 16 * 1024
# The bytes of a burst that go in its first round: about TCP's initial window of 10
# segments (14,480 bytes), rounded to the proxy's chunk.
INITIAL_WINDOW = CHUNK


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
        self.released = -math.inf  # when the previous chunk was released (monotonic)
        self.burst = -math.inf  # when the current burst's first chunk was released
        self.burst_bytes = 0
        self.pending_handshake = handshake

    def release_at(self, arrived: float, size: int) -> float:
        link = self.link
        at = arrived + link.one_way_ms / 1000
        if self.pending_handshake:
            at += link.rtt_seconds
            self.pending_handshake = False
        if arrived >= self.released:  # nothing in flight: a new burst, its first window
            self.burst, self.burst_bytes = at, 0
        self.burst_bytes += size
        if self.burst_bytes > INITIAL_WINDOW:  # the rest waits for the first's acknowledgements
            at = max(at, self.burst + link.rtt_seconds)
        if link.loss > 0:
            if self.rng.random() < 1 - (1 - link.loss) ** math.ceil(size / MSS):
                at += link.rtt_seconds
            at = max(at, self.released + size * 8 / link.paced_bps())
        self.released = max(at, self.released)
        return self.released


_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ")


def request_kind(chunk: bytes) -> str:
    """The kind of request a chunk starts ("" when it does not start one): ``login``,
    ``master``, ``playlist`` (any other ``.m3u8``; at the front door, the variant's 302),
    ``segment`` (``.ts``, ``.m4s``, ``.mp4``) or ``other``."""
    if not chunk.startswith(_METHODS):
        return ""
    parts = chunk[:512].split(b" ", 2)
    path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
    if path.endswith(b"/api/login"):
        return "login"
    if path.endswith(b"/master.m3u8"):
        return "master"
    if path.endswith(b".m3u8"):
        return "playlist"
    if path.endswith((b".ts", b".m4s", b".mp4")):
        return "segment"
    return "other"


@dataclass
class ServiceTimes:
    """The service's own time per (port, kind of request), in seconds: request written
    to it, to its answer's first chunk."""

    seconds: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    # The proxy's own event loop lag (:func:`loop_lag`): what the proxy adds to a link.
    lag_seconds: list[float] = field(default_factory=list)

    def add(self, port: int, kind: str, seconds: float) -> None:
        """One answer."""
        self.seconds.setdefault((port, kind), []).append(seconds)


LAG_PROBE_SECONDS = 0.1


async def loop_lag(into: list[float], every: float = LAG_PROBE_SECONDS) -> None:
    """Append how late this event loop wakes a task sleeping ``every`` seconds, until
    cancelled: a harness process that is late delays whatever it measures or shapes."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(every)
        into.append(max(0.0, time.monotonic() - asked - every))


class _Exchanges:
    """One connection's requests in flight (HTTP/1.1 answers come in request order)."""

    def __init__(self, port: int, times: ServiceTimes) -> None:
        self.port = port
        self.times = times
        self.pending: deque[tuple[str, float]] = deque()

    def sent(self, chunk: bytes) -> None:
        if kind := request_kind(chunk):
            self.pending.append((kind, time.monotonic()))

    def answered(self) -> None:
        if self.pending:
            kind, at = self.pending.popleft()
            self.times.add(self.port, kind, time.monotonic() - at)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: _Direction | None,
    *, on_read: Callable[[bytes], None] | None = None,
    on_write: Callable[[bytes], None] | None = None,
) -> None:  # fmt: skip
    """Copy ``reader`` to ``writer``, each chunk released when ``direction`` says."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while chunk := await reader.read(CHUNK):
            now = time.monotonic()
            if on_read is not None:
                on_read(chunk)
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
            if on_write is not None:
                on_write(chunk)
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
        self.times = ServiceTimes()
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
        exchanges = _Exchanges(port, self.times)
        answered = lambda _: exchanges.answered()  # noqa: E731
        try:
            await asyncio.gather(
                _pump(reader, up_writer, up, on_write=exchanges.sent),
                _pump(up_reader, writer, down, on_read=answered),
            )
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


# ---- the proxy in a process of its own


def _serve(
    host: str, ports: list[int], subnets: dict[str, LinkProfile], seed: int, stop: Any, out: Any
) -> None:
    """The child: say "ready", serve until ``stop`` is set, then hand the times back."""

    async def run() -> ServiceTimes:
        async with shaping_proxy(host, ports, links_by_subnet(subnets), seed=seed) as proxy:
            out.put(("ready", None))
            lag = asyncio.create_task(loop_lag(proxy.times.lag_seconds))
            # Polled: a worker blocked in ``stop.wait`` would hold one of the executor's few.
            while not stop.is_set():  # noqa: ASYNC110 (a process's event, not an asyncio one)
                await asyncio.sleep(0.2)
            lag.cancel()
            return proxy.times

    try:
        out.put(("ok", asyncio.run(run())))
    except BaseException as err:  # reported to the parent, which raises it
        out.put(("error", f"{type(err).__name__}: {err}"))


class ProxyProcess:
    """A :class:`ShapingProxy` in a child process; its service times once it stopped."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.times = ServiceTimes()


@contextlib.asynccontextmanager
async def proxy_process(
    host: str, ports: Iterable[int], subnets: dict[str, LinkProfile], *, seed: int = 21,
    start_seconds: float = 30,
) -> AsyncIterator[ProxyProcess]:  # fmt: skip
    """The proxy for ``ports`` on ``host``, links by ``subnets`` (CIDR: profile), in its own
    process; stopped (and its :class:`ServiceTimes` filled in) on the way out."""
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_serve, args=(host, list(ports), subnets, seed, stop, out))
    proc.daemon = True
    proc.start()
    handle = ProxyProcess(host)
    try:
        try:
            status, result = await asyncio.to_thread(out.get, True, start_seconds)
        except queue.Empty:
            raise RuntimeError(f"the shaping proxy did not start in {start_seconds} s") from None
        if status != "ready":
            raise RuntimeError(f"the shaping proxy failed: {result}")
        yield handle
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # a dead child leaves no times (killed below)
            status, result = await asyncio.to_thread(out.get, True, start_seconds)
            if status == "ok":
                handle.times.seconds.update(result.seconds)
                handle.times.lag_seconds += result.lag_seconds
        await asyncio.to_thread(proc.join, 10)
        if proc.is_alive():
            proc.kill()
