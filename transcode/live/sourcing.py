"""The supervise loop of a live channel: which source's epoch is on air, the slate, the backoff.

A channel lists its sources in priority order (``LiveChannel.sources``); every one must
pass the allow-lists when the channel starts. The loop puts the first that yields a
segment on air; a source that is lost, stalls, or that the detectors (``detect``) find
frozen, black, silent or corrupt is left for the next one (an impaired one stays on air
until the next is up: make before break), and the slate runs only when none works,
while they are retried with backoff. While a backup is on air the sources before it are
read by a separate bounded FFmpeg (``switching.check_source``); one healthy for the
hold-down is taken back. Each switch is one aligned discontinuity in every rung (the
publisher's ``start_epoch``) and goes into the channel's source history.

A channel named in ``TC_SCTE35_CHANNELS`` reads a udp/rtp source through a splice relay
(``relay.py``) opened with each source epoch; a relay that cannot bind leaves the epoch
reading its source directly, without signals.

A card channel (``LiveChannel.card``) has no sources: its card is on air for ever (LIVE),
and an FFmpeg that exits or stalls is started again after a backoff, a restart like a lost
source's, never a switch to the slate.

:class:`SourceEpochs` is the part of :class:`~transcode.live.supervisor.ChannelSupervisor`
that does this; the supervisor supplies the epochs' lifecycle, status and disk handling.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis

from headend.tasks import Backoff
from transcode.domain import Card, ChannelState, LiveChannel
from transcode.errors import SourceRefused
from transcode.ladder import PlannedRung, Profile
from transcode.live.card import SLATE_TEXT, card_command, write_card_text
from transcode.live.commands import plan_passthrough, probe_passthrough, source_command
from transcode.live.detect import Detector, Thresholds, Trouble
from transcode.live.disk import DiskSpace
from transcode.live.epoch import Epoch
from transcode.live.metrics import LiveMetrics
from transcode.live.publish import Publisher
from transcode.live.relay import SpliceRelay, wanted
from transcode.live.status import history_from_json
from transcode.live.store import channel_key
from transcode.live.switching import SLATE, Outcome, SourceBook, check_source
from transcode.probe import SourceInfo
from transcode.settings import LiveSettings
from transcode.sources import SourceGuard, SourceInput
from transcode.tracks import Track

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
# How long FFmpeg gets after SIGTERM (to finish its segment lists) before SIGKILL.
_FFMPEG_GRACE_SECONDS = 3.0
# Retrying a lost source while the slate runs.
_SOURCE_RETRY = Backoff(first_seconds=0.5, cap_seconds=10.0, jitter=0.1)


class Phase(enum.Enum):
    """Where a channel's supervisor is (finer than its state; for logs, hooks and tests)."""

    STARTING = "starting"
    LIVE = "live"
    RETIRING = "retiring"  # stopping a source that failed
    SLATE = "slate"
    BACKOFF = "backoff"  # waiting before retrying the source (the slate runs)
    RETRYING = "retrying"  # starting the source again while the slate runs
    DISK_FULL = "disk_full"
    FAILED = "failed"  # the supervise task raised; its owner restarts it after a backoff
    REFUSED = "refused"
    STORE_DOWN = "store_down"
    STORE_UP = "store_up"


PhaseObserver = Callable[[str, Phase], None]


def _field(index: int) -> str:
    return "channel.source" if index == 0 else f"channel.backup_sources[{index - 1}]"


class LiveSources(Protocol):
    """Checks live sources against the allow-lists (``sources.SourceGuard``)."""

    async def live(self, source: str, *, field_name: str = ...) -> SourceInput: ...


async def check_inputs(sources: LiveSources, channel: LiveChannel) -> None:
    """Refuse (``SourceRefused``) a channel any of whose sources, or whose card's audio file,
    the allow-lists do not admit."""
    for index, url in enumerate(channel.sources):
        await sources.live(url, field_name=_field(index))
    if channel.card is not None and channel.card.audio_uri:
        await sources.live(channel.card.audio_uri, field_name="channel.card.audio_uri")


def _lost(epoch: Epoch) -> str:
    return f"source lost (ffmpeg exit {epoch.returncode}): {epoch.last_error()}"


class _Halted(Exception):
    """Raised inside the supervise task when its channel is being stopped."""


