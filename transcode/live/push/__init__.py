"""Mirroring a node's published files to every origin over HTTP (``TC_ORIGIN_PUSH_URLS``).

A node writes its live channels into its own ``ORIGIN_ROOT``; with push on, every
origin replica gets the same files through its ingest face (``PUT /ingest/live/...``,
:mod:`transcode.origin.ingest`), so each origin serves every channel and holds the
whole catch-up archive whichever node wrote it, and losing a node loses neither.

The publisher calls :meth:`Pusher.observe` (its segment observer) right after a
segment is in place in every rung and the playlists are written; that only queues
the segment. Each origin has its own worker and bounded queue, so a slow or dead
origin never slows encoding or the other origins. A worker pushes a segment's files
(every rung), then, once its queue holds nothing newer of that channel, the rung
playlists and last the master. Before a playlist goes out, every segment it names
that this origin has not had is pushed first: a playlist never names a segment the
origin lacks, and an origin that was down catches up with the live window when it
returns. The queue keeps the newest ``queue_segments``; a segment dropped from it is
not forgotten: once the queue is empty again (live first), the worker replays what the
origin missed, newest first, taking the archive index as the list of what exists
(``Archive``) and the node's own files as the bodies, back to the oldest dropped
segment and no further than the node still keeps locally (``keep_local_seconds``).
Failures are retried with capped exponential backoff; a 409 means the node's token is
stale (another node owns the channel) and the segment is dropped.

A CMAF channel's files travel with its TS ones, found on disk by the segment's number
(``cmaf.py``): each track's init segments and ``{seq}.m4s`` with the segment, each
track's ``cmaf.m3u8`` and ``cmaf-iframes.m3u8`` after everything they name, then
``master-cmaf.m3u8`` and last ``manifest.mpd``. The publisher's observer call needs no
more than it has: the CMAF files of a segment are in place before it is made.

When a node stops a channel on request it calls :meth:`Pusher.ended` (still under the
lease) once the playlists are ended: they (``#EXT-X-ENDLIST``) are pushed last.

With push on, the node's ``ORIGIN_ROOT`` is its own scratch copy: it trims its segment
files after ``keep_local_seconds``. It must never be an origin's root (the trim would
delete that origin's archive): origins leave a marker there (``ingest.ROOT_MARKER``),
:func:`check_root` refuses such a root at start and the trim skips it if one appears.

Every PUT carries the node's id and its lease's fencing token on the channel, signed
with ``ORIGIN_INGEST_SECRET`` (:mod:`transcode.ingest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import aiohttp
from prometheus_client import CollectorRegistry

from transcode import ingest
from transcode.domain import ChannelState
from transcode.live.push.origin import Archive, Item, OriginWorker, PushMetrics
from transcode.live.push.settings import PushSettings, check_root

__all__ = [
    "Archive",
    "HeldLease",
    "PushMetrics",
    "PushSettings",
    "Pusher",
    "check_root",
    "trim_local",
]

log = logging.getLogger(__name__)


class HeldLease(Protocol):
    """A node's lease on a channel (``transcode.farm.Lease``)."""

    node: str
    token: int

    def valid(self) -> bool: ...


class Pusher:
    """Mirrors what a node's publishers publish to every origin in ``settings.origins``."""

    def __init__(
        self,
        settings: PushSettings,
        *,
        root: Path,
        registry: CollectorRegistry | None = None,
        leases: Mapping[str, HeldLease] | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.settings = settings
        self._root = root
        self.metrics = PushMetrics(registry)
        self._leases = leases
        self.origins = [
            OriginWorker(url, settings=settings, root=root, metrics=self.metrics, archive=archive)
            for url in settings.origins
        ]
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def bind(self, leases: Mapping[str, HeldLease]) -> None:
        """Take each channel's fencing token from ``leases`` (a node's, by channel id)."""
        self._leases = leases

    def ended(self, channel: str, lease: HeldLease | None = None) -> None:
        """The channel was stopped and its playlists ended: push them after what is queued
        (``lease``: the node's lease on it, still held; None for an unfenced channel)."""
        writer = (
            ingest.Writer("unfenced", 0)
            if lease is None
            else ingest.Writer(lease.node, lease.token)
        )
        for origin in self.origins:
            origin.offer(Item(channel, -1, writer, final=True))

    def observe(self, channel: str, sequence: int, state: ChannelState) -> None:
        """The publisher's segment observer: queue the segment for every origin."""
        if not self.origins:
            return
        if self._leases is None:
            writer = ingest.Writer("unfenced", 0)  # a channel no node lease guards
        else:
            lease = self._leases.get(channel)
            if lease is None or not lease.valid():
                return  # not ours (any more): the origins would refuse it anyway
            writer = ingest.Writer(lease.node, lease.token)
        item = Item(channel, sequence, writer)
        for origin in self.origins:
            origin.offer(item)

    def start(self) -> None:
        """Start one worker per origin (and the local trim); a no-op when push is off."""
        if not self.origins or self._tasks:
            return
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        for i, origin in enumerate(self.origins):
            self._tasks.append(asyncio.create_task(origin.run(self._session), name=f"push/{i}"))
        if self.settings.keep_local_seconds > 0:
            self._tasks.append(asyncio.create_task(self._trim_loop(), name="push/trim"))

    async def drained(self) -> None:
        """Wait until every origin's queue and replay are empty."""
        await asyncio.gather(*(o.idle.wait() for o in self.origins))

    async def close(self, *, drain_seconds: float = 2.0) -> None:
        """Push what is queued for up to ``drain_seconds``, then stop."""
        if self._tasks and drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await self.drained()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _trim_loop(self) -> None:
        # With push on, the node's root is a scratch copy: the archive lives on the origins.
        keep = self.settings.keep_local_seconds
        while True:
            if (self._root / ingest.ROOT_MARKER).exists():
                log.error("push: ORIGIN_ROOT is an origin's root; local trim skipped",
                          extra={"root": str(self._root)})  # fmt: skip
                await asyncio.sleep(min(60.0, max(1.0, keep / 4)))
                continue
            try:
                removed = await asyncio.to_thread(trim_local, self._root, time.time() - keep)
                if removed:
                    log.info("push: local segments trimmed", extra={"segments": removed})
            except OSError:
                log.exception("push: local trim failed")
            await asyncio.sleep(min(60.0, max(1.0, keep / 4)))


def trim_local(root: Path, before: float) -> int:
    """Remove ``live/*/*/*.ts`` and ``*.vtt`` under ``root`` last modified before ``before``
    (epoch s)."""
    removed = 0
    live = root / "live"
    if not live.is_dir():
        return 0
    for path in (*live.glob("*/*/*.ts"), *live.glob("*/*/*.vtt")):
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
