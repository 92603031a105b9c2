"""A live source's health from FFmpeg's own detectors: the filters to add, their log lines read.

Source epochs (and hold-down probes) run FFmpeg with ``-loglevel level+info`` and these
filters: ``freezedetect`` and ``silencedetect`` log a start line once the picture or the
sound has been still for their ``d`` (so that line alone is the verdict); ``blackframe``
logs every black frame with its stream time, and a run of them as long as the threshold
is a black source; the TS demuxer's continuity-counter errors surface as ``Packet
corrupt (stream = N, dts = T), dropping it.`` warnings, one per damaged audio or video
packet (FFmpeg 5.1 logs ``Continuity check failed`` itself only at debug level), counted
over a sliding window. Pure: lines in, a verdict out.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

# "[ctx @ 0x..] [level] text" (ctx absent for FFmpeg's own lines).
_LEVELLED = re.compile(
    r"^(?P<ctx>\[[^\]]*\] )?\[(?P<level>panic|fatal|error|warning|info|verbose|debug|trace)\] "
    r"?(?P<text>.*)$"
)
_FREEZE = re.compile(r"lavfi\.freezedetect\.freeze_start: (?P<t>[-\d.e]+)")
_SILENCE = re.compile(r"silence_start: (?P<t>[-\d.e]+)")
_BLACK = re.compile(r"pblack:(?P<pct>\d+) .*?\bt:(?P<t>[-\d.e]+)")
_CC = re.compile(r"Packet corrupt|Continuity check failed")
# Two black frames further apart than this (in stream seconds) start a new run.
_BLACK_GAP_SECONDS = 0.5
# A frame counts as black when this share of its pixels is under the luma threshold.
_BLACK_AMOUNT_PCT = 98
_BLACK_LUMA = 32
_SILENCE_DB = "-50dB"
FREEZE_NOISE_DB = "-60dB"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a source counts as impaired (0 turns a check off)."""

    freeze_seconds: float = 10.0
    black_seconds: float = 10.0
    silence_seconds: float = 20.0
    cc_errors: int = 50
    cc_window_seconds: float = 10.0

    @property
    def verdict_seconds(self) -> float:
        """The longest run a picture or sound check needs before it can trip (0: none on)."""
        return max(self.freeze_seconds, self.black_seconds, self.silence_seconds, 0.0)


class Trouble(NamedTuple):
    """Why a source is impaired: ``kind`` is frozen, black, silent or cc_errors."""

    kind: str
    detail: str


FilterSpec = tuple[str, dict[str, str]]


def video_filters(th: Thresholds) -> list[FilterSpec]:
    """The detectors on a source's decoded picture, in order."""
    filters: list[FilterSpec] = []
    if th.freeze_seconds > 0:
        filters.append(("freezedetect", {"n": FREEZE_NOISE_DB, "d": f"{th.freeze_seconds:g}"}))
    if th.black_seconds > 0:
        filters.append(
            ("blackframe", {"amount": str(_BLACK_AMOUNT_PCT), "threshold": str(_BLACK_LUMA)})
        )
    return filters


def audio_filters(th: Thresholds) -> list[FilterSpec]:
    """The detectors on a source's decoded sound."""
    if th.silence_seconds <= 0:
        return []
    return [("silencedetect", {"n": _SILENCE_DB, "d": f"{th.silence_seconds:g}"})]


def split_level(line: str) -> tuple[str, str]:
    """(level, the line without its level marker); level "" for lines that carry none."""
    match = _LEVELLED.match(line)
    if match is None:
        return "", line
    return match["level"], (match["ctx"] or "") + match["text"]


class Detector:
    """Reads an FFmpeg run's log lines; ``trouble`` is set (and stays) once a check trips."""

    def __init__(
        self, thresholds: Thresholds, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thresholds = thresholds
        self.trouble: Trouble | None = None
        self._clock = clock
        self._black_start: float | None = None
        self._black_last = 0.0
        self._cc: deque[float] = deque()

    def feed(self, line: str) -> None:
        """One log line (its level marker already split off)."""
        if self.trouble is not None:
            return
        th = self.thresholds
        if th.black_seconds > 0 and "pblack:" in line:
            self._black(line)
        elif th.freeze_seconds > 0 and (m := _FREEZE.search(line)):
            self.trouble = Trouble(
                "frozen", f"picture frozen {th.freeze_seconds:g} s (from {m['t']} s)"
            )
        elif th.silence_seconds > 0 and (m := _SILENCE.search(line)):
            self.trouble = Trouble("silent", f"silence {th.silence_seconds:g} s (from {m['t']} s)")
        elif th.cc_errors > 0 and _CC.search(line):
            self._continuity()

    def _black(self, line: str) -> None:
        match = _BLACK.search(line)
        if match is None:
            return
        t = float(match["t"])
        if (
            self._black_start is None
            or t - self._black_last > _BLACK_GAP_SECONDS
            or t < self._black_last
        ):
            self._black_start = t
        self._black_last = t
        if t - self._black_start >= self.thresholds.black_seconds:
            self.trouble = Trouble(
                "black",
                f"black picture {self.thresholds.black_seconds:g} s (from {self._black_start:g} s)",
            )

    def _continuity(self) -> None:
        now = self._clock()
        window = self.thresholds.cc_window_seconds
        self._cc.append(now)
        while self._cc and self._cc[0] < now - window:
            self._cc.popleft()
        if len(self._cc) >= self.thresholds.cc_errors:
            self.trouble = Trouble(
                "cc_errors", f"{len(self._cc)} continuity errors within {window:g} s"
            )
