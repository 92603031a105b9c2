"""The cue reconciler of the control server: copies the EPG's cues, and the programme
boundaries of the channels configured to signal them, into the signal queues of the live
channels the farm runs (``transcode.cueq``), where the node publishing a channel finds them.

Every ``TC_CUE_SYNC_SECONDS`` a pass reads the cues of every channel (``CueService``, with
the farm's EPG playback key ``TC_ALERTS_API_KEY``, the alert cards' key) that run, or were
to run, from ``TC_CUE_LATE_SECONDS`` ago to ``TC_CUE_LOOKAHEAD_SECONDS`` ahead. For the
channels in ``TC_PROGRAMME_CUE_CHANNELS`` (``*``: every one) it adds a time_signal at each
programme's start (segmentation type 0x10) and end (0x11), from the guide read every
``TC_PROGRAMME_CUE_SECONDS`` (kept in between: a programme moved in the guide is signalled
where it moved by the next read). Then it makes each running channel's queue hold exactly
those signals (:func:`~transcode.cueq.sync_queue`): a new cue is queued, a cue cancelled
before its start is taken out, a running one cancelled has its return moved to now, and a
channel whose cues are all withdrawn gets an empty queue. Signals already placed on a
segment, or more than the late bound overdue, are the queue's to leave out.

A pass is idempotent and each queue's write atomic, so several control replicas may run it
at once. When the EPG cannot answer, the pass is skipped (logged once per outage, counted)
and every queue is kept as it is: what it holds is still the best known schedule. A pass
acts on at most :data:`MAX_CUES` cues, the soonest (the EPG's list is bounded already);
more is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

from epg.client import EpgClient
from epg.cues.client import CueClient
from epg.cues.domain import Cue
from epg.domain import Programme
from epg.errors import ChannelNotFound
from epg.owners import OwnersSettings
from headend.clock import utc_now
from headend.errors import HeadendError
from headend.rpc import ServiceUnavailable
from transcode.alertcards import EPG_CALL_SECONDS, EPG_CHANNEL_OPTIONS
from transcode.cueq import programme_signals, signals_of, sync_queue
from transcode.domain import ChannelState, ChannelStatus
from transcode.live.cuequeue import QueuedSignal
from transcode.settings import CueSyncSettings

log = logging.getLogger(__name__)

# The most cues one pass acts on: a bound on its work whatever the EPG lists.
MAX_CUES = 10_000


class Cues(Protocol):
    """The cues (``epg.cues.client.CueClient``)."""

    async def list_cues(
        self, channel_id: str | None, start: datetime, end: datetime
    ) -> list[Cue]: ...
    async def close(self) -> None: ...


class Guide(Protocol):
    """The programmes (``epg.client.EpgClient``)."""

    async def range(
        self, channel_id: str, start: datetime, stop: datetime
    ) -> tuple[Programme, ...]: ...
    async def close(self) -> None: ...


class LiveChannels(Protocol):
    """The farm's live channels (``service.Channels``: ``farm.ChannelIntents``)."""

    async def list_channels(self) -> list[ChannelStatus]: ...


