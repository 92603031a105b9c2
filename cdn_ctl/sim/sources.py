"""Where the adaptive player (:mod:`cdn_ctl.sim.abr`) gets its live channel: the front door
journey of a logged-in :class:`~cdn_ctl.sim.stb.SetTopBox` (:class:`BoxSource`: lease,
302s, edges) or a plain HLS master URL (:class:`DirectSource`); each segment's first byte
is timed, so the player can tell a link's rate from a server's wait."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

import aiohttp

from cdn_ctl.sim.stb import _ATTRIBUTE, BoxRefused, PlayStats, Segment, SetTopBox


@dataclass(frozen=True, slots=True)
class Variant:
    """One rung of the master playlist."""

    bandwidth_bps: int
    url: str


def parse_master(base: str, text: str) -> list[Variant]:
    """The master's variants, lowest bandwidth first (URLs absolute against ``base``)."""
    variants, bandwidth = [], -1
    for line in text.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(_ATTRIBUTE.findall(line.split(":", 1)[1]))
            bandwidth = int(attrs.get("BANDWIDTH", "0"))
        elif line.strip() and not line.startswith("#") and bandwidth >= 0:
            variants.append(Variant(bandwidth, urljoin(base, line.strip())))
            bandwidth = -1
    return sorted(variants, key=lambda v: v.bandwidth_bps)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One segment fetched: its size, and when (the player's clock) its answer's head
    arrived (nan: not known, and the whole fetch counts as download time)."""

    size_bytes: int
    first_byte: float = math.nan


class Source(Protocol):
    """Where the player's master, playlists and segments come from."""

    async def open(self) -> list[Variant]:
        """The master's variants, lowest first."""

    async def playlist(self, url: str) -> tuple[str, str]:
        """A variant's media playlist: (its URL, its text)."""

    async def segment(self, base: str, segment: Segment) -> Fetched:
        """Fetch one segment of the playlist at ``base``."""


# The answers' head times of the requests the current task makes, when it asks for them.
_HEADS: ContextVar[list[float] | None] = ContextVar("abr_heads", default=None)


async def _head_arrived(*_: object) -> None:
    heads = _HEADS.get()
    if heads is not None:
        heads.append(time.monotonic())


def first_byte_trace() -> aiohttp.TraceConfig:
    """The trace a :class:`BoxSource`'s HTTP session needs to time its segments' first
    byte (``ClientSession(trace_configs=[first_byte_trace()])``; aiohttp signals
    ``on_request_end`` once the answer's head is read). The box's own request code
    (:class:`~cdn_ctl.sim.stb.SetTopBox`) does the fetch, so the time comes this way."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_head_arrived)
    return trace


class BoxSource:
    """A logged-in box's live channel through the front door (lease, 302s, edges).

    Its segments' first byte is timed (on :func:`time.monotonic`) when the box's session
    carries :func:`first_byte_trace`."""

    def __init__(self, box: SetTopBox, channel: str) -> None:
        self.box = box
        self.channel = channel
        self.stats = PlayStats()

    async def open(self) -> list[Variant]:
        """Open the channel's master (taking the lease)."""
        self.stats.lease, base, text = await self.box.open_master(self.channel)
        return parse_master(base, text)

    async def playlist(self, url: str) -> tuple[str, str]:
        """The front door's 302, then the edge's playlist."""
        return await self.box._variant(url, self.stats)

    async def segment(self, base: str, segment: Segment) -> Fetched:
        """One segment from the edge (decrypted and checked when the channel is)."""
        before = self.stats.bytes
        sequence, _duration, uri, key = segment
        heads: list[float] = []
        token = _HEADS.set(heads)
        try:
            await self.box._segment(base, uri, sequence, key, self.stats)
        finally:
            _HEADS.reset(token)
        # The last head is the segment's (a content key, fetched first, has its own).
        return Fetched(self.stats.bytes - before, heads[-1] if heads else math.nan)


class DirectSource:
    """A plain HLS master URL (no front door); segments timed on ``clock``."""

    def __init__(
        self, http: aiohttp.ClientSession, master_url: str, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.http = http
        self.master_url = master_url
        self.clock = clock

    async def _get(self, url: str) -> tuple[str, bytes, float]:
        async with self.http.get(url) as resp:
            head = self.clock()
            if resp.status != 200:
                raise BoxRefused(resp.status, "", resp.reason or "")
            return str(resp.url), await resp.read(), head

    async def open(self) -> list[Variant]:
        """Read the master."""
        base, body, _ = await self._get(self.master_url)
        return parse_master(base, body.decode())

    async def playlist(self, url: str) -> tuple[str, str]:
        """Read a media playlist."""
        base, body, _ = await self._get(url)
        return base, body.decode()

    async def segment(self, base: str, segment: Segment) -> Fetched:
        """Read one segment."""
        _, body, head = await self._get(urljoin(base, segment[2]))
        return Fetched(len(body), head)
