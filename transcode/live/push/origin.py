"""One origin's queue and worker: segments, then playlists, then what it missed.

A CMAF channel's files go the same way (``cmaf.py`` here reads them): each segment's
``.m4s`` in every track after the track's init segments, with the TS files; its CMAF
playlists after the TS ones, each after every init and segment it names; the CMAF master
after them and the live MPD last. A replayed segment takes its CMAF files when the node
still has them (it keeps a few past the live window).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from transcode import hls_parse, ingest
from transcode.archive import LIVE_IFRAMES, RungInfo
from transcode.domain import ArchiveEntry, Window
from transcode.errors import InvalidPlaylist
from transcode.live.push import cmaf
from transcode.live.push.settings import PushSettings
from transcode.names import CMAF_IFRAMES, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME

log = logging.getLogger(__name__)

_TRANSIENT = (aiohttp.ClientError, OSError, TimeoutError)
# Segments an origin is remembered to have, per channel and rung, beyond the live window.
_SENT_SLACK = 64
# A live segment: a rung's or audio rendition's MPEG-TS, a subtitle rendition's WebVTT.
_SUFFIXES = (".ts", ".vtt")
# A replay starts this long before the oldest dropped segment was queued (its start time
# in the index is earlier than when it was published).
_REPLAY_MARGIN_SECONDS = 30.0


class Archive(Protocol):
    """The archive index (``transcode.archive.ArchiveIndex``): the list of what was published."""

    async def rungs(self, channel: str) -> list[RungInfo]: ...

    async def window(self, channel: str, rung: str, window: Window) -> list[ArchiveEntry]: ...


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
            "Files pushed to an origin, by origin and kind (segment, replay, init, playlist).",
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
class Item:
    """One thing to push: a segment (every rung), or a stopped channel's ended playlists."""

    channel: str
    sequence: int
    writer: ingest.Writer
    final: bool = False  # the channel stopped: push its ended playlists
    replay: bool = False  # an archived segment the origin missed: no playlists after it
    offered: float = field(default_factory=time.time)


@dataclass(slots=True)
class Missed:
    """A channel's segments dropped from an origin's queue: the oldest's time, the newest's
    writer."""

    since: float
    writer: ingest.Writer


class Stale(Exception):
    """The origin refused the node's token (409): another node owns the channel now."""


class Transient(Exception):
    """The origin did not take a file now (unreachable, 5xx, 429): retry later."""


