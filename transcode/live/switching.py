"""A live channel's sources: which one is on air, why it changed, and checking a preferred one.

A channel lists its sources in priority order (``LiveChannel.sources``). The supervisor
takes the first that works; a source that is lost, or that the detectors find frozen,
black, silent or corrupt (``detect``), is left for the next one, and the slate runs
only when none works. While a backup is on air, the sources before it are read now and
then by a separate, bounded FFmpeg (:func:`check_source`, output discarded, so the
epoch on air is not touched); one that reads healthy for the whole hold-down is taken
back. Every switch is logged, counted and kept in a short history for the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from headend.clock import utc_now
from headend.procs import with_death_signal
from transcode.domain import SOURCE_HISTORY, LiveChannel, SourceSwitch
from transcode.live.commands import health_command
from transcode.live.detect import Detector, Thresholds, Trouble, split_level
from transcode.live.metrics import LiveMetrics
from transcode.sources import SourceInput

log = logging.getLogger(__name__)

SLATE = -1  # the index the history gives the slate
# A source that failed in one of these ways is read healthy before it is started again.
CONTENT_TROUBLES = frozenset({"frozen", "black", "silent", "cc_errors"})
# Beyond the read itself: FFmpeg connecting and finding the streams.
_CHECK_SLACK_SECONDS = 10.0
# A check reads this much longer than its longest picture or sound threshold, so a frozen,
# black or silent source is seen again even with a hold-down shorter than the threshold.
_VERDICT_MARGIN_SECONDS = 2.0


class Outcome(NamedTuple):
    """Why watching a source epoch ended: it failed (``kind``), or ``preferred`` is healthy."""

    kind: str  # input_lost, frozen, black, silent, cc_errors, preferred
    detail: str
    preferred: int | None = None

    @property
    def dead(self) -> bool:
        """True when the epoch no longer produces anything (it has to go before the next)."""
        return self.kind == "input_lost"


class SourceBook:
    """Which source is on air, how each last failed, and the latest switches."""

    def __init__(
        self,
        channel: LiveChannel,
        *,
        metrics: LiveMetrics | None = None,
        history: Sequence[SourceSwitch] = (),
    ) -> None:
        self.channel = channel
        self.index = SLATE
        self.history: deque[SourceSwitch] = deque(history, maxlen=SOURCE_HISTORY)
        self._failed: dict[int, str] = {}
        self._metrics = metrics

    @property
    def count(self) -> int:
        """How many sources the channel has."""
        return len(self.channel.sources)

    def failed(self, index: int, kind: str) -> None:
        """Note how source ``index`` failed."""
        self._failed[index] = kind

    def needs_check(self, index: int) -> bool:
        """True when the source last failed on its content: read it healthy before using it."""
        return self._failed.get(index) in CONTENT_TROUBLES

    def switched(self, to: int, reason: str, detail: str = "") -> None:
        """Record that source ``to`` (or the slate) is on air now, and why."""
        before, self.index = self.index, to
        if to != SLATE:
            self._failed.pop(to, None)
        if before == to:
            return
        self.history.append(SourceSwitch(utc_now(), before, to, reason, detail[:300]))
        log.info(
            "live source switched",
            extra={"channel": self.channel.id, "from": self._name(before),
                   "to": self._name(to), "why": reason, "detail": detail},
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.source_switches.labels(self.channel.id, reason).inc()

    def _name(self, index: int) -> str:
        return "slate" if index == SLATE else f"{index}:{self.channel.sources[index]}"


async def check_source(
    channel: LiveChannel,
    source: SourceInput,
    thresholds: Thresholds,
    *,
    seconds: float,
    passthrough: bool = False,
) -> Trouble | None:
    """Read ``seconds`` of a source through the detectors; None when it was healthy throughout.

    The read is stretched past the longest picture or sound threshold (a hold-down shorter
    than it would otherwise pass a source that is frozen, black or silent for good). Its
    own FFmpeg, killed on every way out (a cancelled check leaves nothing running).
    """
    if thresholds.verdict_seconds > 0:
        seconds = max(seconds, thresholds.verdict_seconds + _VERDICT_MARGIN_SECONDS)
    args = health_command(channel, source, thresholds, seconds=seconds, passthrough=passthrough)
    detector = Detector(thresholds)
    last = ""
    proc = await asyncio.create_subprocess_exec(
        *with_death_signal(args, signal.SIGKILL),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(seconds + channel.source_timeout_seconds + _CHECK_SLACK_SECONDS):
            async for raw in proc.stderr:
                level, text = split_level(raw.decode(errors="replace").rstrip())
                detector.feed(text)
                if detector.trouble is not None:
                    return detector.trouble
                if level in ("", "error", "fatal", "panic") and text:
                    last = text
            code = await proc.wait()
    except TimeoutError:
        return Trouble("input_lost", f"no answer within {seconds:g} s")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    if code != 0:
        return Trouble("input_lost", f"ffmpeg exit {code}: {last}")
    return None
