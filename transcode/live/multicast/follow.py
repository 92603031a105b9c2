"""Following a channel's published live window on disk: which rung, at which mux rate,
and each new segment, in order, exactly once.

The rung and the mux rate come from the channel's master playlist (its variants'
BANDWIDTH is each rung's measured peak). Segments come from the rung's media playlist:
the follower starts at the live edge (the newest ``start_segments``), then sends each
segment numbered after the last one sent. A gap in the numbers, an
EXT-X-DISCONTINUITY, a refused segment or a jump restarts the output's anchoring there
(``ts.Restamper``); too much waiting (more than ``max_behind_segments`` segments, queued
or listed) jumps to the newest segment.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from transcode.domain import Multicast
from transcode.errors import InvalidPlaylist
from transcode.hls import MasterPlaylist, MediaPlaylist
from transcode.hls_parse import parse_master, parse_media
from transcode.live.multicast.errors import OutputUnavailable, SegmentRefused
from transcode.live.multicast.pacer import Pacer
from transcode.live.multicast.sender import MulticastMetrics
from transcode.live.multicast.ts import PCR_HZ, Restamper
from transcode.settings import MulticastSettings

log = logging.getLogger(__name__)

MUX_HEADROOM = 1.2  # a derived mux rate: the rung's peak plus 20 %
MUX_STEP_BPS = 100_000  # ... rounded up to the next 100 kb/s
FLOOR_MARGIN_SECONDS = 0.1  # a re-anchored segment starts this far ahead of the slots


@dataclass(frozen=True, slots=True)
class Output:
    """The rung sent and the constant mux rate it is sent at."""

    rung: str
    mux_rate_bps: int
    peak_bps: int  # the rung's measured peak (0: not measured yet)


def derived_mux_rate(peak_bps: int) -> int:
    """The rung's peak plus 20 %, rounded up to 100 kb/s."""
    return math.ceil(peak_bps * MUX_HEADROOM / MUX_STEP_BPS) * MUX_STEP_BPS


def choose_output(master: MasterPlaylist, multicast: Multicast) -> Output:
    """Pick the rung and mux rate (see ``Multicast``): a named rung; else the highest whose
    peak fits the mux rate (the lowest if none does); else, without a mux rate, the top."""
    rungs = {v.uri.split("/", 1)[0]: v.bandwidth for v in master.variants if "/" in v.uri}
    if not rungs:
        raise OutputUnavailable("the master playlist lists no rung")
    if multicast.rung:
        if multicast.rung not in rungs:
            raise OutputUnavailable(
                f"rung {multicast.rung!r} is not published (rungs: {', '.join(sorted(rungs))})"
            )
        rung = multicast.rung
    elif multicast.mux_rate_kbps:
        limit = multicast.mux_rate_kbps * 1000
        fitting = [name for name, peak in rungs.items() if peak <= limit]
        pool = fitting or [min(rungs, key=lambda name: rungs[name])]
        rung = max(pool, key=lambda name: rungs[name])
    else:
        rung = max(rungs, key=lambda name: rungs[name])
    peak = rungs[rung]
    rate = multicast.mux_rate_kbps * 1000 or derived_mux_rate(peak)
    if not rate:
        raise OutputUnavailable(f"rung {rung!r} has no measured rate to derive a mux rate from")
    return Output(rung=rung, mux_rate_bps=rate, peak_bps=peak)


def read_master(channel_dir: Path) -> MasterPlaylist | None:
    """The channel's master playlist, None while it is not there (or half-read)."""
    try:
        return parse_master((channel_dir / "master.m3u8").read_text())
    except (FileNotFoundError, InvalidPlaylist):
        return None


class Follower:
    """Sends each new segment of one rung's live playlist to the pacer (see module)."""

    def __init__(
        self,
        rung_dir: Path,
        *,
        pacer: Pacer,
        lock: threading.Lock,
        settings: MulticastSettings,
        metrics: MulticastMetrics,
        channel: str,
        restamper: Restamper | None = None,
    ) -> None:
        self._dir = rung_dir
        self._pacer = pacer
        self._lock = lock
        self._settings = settings
        self._metrics = metrics
        self._channel = channel
        self.restamper = restamper or Restamper(max_segment_bytes=settings.max_segment_bytes)
        self.next_sequence: int | None = None
        self.sent = 0
        self.jumps = 0
        self.refused = 0
        self._broken = True  # the next segment sent starts a new anchoring
        self.last_new = time.monotonic()

    def poll(self) -> int:
        """Send what the playlist lists that is new; how many segments were sent."""
        playlist = self._playlist()
        if playlist is None or not playlist.segments:
            return 0
        listed = list(enumerate(playlist.segments, start=playlist.media_sequence))
        target = playlist.target_duration or max(s.duration for s in playlist.segments)
        if self.next_sequence is None:
            new = listed[-self._settings.start_segments :]
        else:
            new = [(seq, s) for seq, s in listed if seq >= self.next_sequence]
            if new and new[0][0] != self.next_sequence:
                self._broken = True  # numbers were missed (slid out before we read them)
        if not new:
            return 0
        self.last_new = time.monotonic()
        with self._lock:
            backlog = self._pacer.backlog()
        behind = len(new) > self._settings.max_behind_segments or backlog > (
            self._settings.max_behind_segments * target * PCR_HZ
        )
        if behind:
            with self._lock:
                dropped = self._pacer.drop()
            self.jumps += 1
            self._metrics.jumps.labels(self._channel).inc()
            log.warning("multicast output fell behind; jumping to the newest segment",
                        extra={"channel": self._channel, "listed_new": len(new),
                               "backlog_seconds": round(backlog / PCR_HZ, 2),
                               "dropped_packets": dropped})  # fmt: skip
            new = new[-1:]
            self._broken = True
        for seq, segment in new:
            self._send(seq, segment.uri, segment.duration, segment.discontinuity)
            self.next_sequence = seq + 1
        return len(new)

    def _playlist(self) -> MediaPlaylist | None:
        try:
            return parse_media((self._dir / "index.m3u8").read_text())
        except FileNotFoundError:
            return None
        except InvalidPlaylist as err:
            log.warning("live playlist unreadable",
                        extra={"channel": self._channel, "error": err.message})  # fmt: skip
            return None

    def _send(self, seq: int, uri: str, duration: float, discontinuity: bool) -> None:
        path = self._dir / uri
        try:
            size = path.stat().st_size
            if size > self._settings.max_segment_bytes:
                raise SegmentRefused(
                    f"segment of {size} bytes is over the "
                    f"{self._settings.max_segment_bytes} byte limit"
                )
            data = path.read_bytes()
            with self._lock:
                floor = self._pacer.now + int(FLOOR_MARGIN_SECONDS * PCR_HZ)
            packets = self.restamper.restamp(
                data,
                duration_seconds=duration,
                discontinuity=discontinuity or self._broken,
                floor=floor,
            )
        except FileNotFoundError:
            self._metrics.segments.labels(self._channel, "missing").inc()
            self._broken = True
            log.warning("segment slid out before it was read",
                        extra={"channel": self._channel, "sequence": seq})  # fmt: skip
            return
        except SegmentRefused as err:
            self.refused += 1
            self._metrics.segments.labels(self._channel, "refused").inc()
            self._broken = True
            log.warning("segment refused",
                        extra={"channel": self._channel, "sequence": seq, "file": str(path),
                               "reason": err.message})  # fmt: skip
            return
        with self._lock:
            self._pacer.feed(packets)
        self._broken = False
        self.sent += 1
        self._metrics.segments.labels(self._channel, "sent").inc()
