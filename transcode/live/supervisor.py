"""One live channel's state machine: source epochs, the slate, a full disk, and its two tasks.

The channel runs as two tasks of a :class:`headend.tasks.Supervisor` (named
``live/{channel}/supervise`` and ``live/{channel}/publish``), which awaits
them, logs and counts their failures and restarts them with backoff; while
the supervise task backs off the channel reports RECOVERING, never LIVE.

The supervise task runs FFmpeg epochs: a *source* epoch ingests one of the
channel's sources, a *slate* epoch encodes a "signal lost" card with the same
ladder. Which source is on air, and when the slate runs, is ``sourcing``'s
loop (backup sources, detectors, hold-down). A full disk (FFmpeg
or a publish reporting ENOSPC, or less free space than a few segments of the
ladder) stops every epoch, reports DEGRADED with the reason, and resumes by
itself once space is back. A refused source stops the channel with the reason.

Teardown never waits on a process: every exit path SIGKILLs what is left
synchronously, so a cancelled task cannot leave FFmpeg running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from headend.clock import utc_now
from headend.tasks import Supervisor
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, ChannelStatus, LiveChannel, RungRate
from transcode.errors import LeaseLost, SourceRefused
from transcode.live.commands import ladder_bytes_per_second, plan_live
from transcode.live.cuequeue import NodeQueue
from transcode.live.detect import Detector, Thresholds
from transcode.live.disk import DiskSpace
from transcode.live.encryption import ChannelKeys, LiveEncryption
from transcode.live.epoch import Epoch
from transcode.live.metrics import LiveMetrics
from transcode.live.multicast.collect import MulticastMetricsDir
from transcode.live.multicast.process import MulticastProcess
from transcode.live.publish import Publisher, SegmentObserver
from transcode.live.sourcing import (
    _FFMPEG_GRACE_SECONDS,
    _POLL_SECONDS,
    Phase,
    PhaseObserver,
    SourceEpochs,
    _Halted,
)
from transcode.live.status import status_mapping, stopped_mapping
from transcode.live.store import ChannelStore
from transcode.live.switching import SourceBook
from transcode.live.thumbnail import Thumbnailer, ThumbnailStore
from transcode.probe import SourceInfo
from transcode.profiles import resolve_profile
from transcode.settings import LiveSettings
from transcode.sources import SourceGuard, publish_dir
from transcode.tracks import Track, audio_of, live_tracks, subtitles_of

log = logging.getLogger(__name__)

# The publish task wakes when an epoch lists a segment (``Epoch.announces``) or one goes
# on air; a poll once a segment duration (at least this often) is only a safety net then.
# An epoch that logs errors only (the slate) is polled every ``_POLL_SECONDS`` as before.
_ANNOUNCED_POLL_SECONDS = 1.0

__all__ = ["ChannelSupervisor", "Phase", "PhaseObserver"]


class ChannelSupervisor(SourceEpochs):
    """Runs one channel: source epochs, slate epochs, publishing and status."""

    def __init__(
        self,
        channel: LiveChannel,
        *,
        redis: aioredis.Redis,
        archive: ArchiveIndex,
        origin_root: Path,
        next_sequence: int,
        discontinuity_sequence: int,
        restarts: int,
        sources: SourceGuard,
        observer: SegmentObserver | None = None,
        on_phase: PhaseObserver | None = None,
        settings: LiveSettings | None = None,
        store: ChannelStore | None = None,
        tasks: Supervisor | None = None,
        metrics: LiveMetrics | None = None,
        node: str = "",
        may_write: Callable[[], bool] | None = None,
        encryption: LiveEncryption | None = None,
        multicast_metrics: MulticastMetricsDir | None = None,
    ) -> None:
        self.channel = channel
        self._sources = sources
        self.profile = resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        self.plan = plan_live(self.profile)
        # A passthrough copy keeps its source's first audio track only.
        self.tracks: tuple[Track, ...] = ()
        if not self.profile.passthrough:
            self.tracks = live_tracks(
                channel.audio_languages,
                channel.subtitle_languages,
                default_language=channel.audio_language,
            )
        self.probed: SourceInfo | None = None  # a passthrough source's last probe
        self._settings = settings or LiveSettings()
        self._root = origin_root
        self._dir = origin_root / "live" / channel.id
        # Each node's FFmpeg runs in a directory of its own: on a shared origin a channel's
        # new owner must not clear the work of an old one that has not stopped yet.
        self._work = self._dir / ".work" / node if node else self._dir / ".work"
        self.store = store or ChannelStore(channel, redis=redis, archive=archive)
        self._redis = redis
        self.book = SourceBook(channel, metrics=metrics)
        self._thresholds = Thresholds(
            freeze_seconds=self._settings.freeze_seconds,
            black_seconds=self._settings.black_seconds,
            silence_seconds=self._settings.silence_seconds,
            cc_errors=self._settings.cc_errors,
            cc_window_seconds=self._settings.cc_window_seconds,
        )
        self._unavailable = ""
        self._disk = DiskSpace(
            self._dir,
            channel_id=channel.id,
            headroom_bytes=int(
                self._settings.disk_headroom_segments
                * self.profile.segment_seconds
                * ladder_bytes_per_second(self.plan)
            ),
            poll_seconds=self._settings.disk_poll_seconds,
        )
        self.thumbnailer = Thumbnailer(
            channel.id,
            store=ThumbnailStore(redis),
            interval_seconds=self._settings.thumbnail_seconds,
            metrics=metrics,
        )
        self.publisher = Publisher(
            channel,
            self.plan,
            self.profile,
            root=origin_root,
            next_sequence=next_sequence,
            discontinuity_sequence=discontinuity_sequence,
            store=self.store,
            state=lambda: self.state,
            on_disk_full=self._disk.report,
            observer=observer,
            metrics=metrics,
            may_write=may_write,
            keys=ChannelKeys(
                channel, encryption, timeout_seconds=self._settings.store_timeout_seconds
            )
            if channel.encryption.enabled
            else None,
            tracks=self.tracks,
            thumbnailer=self.thumbnailer,
            signals=NodeQueue(
                redis,
                channel.id,
                timeout_seconds=self._settings.store_timeout_seconds,
                metrics=metrics,
            ),
        )
        self._tasks = tasks
        self._metrics = metrics
        self._on_phase = on_phase
        self.supervise_task = f"live/{channel.id}/supervise"
        self.publish_task = f"live/{channel.id}/publish"
        # Its multicast output, started once this run has published (under the lease).
        self.multicast_task = f"live/{channel.id}/multicast"
        self.multicast: MulticastProcess | None = None
        self._multicast_metrics = multicast_metrics  # where its metrics reach the node's
        self.state = ChannelState.STARTING
        self.reason = ""
        self.phase = Phase.STARTING
        self.restarts = restarts
        self.finished = False  # the source was refused: nothing runs until started again
        self._halted = False
        self._runs = 0
        self._epochs = 0
        self._current: Epoch | None = None
        self._alive: set[Epoch] = set()
        self._reaping: set[Epoch] = set()
        self._publish_wake = asyncio.Event()
        self.store.follow(self.status_mapping)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervise and publish tasks on the task owner."""
        if self._tasks is None:
            raise RuntimeError("a supervisor started as tasks needs a task owner")
        self._tasks.spawn(self.supervise_task, self._run_supervised)
        self._tasks.spawn(self.publish_task, self.publish_loop)

    async def halt(self) -> None:
        """Stop both tasks and every FFmpeg of this channel, each step bounded."""
        self._halted = True
        if self._tasks is not None:
            await self._tasks.cancel(self.supervise_task)
            await self._tasks.cancel(self.publish_task)
            await self._tasks.cancel(self.multicast_task)
        if self.multicast is not None:
            self.multicast.kill_now()  # a swallowed cancellation leaves no sender behind
        await self.thumbnailer.close()
        # Whatever a cancelled task left behind (a swallowed cancellation, a process
        # started in the same instant) is killed here.
        self._kill_all()
        pending = [e.exited() for e in self._reaping if e.running]
        if pending:
            await asyncio.wait(pending, timeout=_FFMPEG_GRACE_SECONDS)
        self._reaping.clear()
        shutil.rmtree(self._work, ignore_errors=True)

    def freeze(self, *, reason: str, desired: str | None) -> None:
        """After ``halt``: report STOPPED with ``reason`` from now on (and save that)."""
        self.state, self.reason = ChannelState.STOPPED, reason
        mapping = stopped_mapping(
            self.status(), self.publisher.next_sequence, reason=reason, desired=desired
        )
        self.store.follow(lambda: dict(mapping), final=True)
        if self._metrics is not None:
            self._metrics.set_state(self.channel.id, ChannelState.STOPPED)

    async def _run_supervised(self) -> None:
        try:
            await self.run()
        except Exception:
            # The task owner logs it and restarts it after a backoff: RECOVERING meanwhile.
            self._emit(Phase.FAILED)
            self.store.changed()
            raise

    async def run(self) -> None:
        """Supervise until cancelled or halted; returns when the source is refused."""
        self._runs += 1
        try:
            publish_dir(self._root, "live", self.channel.id)
            await self._supervise()
        except SourceRefused as err:  # nothing of this source runs
            self.finished = True
            self._set(ChannelState.STOPPED, f"refused: {err.message}", Phase.REFUSED)
            log.warning("live source refused", extra={"channel": self.channel.id,
                                                      "reason": self.reason})  # fmt: skip
            await self._save_now()
        except _Halted:
            return
        finally:
            # No await here: a second cancellation must not cut teardown short.
            self._current = None
            self._kill_all()
            shutil.rmtree(self._work, ignore_errors=True)

    async def _save_now(self) -> None:
        try:
            async with asyncio.timeout(self._settings.store_timeout_seconds):
                await self.store.flush()
        except (aioredis.RedisError, OSError, TimeoutError) as err:
            self.store.failed(err)  # the manager's store task writes it when Redis is back

    # -- the state machine --------------------------------------------------------------------

    def _new_epoch(self, kind: str, *, detector: Detector | None = None) -> Epoch:
        self._epochs += 1
        directory = self._work / f"{int(time.time() * 1000)}-{self._epochs}-{kind}"
        rungs = [r.name for r in self.plan] + [t.name for t in audio_of(self.tracks)]
        epoch = Epoch(
            kind,
            self._epochs,
            directory,
            rungs,
            detector=detector,
            on_opened=self._publish_wake.set,
            sidecars=[t.name for t in subtitles_of(self.tracks)],
        )
        self._alive.add(epoch)
        return epoch

    def _switch(self, epoch: Epoch, state: ChannelState, reason: str, phase: Phase) -> None:
        """Make ``epoch`` the one published from; its first segment starts a discontinuity."""
        self._current = epoch
        # Any earlier segment (this run, or before a restart) makes the new epoch a
        # discontinuity, so catch-up playlists stitched from the archive mark it too.
        self.publisher.start_epoch()
        self._publish_wake.set()
        self._set(state, reason, phase)
        log.info("live channel switched", extra={"channel": self.channel.id, "to": state.value})

    async def _retire(self, epoch: Epoch, *, publish: bool = True) -> None:
        """Stop an epoch, publish what every rung finished, drop the rest."""
        await epoch.stop(_FFMPEG_GRACE_SECONDS)
        if publish and epoch is self._current:
            await self.publisher.publish_ready(epoch, last=True)
        else:
            await self.publisher.retire(epoch)
        if epoch is self._current:
            self._current = None
        epoch.close()
        epoch.cleanup()
        self._alive.discard(epoch)

    def _kill_all(self) -> None:
        for epoch in list(self._alive):
            epoch.kill_now()
            epoch.close()
            epoch.cleanup()
            if epoch.running:
                self._reaping.add(epoch)
                epoch.exited().add_done_callback(functools.partial(self._reaped, epoch))
        self._alive.clear()

    def _reaped(self, epoch: Epoch, _exited: asyncio.Future[int]) -> None:
        self._reaping.discard(epoch)

    def _check_halted(self) -> None:
        if self._halted:
            raise _Halted

    # -- a full disk ----------------------------------------------------------------------------

    async def _wait_for_space(self) -> bool:
        """If the disk is full, stop everything and wait for space; True if it was full."""
        if not self._disk.short():
            return False
        # Nothing more can be written: stop every FFmpeg (their unfinished files go too).
        for epoch in list(self._alive):
            await self._retire(epoch, publish=False)
        self._set(
            ChannelState.DEGRADED,
            f"disk full (ENOSPC) under {self._dir}: {self._disk.reason}; the channel resumes "
            f"by itself when {self._disk.headroom_bytes} bytes are free",
            Phase.DISK_FULL,
        )
        await self._disk.wait_for_space(self._check_halted)
        self._set(ChannelState.STARTING, "disk space is back", Phase.STARTING)
        return True

    # -- status ---------------------------------------------------------------------------------

    def _set(self, state: ChannelState, reason: str, phase: Phase) -> None:
        self.state, self.reason = state, reason
        self._emit(phase)
        self.store.changed()

    def _emit(self, phase: Phase) -> None:
        self.phase = phase
        if self._metrics is not None:
            self._metrics.set_state(self.channel.id, self.status().state)
        if self._on_phase is not None:
            self._on_phase(self.channel.id, phase)

    def _reported(self) -> tuple[ChannelState, str]:
        """The state and reason to report: the tasks' and the store's health come first."""
        if self.state is ChannelState.STOPPED:
            return self.state, self.reason
        if self._halted:
            return ChannelState.STOPPED, "stopping"
        tasks = self._tasks
        supervise = tasks.status(self.supervise_task) if tasks is not None else None
        publish = tasks.status(self.publish_task) if tasks is not None else None
        if supervise is not None and supervise.state != "running" and not self.finished:
            if supervise.state == "backing_off":
                return ChannelState.RECOVERING, (
                    f"supervisor failed ({supervise.last_error}); restarting it "
                    f"(restart {supervise.restarts})"
                )
            if supervise.state != "starting":
                return ChannelState.STOPPED, self.reason or f"supervisor {supervise.state}"
        if publish is not None and publish.state == "backing_off":
            return ChannelState.DEGRADED, (
                f"publisher failed ({publish.last_error}); restarting it "
                f"(restart {publish.restarts})"
            )
        keys = self.publisher.keys
        if keys is not None and keys.problem:
            return ChannelState.DEGRADED, keys.problem
        if self.store.down and self.state is not ChannelState.DEGRADED:
            note = (
                f"store unavailable ({self.store.error}): {self.store.backlog} segments wait "
                "to be indexed; live playlists on disk stay current"
            )
            if self.state is ChannelState.SLATE:
                note += f"; showing the slate: {self.reason}"
            return ChannelState.DEGRADED, note
        return self.state, self.reason

    def status(self) -> ChannelStatus:
        """The channel's status now."""
        state, reason = self._reported()
        w = self.publisher.window
        return ChannelStatus(
            channel=self.channel,
            state=state,
            media_sequence=w.seqs[0] if w.seqs else self.publisher.next_sequence,
            discontinuity_sequence=w.discontinuity_sequence,
            restarts=self.restarts,
            reason=reason,
            updated_at=utc_now(),
            source_index=self.book.index,
            source_history=tuple(self.book.history),
            last_segment_at=self.publisher.published_at,
            target_duration_seconds=w.target_duration(self.profile.segment_seconds),
            rungs=tuple(RungRate(n, bps) for n, bps in self.publisher.rung_rates()),
        )

    def status_mapping(self) -> dict[str, str]:
        """The status as the channel's hash fields."""
        return status_mapping(self.status(), self.publisher.next_sequence)

    # -- publishing -----------------------------------------------------------------------------

    async def publish_loop(self) -> None:
        """Publish the current epoch's finished segments as they appear (the publish task)."""
        # Its failure (DEGRADED) and its restart change the status: the store hears of both.
        self.store.changed()
        try:
            await self._publish_forever()
        except Exception:
            self.store.changed()
            raise

    async def _publish_forever(self) -> None:
        while True:
            # Cleared before the lists are read: a segment listed from now on wakes it again.
            self._publish_wake.clear()
            epoch = self._current
            # No epoch on air: only ``_switch`` (which wakes this) puts one there.
            poll = max(_ANNOUNCED_POLL_SECONDS, self.channel.segment_seconds)
            if epoch is not None:
                await self.publisher.publish_ready(epoch)
                if not epoch.announces:
                    poll = _POLL_SECONDS
                self._start_multicast()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._publish_wake.wait()

    def _start_multicast(self) -> None:
        """Start the channel's multicast output once this run has published a segment."""
        multicast = self.channel.multicast
        if (
            multicast is None
            or self.multicast is not None
            or self._tasks is None
            or self.publisher.published_at is None
            or not self._settings.multicast.enabled
        ):
            return
        self.multicast = MulticastProcess(
            self._dir, self.channel.id, multicast,
            stop_seconds=self._settings.stop_seconds / 2,
            exec_prefix=self._settings.multicast.exec_prefix,
            metrics_dir=self._multicast_metrics,
        )  # fmt: skip
        self._tasks.spawn(self.multicast_task, self.multicast.run)

    def end_playlists(self) -> None:
        """Mark the live playlists ended (the channel was stopped)."""
        try:
            self.publisher.end_playlists()
        except (OSError, LeaseLost) as err:
            log.warning("could not end the live playlists", extra={"channel": self.channel.id,
                                                                   "error": str(err)})  # fmt: skip
