"""Farm test helpers: node processes, and a live HLS reader that follows a channel's live
playlist as a player does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import psutil

from tests.support.services import REPO
from transcode import hls, hls_parse
from transcode.errors import InvalidPlaylist

T = TypeVar("T")

# How a reader gets a playlist or a segment: from disk here, over HTTP behind an origin.
Fetch = Callable[[str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Seen:
    """One segment as the reader got it."""

    sequence: int
    start: float  # program date-time, epoch seconds
    duration: float
    discontinuity: int  # its discontinuity number (EXT-X-DISCONTINUITY-SEQUENCE + tags before)
    size: int
    at: float  # time.monotonic() when the reader first saw it listed


@dataclass
class LiveReader:
    """Reloads a media playlist every ``poll_seconds`` and fetches each new segment once."""

    fetch: Fetch
    playlist: str  # e.g. "live/ch1/90p/index.m3u8"
    poll_seconds: float = 0.1
    seen: dict[int, Seen] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)  # numbers listed again for another instant
    _task: asyncio.Task[None] | None = None

    def start(self) -> LiveReader:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        base = self.playlist.rsplit("/", 1)[0]
        while True:
            body = await self.fetch(self.playlist)
            if body:
                try:
                    parsed = hls_parse.parse_media(body.decode())
                except InvalidPlaylist as err:
                    self.errors.append(str(err))
                    parsed = None
                if parsed is not None:
                    await self._take(parsed, base)
            await asyncio.sleep(self.poll_seconds)

    async def _take(self, parsed: hls.MediaPlaylist, base: str) -> None:
        number = parsed.discontinuity_sequence
        for offset, segment in enumerate(parsed.segments):
            if segment.discontinuity and offset > 0:
                number += 1
            seq = parsed.media_sequence + offset
            when = segment.program_date_time
            known = self.seen.get(seq)
            if known is not None:
                if when is not None and abs(when.timestamp() - known.start) > 0.5:
                    self.reused.append(seq)  # one number, two different segments
                continue
            if self.seen and seq < min(self.seen):
                continue
            data = await self.fetch(f"{base}/{segment.uri}")
            if data is None:
                self.errors.append(f"segment {seq} listed but not there")
                continue
            self.seen[seq] = Seen(
                seq, when.timestamp() if when else 0.0, segment.duration, number, len(data),
                time.monotonic(),
            )  # fmt: skip

    def ordered(self) -> list[Seen]:
        return [self.seen[s] for s in sorted(self.seen)]

    def after(self, sequence: int) -> int:
        """How many segments past ``sequence`` the reader has got."""
        return sum(1 for s in self.seen if s > sequence)


def disk_fetch(root: Path) -> Fetch:
    """Read playlists and segments straight from an origin directory."""

    async def fetch(path: str) -> bytes | None:
        try:
            return await asyncio.to_thread((root / path).read_bytes)
        except FileNotFoundError:
            return None

    return fetch


def http_fetch(session: aiohttp.ClientSession, base_url: str) -> Fetch:
    """Read playlists and segments from an origin over HTTP (None for anything but 200)."""

    async def fetch(path: str) -> bytes | None:
        try:
            async with session.get(f"{base_url}/{path}") as response:
                body = await response.read()
                return body if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    return fetch


def largest_pdt_step(seen: list[Seen]) -> float:
    """The largest step between consecutive segments' program date-times."""
    return max((b.start - a.start for a, b in itertools.pairwise(seen)), default=0.0)


def largest_wait(seen: list[Seen]) -> float:
    """The longest the reader waited between two consecutive new segments."""
    return max((b.at - a.at for a, b in itertools.pairwise(seen)), default=0.0)


def discontinuities(seen: list[Seen]) -> int:
    """How many discontinuities the reader crossed."""
    return seen[-1].discontinuity - seen[0].discontinuity if seen else 0


class NodeProcess:
    """``python -m transcode node`` as a child (its own session: its FFmpeg runs are found
    as its descendants and killed with it)."""

    def __init__(self, node_id: str, env: dict[str, str], **extra: str) -> None:
        self.id = node_id
        self.env = {**env, "TC_NODE_ID": node_id, **extra}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["ORIGIN_ROOT"]).parent / f"{node_id}.log"

    def start(self) -> NodeProcess:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "transcode", "node"], cwd=REPO, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        return self

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """Power loss: the node and every FFmpeg it ran die at once."""
        doomed = self.descendants()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for child in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return
        doomed = self.descendants()
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        for child in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@contextlib.contextmanager
def nodes(count: int, env: dict[str, str]) -> Iterator[list[NodeProcess]]:
    """``count`` node processes ``n0``..., stopped (with their FFmpeg runs) on exit."""
    started = [NodeProcess(f"n{i}", env).start() for i in range(count)]
    try:
        yield started
    finally:
        for node in started:
            node.stop()


async def until(
    what: str,
    check: Callable[[], Awaitable[T | None]],
    bound_seconds: float = 30.0,
    *,
    poll_seconds: float = 0.2,
) -> T:
    """``check()``'s first truthy answer, asked every ``poll_seconds``; fails naming ``what``
    after ``bound_seconds``."""
    try:
        async with asyncio.timeout(bound_seconds):
            while True:
                got = await check()
                if got:
                    return got
                await asyncio.sleep(poll_seconds)
    except TimeoutError:
        raise AssertionError(f"not in {bound_seconds} s: {what}") from None
