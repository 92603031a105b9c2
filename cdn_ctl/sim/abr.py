"""An adaptive live player: what a viewer on a thin link sees, measured (issue 21).

The box player (:mod:`cdn_ctl.sim.stb`) plays the lowest rung and measures the platform;
this one chooses its rung the way hls.js and dash.js do, so the figures are a viewer's:

- **bandwidth estimate**: two exponentially weighted averages of segment download rates,
  half-lives 3 s and 9 s of download time, the smaller one wins (hls.js
  ``abrEwmaFastLive``/``SlowLive``); 500 kb/s until the first sample
  (``abrEwmaDefaultEstimate``). A sample's time is request to last byte *less the time to
  first byte* (at most the TTFB estimate), and at least 50 ms (hls.js 1.5
  ``onFragBuffered`` and ``EwmaBandWidthEstimator.minDelayMs_``): a 24 kB segment on a
  50 Mb/s link downloads in 4 ms, so timed from the request its "rate" is the request's
  round trip and the server's queueing, not the link's; a loaded front door or edge
  would pin every box with a fast link to the bottom rung;
- **time to first byte**: its own weighted average (half-life 9 s, samples weighted
  ``sqrt(2) * exp(-ttfb^2 / 2)`` so a slow answer weighs less; 100 ms until the first
  sample), hls.js's ``ttfbEstimator``; it is added back where it belongs, in the fetch
  time of the next segment;
- **buffer-based switching with hysteresis**: up one rung only when the estimate x 0.7
  covers it, the buffer would still hold ``panic_buffer_seconds`` once the next segment
  at that rung had been fetched (TTFB estimate + its bytes at the estimated rate:
  hls.js's starvation check), and that fetch takes no longer than the segment lasts (a
  live player that cannot fetch a segment per segment's duration falls behind: on a
  satellite link the 600 ms round trip alone is a third of a 2 s segment, which a rate
  timed from the first byte does not see);
  down to the best rung the estimate x 0.95 covers; straight to the lowest when the
  buffer is under ``panic_buffer_seconds`` (the gap between 0.7 and 0.95 keeps it from
  flapping);
- **startup** at the lowest rung, joining the live window ``live_edge_segments`` from
  its end (hls.js ``liveSyncDurationCount``).

It does not decode. The buffer fills by each segment's duration when its last byte
arrives and drains in media time as the wall clock runs; "first frame decodable" is the
first segment fully downloaded. An empty buffer is a stall until the next segment lands.

Per session: startup time (master request to first frame) and where it went
(:class:`StartupPhases`: master, first variant playlist, waiting, the first segment's
first byte and the rest of it), rebuffer ratio (stall time over watch time, which starts
at the first frame), time-weighted average bitrate of the media played (the variants'
``BANDWIDTH``) and the number of rung switches.

:class:`AbrController` and :class:`Playback` are pure (time passed in) and unit-tested
without a network; :class:`AdaptivePlayer` drives them over a
:class:`~cdn_ctl.sim.sources.Source`: the front door journey of a
:class:`~cdn_ctl.sim.stb.SetTopBox` or a plain HLS URL (:mod:`cdn_ctl.sim.sources`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from cdn_ctl.sim.sources import Source
from cdn_ctl.sim.stb import BoxRefused, Segment, _media


@dataclass(frozen=True, slots=True)
class AbrPolicy:
    """How the player estimates and switches (defaults: hls.js's live defaults)."""

    fast_half_life_seconds: float = 3.0
    slow_half_life_seconds: float = 9.0
    default_estimate_bps: float = 500_000
    up_factor: float = 0.7
    down_factor: float = 0.95
    panic_buffer_seconds: float = 1.0
    live_edge_segments: int = 3
    retry_seconds: float = 0.5
    min_sample_seconds: float = 0.05  # hls.js minDelayMs_
    ttfb_half_life_seconds: float = 9.0  # hls.js: the slow half-life
    default_ttfb_seconds: float = 0.1  # hls.js defaultTTFB_


class Ewma:
    """An exponentially weighted average whose weights are seconds (hls.js's ``EWMA``)."""

    def __init__(self, half_life_seconds: float) -> None:
        self.alpha = math.exp(math.log(0.5) / half_life_seconds)
        self.value = 0.0
        self.weight = 0.0

    def sample(self, weight: float, value: float) -> None:
        """Add ``value`` observed over ``weight`` seconds."""
        adjusted = self.alpha**weight
        self.value = value * (1 - adjusted) + adjusted * self.value
        self.weight += weight

    def estimate(self) -> float:
        """The average, corrected for its zero start."""
        return self.value / (1 - self.alpha**self.weight) if self.weight else 0.0


class AbrController:
    """Picks the next segment's rung from the bandwidth estimate and the buffer."""

    def __init__(self, policy: AbrPolicy, bitrates_bps: Sequence[float]) -> None:
        self.policy = policy
        self.bitrates = list(bitrates_bps)  # ascending
        self.fast = Ewma(policy.fast_half_life_seconds)
        self.slow = Ewma(policy.slow_half_life_seconds)
        self.ttfb = Ewma(policy.ttfb_half_life_seconds)

    def sample(self, size_bytes: int, seconds: float, ttfb_seconds: float | None = None) -> None:
        """One segment downloaded: ``size_bytes`` in ``seconds`` (request to last byte), its
        first byte after ``ttfb_seconds`` (None: not known, the whole time counts). The
        rate counts the time after the first byte (less only up to the TTFB estimate, so
        one answer that was slow to start is not taken for a fast link), at least
        ``min_sample_seconds``."""
        if not seconds >= 0 or (ttfb_seconds is not None and not 0 <= ttfb_seconds <= seconds):
            raise ValueError(f"a sample needs 0 <= ttfb ({ttfb_seconds}) <= time ({seconds})")
        download = seconds
        if ttfb_seconds is not None:
            weight = math.sqrt(2) * math.exp(-(ttfb_seconds**2) / 2)
            self.ttfb.sample(weight, ttfb_seconds)
            download -= min(ttfb_seconds, self.ttfb_estimate())
        download = max(download, self.policy.min_sample_seconds)
        rate = size_bytes * 8 / download
        self.fast.sample(download, rate)
        self.slow.sample(download, rate)

    def ttfb_estimate(self) -> float:
        """The time to first byte the next request should expect."""
        if not self.ttfb.weight:
            return self.policy.default_ttfb_seconds
        return self.ttfb.estimate()

    def estimate_bps(self) -> float:
        """The bandwidth estimate: the smaller average, or the default before any sample."""
        if not self.fast.weight:
            return self.policy.default_estimate_bps
        return min(self.fast.estimate(), self.slow.estimate())

    def choose(self, current: int, buffer_seconds: float, segment_seconds: float) -> int:
        """The rung for the next segment (``segment_seconds`` long), ``current`` being the
        last one's."""
        policy, estimate = self.policy, self.estimate_bps()
        if buffer_seconds < policy.panic_buffer_seconds:
            return 0
        if estimate * policy.down_factor < self.bitrates[current]:
            fits = [i for i, b in enumerate(self.bitrates) if b <= estimate * policy.down_factor]
            return fits[-1] if fits else 0
        up = current + 1
        if up < len(self.bitrates) and estimate * policy.up_factor >= self.bitrates[up]:
            fetch_seconds = self.ttfb_estimate() + self.bitrates[up] * segment_seconds / estimate
            keeps_up = fetch_seconds <= segment_seconds
            if keeps_up and buffer_seconds - fetch_seconds >= policy.panic_buffer_seconds:
                return up
        return current


@dataclass
class Playback:
    """The buffer in media time, drained by the wall clock once playback has started."""

    opened: float
    started: float | None = None
    buffer_seconds: float = 0.0
    stall_seconds: float = 0.0
    stalls: int = 0
    stalling: bool = False
    played_bits: float = 0.0  # bitrate x media seconds played
    played_seconds: float = 0.0
    _last: float = 0.0
    _queue: deque[list[float]] = field(default_factory=deque)  # [seconds left, bitrate]

    def advance(self, now: float) -> None:
        """Play (or stall) from the last event to ``now``."""
        if self.started is None:
            return
        elapsed, self._last = max(0.0, now - self._last), now
        while elapsed > 0 and self._queue:
            head = self._queue[0]
            play = min(head[0], elapsed)
            head[0] -= play
            elapsed -= play
            self.buffer_seconds -= play
            self.played_seconds += play
            self.played_bits += play * head[1]
            if head[0] <= 1e-9:
                self._queue.popleft()
        if elapsed > 0:
            self.buffer_seconds = 0.0
            self.stall_seconds += elapsed
            if not self.stalling:
                self.stalling = True
                self.stalls += 1

    def append(self, now: float, seconds: float, bitrate_bps: float) -> None:
        """A segment of ``seconds`` at ``bitrate_bps`` fully downloaded at ``now``."""
        self.advance(now)
        if self.started is None:
            self.started = self._last = now
        self.stalling = False
        self.buffer_seconds += seconds
        self._queue.append([seconds, bitrate_bps])


@dataclass(frozen=True, slots=True)
class StartupPhases:
    """Where a session's startup went, in seconds; they add up to the startup time."""

    master: float  # request to the master's answer (the front door: lease, entitlement)
    playlist: float  # the first variant playlist (through the front door: its 302 too)
    waiting: float  # retries, and waiting for the window to list the joining segment
    first_byte: float  # the first segment: request to its first byte (the answer's head)
    transfer: float  # the first segment: first byte to last

    def total(self) -> float:
        """The startup time."""
        return self.master + self.playlist + self.waiting + self.first_byte + self.transfer


@dataclass(frozen=True, slots=True)
class Qoe:
    """One session as its viewer saw it."""

    startup_seconds: float  # nan: never started
    watch_seconds: float
    stall_seconds: float
    stalls: int
    avg_bitrate_bps: float
    switches: int
    segments: int
    skipped: int = 0  # segments the live window moved past before they were fetched
    errors: tuple[str, ...] = ()
    phases: StartupPhases | None = None  # None: never started

    @property
    def rebuffer_ratio(self) -> float:
        """Stall time over watch time (0 for a session that never started)."""
        return self.stall_seconds / self.watch_seconds if self.watch_seconds else 0.0


def qoe(
    playback: Playback, ended: float, *, switches: int, segments: int, skipped: int = 0,
    errors: tuple[str, ...] = (), phases: StartupPhases | None = None,
) -> Qoe:  # fmt: skip
    """The session's figures once it ended at ``ended``."""
    playback.advance(ended)
    started = playback.started
    return Qoe(
        startup_seconds=started - playback.opened if started is not None else math.nan,
        watch_seconds=ended - started if started is not None else 0.0,
        stall_seconds=playback.stall_seconds,
        stalls=playback.stalls,
        avg_bitrate_bps=(
            playback.played_bits / playback.played_seconds if playback.played_seconds else 0.0
        ),
        switches=switches,
        segments=segments,
        skipped=skipped,
        errors=errors,
        phases=phases if started is not None else None,
    )


class AdaptivePlayer:
    """Plays a live :class:`Source` for a while, adapting; returns its :class:`Qoe`."""

    def __init__(
        self, source: Source, *, policy: AbrPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.source = source
        self.policy = policy or AbrPolicy()
        self.clock = clock

    async def play(self, seconds: float) -> Qoe:
        """Open the channel and play it for ``seconds`` of wall time from the request.

        Like hls.js, the live playlist is reloaded while a segment downloads (when the
        window does not list the next one yet), not after it: on a satellite link each
        request costs a 600 ms round trip, and serial reloads alone would stall 2 s
        segments."""
        clock, policy = self.clock, self.policy
        playback = Playback(opened=clock())
        deadline = playback.opened + seconds
        variants = await self.source.open()
        # Startup's marks: master answered, first playlist read, first segment asked/head.
        mastered, listed_at, first_asked, first_head = clock(), math.nan, math.nan, math.nan
        abr = AbrController(policy, [v.bandwidth_bps for v in variants])
        rung, loaded, base, target = 0, -1, "", 2.0
        window: dict[int, Segment] = {}
        next_seq, switches, segments, skipped = -1, 0, 0, 0
        errors: list[str] = []

        def read(url: str, text: str) -> None:
            nonlocal base, target, window, next_seq, skipped
            _, target, listed, _ = _media(text)
            base, window = url, {s[0]: s for s in listed}
            if listed and next_seq < 0:
                next_seq = listed[max(0, len(listed) - policy.live_edge_segments)][0]
            if listed and next_seq < listed[0][0]:
                skipped += listed[0][0] - next_seq
                next_seq = listed[0][0]

        while clock() < deadline:
            ahead: asyncio.Task[tuple[str, str]] | None = None
            try:
                if loaded != rung or next_seq not in window:
                    read(*await self.source.playlist(variants[rung].url))
                    loaded = rung
                    if math.isnan(listed_at):
                        listed_at = clock()
                    if next_seq not in window:
                        await asyncio.sleep(min(target / 2, max(0.0, deadline - clock())))
                        continue
                segment = window[next_seq]
                if next_seq + 1 not in window:
                    ahead = asyncio.create_task(self.source.playlist(variants[rung].url))
                asked = clock()
                fetched = await self.source.segment(base, segment)
                done = clock()
                known = asked <= fetched.first_byte <= done
                head = fetched.first_byte if known else asked
                abr.sample(fetched.size_bytes, done - asked, head - asked if known else None)
                if playback.started is None:
                    first_asked, first_head = asked, head
                playback.append(done, segment[1], variants[rung].bandwidth_bps)
                segments += 1
                next_seq += 1
                if ahead is not None:
                    read(*await ahead)
                chosen = abr.choose(rung, playback.buffer_seconds, segment[1])
                switches += chosen != rung
                rung = chosen
            except (aiohttp.ClientError, TimeoutError, BoxRefused) as err:
                if isinstance(err, BoxRefused) and err.status in (401, 403, 429) and err.reason:
                    raise  # a front door verdict: asking again would be refused again
                errors.append(f"{type(err).__name__}: {err}")
                loaded = -1
                await asyncio.sleep(policy.retry_seconds)
            finally:
                if ahead is not None and not ahead.done():
                    ahead.cancel()
        phases = None
        if playback.started is not None:
            phases = StartupPhases(
                master=mastered - playback.opened, playlist=listed_at - mastered,
                waiting=first_asked - listed_at, first_byte=first_head - first_asked,
                transfer=playback.started - first_head,
            )  # fmt: skip
        return qoe(
            playback, max(deadline, clock()), switches=switches, segments=segments,
            skipped=skipped, errors=tuple(errors), phases=phases,
        )  # fmt: skip