class OriginWorker:
    """One origin's queue and worker."""

    def __init__(
        self,
        url: str,
        *,
        settings: PushSettings,
        root: Path,
        metrics: PushMetrics,
        archive: Archive | None = None,
    ) -> None:
        self.url = url
        self._settings = settings
        self._root = root
        self._metrics = metrics
        self._archive = archive
        self.queue: deque[Item] = deque()
        self.backfill: deque[Item] = deque()  # replayed segments, newest first
        self._missed: dict[str, Missed] = {}
        self._pending: Tally[str] = Tally()
        self._sent: dict[tuple[str, str], set[int]] = {}
        # Per channel and CMAF track: the .m4s numbers and init segments this origin has.
        self._sent_cmaf: dict[tuple[str, str], set[int]] = {}
        self._sent_inits: dict[tuple[str, str], set[str]] = {}
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def offer(self, item: Item) -> None:
        """Queue a published segment; the oldest goes when the queue is full."""
        if len(self.queue) >= self._settings.queue_segments:
            old = self.queue.popleft()
            self._pending[old.channel] -= 1
            self._metrics.dropped.labels(self.url).inc()
            missed = self._missed.get(old.channel)
            if missed is None:
                self._missed[old.channel] = Missed(old.offered, item.writer)
            else:
                missed.since = min(missed.since, old.offered)
                missed.writer = item.writer
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
            if not self.queue and self._missed:
                await self._plan_replay()
                continue
            source = self.queue or self.backfill
            if not source:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            item = source[0]
            try:
                await self._push(session, item)
                failures = 0
            except Stale:
                self._metrics.dropped.labels(self.url).inc()
                log.warning("push refused: the node's token is stale",
                            extra={"origin": self.url, "channel": item.channel,
                                   "token": item.writer.token})  # fmt: skip
                if item.replay:  # the rest of this channel's replay would be refused too
                    rest = [i for i in self.backfill if i.channel != item.channel]
                    self.backfill = deque([item, *rest])
            except Transient as err:
                failures += 1
                # The origin may come back with an empty disk: init segments (never named
                # again by a later segment) go once more; they are tiny.
                self._sent_inits.clear()
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
            if self.backfill and self.backfill[0] is item:
                self.backfill.popleft()
            elif self.queue and self.queue[0] is item:
                self.queue.popleft()
                self._pending[item.channel] -= 1
                if self._pending[item.channel] <= 0:
                    del self._pending[item.channel]
            self._metrics.backlog.labels(self.url).set(len(self.queue))

    async def _plan_replay(self) -> None:
        """Turn one channel's dropped segments into replay items: every indexed segment
        since the oldest dropped one (bounded by what the node keeps) this origin has not
        had, newest first."""
        channel, missed = self._missed.popitem()
        if self._archive is None:
            return
        now = time.time()
        lower = missed.since - _REPLAY_MARGIN_SECONDS
        if self._settings.keep_local_seconds > 0:
            lower = max(lower, now - self._settings.keep_local_seconds)
        window = Window(datetime.fromtimestamp(lower, UTC), datetime.fromtimestamp(now + 60, UTC))
        wanted: set[int] = set()
        try:
            for rung in await self._archive.rungs(channel):
                sent = self._sent.get((channel, rung.name), set())
                for entry in await self._archive.window(channel, rung.name, window):
                    if entry.sequence not in sent:
                        wanted.add(entry.sequence)
        except Exception:
            # Redis away: the live window still goes out; these holes stay (logged).
            log.exception("push: replay of missed segments skipped",
                          extra={"origin": self.url, "channel": channel})  # fmt: skip
            return
        self.backfill.extend(
            Item(channel, seq, missed.writer, replay=True) for seq in sorted(wanted, reverse=True)
        )
        log.info("push: replaying missed segments", extra={"origin": self.url,
                 "channel": channel, "segments": len(wanted)})  # fmt: skip

    async def _push(self, session: aiohttp.ClientSession, item: Item) -> None:
        if item.sequence >= 0:
            found = await asyncio.to_thread(_rungs_with, self._root, item.channel, item.sequence)
            tracks = await asyncio.to_thread(
                cmaf.segment_files, self._root, item.channel, item.sequence
            )
            await asyncio.gather(
                *(
                    self._segment(session, item, rung, item.sequence, suffix)
                    for rung, suffix in found
                ),
                *(self._cmaf_files(session, item, track) for track in tracks),
            )
        if item.replay:
            return
        if item.final or self._pending[item.channel] <= 1:  # nothing newer of it is waiting
            await self._playlists(session, item)

    async def _segment(
        self, session: aiohttp.ClientSession, item: Item, rung: str, sequence: int, suffix: str
    ) -> None:
        sent = self._sent.setdefault((item.channel, rung), set())
        if sequence in sent:
            return
        rel = f"live/{item.channel}/{rung}/{sequence:010d}{suffix}"
        body = await asyncio.to_thread(_read, self._root / rel)
        if body is None:
            return  # trimmed locally, or never written: nothing to send
        await self._put(session, rel, body, item.writer, "replay" if item.replay else "segment")
        sent.add(sequence)

    async def _playlists(self, session: aiohttp.ClientSession, item: Item) -> None:
        base = f"live/{item.channel}"
        lists = await asyncio.to_thread(_read_playlists, self._root / base)
        for rung, (body, iframes) in lists.items():
            try:
                names = [s.uri for s in hls_parse.parse_media(body.decode()).segments]
            except (InvalidPlaylist, UnicodeDecodeError, ValueError):
                log.warning("push: unreadable playlist skipped",
                            extra={"channel": item.channel, "rung": rung})  # fmt: skip
                continue
            stems = [n.rpartition(".") for n in names]
            found = [(int(s), f".{x}") for s, _, x in stems if f".{x}" in _SUFFIXES and s.isdigit()]
            seqs = [seq for seq, _ in found]
            for seq, suffix in found:
                await self._segment(session, item, rung, seq, suffix)
            await self._put(session, f"{base}/{rung}/index.m3u8", body, item.writer, "playlist")
            if iframes is not None:
                # After the media playlist: it names only segments that one names, now sent.
                rel = f"{base}/{rung}/{LIVE_IFRAMES}"
                await self._put(session, rel, iframes, item.writer, "playlist")
            if seqs:
                sent = self._sent[(item.channel, rung)]
                floor = seqs[0] - _SENT_SLACK
                self._sent[(item.channel, rung)] = {s for s in sent if s >= floor}
        master = await asyncio.to_thread(_read, self._root / base / "master.m3u8")
        if master is not None and lists:
            await self._put(session, f"{base}/master.m3u8", master, item.writer, "playlist")
        await self._cmaf_playlists(session, item)

    async def _cmaf_files(
        self, session: aiohttp.ClientSession, item: Item, track: cmaf.TrackSegment
    ) -> None:
        """One track's CMAF segment of ``item``, after the track's init segments."""
        await self._cmaf_inits(session, item, track.track, track.inits)
        await self._cmaf_segment(session, item, track.track, item.sequence)

    async def _cmaf_inits(
        self, session: aiohttp.ClientSession, item: Item, track: str, inits: tuple[str, ...]
    ) -> None:
        """The ``inits`` of a CMAF track this origin has not had."""
        had = self._sent_inits.setdefault((item.channel, track), set())
        base = f"live/{item.channel}/{track}"
        for init in inits:
            if init in had:
                continue
            body = await asyncio.to_thread(_read, self._root / base / init)
            if body is not None:
                await self._put(session, f"{base}/{init}", body, item.writer, "init")
                had.add(init)

    async def _cmaf_segment(
        self, session: aiohttp.ClientSession, item: Item, track: str, sequence: int
    ) -> None:
        sent = self._sent_cmaf.setdefault((item.channel, track), set())
        if sequence in sent:
            return
        rel = f"live/{item.channel}/{track}/{sequence}.m4s"
        body = await asyncio.to_thread(_read, self._root / rel)
        if body is None:
            return  # removed behind the live window meanwhile: nothing to send
        await self._put(session, rel, body, item.writer, "replay" if item.replay else "segment")
        sent.add(sequence)

    async def _cmaf_playlists(self, session: aiohttp.ClientSession, item: Item) -> None:
        """Each CMAF track's playlists after what they name, then the CMAF master, the MPD."""
        base = f"live/{item.channel}"
        lists = await asyncio.to_thread(cmaf.read_lists, self._root / base)
        for track, named in lists.tracks.items():
            await self._cmaf_inits(session, item, track, named.inits)
            for seq in named.sequences:
                await self._cmaf_segment(session, item, track, seq)
            rel = f"{base}/{track}/{CMAF_PLAYLIST}"
            await self._put(session, rel, named.media, item.writer, "playlist")
            if named.iframes is not None:
                rel = f"{base}/{track}/{CMAF_IFRAMES}"
                await self._put(session, rel, named.iframes, item.writer, "playlist")
            if named.sequences:
                key = (item.channel, track)
                floor = named.sequences[0] - _SENT_SLACK
                self._sent_cmaf[key] = {s for s in self._sent_cmaf.get(key, set()) if s >= floor}
        if not lists.tracks:
            return
        for name, body in ((CMAF_MASTER, lists.master), (MPD_NAME, lists.mpd)):
            if body is not None:
                await self._put(session, f"{base}/{name}", body, item.writer, "playlist")

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
            raise Transient(f"{type(err).__name__}: {err}") from err
        if status < 300:
            self._metrics.files.labels(self.url, kind).inc()
            return
        if status == 409:
            raise Stale(rel)
        if status == 429 or status >= 500:
            raise Transient(f"HTTP {status} for {rel}")
        # 401/403/404/413: retrying cannot help; count it, log it, go on with the rest.
        self._metrics.failures.labels(self.url).inc()
        log.error("push refused by the origin", extra={"origin": self.url, "file": rel,
                                                       "status": status})  # fmt: skip


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _rungs_with(root: Path, channel: str, sequence: int) -> list[tuple[str, str]]:
    """The rungs and renditions holding segment ``sequence``, with its file's suffix."""
    directory = root / "live" / channel
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    return sorted(
        (e.name, suffix)
        for e in entries
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
        for suffix in _SUFFIXES
        if os.path.exists(os.path.join(e.path, f"{sequence:010d}{suffix}"))
    )


def _read_playlists(directory: Path) -> dict[str, tuple[bytes, bytes | None]]:
    """Every rung playlist of a channel and, beside it, the rung's I-frame playlist if it has
    one, read once (what is pushed is what was checked)."""
    out: dict[str, tuple[bytes, bytes | None]] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            # The I-frame playlist first: the media playlist, written before it, is then at
            # least as new, and pushing what that one names covers what this one names.
            iframes = _read(Path(entry.path) / LIVE_IFRAMES)
            body = _read(Path(entry.path) / "index.m3u8")
            if body is not None:
                out[entry.name] = (body, iframes)
    return out