class CueSyncMetrics:
    """Passes by outcome, and the signals they queued and took out."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.passes = Counter(
            "transcode_cue_sync_passes_total",
            "Cue reconciler passes: ok, epg_unavailable (skipped, queues kept), failed.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "epg_unavailable", "failed"):
            self.passes.labels(outcome)
        self.queued = Counter(
            "transcode_cue_signals_queued_total",
            "SCTE-35 signals (cues and programme boundaries) added to channels' signal queues.",
            registry=registry,
        )
        self.removed = Counter(
            "transcode_cue_signals_removed_total",
            "Queued signals taken out before placement (a cue cancelled or moved).",
            registry=registry,
        )


class CueSync:
    """Keeps every running channel's signal queue to the EPG's cues (a server component:
    ``async with`` runs the reconciler until the server stops)."""

    def __init__(
        self,
        settings: CueSyncSettings,
        *,
        redis: aioredis.Redis,
        channels: LiveChannels,
        cues: Cues,
        guide: Guide,
        metrics: CueSyncMetrics,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._channels = channels
        self._cues = cues
        self._guide = guide
        self._metrics = metrics
        self._now = now
        # The programmes of each channel signalling them, and when they were read.
        self._programmes: dict[str, tuple[datetime, tuple[Programme, ...]]] = {}
        self._epg_down = False
        self._capped = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CueSync:
        self._task = asyncio.create_task(self.run(), name="cue-sync")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the passes (if running) and close the EPG clients."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._cues.close()
        await self._guide.close()

    async def run(self) -> None:
        """A pass every ``interval_seconds`` until cancelled; a failed pass is logged."""
        while True:
            try:
                await self.reconcile()
            except (HeadendError, aioredis.RedisError, OSError) as err:
                self._metrics.passes.labels("failed").inc()
                log.warning("cues not synced", extra={"error": str(err)})
            except Exception:  # a bug: logged with its trace, and the next pass runs
                self._metrics.passes.labels("failed").inc()
                log.exception("cues not synced")
            await asyncio.sleep(self._settings.interval_seconds)

    async def reconcile(self) -> None:
        """One pass: read the cues (and the programmes due a read), then sync every running
        channel's queue; skipped, every queue kept, while the EPG cannot answer."""
        now = self._now()
        late = timedelta(seconds=self._settings.late_seconds)
        # The EPG reads whole seconds: the window is widened to them.
        start = (now - late).replace(microsecond=0)
        ahead = now + timedelta(seconds=self._settings.lookahead_seconds)
        end = ahead.replace(microsecond=0) + timedelta(seconds=1)
        running = sorted(
            s.channel.id
            for s in await self._channels.list_channels()
            if s.state is not ChannelState.STOPPED
        )
        try:
            cues = await self._cues.list_cues(None, start, end)
            await self._read_programmes(running, now, start, end)
        except ServiceUnavailable as err:
            self._metrics.passes.labels("epg_unavailable").inc()
            if not self._epg_down:
                log.warning("cue sync paused: the EPG cannot answer", extra={"error": str(err)})
            self._epg_down = True
            return
        if self._epg_down:
            log.info("cue sync resumed: the EPG answers again")
            self._epg_down = False
        desired = self._desired(running, self._bounded(cues))
        added = removed = 0
        for channel_id, signals in desired.items():
            more, fewer = await sync_queue(self._redis, channel_id, signals, now=now, late=late)
            added, removed = added + more, removed + fewer
        self._metrics.queued.inc(added)
        self._metrics.removed.inc(removed)
        self._metrics.passes.labels("ok").inc()

    def _bounded(self, cues: list[Cue]) -> list[Cue]:
        """The first :data:`MAX_CUES` cues (the EPG lists them by start): more is logged
        once until a pass is within the bound again."""
        capped = len(cues) > MAX_CUES
        if capped and not self._capped:
            log.warning("cue sync capped", extra={"cues": len(cues), "max_cues": MAX_CUES})
        self._capped = capped
        return cues[:MAX_CUES]

    def _desired(self, running: list[str], cues: list[Cue]) -> dict[str, list[QueuedSignal]]:
        """Each running channel's signals: its cues', then its programme boundaries'."""
        desired: dict[str, list[QueuedSignal]] = {channel_id: [] for channel_id in running}
        for cue in cues:
            if cue.channel_id in desired:
                desired[cue.channel_id] += signals_of(cue)
        for channel_id, (_, programmes) in self._programmes.items():
            for programme in programmes:
                desired[channel_id] += programme_signals(programme)
        return desired

    async def _read_programmes(
        self, running: list[str], now: datetime, start: datetime, end: datetime
    ) -> None:
        """Read the programmes of each running channel signalling them whose last read is
        ``programme_seconds`` old (or none yet); forget the channels no longer concerned."""
        every = timedelta(seconds=self._settings.programme_seconds)
        wanted = [c for c in running if self._settings.signals_programmes(c)]
        kept = {c: self._programmes[c] for c in wanted if c in self._programmes}
        for channel_id in wanted:
            if channel_id in kept and now < kept[channel_id][0] + every:
                continue
            try:
                kept[channel_id] = (now, await self._guide.range(channel_id, start, end))
            except ChannelNotFound:
                if channel_id not in self._programmes:  # logged once, not every read
                    log.info("no guide to signal", extra={"channel": channel_id})
                kept[channel_id] = (now, ())
        self._programmes = kept


def cue_sync(
    settings: CueSyncSettings,
    epg: OwnersSettings,
    *,
    api_key: str,
    redis: aioredis.Redis,
    channels: LiveChannels,
    registry: CollectorRegistry,
) -> CueSync:
    """The reconciler reading the cues and the guide from the EPG at ``epg.target`` with
    ``api_key`` (the farm's EPG playback key)."""
    cues = CueClient(
        epg.target,
        api_key,
        tls=epg.tls,
        options=EPG_CHANNEL_OPTIONS,
        timeout_seconds=EPG_CALL_SECONDS,
    )
    guide = EpgClient(
        epg.target,
        api_key,
        tls=epg.tls,
        options=EPG_CHANNEL_OPTIONS,
        timeout_seconds=EPG_CALL_SECONDS,
    )
    return CueSync(
        settings,
        redis=redis,
        channels=channels,
        cues=cues,
        guide=guide,
        metrics=CueSyncMetrics(registry),
    )
