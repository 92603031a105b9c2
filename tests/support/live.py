"""Builders for live-channel fault tests: real UDP feeds, a recorder of what a LiveManager
reports through its hooks, a small tmpfs origin, and checks of the archive index."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import psutil
import redis.asyncio as aioredis

from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.net import free_udp_port
from transcode import hls_parse
from transcode.archive import ArchiveIndex, index_key
from transcode.domain import ChannelState, LiveChannel
from transcode.live import LiveManager, Phase, whole_ts
from transcode.live.encryption import LiveEncryption
from transcode.settings import LiveSettings, SourceSettings
from transcode.sources import SourceGuard


class Feed:
    """A real-time MPEG-TS feed (testsrc2 320x180 + tone) to udp://127.0.0.1:port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        video: str = "testsrc2=s=320x180:r=25",
        audio: str = "sine=frequency=440:sample_rate=48000",
    ) -> None:
        self.port = port or free_udp_port()
        self.video, self.audio = video, audio  # lavfi sources (BLACK, SILENT: impaired feeds)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def source(self) -> str:
        """The channel source reading this feed."""
        return f"udp://127.0.0.1:{self.port}"

    def start(self) -> Feed:
        """Start sending (a no-op while it sends)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
                 "-f", "lavfi", "-i", self.video, "-f", "lavfi", "-i", self.audio,
                 "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
                 "-c:a", "aac", "-b:a", "64k",
                 "-f", "mpegts", f"udp://127.0.0.1:{self.port}?pkt_size=1316"],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def stop(self) -> None:
        """Cut the feed (SIGKILL, as a failing contribution link would)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


# Impaired feeds: a black picture (a little noise, so it is not also frozen), silence, and
# a still picture (SMPTE bars: not black, and the tone goes on).
BLACK = "color=c=black:s=320x180:r=25,noise=alls=4:allf=t"
SILENT = "anullsrc=r=48000:cl=stereo"
FROZEN = "smptebars=s=320x180:r=25"
TS_PACKET_BYTES = 188


class Relay:
    """A UDP relay in front of a channel's input: passes a feed's datagrams on, dropping
    every ``drop_every``-th transport-stream packet while it is set (0: drops none), as a
    lossy contribution link would; each drop is a continuity-counter error downstream."""

    def __init__(self) -> None:
        self._in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._in.bind(("127.0.0.1", 0))
        self._in.settimeout(0.1)
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = free_udp_port()  # where the channel listens
        self.drop_every = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ts-relay", daemon=True)

    @property
    def feed_port(self) -> int:
        """Where the feed sends."""
        return int(self._in.getsockname()[1])

    @property
    def source(self) -> str:
        """The channel source reading through the relay."""
        return f"udp://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        """Start relaying (in a thread)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying and close both sockets."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._in.close()
        self._out.close()

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            try:
                data = self._in.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            every = self.drop_every
            if every > 0:
                kept = bytearray()
                for offset in range(0, len(data), TS_PACKET_BYTES):
                    count += 1
                    if count % every:
                        kept += data[offset : offset + TS_PACKET_BYTES]
                    else:
                        self.dropped += 1
                data = bytes(kept)
            if data:
                with contextlib.suppress(OSError):
                    self._out.sendto(data, ("127.0.0.1", self.port))


@dataclass(frozen=True)
class Published:
    """One segment as the channel published it, with its playlist at that moment."""

    seq: int
    state: ChannelState
    media_sequence: int
    uris: tuple[str, ...]


