"""The rural link lab: villages of boxes behind shaped links, for the QoE tests and bench.

Topology (the simplest one where every box request crosses its link)::

    village namespace "q<n><v>n"           host (the stack: front door, edges, origin)
    boxes 10.<n>.<v>.10, .11, ...  ──veth──▶ 10.<n>.0.1 (on lo): the shaping proxy
        each box's own tbf, both ways          ──▶ 127.0.0.1:<same port> (the real service)

One network namespace per village holds its boxes, each with its own address; a veth
pair joins it to the host. Every box has its own link (a household's DSL line, a
satellite terminal): an ``htb`` root on each end of the veth classifies by the box's
address and a ``tbf`` leaf per box limits that box's bandwidth, both ways. Latency and
loss come from the user-space proxy :mod:`tests.support.shaper`: this kernel has no
``netem`` ("Specified qdisc kind is unknown", checked with ``tc qdisc add ... netem``).
The proxy listens on the lab's service address, reachable from every village over its
veth, for each port the lab is given (the front door's, each edge's), and picks the link
by the box's subnet. Edges registered at that address (``bench.lab.edges_at``) get the
boxes' segment requests over the link too. The proxy runs in a process of its own
(:func:`tests.support.shaper.proxy_process`), not in the event loop of the caller (the
QoE bench's front door): a link's latency must not grow with the front door's queue.
It times every request's service (no link in it): ``Lab.proxy.times`` once the lab is
down.

Needs root and ``ip``/``tc``: :func:`lab_unavailable` says why not (tests skip with it).
Everything is torn down on the way out, also on failure; every command and every box
process is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import multiprocessing
import os
import queue
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.shaper import LinkProfile, ProxyProcess, proxy_process

FIBRE = LinkProfile("fibre", 50_000, 10)
DSL = LinkProfile("dsl", 8_000, 40)
SATELLITE = LinkProfile("satellite", 3_000, 300, 0.01)
PROFILES = (FIBRE, DSL, SATELLITE)

# Each ip/tc batch and each box process is bounded; a box process may overrun its
# playing time by this much (logins, the last segment) before it is killed.
COMMAND_SECONDS = 60
GRACE_SECONDS = 120
POLL_SECONDS = 0.2  # how often a box process's report is looked for
_FIRST_BOX = 10
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/var/run/netns")


def lab_unavailable() -> str:
    """Why the lab cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "the rural link lab needs root (network namespaces, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the rural link lab needs {tool} (iproute2)"
    probe = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, timeout=COMMAND_SECONDS, check=False
    )
    if probe.returncode != 0:
        return f"ip netns is unavailable: {probe.stderr.decode().strip()}"
    return ""


@dataclass(frozen=True, slots=True)
class Village:
    """One village: its link, its namespace and its boxes' addresses."""

    link: LinkProfile
    netns: str
    subnet: str
    boxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Lab:
    """A running lab: the service address every village reaches over its link."""

    host: str
    villages: dict[str, Village]
    proxy: ProxyProcess

    def url(self, port: int) -> str:
        """The URL of a host service's port as a box reaches it."""
        return f"http://{self.host}:{port}"


