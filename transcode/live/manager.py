"""The live channels of one control service: started, stopped, reported, kept in Redis.

Every long-running task lives on one :class:`headend.tasks.Supervisor`: each
channel's supervise and publish tasks, and ``live/store``, which writes every
channel's queued archive entries and status to Redis. Redis being away is an
expected state there (retried every ``store_retry_seconds``, the channel
reported DEGRADED with the backlog), not a task failure.

Stopping is bounded in every state: a channel's tasks are cancelled (each
within ``stop_seconds``), its FFmpeg processes are killed, and its stopped
state is saved within ``store_timeout_seconds`` or, with Redis away, queued
(and the caller told UNAVAILABLE: the stop happened, saving it did not yet).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from headend.clock import utc_now
from headend.errors import InvalidArgument
from headend.tasks import Supervisor, SupervisorMetrics
from transcode import hls
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, ChannelStatus, LiveChannel
from transcode.errors import ChannelNotFound, ChannelRunning, StoreUnavailable
from transcode.live.encryption import LiveEncryption
from transcode.live.files import next_sequence_on_disk
from transcode.live.metrics import LiveMetrics
from transcode.live.multicast.collect import MulticastMetricsDir
from transcode.live.persist import IndexObserver, StoreLoop
from transcode.live.publish import SegmentObserver
from transcode.live.sourcing import check_inputs
from transcode.live.standby import Standby, StandbySupervisor
from transcode.live.status import config_mapping, saved_status
from transcode.live.store import CHANNELS, ChannelStore, Writer, channel_key, every_channel
from transcode.live.supervisor import ChannelSupervisor, PhaseObserver
from transcode.live.window import Window
from transcode.profiles import resolve_profile
from transcode.settings import LiveSettings, SourceSettings
from transcode.sources import SourceGuard, publish_dir

log = logging.getLogger(__name__)

_STOPPED_HERE = "control service stopped; the channel resumes when it restarts"
_HANDOFF_POLL_SECONDS = 0.02


class OwnedWriter(Writer, Protocol):
    """A store writer fenced by a node's lease (``transcode.farm.FencedWriter``)."""

    def valid(self) -> bool: ...