class Recorder:
    """Collects what a LiveManager reports through its hooks; tests await conditions on it."""

    def __init__(self, root: Path, rung: str = "90p") -> None:
        self.root = root
        self.rung = rung
        self.published: dict[str, list[Published]] = defaultdict(list)
        self.indexed: dict[str, list[int]] = defaultdict(list)
        self.phases: dict[str, list[Phase]] = defaultdict(list)
        self._changed = asyncio.Event()
        self.fail_on: tuple[str, Phase] | None = None  # stands in for a bug in the supervisor

    def segment(self, channel: str, seq: int, state: ChannelState) -> None:
        """SegmentObserver: called right after a segment and its playlists are written."""
        playlist = hls_parse.parse_media(
            (self.root / "live" / channel / self.rung / "index.m3u8").read_text()
        )
        self.published[channel].append(
            Published(seq, state, playlist.media_sequence, tuple(s.uri for s in playlist.segments))
        )
        self._changed.set()

    def phase(self, channel: str, phase: Phase) -> None:
        """PhaseObserver."""
        self.phases[channel].append(phase)
        self._changed.set()
        if self.fail_on == (channel, phase):
            self.fail_on = None
            raise RuntimeError(f"injected failure on entering {phase.value}")

    def index(self, channel: str, sequences: list[int]) -> None:
        """IndexObserver."""
        self.indexed[channel].extend(sequences)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds (re-checked at every report; bound it outside)."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def last_seq(self, channel: str) -> int:
        """The last published sequence number (-1 before any)."""
        published = self.published[channel]
        return published[-1].seq if published else -1

    def last_indexed(self, channel: str) -> int:
        """The highest indexed sequence number (-1 before any)."""
        return max(self.indexed[channel], default=-1)

    def count(self, channel: str, phase: Phase) -> int:
        """How often the channel entered ``phase``."""
        return self.phases[channel].count(phase)

    def mark(self, channel: str) -> tuple[int, int]:
        """(times LIVE was entered, last published sequence) now, for ``live_again``."""
        return self.count(channel, Phase.LIVE), self.last_seq(channel)

    def live_again(self, channel: str, mark: tuple[int, int]) -> Callable[[], bool]:
        """A predicate: since ``mark`` the channel went LIVE again and published a LIVE segment."""
        lives, seq = mark

        def check() -> bool:
            published = self.published[channel]
            return (
                self.count(channel, Phase.LIVE) > lives
                and self.last_seq(channel) > seq
                and published[-1].state is ChannelState.LIVE
            )

        return check