class SourceEpochs(ABC):
    """The supervise loop over a channel's sources (a part of ``ChannelSupervisor``, which
    provides the attributes and implements the abstract methods below)."""

    # Provided by the supervisor.
    channel: LiveChannel
    profile: Profile
    plan: tuple[PlannedRung, ...]
    tracks: tuple[Track, ...]
    probed: SourceInfo | None
    publisher: Publisher
    book: SourceBook
    restarts: int
    state: ChannelState
    _sources: SourceGuard
    _settings: LiveSettings
    _thresholds: Thresholds
    _disk: DiskSpace
    _metrics: LiveMetrics | None
    _redis: aioredis.Redis
    _runs: int
    _work: Path
    _unavailable: str

    @abstractmethod
    def _set(self, state: ChannelState, reason: str, phase: Phase) -> None: ...

    @abstractmethod
    def _emit(self, phase: Phase) -> None: ...

    @abstractmethod
    def _check_halted(self) -> None: ...

    @abstractmethod
    async def _wait_for_space(self) -> bool: ...

    @abstractmethod
    def _new_epoch(self, kind: str, *, detector: Detector | None = None) -> Epoch: ...

    @abstractmethod
    def _switch(self, epoch: Epoch, state: ChannelState, reason: str, phase: Phase) -> None: ...

    @abstractmethod
    async def _retire(self, epoch: Epoch, *, publish: bool = True) -> None: ...

    async def _supervise(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)
        again = "supervisor restarted after a failure" if self._runs > 1 else ""
        self._set(ChannelState.STARTING, again, Phase.STARTING)
        await check_inputs(self._sources, self.channel)  # every one allowed at start
        if self.channel.card is not None:
            return await self._supervise_card(self.channel.card)
        if self._runs == 1:
            await self._load_history()
        slate: Epoch | None = None
        live: Epoch | None = None  # the source epoch on air
        failing: Epoch | None = None  # an impaired source kept on air until another is up
        why, detail = "start", ""
        failures = 0
        while True:
            self._check_halted()
            try:
                if await self._wait_for_space():
                    slate = live = failing = None
                skip = SLATE
                if live is not None:
                    outcome = await self._watch(live)
                    if outcome.preferred is not None:
                        live = await self._take(outcome.preferred, live) or live
                        continue
                    skip = self.book.index
                    self.book.failed(skip, outcome.kind)
                    why, detail = outcome.kind, outcome.detail
                    log.warning("live source lost", extra={"channel": self.channel.id,
                                                           "reason": detail})  # fmt: skip
                    self.restarts += 1
                    if outcome.dead:
                        self._emit(Phase.RETIRING)
                        await self._retire(live)
                        if self._disk.full or live.disk_full:
                            self._disk.report(live.last_error() or "ffmpeg could not write")
                            live = None
                            continue
                    else:
                        failing = live
                    live = None
                elif slate is not None:
                    self._emit(Phase.RETRYING)
                picked = await self._bring_up(skip)
                if picked is not None:
                    index, live = picked
                    for old in (failing, slate):
                        if old is not None:
                            await self._retire(old)
                    failing = slate = None
                    self._switch(live, ChannelState.LIVE, "", Phase.LIVE)
                    self.book.switched(index, "recovered" if why == "all_down" else why, detail)
                    failures = 0
                    continue
                if failing is not None:
                    await self._retire(failing)
                    failing = None
                if self._disk.full:
                    continue
                reason = self._unavailable or detail
                if slate is None or not slate.running:
                    if slate is not None:
                        await self._retire(slate)
                    slate = await self._start_slate()
                    self._switch(slate, ChannelState.SLATE, reason, Phase.SLATE)
                elif self.state is not ChannelState.SLATE:
                    self._set(ChannelState.SLATE, reason, Phase.SLATE)
                cause = "all_down" if why in ("start", "all_down") else why
                self.book.switched(SLATE, cause, f"all sources down: {reason}")
                why, detail = "all_down", reason
                failures += 1
                self._emit(Phase.BACKOFF)
                await self._pause(_SOURCE_RETRY.delay(failures), slate)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                self._disk.report(f"{err.strerror}: {err.filename}")

    async def _supervise_card(self, card: Card) -> None:
        """Keep the card on air: start it, watch it, start it again after a backoff."""
        failures = 0
        while True:
            self._check_halted()
            try:
                await self._wait_for_space()
                epoch = await self._start_card(card.text, card.audio_uri)
                if await self.first_segment(epoch):
                    self._switch(epoch, ChannelState.LIVE, "", Phase.LIVE)
                    failures = 0
                    outcome = await self._watch(epoch)
                    why = outcome.detail
                else:
                    why = f"card did not start (ffmpeg exit {epoch.returncode}): "
                    why += epoch.last_error()
                self._emit(Phase.RETIRING)
                await self._retire(epoch)
                if self._disk.full or epoch.disk_full:
                    self._disk.report(epoch.last_error() or "ffmpeg could not write")
                    continue
                log.warning("live card stopped", extra={"channel": self.channel.id,
                                                        "reason": why})  # fmt: skip
                self.restarts += 1
                failures += 1
                self._set(ChannelState.STARTING, f"restarting the card: {why}", Phase.BACKOFF)
                await asyncio.sleep(_SOURCE_RETRY.delay(failures))
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                self._disk.report(f"{err.strerror}: {err.filename}")

    async def _bring_up(self, skip: int) -> tuple[int, Epoch] | None:
        """Start the first source (in priority order, but ``skip``) that yields a segment."""
        self._unavailable = ""
        for index in range(self.book.count):
            if index == skip:
                continue
            self._check_halted()
            if self.book.needs_check(index):
                # It failed on its content: read it healthy before putting it on air again.
                trouble = await self._check(index)
                if trouble is not None:
                    self._unavailable = self._unavailable or f"source {index}: {trouble.detail}"
                    continue
            epoch = await self._start_source(index)
            if await self.first_segment(epoch):
                return index, epoch
            code = epoch.returncode
            self.book.failed(index, "unavailable")
            if not self._unavailable:
                self._unavailable = f"source unavailable (ffmpeg exit {code}): {epoch.last_error()}"
            await self._retire(epoch)
            if self._disk.full or epoch.disk_full:
                self._disk.report(epoch.last_error() or "ffmpeg could not write")
                return None
        return None

    async def _take(self, index: int, live: Epoch) -> Epoch | None:
        """Put the preferred source ``index`` on air once it yields a segment (make, then
        break)."""
        epoch = await self._start_source(index)
        if not await self.first_segment(epoch):
            self.book.failed(index, "unavailable")
            await self._retire(epoch)
            return None
        await self._retire(live)
        self._switch(epoch, ChannelState.LIVE, "", Phase.LIVE)
        holddown = self._settings.source_holddown_seconds
        self.book.switched(index, "preferred", f"healthy for {holddown:g} s")
        return epoch

    async def _check(self, index: int) -> Trouble | None:
        """Read source ``index`` through the detectors for the hold-down (nothing on air moves)."""
        url = self.channel.sources[index]
        try:
            source = await self._sources.live(url, field_name=_field(index))
        except SourceRefused as err:
            return Trouble("refused", err.message)
        return await check_source(
            self.channel,
            source,
            self._thresholds,
            seconds=self._settings.source_holddown_seconds,
            passthrough=self.profile.passthrough,
        )

    async def _preferred(self) -> int:
        """Wait until a source before the one on air has read healthy for the hold-down."""
        failures = 0
        while True:
            for index in range(self.book.index):
                trouble = await self._check(index)
                if trouble is None:
                    return index
                self.book.failed(index, trouble.kind)
            failures += 1
            await asyncio.sleep(_SOURCE_RETRY.delay(failures))

    async def _load_history(self) -> None:
        """The source history the channel's last run saved (none if Redis does not answer)."""
        try:
            async with asyncio.timeout(self._settings.store_timeout_seconds):
                raw = await self._redis.hget(channel_key(self.channel.id), "source_history")
            text = raw.decode() if isinstance(raw, bytes) else (raw or "")
            self.book.history.extend(history_from_json(text))
        except (aioredis.RedisError, OSError, TimeoutError, ValueError, KeyError) as err:
            log.info("no saved source history", extra={"channel": self.channel.id,
                                                       "error": str(err)})  # fmt: skip

    async def _start_source(self, index: int) -> Epoch:
        # Checked again before every FFmpeg run: the allow-lists or DNS may have changed.
        source = await self._sources.live(self.channel.sources[index], field_name=_field(index))
        if self.profile.passthrough:
            # Refuses a source it cannot stream-copy; the rungs and the slate follow the probe.
            self.probed = await probe_passthrough(
                source, timeout_seconds=self.channel.source_timeout_seconds, previous=self.probed
            )
            self.plan = self.publisher.plan = plan_passthrough(self.profile, self.probed)
        epoch = self._new_epoch("source", detector=Detector(self._thresholds))
        if wanted(self._settings.scte35_channels, self.channel.id, source.scheme):
            # Closed with the epoch, whatever happens.
            epoch.relay = SpliceRelay(source, channel=self.channel.id, metrics=self._metrics)
            try:
                await epoch.relay.start()
                source = epoch.relay.input
            except OSError as err:
                epoch.relay.close()
                epoch.relay = None
                log.warning("scte-35 relay not started: reading the source directly",
                            extra={"channel": self.channel.id, "error": str(err)})  # fmt: skip
        await epoch.start(
            source_command(
                self.channel,
                source,
                self.plan,
                self.profile,
                epoch.directory,
                thresholds=self._thresholds,
                probed=self.probed,
                tracks=self.tracks,
            )
        )
        return epoch

    async def _start_slate(self) -> Epoch:
        return await self._start_card(SLATE_TEXT, "", kind="slate")

    async def _start_card(self, text: str, audio_uri: str, *, kind: str = "card") -> Epoch:
        # The audio file is checked again before every run, as a source is.
        audio = None
        if audio_uri:
            audio = await self._sources.live(audio_uri, field_name="channel.card.audio_uri")
        epoch = self._new_epoch(kind)
        await epoch.start(
            card_command(
                self.plan,
                self.profile,
                epoch.directory,
                text=write_card_text(epoch.directory, text),
                audio=audio,
                source=self.probed,
                tracks=self.tracks,
            )
        )
        return epoch

    async def first_segment(self, epoch: Epoch) -> bool:
        """Wait until every rung lists a segment (True), or the epoch ends or the disk fills.

        The point before an epoch's first publish: a standby supervisor (``standby.py``)
        extends it to hold that publish back until its node owns the channel."""
        while True:
            self._check_halted()
            if self._disk.full:
                return False
            if epoch.poll() > 0:
                return True
            if not epoch.running:
                return epoch.poll() > 0
            await asyncio.wait({epoch.exited()}, timeout=_POLL_SECONDS)

    async def _watch(self, epoch: Epoch) -> Outcome:
        """Watch the source on air until it fails, or a preferred source is healthy again."""
        # FFmpeg can stay alive on a feed it cannot decode; a stalled window is a lost source.
        stall = 3 * self.channel.segment_seconds + self.channel.source_timeout_seconds
        loop = asyncio.get_running_loop()
        last, since = epoch.published, loop.time()
        preferred = asyncio.ensure_future(self._preferred()) if self.book.index > 0 else None
        # What ends the watch wakes it (exit, trouble, a full disk, the preferred source);
        # the timeout is only the stall check's grain: one wake per segment, not per second.
        signals = [
            asyncio.ensure_future(epoch.troubled.wait()),
            asyncio.ensure_future(self._disk.filled()),
        ]
        tick = max(1.0, self.channel.segment_seconds)
        try:
            while True:
                self._check_halted()
                if self._disk.full:
                    return Outcome("input_lost", "disk full")
                waits: set[asyncio.Future[Any]] = {epoch.exited(), *signals}
                if preferred is not None:
                    waits.add(preferred)
                await asyncio.wait(waits, timeout=tick)
                if not epoch.running:
                    return Outcome("input_lost", _lost(epoch))
                trouble = epoch.trouble
                if trouble is not None:
                    epoch.note(trouble.detail)
                    return Outcome(trouble.kind, f"source {self.book.index}: {trouble.detail}")
                if preferred is not None and preferred.done():
                    return Outcome("preferred", "", preferred.result())
                if epoch.published != last:
                    last, since = epoch.published, loop.time()
                elif loop.time() - since > stall:
                    log.warning("live source stalled", extra={"channel": self.channel.id})
                    epoch.note(f"no segment for {stall:g} s")
                    await epoch.stop(_FFMPEG_GRACE_SECONDS)
                    return Outcome("input_lost", _lost(epoch))
        finally:
            for wake in signals:
                wake.cancel()
            if preferred is not None:
                preferred.cancel()  # its FFmpeg is killed as the check unwinds

    async def _pause(self, seconds: float, slate: Epoch) -> None:
        """Wait before retrying the source; sooner if the slate ends or the disk fills."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            self._check_halted()
            if self._disk.full or not slate.running:
                return
            await asyncio.wait({slate.exited()}, timeout=min(left, _POLL_SECONDS * 5))