def _batch(tool: str, lines: Sequence[str], *, netns: str = "", force: bool = False) -> None:
    args = [tool, *(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    done = subprocess.run(
        args, input="\n".join(lines) + "\n", capture_output=True, text=True,
        timeout=COMMAND_SECONDS, check=False,
    )  # fmt: skip
    if done.returncode != 0 and not force:
        raise RuntimeError(f"{tool} -batch failed: {done.stderr.strip()[-2000:]}")


def _shaping(dev: str, match: str, boxes: Sequence[str], rate_kbps: int) -> list[str]:
    """``tc`` lines: one htb class and one tbf leaf per box, classified by ``match``."""
    # The bucket holds at least 10 ms of the rate (the timer's granularity) and 10 packets.
    burst = max(15_000, rate_kbps * 1000 // 8 // 100)
    lines = [f"qdisc add dev {dev} root handle 1: htb r2q 1000"]
    for i, box in enumerate(boxes, start=1):
        lines += [
            f"class add dev {dev} parent 1: classid 1:{i} htb rate 10gbit quantum 60000",
            f"qdisc add dev {dev} parent 1:{i} tbf rate {rate_kbps}kbit burst {burst} "
            "latency 200ms",
            f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip {match} "
            f"{box}/32 flowid 1:{i}",
        ]
    return lines


def _free_octet() -> int:
    used = {p.name for p in _NETNS_DIR.iterdir()} if _NETNS_DIR.exists() else set()
    for _ in range(100):
        octet = random.randint(64, 127)
        if not any(name.startswith(f"q{octet}") for name in used):
            return octet
    raise RuntimeError("no free lab subnet in 10.64-127.0.0/16")


@contextlib.asynccontextmanager
async def rural_lab(
    links: Iterable[LinkProfile], *, boxes: int, ports: Iterable[int]
) -> AsyncIterator[Lab]:
    """One village per link with ``boxes`` boxes each, the proxy forwarding ``ports``."""
    if not 0 < boxes <= 240:
        raise ValueError(f"1-240 boxes per village, not {boxes}")
    octet = _free_octet()
    host = f"10.{octet}.0.1"
    villages: dict[str, Village] = {}
    ip: list[str] = [f"address add {host}/32 dev lo"]
    tc: list[str] = []
    inside_ip: dict[str, list[str]] = {}
    inside_tc: dict[str, list[str]] = {}
    for v, link in enumerate(links, start=1):
        ns, outside, inside = f"q{octet}{v}n", f"q{octet}{v}h", f"q{octet}{v}v"
        subnet = f"10.{octet}.{v}"
        addresses = tuple(f"{subnet}.{_FIRST_BOX + i}" for i in range(boxes))
        villages[link.name] = Village(link, ns, f"{subnet}.0/24", addresses)
        ip += [
            f"netns add {ns}",
            f"link add {outside} type veth peer name {inside}",
            f"link set {inside} netns {ns}",
            f"address add {subnet}.1/24 dev {outside}",
            f"link set {outside} up",
        ]
        inside_ip[ns] = [
            "link set lo up",
            *(f"address add {a}/24 dev {inside}" for a in addresses),
            f"link set {inside} up",
            f"route add default via {subnet}.1",
        ]
        tc += _shaping(outside, "dst", addresses, link.rate_kbps)
        inside_tc[ns] = _shaping(inside, "src", addresses, link.rate_kbps)
    try:
        await asyncio.to_thread(_batch, "ip", ip)
        await asyncio.to_thread(_batch, "tc", tc)
        for ns in inside_ip:
            await asyncio.to_thread(_batch, "ip", inside_ip[ns], netns=ns)
            await asyncio.to_thread(_batch, "tc", inside_tc[ns], netns=ns)
        subnets = {v.subnet: v.link for v in villages.values()}
        async with proxy_process(host, ports, subnets) as proxy:
            yield Lab(host, villages, proxy)
    finally:
        down = [f"netns delete {v.netns}" for v in villages.values()]
        await asyncio.to_thread(_batch, "ip", [*down, f"address del {host}/32 dev lo"], force=True)


def _enter(netns: str) -> None:
    """Move this (single-threaded) process into the network namespace ``netns``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(_NETNS_DIR / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
    finally:
        os.close(fd)


def _in_namespace(netns: str, target: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    _enter(netns)
    try:
        out.put(("ok", target(*args)))
    except BaseException as err:  # reported to the parent, which raises it
        out.put(("error", f"{type(err).__name__}: {err}"))


async def run_in_village(
    village: Village, target: Callable[..., Any], *args: Any, seconds: float
) -> Any:
    """``target(*args)`` in a process inside the village's namespace (``spawn``: a module
    level function, picklable arguments and result); killed after ``seconds`` + grace."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_in_namespace, args=(village.netns, target, args, out), daemon=True)
    proc.start()
    deadline = time.monotonic() + seconds + GRACE_SECONDS
    try:
        # Polled, not a blocking ``out.get`` in a worker thread: the caller's default
        # executor is shared (the origin opens and reads segment files there), and seven
        # villages each holding a worker in a 1 s ``get`` starved it, delaying every
        # origin answer by up to a second.
        while True:
            try:
                status, result = out.get_nowait()
                break
            except queue.Empty:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the boxes of {village.link.name} did not report") from None
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise RuntimeError(f"the boxes of {village.link.name} failed: {result}")
    return result


# ---- a synthetic live channel: the ladder question without transcoding


@dataclass(frozen=True, slots=True)
class SyntheticLadder:
    """A live channel's shape: rungs (total kb/s), segment length and live window."""

    rungs_kbps: tuple[int, ...]
    segment_seconds: float
    window_segments: int = 6


def _synthetic_app(ladder: SyntheticLadder) -> web.Application:
    """HLS of ``ladder``: segments of exactly rate x duration bytes, one more every
    segment length, the window full from the start."""
    duration = ladder.segment_seconds
    epoch = time.time() - ladder.window_segments * duration
    bodies = {k: b"\x47" * (k * 1000 * int(duration * 1000) // 8000) for k in ladder.rungs_kbps}

    async def master(_: web.Request) -> web.Response:
        lines = ["#EXTM3U"]
        for kbps in ladder.rungs_kbps:
            lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={kbps * 1000}", f"{kbps}/index.m3u8"]
        return web.Response(text="\n".join(lines) + "\n")

    async def variant(_: web.Request) -> web.Response:
        newest = math.floor((time.time() - epoch) / duration) - 1
        first = max(0, newest - ladder.window_segments + 1)
        lines = [
            "#EXTM3U",
            f"#EXT-X-TARGETDURATION:{math.ceil(duration)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for n in range(first, newest + 1):
            lines += [f"#EXTINF:{duration:.3f},", f"{n}.ts"]
        return web.Response(text="\n".join(lines) + "\n")

    async def segment(request: web.Request) -> web.Response:
        return web.Response(body=bodies[int(request.match_info["kbps"])])

    app = web.Application()
    app.router.add_get("/master.m3u8", master)
    app.router.add_get("/{kbps:\\d+}/index.m3u8", variant)
    app.router.add_get("/{kbps:\\d+}/{n:\\d+}.ts", segment)
    return app


@contextlib.asynccontextmanager
async def synthetic_channel(ladder: SyntheticLadder) -> AsyncIterator[int]:
    """Serve ``ladder`` on a loopback port (yielded); the master is ``/master.m3u8``."""
    runner = web.AppRunner(_synthetic_app(ladder), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
