"""A packaging run's progress: FFmpeg's reports turned into the job's percent, speed and ETA."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from transcode.runner import FFmpegProgress

Phase = Literal["probe", "encode", "remux", "measure", "encrypt", "publish", "done"]

# Shares of the progress bar: the FFmpeg pass dominates, measuring and publishing are quick.
ENCODE_SHARE = 95.0
MEASURE_SHARE = 4.0
ENCRYPT_AT = ENCODE_SHARE + MEASURE_SHARE / 2


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a packaging run is: percent of the whole job, FFmpeg speed, ETA, phase."""

    percent: float  # 0..100
    speed: float  # x realtime (0.0 before FFmpeg measures it)
    eta_seconds: float | None
    phase: Phase


ProgressCallback = Callable[[Progress], None]


class Reporter:
    """Turns FFmpeg progress into job-level ``Progress``; ``tick`` is set on each report."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self.duration = 0.0  # seconds of media; known once the source is probed
        self.tick = threading.Event()  # wakes the segment scanner thread

    def phase(self, phase: Phase, percent: float) -> None:
        if self._callback is not None:
            self._callback(Progress(percent, 0.0, None if percent < 100 else 0.0, phase))

    def ffmpeg(self, phase: Phase) -> Callable[[FFmpegProgress], None]:
        def on_progress(progress: FFmpegProgress) -> None:
            self._emit(phase, progress.out_time_seconds, progress.speed)

        return on_progress

    def ffmpeg_many(self, phase: Phase, count: int) -> Callable[[int, FFmpegProgress], None]:
        done = [0.0] * count
        speeds = [0.0] * count

        def on_progress(index: int, progress: FFmpegProgress) -> None:
            done[index] = progress.out_time_seconds
            speeds[index] = progress.speed
            # The slowest process decides when the job finishes.
            slowest = min(range(count), key=done.__getitem__)
            self._emit(phase, done[slowest], speeds[slowest])

        return on_progress

    def _emit(self, phase: Phase, out_time: float, speed: float) -> None:
        self.tick.set()
        if self._callback is None:
            return
        duration = self.duration
        fraction = min(1.0, out_time / duration) if duration > 0 else 0.0
        eta = max(0.0, duration - out_time) / speed if speed > 0 and duration > 0 else None
        self._callback(Progress(fraction * ENCODE_SHARE, speed, eta, phase))