class LiveManager:
    """Starts, stops and reports live channels; persists them in Redis (``tc:channel:{id}``)."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        archive: ArchiveIndex,
        origin_root: Path,
        sources: SourceGuard | None = None,
        observer: SegmentObserver | None = None,
        on_phase: PhaseObserver | None = None,
        on_indexed: IndexObserver | None = None,
        settings: LiveSettings | None = None,
        tasks: Supervisor | None = None,
        registry: CollectorRegistry | None = None,
        encryption: LiveEncryption | None = None,
        multicast_metrics: MulticastMetricsDir | None = None,
    ) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        # The content key store encrypted channels use (None: they publish nothing here).
        self._encryption = encryption
        # Where the channels' multicast processes' metrics go (closed with the manager).
        self._multicast_metrics = multicast_metrics
        self._archive = archive
        self._root = origin_root
        self._sources = sources or SourceGuard(SourceSettings())
        self._observer = observer
        self._on_phase = on_phase
        self._on_indexed = on_indexed
        self.settings = settings or LiveSettings()
        self._own_tasks = tasks is None
        self.tasks = tasks or Supervisor(
            backoff=self.settings.restart_backoff,
            metrics=SupervisorMetrics(registry),
            stop_seconds=self.settings.stop_seconds,
        )
        self.metrics = LiveMetrics(registry or self.tasks.metrics.registry)
        self._running: dict[str, ChannelSupervisor] = {}
        self._stores: dict[str, ChannelStore] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._persist = StoreLoop(
            redis=redis,
            stores=self._stores,
            running=self._running,
            metrics=self.metrics,
            settings=self.settings,
            tasks=self.tasks,
            on_phase=on_phase,
            on_indexed=on_indexed,
        )

    def supervisor(self, channel_id: str) -> ChannelSupervisor | None:
        """The channel's supervisor while it runs here."""
        return self._running.get(channel_id)

    def _lock(self, channel_id: str) -> asyncio.Lock:
        return self._locks.setdefault(channel_id, asyncio.Lock())

    async def start(self, channel: LiveChannel) -> ChannelStatus:
        """Persist and start a channel; refuse one already running here with another
        configuration, or a refused source."""
        channel.validate()
        resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        async with self._lock(channel.id):
            running = self._running.get(channel.id)
            if running is not None and not running.finished and running.channel == channel:
                return running.status()  # the same start again: a retried call
            await self._prepare(channel)
            store = self._stores.get(channel.id)
            if store is not None and not store.idle():
                # An earlier run's writes land before this run's "desired: running".
                await self._flush_now(store, "the channel's earlier state is not saved yet")
            raw = await self._redis.hgetall(channel_key(channel.id))
            saved = {k.decode(): v.decode() for k, v in raw.items()}
            await self._redis.hset(
                channel_key(channel.id),
                mapping={
                    **config_mapping(channel),
                    "desired": "running",
                    "state": ChannelState.STARTING.value,
                    "reason": "",
                    "updated_at": utc_now().isoformat(),
                },
            )
            await self._redis.sadd(CHANNELS, channel.id)
            if store is None:
                store = ChannelStore(
                    channel,
                    redis=self._redis,
                    archive=self._archive,
                    wake=self._persist.waker(channel.id),
                )
                self._stores[channel.id] = store
            return await self._launch(channel, saved, store)

    async def run_owned(self, channel: LiveChannel, *, writer: OwnedWriter, node: str) -> None:
        """Run a channel this node has just claimed: its intent is the control service's,
        every Redis write is fenced by ``writer``'s lease and every file by its deadline."""
        channel.validate()
        resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        async with self._lock(channel.id):
            await self._prepare(channel)
            earlier = self._stores.get(channel.id)
            if earlier is not None:
                earlier.abandon("the channel was claimed again")  # an earlier lease's store
            raw = await self._redis.hgetall(channel_key(channel.id))
            saved = {k.decode(): v.decode() for k, v in raw.items()}
            store = ChannelStore(
                channel,
                redis=self._redis,
                archive=self._archive,
                wake=self._persist.waker(channel.id),
                writer=writer,
            )
            self._stores[channel.id] = store
            await self._launch(channel, saved, store, node=node, may_write=writer.valid)

    async def run_standby(
        self, channel: LiveChannel, *, writer: OwnedWriter, node: str, standby: Standby
    ) -> None:
        """Warm a channel up here before this node owns it (a handover): its FFmpeg runs,
        nothing is published or written until :meth:`promote`."""
        channel.validate()
        resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        async with self._lock(channel.id):
            await self._prepare(channel)
            # Not in ``_stores`` until promoted: the old owner still writes the channel's hash.
            store = ChannelStore(
                channel,
                redis=self._redis,
                archive=self._archive,
                wake=self._persist.waker(channel.id),
                writer=writer,
            )
            await self._launch(
                channel, {}, store, node=node, may_write=writer.valid, standby=standby
            )

    async def promote(self, channel_id: str) -> None:
        """The node now holds a standby channel's lease: number after the highest sequence the
        old owner used, write under the lease from now on, publish."""
        async with self._lock(channel_id):
            supervisor = self._running.get(channel_id)
            if not isinstance(supervisor, StandbySupervisor):
                raise ChannelNotFound(
                    f"no standby channel {channel_id}", details={"channel_id": channel_id}
                )
            raw = await self._redis.hgetall(channel_key(channel_id))
            saved = {k.decode(): v.decode() for k, v in raw.items()}
            next_sequence = await self._next_sequence(channel_id, saved)
            earlier = self._stores.get(channel_id)
            if earlier is not None and earlier is not supervisor.store:
                earlier.abandon("the channel was claimed again")  # an earlier lease's store
            self._stores[channel_id] = supervisor.store
            supervisor.promote(
                next_sequence=next_sequence,
                window=await self._last_window(supervisor, saved),
                restarts=int(saved.get("restarts", "0")),
            )
            supervisor.store.changed()

    async def hand_off(self, channel_id: str, *, reason: str, wait_seconds: float) -> None:
        """Stop a channel right after its next published segment (within ``wait_seconds``) and
        save its status: the new owner's first segment then follows with the least gap."""
        supervisor = self._running.get(channel_id)
        if supervisor is not None:
            loop = asyncio.get_running_loop()
            published, deadline = supervisor.publisher.next_sequence, loop.time() + wait_seconds
            # Polled: the publisher has no event for it (publish.py), and this runs once.
            while loop.time() < deadline:
                if supervisor.publisher.next_sequence != published:
                    break
                await asyncio.sleep(_HANDOFF_POLL_SECONDS)
        await self.release(channel_id, reason=reason, end=False)

    async def _last_window(self, supervisor: ChannelSupervisor, saved: dict[str, str]) -> Window:
        """The old owner's live window as it indexed it: the new owner's playlists go on from
        it (no shrunken window, and its first segment starts after the old owner's last)."""
        channel = supervisor.channel
        rungs = [r.name for r in supervisor.plan] + [t.name for t in supervisor.tracks]
        recent = {
            rung: {e.sequence: e for e in await self._archive.recent(
                channel.id, rung, channel.window_segments)}
            for rung in rungs
        }  # fmt: skip
        common = sorted(set.intersection(*(set(r) for r in recent.values()))) if rungs else []
        # Only a run of consecutive numbers ending at the last one is the window.
        while len(common) > 1 and common[-1] - common[0] != len(common) - 1:
            common.pop(0)
        window = Window(discontinuity_sequence=int(saved.get("discontinuity_sequence", "0")))
        first = recent[rungs[0]] if rungs else {}
        for seq in common:
            entry = first[seq]
            window.seqs.append(seq)
            window.durations.append(entry.duration)
            window.starts.append(entry.start)
            window.discontinuities.append(entry.discontinuity and bool(window.discontinuities))
            keys = supervisor.publisher.keys
            key = None
            if keys is not None and entry.key_id:
                key = hls.SegmentKey(keys.uri(entry.key_id), seq)
            window.keys.append(key)
            for rung in rungs:
                window.sizes.setdefault(rung, []).append(recent[rung][seq].size)
        return window

    async def _next_sequence(self, channel_id: str, saved: dict[str, str]) -> int:
        # Redis may have lost its tail (or been replaced), or an earlier owner died before
        # saving its status: the archive index and the files on disk also say which numbers
        # were used, and a number is never used twice.
        on_disk = await asyncio.to_thread(next_sequence_on_disk, self._root / "live" / channel_id)
        indexed = await self._archive.highest_sequence(channel_id)
        return max(int(saved.get("next_sequence", "0")), on_disk, indexed + 1)

    async def _prepare(self, channel: LiveChannel) -> None:
        """Refuse a channel running here or a refused source; end a refused earlier run."""
        earlier = self._running.get(channel.id)
        if earlier is not None and not earlier.finished:
            raise ChannelRunning(f"channel {channel.id} is already running")
        await check_inputs(self._sources, channel)
        publish_dir(self._root, "live", channel.id)
        if earlier is not None:  # its source was refused; its tasks have ended
            await self._halt(channel.id, reason=earlier.reason, desired=None, end=False)

    async def _launch(
        self,
        channel: LiveChannel,
        saved: dict[str, str],
        store: ChannelStore,
        *,
        node: str = "",
        may_write: Callable[[], bool] | None = None,
        standby: Standby | None = None,
    ) -> ChannelStatus:
        next_sequence = await self._next_sequence(channel.id, saved)
        store.channel = channel
        kind: type[ChannelSupervisor] = ChannelSupervisor
        extra: dict[str, Any] = {}
        if standby is not None:
            kind, extra = StandbySupervisor, {"standby": standby}
        supervisor = kind(
            channel,
            redis=self._redis,
            archive=self._archive,
            origin_root=self._root,
            next_sequence=next_sequence,
            discontinuity_sequence=int(saved.get("discontinuity_sequence", "0")),
            restarts=int(saved.get("restarts", "0")),
            sources=self._sources,
            observer=self._observer,
            on_phase=self._on_phase,
            settings=self.settings,
            store=store,
            tasks=self.tasks,
            metrics=self.metrics,
            node=node,
            may_write=may_write,
            encryption=self._encryption,
            multicast_metrics=self._multicast_metrics,
            **extra,
        )
        self._running[channel.id] = supervisor
        self._persist.ensure()
        supervisor.start()
        return supervisor.status()

    async def release(self, channel_id: str, *, reason: str, end: bool) -> None:
        """Stop running a channel here and save its last status (still under its lease);
        ``end``: its playlists are ended too (stopped on request, not moving to a node)."""
        async with self._lock(channel_id):
            if channel_id in self._running:
                await self._halt(channel_id, reason=reason, desired=None, end=end)
        store = self._stores.get(channel_id)
        if store is not None and not store.idle():
            try:
                await self._flush_now(store, f"channel {channel_id} released unsaved")
            except StoreUnavailable as err:
                log.warning("live status not saved", extra={"channel": channel_id,
                                                            "reason": err.message})  # fmt: skip

    async def abandon(self, channel_id: str, why: str) -> None:
        """The lease is lost: stop the channel's FFmpeg and write nothing more for it."""
        store = self._stores.get(channel_id)
        if store is not None:
            store.abandon(why)
        async with self._lock(channel_id):
            if channel_id in self._running:
                await self._halt(channel_id, reason=why, desired=None, end=False)

    async def stop(self, channel_id: str) -> ChannelStatus:
        """Stop a channel (its archive stays for catch-up); bounded whatever it is doing."""
        async with self._lock(channel_id):
            if channel_id not in self._running:
                if not await self._redis.sismember(CHANNELS, channel_id):
                    raise ChannelNotFound(
                        f"no channel {channel_id}", details={"channel_id": channel_id}
                    )
                await self._redis.hset(
                    channel_key(channel_id),
                    mapping={
                        "desired": "stopped",
                        "state": ChannelState.STOPPED.value,
                        "updated_at": utc_now().isoformat(),
                    },
                )
                return await self.get(channel_id)
            status = await self._halt(
                channel_id, reason="stopped on request", desired="stopped", end=True
            )
            await self._flush_now(
                self._stores[channel_id],
                f"channel {channel_id} is stopped, but saving that waits for Redis",
            )
            return status

    async def _halt(
        self, channel_id: str, *, reason: str, desired: str | None, end: bool
    ) -> ChannelStatus:
        supervisor = self._running[channel_id]
        await supervisor.halt()
        if end:
            await asyncio.to_thread(supervisor.end_playlists)
        supervisor.freeze(reason=reason, desired=desired)
        del self._running[channel_id]
        self._persist.waker(channel_id)()
        log.info("live channel stopped", extra={"channel": channel_id, "reason": reason})
        return supervisor.status()

    async def _flush_now(self, store: ChannelStore, what: str) -> None:
        """Write a channel's queue now, within the bound; StoreUnavailable if Redis is away."""
        try:
            async with asyncio.timeout(self.settings.store_timeout_seconds):
                await store.flush()
        except (aioredis.RedisError, OSError, TimeoutError) as err:
            store.failed(err)
            raise StoreUnavailable(
                f"{what} (Redis unreachable: {store.error})",
                details={"channel_id": store.channel.id},
            ) from err

    async def get(self, channel_id: str) -> ChannelStatus:
        """A channel's status (live from its supervisor when it runs here)."""
        supervisor = self._running.get(channel_id)
        if supervisor is not None:
            return supervisor.status()
        return saved_status(channel_id, await self._redis.hgetall(channel_key(channel_id)))

    async def list_channels(self) -> list[ChannelStatus]:
        """Every channel, by id."""
        return await every_channel(self._redis, self.get)

    async def resume(self) -> None:
        """Restart the channels that were running when this process last stopped."""
        for status in await self.list_channels():
            raw = await self._redis.hget(channel_key(status.channel.id), "desired")
            if raw == b"running" and status.channel.id not in self._running:
                try:
                    await self.start(status.channel)
                except InvalidArgument as err:  # e.g. a source the allow-lists now refuse
                    await self._refused(status.channel.id, err)

    async def _refused(self, channel_id: str, err: InvalidArgument) -> None:
        log.warning("channel not resumed", extra={"channel": channel_id, "reason": err.message})
        await self._redis.hset(
            channel_key(channel_id),
            mapping={
                "state": ChannelState.STOPPED.value,
                "reason": f"refused: {err.message}",
                "updated_at": utc_now().isoformat(),
            },
        )

    async def close(self) -> None:
        """Stop every channel, leaving them marked to resume on the next start (bounded)."""
        await asyncio.gather(*(self._close_one(channel_id) for channel_id in list(self._running)))
        await asyncio.gather(*(self._save_at_close(s) for s in list(self._stores.values())))
        await self._persist.cancel()
        if self._own_tasks:
            await self.tasks.close()
        if self._encryption is not None and self._encryption.aclose is not None:
            await self._encryption.aclose()  # the key provider goes with the channels using it
        if self._multicast_metrics is not None:
            self._multicast_metrics.close()  # every multicast process has ended

    async def _close_one(self, channel_id: str) -> None:
        async with self._lock(channel_id):  # after a stop already under way
            if channel_id in self._running:
                await self._halt(channel_id, reason=_STOPPED_HERE, desired=None, end=False)

    async def _save_at_close(self, store: ChannelStore) -> None:
        if store.idle():
            return
        try:
            await self._flush_now(store, "status not saved at shutdown")
        except StoreUnavailable as err:
            log.warning("live status not saved", extra={"channel": store.channel.id,
                                                        "error": err.message})  # fmt: skip
