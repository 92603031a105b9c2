"""What the prefetch sidecar reads and spends, pure: bounded playlist parsing and the
uplink token bucket (:mod:`cdn_ctl.prefetch` does the I/O).

A playlist comes from the edge's parent, which the sidecar trusts no more than a box
would: a rung or segment URI is taken only when it is a relative path of the characters
an edge accepts (``edge_conf``'s canonical rule), stays under the channel's live
directory, and the playlist has at most :data:`MAX_ENTRIES` entries; anything else
refuses the whole playlist (:class:`PlaylistRefused`), so a hostile or broken parent
costs one counted error, never a request outside the channel or unbounded memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cdn_ctl.errors import PlaylistRefused

# Entries (rungs or segments) one playlist may list; a live window has a handful.
MAX_ENTRIES = 2000
# One relative path: segments of an edge's safe characters, none starting with a dot.
_SEG = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}"
_RELATIVE = re.compile(rf"^(?:{_SEG}/){{0,3}}{_SEG}$")
_BANDWIDTH = re.compile(r"(?:^|,)BANDWIDTH=([0-9]{1,10})(?:,|$)")


@dataclass(frozen=True, slots=True)
class Rung:
    """One variant of a master: its media playlist (under the channel's directory) and
    its declared bits per second (0 when the master says none)."""

    path: str
    bandwidth_bps: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment: its path under the channel's directory and its duration."""

    path: str
    seconds: float


def _resolve(base_dir: str, uri: str) -> str:
    """``uri`` (relative to ``base_dir``, both under the channel) checked and joined."""
    uri = uri.split("?", 1)[0]
    if not _RELATIVE.match(uri):
        raise PlaylistRefused(f"URI not a plain relative path: {uri[:80]!r}")
    return base_dir + uri


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistRefused("not an M3U8 playlist")
    return [line for line in lines[1:] if line]


def parse_master(text: str, *, base_dir: str) -> list[Rung]:
    """The rungs of a master playlist, cheapest first (the rungs thin links play)."""
    rungs: list[Rung] = []
    bandwidth = -1
    for line in _lines(text):
        if line.startswith("#EXT-X-STREAM-INF:"):
            match = _BANDWIDTH.search(line[len("#EXT-X-STREAM-INF:") :])
            bandwidth = int(match[1]) if match else 0
        elif not line.startswith("#") and bandwidth >= 0:
            rungs.append(Rung(_resolve(base_dir, line), bandwidth))
            bandwidth = -1
            if len(rungs) > MAX_ENTRIES:
                raise PlaylistRefused(f"more than {MAX_ENTRIES} rungs")
    return sorted(dict.fromkeys(rungs), key=lambda r: r.bandwidth_bps)


def parse_media(text: str, *, base_dir: str) -> list[Segment]:
    """The segments of a media playlist, oldest first."""
    segments: list[Segment] = []
    seconds = -1.0
    for line in _lines(text):
        if line.startswith("#EXTINF:"):
            try:
                seconds = float(line[len("#EXTINF:") :].split(",", 1)[0])
            except ValueError as err:
                raise PlaylistRefused("malformed #EXTINF") from err
            if not 0 < seconds <= 3600:
                raise PlaylistRefused(f"segment duration out of range: {seconds}")
        elif not line.startswith("#") and seconds > 0:
            segments.append(Segment(_resolve(base_dir, line), seconds))
            seconds = -1.0
            if len(segments) > MAX_ENTRIES:
                raise PlaylistRefused(f"more than {MAX_ENTRIES} segments")
    return segments


class TokenBucket:
    """Bytes the sidecar may send over the uplink: refilled at ``rate`` bytes per second
    up to ``burst_seconds`` of it; a debt (a segment larger than estimated) is paid back
    before anything more is spent."""

    def __init__(self, *, burst_seconds: float, clock: Callable[[], float]) -> None:
        self.rate = 0.0
        self._burst_seconds = burst_seconds
        self._clock = clock
        self._tokens = 0.0
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        cap = self.rate * self._burst_seconds
        self._tokens = min(cap, self._tokens + self.rate * max(0.0, now - self._at))
        self._at = now

    def set_rate(self, rate: float) -> None:
        """The bytes per second allowed from now on (what was earned so far is kept)."""
        self._refill()
        self.rate = max(0.0, rate)
        self._tokens = min(self._tokens, self.rate * self._burst_seconds)

    def take(self, amount: float) -> bool:
        """Spend ``amount`` if the bucket holds it; False (nothing spent) otherwise."""
        self._refill()
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True

    def charge(self, amount: float) -> None:
        """Spend ``amount`` unconditionally (playlist polls, a larger segment than taken)."""
        self._refill()
        self._tokens -= amount
