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
returns (older segments it missed are not replayed: the queue keeps the newest
``queue_segments``). Failures are retried with capped exponential backoff; a 409
means the node's token is stale (another node owns the channel) and the segment is
dropped.

Every PUT carries the node's id and its lease's fencing token on the channel, signed
with ``ORIGIN_INGEST_SECRET`` (:mod:`transcode.ingest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from headend.settings import Env, SettingsError, env_float, env_int, env_optional, split_list
from transcode import hls, ingest
from transcode.domain import ChannelState
from transcode.errors import InvalidPlaylist

log = logging.getLogger(__name__)

_TRANSIENT = (aiohttp.ClientError, OSError, TimeoutError)
_MIN_SECRET_BYTES = ingest.MIN_SECRET_BYTES
# Segments an origin is remembered to have, per channel and rung, beyond the live window.
_SENT_SLACK = 64


@dataclass(frozen=True, slots=True)
class PushSettings:
    """Where a node mirrors its published files; empty ``origins`` = push off (shared root)."""

    origins: tuple[str, ...] = ()
    secret: bytes = b""
    queue_segments: int = 256
    timeout_seconds: float = 10.0
    retry_first_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    keep_local_seconds: float = 3600.0

    @property
    def enabled(self) -> bool:
        """True when files are pushed."""
        return bool(self.origins)

    @classmethod
    def from_env(cls, env: Env) -> PushSettings:
        """Read ``TC_ORIGIN_PUSH_URLS`` (comma list of origin base URLs), the shared
        ``ORIGIN_INGEST_SECRET`` (the first of its list signs), ``TC_ORIGIN_PUSH_QUEUE_SEGMENTS``,
        ``TC_ORIGIN_PUSH_TIMEOUT_SECONDS``, ``TC_ORIGIN_PUSH_RETRY_MAX_SECONDS`` and
        ``TC_ORIGIN_PUSH_KEEP_LOCAL_SECONDS``."""
        origins = tuple(u.rstrip("/") for u in split_list(env.get("TC_ORIGIN_PUSH_URLS", "")))
        for url in origins:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError("TC_ORIGIN_PUSH_URLS", f"not an http(s) URL: {url[:80]}")
        secret = (env_optional(env, "ORIGIN_INGEST_SECRET") or "").split(",")[0].strip().encode()
        if origins and len(secret) < _MIN_SECRET_BYTES:
            raise SettingsError(
                "ORIGIN_INGEST_SECRET",
                f"needed with TC_ORIGIN_PUSH_URLS, at least {_MIN_SECRET_BYTES} bytes",
            )
        return cls(
            origins=origins,
            secret=secret,
            queue_segments=env_int(env, "TC_ORIGIN_PUSH_QUEUE_SEGMENTS", 256, low=1, high=100_000),
            timeout_seconds=env_float(
                env, "TC_ORIGIN_PUSH_TIMEOUT_SECONDS", 10.0, low=0.1, high=600.0
            ),
            retry_max_seconds=env_float(
                env, "TC_ORIGIN_PUSH_RETRY_MAX_SECONDS", 5.0, low=0.01, high=600.0
            ),
            keep_local_seconds=env_float(
                env, "TC_ORIGIN_PUSH_KEEP_LOCAL_SECONDS", 3600.0, low=0.0, high=365 * 86400.0
            ),
        )


class HeldLease(Protocol):
    """A node's lease on a channel (``transcode.farm.Lease``)."""

    node: str
    token: int

    def valid(self) -> bool: ...


class PushMetrics:
    """Per origin: files pushed, failures, segments waiting, segments dropped."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.failures = Counter(
            "tc_push_failures_total",
            "Pushes to an origin that failed (retried, or dropped when refused), by origin.",
            ["origin"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "tc_push_backlog_segments",
            "Published segments not yet pushed to an origin, by origin.",
            ["origin"],
            registry=self.registry,
        )
        self.files = Counter(
            "tc_push_files_total",
            "Files pushed to an origin, by origin and kind (segment, playlist).",
            ["origin", "kind"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "tc_push_dropped_total",
            "Queued segments dropped for an origin: queue full or the node's token stale.",
            ["origin"],
            registry=self.registry,
        )


@dataclass(frozen=True, slots=True)
class _Item:
    channel: str
    sequence: int
    writer: ingest.Writer


class _Stale(Exception):
    """The origin refused the node's token (409): another node owns the channel now."""


class _Transient(Exception):
    """The origin did not take a file now (unreachable, 5xx, 429): retry later."""


class _Origin:
    """One origin's queue and worker."""

    def __init__(
        self, url: str, *, settings: PushSettings, root: Path, metrics: PushMetrics
    ) -> None:
        self.url = url
        self._settings = settings
        self._root = root
        self._metrics = metrics
        self.queue: deque[_Item] = deque()
        self._pending: Tally[str] = Tally()
        self._sent: dict[tuple[str, str], set[int]] = {}
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def offer(self, item: _Item) -> None:
        """Queue a published segment; the oldest goes when the queue is full."""
        if len(self.queue) >= self._settings.queue_segments:
            old = self.queue.popleft()
            self._pending[old.channel] -= 1
            self._metrics.dropped.labels(self.url).inc()
            log.warning("push queue full: segment dropped for this origin",
                        extra={"origin": self.url, "channel": old.channel,
                               "sequence": old.sequence})  # fmt: skip
        self.queue.append(item)
        self._pending[item.channel] += 1
        self._metrics.backlog.labels(self.url).set(len(self.queue))
        self.idle.clear()
        self.wake.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Push queued segments until cancelled, retrying with backoff."""
        failures = 0
        while True:
            if not self.queue:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            item = self.queue[0]
            try:
                await self._push(session, item)
                failures = 0
            except _Stale:
                self._metrics.dropped.labels(self.url).inc()
                log.warning("push refused: the node's token is stale",
                            extra={"origin": self.url, "channel": item.channel,
                                   "token": item.writer.token})  # fmt: skip
            except _Transient as err:
                failures += 1
                self._metrics.failures.labels(self.url).inc()
                delay = min(
                    self._settings.retry_max_seconds,
                    self._settings.retry_first_seconds * 2 ** min(failures - 1, 20),
                ) * random.uniform(0.8, 1.2)
                log.warning("push failed; retrying", extra={"origin": self.url,
                            "channel": item.channel, "sequence": item.sequence,
                            "error": str(err), "retry_seconds": round(delay, 3)})  # fmt: skip
                await asyncio.sleep(delay)
                continue
            except Exception:
                # A bug or an unreadable local file must not stop this origin's worker.
                self._metrics.failures.labels(self.url).inc()
                log.exception("push of a segment failed; dropped for this origin",
                              extra={"origin": self.url, "channel": item.channel,
                                     "sequence": item.sequence})  # fmt: skip
            if self.queue and self.queue[0] is item:
                self.queue.popleft()
                self._pending[item.channel] -= 1
                if self._pending[item.channel] <= 0:
                    del self._pending[item.channel]
            self._metrics.backlog.labels(self.url).set(len(self.queue))

    async def _push(self, session: aiohttp.ClientSession, item: _Item) -> None:
        rungs = await asyncio.to_thread(_rungs_with, self._root, item.channel, item.sequence)
        await asyncio.gather(*(self._segment(session, item, rung, item.sequence) for rung in rungs))
        if self._pending[item.channel] <= 1:  # nothing newer of this channel is waiting
            await self._playlists(session, item)

    async def _segment(
        self, session: aiohttp.ClientSession, item: _Item, rung: str, sequence: int
    ) -> None:
        sent = self._sent.setdefault((item.channel, rung), set())
        if sequence in sent:
            return
        rel = f"live/{item.channel}/{rung}/{sequence:010d}.ts"
        body = await asyncio.to_thread(_read, self._root / rel)
        if body is None:
            return  # trimmed locally, or never written: nothing to send
        await self._put(session, rel, body, item.writer, "segment")
        sent.add(sequence)

    async def _playlists(self, session: aiohttp.ClientSession, item: _Item) -> None:
        base = f"live/{item.channel}"
        lists = await asyncio.to_thread(_read_playlists, self._root / base)
        for rung, body in lists.items():
            try:
                names = [s.uri for s in hls.parse_media(body.decode()).segments]
            except (InvalidPlaylist, UnicodeDecodeError, ValueError):
                log.warning("push: unreadable playlist skipped",
                            extra={"channel": item.channel, "rung": rung})  # fmt: skip
                continue
            seqs = [int(n[:-3]) for n in names if n.endswith(".ts") and n[:-3].isdigit()]
            for seq in seqs:
                await self._segment(session, item, rung, seq)
            await self._put(session, f"{base}/{rung}/index.m3u8", body, item.writer, "playlist")
            if seqs:
                sent = self._sent[(item.channel, rung)]
                floor = seqs[0] - _SENT_SLACK
                self._sent[(item.channel, rung)] = {s for s in sent if s >= floor}
        master = await asyncio.to_thread(_read, self._root / base / "master.m3u8")
        if master is not None and lists:
            await self._put(session, f"{base}/master.m3u8", master, item.writer, "playlist")

    async def _put(
        self,
        session: aiohttp.ClientSession,
        rel: str,
        body: bytes,
        writer: ingest.Writer,
        kind: str,
    ) -> None:
        path = f"{ingest.PREFIX}/{rel}"
        head = ingest.headers(self._settings.secret, path, writer, int(time.time()), body)
        try:
            async with session.put(self.url + path, data=body, headers=head) as response:
                status = response.status
                await response.read()
        except _TRANSIENT as err:
            raise _Transient(f"{type(err).__name__}: {err}") from err
        if status < 300:
            self._metrics.files.labels(self.url, kind).inc()
            return
        if status == 409:
            raise _Stale(rel)
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status} for {rel}")
        # 401/403/404/413: retrying cannot help; count it, log it, go on with the rest.
        self._metrics.failures.labels(self.url).inc()
        log.error("push refused by the origin", extra={"origin": self.url, "file": rel,
                                                       "status": status})  # fmt: skip


class Pusher:
    """Mirrors what a node's publishers publish to every origin in ``settings.origins``."""

    def __init__(
        self,
        settings: PushSettings,
        *,
        root: Path,
        registry: CollectorRegistry | None = None,
        leases: Mapping[str, HeldLease] | None = None,
    ) -> None:
        self.settings = settings
        self._root = root
        self.metrics = PushMetrics(registry)
        self._leases = leases
        self.origins = [
            _Origin(url, settings=settings, root=root, metrics=self.metrics)
            for url in settings.origins
        ]
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def bind(self, leases: Mapping[str, HeldLease]) -> None:
        """Take each channel's fencing token from ``leases`` (a node's, by channel id)."""
        self._leases = leases

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
        item = _Item(channel, sequence, writer)
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
        """Wait until every origin's queue is empty."""
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
            try:
                removed = await asyncio.to_thread(trim_local, self._root, time.time() - keep)
                if removed:
                    log.info("push: local segments trimmed", extra={"segments": removed})
            except OSError:
                log.exception("push: local trim failed")
            await asyncio.sleep(min(60.0, max(1.0, keep / 4)))


def trim_local(root: Path, before: float) -> int:
    """Remove ``live/*/*/*.ts`` under ``root`` last modified before ``before`` (epoch s)."""
    removed = 0
    live = root / "live"
    if not live.is_dir():
        return 0
    for path in live.glob("*/*/*.ts"):
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _rungs_with(root: Path, channel: str, sequence: int) -> list[str]:
    directory = root / "live" / channel
    name = f"{sequence:010d}.ts"
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    return sorted(
        e.name
        for e in entries
        if e.is_dir(follow_symlinks=False)
        and not e.name.startswith(".")
        and os.path.exists(os.path.join(e.path, name))
    )


def _read_playlists(directory: Path) -> dict[str, bytes]:
    """Every rung playlist of a channel, read once (what is pushed is what was checked)."""
    out: dict[str, bytes] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            body = _read(Path(entry.path) / "index.m3u8")
            if body is not None:
                out[entry.name] = body
    return out