def make_clip(path: Path, seconds: int = 4) -> Path:
    """A small H.264/AAC MPEG-TS file (1 s GOPs) to loop as a channel's source."""
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-c:a", "aac", "-b:a", "64k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def channel_processes(channel: str) -> list[psutil.Process]:
    """This test process's children that are FFmpeg runs of ``channel`` (still alive)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if f"/live/{channel}/.work/" in " ".join(child.cmdline()):
                found.append(child)
    return found


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (PermissionError if mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PermissionError(done.stderr.strip() or f"mount exited {done.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full (ENOSPC); returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk) or 0
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    return written


async def indexed_entries(
    redis: aioredis.Redis, channel: str, rung: str
) -> list[tuple[int, float, int, str, bool]]:
    """(sequence, start, size, path, discontinuity) of every indexed segment of a rung."""
    members: list[bytes] = await redis.zrange(index_key(channel, rung), 0, -1)  # type: ignore[assignment]
    out = []
    for member in members:
        seq, start, _duration, size, path, disc, *_key_id = member.decode().split("|")
        out.append((int(seq), float(start), int(size), path, disc == "1"))
    return out


async def check_index(
    redis: aioredis.Redis, root: Path, channel: str, rungs: tuple[str, ...]
) -> list[int]:
    """Assert the index is sound (each segment once, in order, rungs aligned, files whole)."""
    per_rung = {}
    for rung in rungs:
        entries = await indexed_entries(redis, channel, rung)
        seqs = [e[0] for e in entries]
        assert len(seqs) == len(set(seqs)), f"{channel}/{rung}: a segment indexed twice"
        assert seqs == sorted(seqs), f"{channel}/{rung}: sequence not increasing with time"
        for seq, _start, size, path, _disc in entries:
            file = root / path
            assert file.stat().st_size == size, f"{path}: indexed size differs from the file"
            assert whole_ts(file) == "", f"{path}: indexed but not whole"
            assert file.name == f"{seq:010d}.ts"
        per_rung[rung] = seqs
    first = per_rung[rungs[0]]
    assert all(per_rung[r] == first for r in rungs), "rungs indexed different segments"
    return first


@dataclass
class LiveRig:
    """A private redis-server (killable), a LiveManager on it, and what it reported."""

    redis_server: RedisServer
    redis: aioredis.Redis
    root: Path
    manager: LiveManager
    recorder: Recorder

    async def kill_redis(self) -> None:
        """SIGKILL the redis-server, as a crash would."""
        self.redis_server.kill()

    async def start_redis(self) -> None:
        """Start it again on the same data directory and socket (returns once it answers)."""
        await asyncio.to_thread(self.redis_server.start)


# Tiny and quick: what the fault tests and the recovery benchmark run channels with.
FAST = LiveSettings(
    restart_first_seconds=0.2,
    restart_max_seconds=1.0,
    store_retry_seconds=0.2,
    store_timeout_seconds=1.0,
    disk_poll_seconds=0.2,
    stop_seconds=5.0,
)
RUNGS = ("90p", "180p")


def live_channel(channel_id: str, source: str, *, segment_seconds: int = 2) -> LiveChannel:
    """A channel on the "low" ladder with short segments and a quick source timeout."""
    return LiveChannel(
        id=channel_id,
        source=source,
        profile="low",
        segment_seconds=segment_seconds,
        window_segments=6,
        catchup_days=1,
        source_timeout_seconds=1.0,
    )


@contextlib.asynccontextmanager
async def live_rig(
    workdir: Path,
    root: Path | None = None,
    settings: LiveSettings = FAST,
    *,
    media_roots: tuple[Path, ...] = (),
    encryption: LiveEncryption | None = None,
) -> AsyncIterator[LiveRig]:
    """A private redis-server under ``workdir`` and a LiveManager on it (origin ``root``;
    encrypted channels use ``encryption``)."""
    server = RedisServer(workdir / "redis")
    server.start()
    root = root or workdir / "origin"
    client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
    recorder = Recorder(root)
    manager = LiveManager(
        redis=client,
        archive=ArchiveIndex(client),
        origin_root=root,
        sources=SourceGuard(SourceSettings(media_roots=media_roots)),
        observer=recorder.segment,
        on_phase=recorder.phase,
        on_indexed=recorder.index,
        settings=settings,
        encryption=encryption,
    )
    try:
        yield LiveRig(server, client, root, manager, recorder)
    finally:
        if server.pid is None:
            server.start()  # so closing saves every channel's state
        await manager.close()
        await client.aclose()
        server.stop()


class Snapshotted(Protocol):
    """A snapshot of a channel at one publication: the state it published in."""

    @property
    def state(self) -> ChannelState: ...


S = TypeVar("S", bound=Snapshotted)


@dataclass
class SnapshotRig(Generic[S]):
    """A LiveManager on the tests' Redis whose every publication queues a snapshot of the
    channel's files, taken right after publishing (before anything else runs: a
    consistent view)."""

    manager: LiveManager
    events: asyncio.Queue[S]
    root: Path
    redis: aioredis.Redis

    async def until(self, state: ChannelState, count: int, seen: list[S]) -> None:
        """Collect snapshots into ``seen`` until ``count`` in a row are in ``state``."""
        got = 0
        while got < count:
            snap = await self.events.get()
            seen.append(snap)
            got = got + 1 if snap.state is state else 0


@contextlib.asynccontextmanager
async def snapshot_rig(
    redis: aioredis.Redis,
    root: Path,
    sources: SourceSettings,
    snapshot: Callable[[Path, int, ChannelState], S],
) -> AsyncIterator[SnapshotRig[S]]:
    """A :class:`SnapshotRig` publishing under ``root``; ``snapshot(channel_dir, seq,
    state)`` reads what a test checks."""
    events: asyncio.Queue[S] = asyncio.Queue()

    def observe(channel: str, seq: int, state: ChannelState) -> None:
        events.put_nowait(snapshot(root / "live" / channel, seq, state))

    manager = LiveManager(
        redis=redis,
        archive=ArchiveIndex(redis),
        origin_root=root,
        sources=SourceGuard(sources),
        observer=observe,
    )
    try:
        yield SnapshotRig(manager, events, root, redis)
    finally:
        await manager.close()
