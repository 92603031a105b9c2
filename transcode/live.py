"""Live channels: ingest, ladder encode, slate on source loss, live playlists, archive.

Each channel has a supervisor. It runs FFmpeg "epochs": a *source* epoch
ingests the channel's source (MPEG-TS over UDP unicast or multicast, HTTP, or
a file looped in real time) and a *slate* epoch encodes a generated "signal
lost" card with the same ladder. Every epoch decodes once and encodes every
rung with FFmpeg's segment muxer, which writes segments plus a CSV segment
list per rung; FFmpeg's own playlists are never served.

Python tails those lists and publishes in lockstep: segment *k* of an epoch
is published only once every rung has written it, and is given the same
channel-wide sequence number in every rung. When the epoch changes (source
lost -> slate, slate -> source restored, or a restart) the first segment of
the new epoch carries ``EXT-X-DISCONTINUITY`` in every rung, and unmatched
leftovers of the old epoch are dropped, so rungs stay aligned. The
discontinuity sequence counts discontinuities that slid out of the window,
so it only grows. Each published segment is recorded in the archive index.

While the slate runs, the supervisor keeps retrying the source with
exponential backoff and switches back as soon as the source produces a
segment. Every source epoch re-checks the source against the allow-lists
(``sources.SourceGuard``) before FFmpeg starts; a refused source stops the
channel with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ffmpeg
import redis.asyncio as aioredis

from headend.errors import InvalidArgument
from transcode import hls
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry, ChannelState, ChannelStatus, LiveChannel
from transcode.errors import ChannelNotFound, ChannelRunning, SourceRefused
from transcode.ffmpeg_cmd import frame_rate_expr, rung_encoding, rung_video
from transcode.ladder import PlannedRung, Profile, plan_ladder
from transcode.measure import scan_segment
from transcode.probe import SourceInfo, VideoInfo
from transcode.profiles import resolve_profile
from transcode.settings import SourceSettings
from transcode.sources import SourceGuard, SourceInput, publish_dir

log = logging.getLogger(__name__)

CHANNELS = "tc:channels"
LIVE_FRAME_RATE = 25.0  # PAL broadcast rate; the slate and every source are normalised to it
SLATE_TEXT = "signal lost"
_POLL_SECONDS = 0.2
_BACKOFF_START_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 10.0
_AUDIO_CODEC = "mp4a.40.2"

SegmentObserver = Callable[[str, int, ChannelState], None]


def channel_key(channel_id: str) -> str:
    """The hash holding a channel's configuration and status."""
    return f"tc:channel:{channel_id}"


def plan_live(profile: Profile) -> tuple[PlannedRung, ...]:
    """Every rung of the profile at the live frame rate (a live source is not probed first)."""
    top = max(profile.rungs, key=lambda r: r.height)
    nominal = SourceInfo(
        uri="live",
        format_name="mpegts",
        duration_seconds=0.0,
        video=VideoInfo("h264", top.width, top.height, LIVE_FRAME_RATE, 1.0, "", 0, "", None),
        audio=None,
    )
    return plan_ladder(profile, nominal)


def source_input(source: SourceInput, *, timeout_seconds: float) -> tuple[str, dict[str, object]]:
    """The FFmpeg input URL and options for a checked live source."""
    micros = str(int(timeout_seconds * 1_000_000))
    options: dict[str, object] = {"fflags": "+genpts+discardcorrupt", **source.options}
    if source.scheme == "udp":
        parts = urlsplit(source.url)
        query = dict(parse_qsl(parts.query))
        # No data for this long raises an error, which is how a dropped feed is noticed.
        query.setdefault("timeout", micros)
        query.setdefault("overrun_nonfatal", "1")
        query.setdefault("fifo_size", "1000000")
        return urlunsplit(parts._replace(query=urlencode(query))), options
    if source.scheme != "file":
        options["rw_timeout"] = micros
        return source.url, options
    # A file is a test source: looped for ever, read at its native rate.
    options.update(stream_loop=-1, re=None)
    return source.url, options


def live_command(
    video: object,
    audio: object,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """Decode once, encode every rung, segment each with a CSV list under ``out_dir/<rung>``."""
    branches = video.filter_multi_output("split", len(plan))  # type: ignore[attr-defined]
    outputs = []
    for index, rung in enumerate(plan):
        rung_dir = out_dir / rung.name
        outputs.append(
            ffmpeg.output(
                rung_video(branches.stream(index), rung),
                audio,
                str(rung_dir / "seg_%06d.ts"),
                **{
                    **rung_encoding(rung, profile),
                    "tune": "zerolatency",
                    "f": "segment",
                    "segment_time": f"{profile.segment_seconds:g}",
                    "segment_format": "mpegts",
                    "segment_list": str(rung_dir / "list.csv"),
                    "segment_list_type": "csv",
                    "segment_list_flags": "+live",
                },
            )
        )
    node = ffmpeg.merge_outputs(*outputs).global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"
    )
    args: list[str] = node.compile(cmd=ffmpeg_bin)
    return args


def source_command(
    channel: LiveChannel,
    source: SourceInput,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
) -> list[str]:
    """The FFmpeg command of a source epoch (``source`` is the checked ``channel.source``)."""
    url, options = source_input(source, timeout_seconds=channel.source_timeout_seconds)
    stream = ffmpeg.input(url, **options)
    return live_command(stream["v:0"], stream["a:0"], plan, profile, out_dir)


def slate_command(plan: Sequence[PlannedRung], profile: Profile, out_dir: Path) -> list[str]:
    """The FFmpeg command of a slate epoch: a dark card saying the signal is lost, and silence."""
    top = max(plan, key=lambda r: r.height)
    video = ffmpeg.input(
        f"color=c=0x202020:s={top.width}x{top.height}:r={frame_rate_expr(LIVE_FRAME_RATE)}",
        f="lavfi",
        re=None,
    ).filter(
        "drawtext",
        text=SLATE_TEXT,
        fontcolor="white",
        fontsize=max(12, top.height // 10),
        x="(w-text_w)/2",
        y="(h-text_h)/2",
    )
    audio = ffmpeg.input(f"anullsrc=r={profile.audio_sample_rate}:cl=stereo", f="lavfi", re=None)
    return live_command(video, audio, plan, profile, out_dir)


@dataclass
class _Listed:
    name: str
    start: float
    end: float


class Epoch:
    """One FFmpeg run (source or slate) and the segments it has listed per rung."""

    def __init__(self, kind: str, number: int, directory: Path, rungs: Sequence[str]) -> None:
        self.kind = kind
        self.number = number
        self.directory = directory
        self.rungs = tuple(rungs)
        self.listed: dict[str, list[_Listed]] = {r: [] for r in rungs}
        self.published = 0  # segments of this epoch published so far
        self.anchor: float | None = None  # wall time of media time 0 of this epoch
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []

    async def start(self, args: Sequence[str]) -> None:
        """Launch FFmpeg in its own process group."""
        for rung in self.rungs:
            (self.directory / rung).mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def wait(self) -> int:
        """Wait for FFmpeg to exit, keeping the tail of its error output."""
        assert self.proc is not None
        if self.proc.stderr is not None:
            async for line in self.proc.stderr:
                self.stderr = [*self.stderr[-9:], line.decode(errors="replace").rstrip()]
        return await self.proc.wait()

    async def kill(self) -> None:
        """Stop FFmpeg (SIGTERM lets the segment muxer finish the list; SIGKILL if it hangs)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            await asyncio.wait_for(self.proc.wait(), 3.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            await self.proc.wait()

    def poll(self) -> int:
        """Re-read every rung's CSV list; returns how many segments all rungs have."""
        for rung in self.rungs:
            path = self.directory / rung / "list.csv"
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            rows = [r for r in csv.reader(text.splitlines()) if len(r) == 3]
            self.listed[rung] = [_Listed(n, float(s), float(e)) for n, s, e in rows]
        return min(len(v) for v in self.listed.values())

    def cleanup(self) -> None:
        """Remove the epoch's work directory (published segments were moved out)."""
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class _Window:
    """The live window of one channel (shared by every rung, which stay aligned)."""

    seqs: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)
    discontinuities: list[bool] = field(default_factory=list)
    sizes: dict[str, list[int]] = field(default_factory=dict)
    discontinuity_sequence: int = 0


class ChannelSupervisor:
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
    ) -> None:
        self.channel = channel
        self._sources = sources
        self.profile = resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        self.plan = plan_live(self.profile)
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self._archive = archive
        self._root = origin_root
        self._dir = origin_root / "live" / channel.id
        self._next_seq = next_sequence
        self._window = _Window(discontinuity_sequence=discontinuity_sequence)
        self._observer = observer
        self._epochs = 0
        self._current: Epoch | None = None
        self._alive: set[Epoch] = set()
        self._pending_discontinuity = False
        self._codecs: dict[str, str] = {}
        self._rungs_registered = False
        self.state = ChannelState.STARTING
        self.restarts = restarts
        self.reason = ""

    # -- epochs -----------------------------------------------------------------------

    def _new_epoch(self, kind: str) -> Epoch:
        self._epochs += 1
        directory = self._dir / ".work" / f"{int(time.time() * 1000)}-{self._epochs}-{kind}"
        epoch = Epoch(kind, self._epochs, directory, [r.name for r in self.plan])
        self._alive.add(epoch)
        return epoch

    async def _start_source(self) -> Epoch:
        # Checked again before every FFmpeg run: the allow-lists or DNS may have changed.
        source = await self._sources.live(self.channel.source)
        epoch = self._new_epoch("source")
        await epoch.start(
            source_command(self.channel, source, self.plan, self.profile, epoch.directory)
        )
        return epoch

    async def _start_slate(self) -> Epoch:
        epoch = self._new_epoch("slate")
        await epoch.start(slate_command(self.plan, self.profile, epoch.directory))
        return epoch

    async def run(self) -> None:
        """Supervise until cancelled, or until the source is refused (the channel stops)."""
        try:
            publish_dir(self._root, "live", self.channel.id)
            await self._supervise()
        except SourceRefused as err:  # nothing of this source runs
            self.state = ChannelState.STOPPED
            self.reason = f"refused: {err.message}"
            log.warning("live source refused", extra={"channel": self.channel.id,
                                                      "reason": self.reason})  # fmt: skip
            await self._status()

    async def _supervise(self) -> None:
        shutil.rmtree(self._dir / ".work", ignore_errors=True)
        await self._status()
        publisher = asyncio.create_task(self._publish_loop())
        helpers: tuple[asyncio.Task[Any], ...] = ()
        slate: Epoch | None = None
        backoff = _BACKOFF_START_SECONDS
        try:
            while True:
                source = await self._start_source()
                waiter = asyncio.create_task(source.wait())
                first = asyncio.create_task(self._first_segment(source))
                helpers = (waiter, first)
                await asyncio.wait({waiter, first}, return_when=asyncio.FIRST_COMPLETED)
                if first.done() and not first.cancelled() and first.result():
                    if slate is not None:
                        await self._retire(slate)
                        slate = None
                    await self._switch(source, ChannelState.LIVE, "")
                    backoff = _BACKOFF_START_SECONDS
                    code = await self._watch(source, waiter)
                    last = " ".join(source.stderr[-1:])
                    self.reason = f"source lost (ffmpeg exit {code}): {last}"
                    log.warning(
                        "live source lost",
                        extra={"channel": self.channel.id, "reason": self.reason},
                    )
                    await self._retire(source)
                    self.restarts += 1
                else:
                    first.cancel()
                    code = await waiter
                    if self.state is not ChannelState.SLATE:
                        self.reason = (
                            f"source unavailable (ffmpeg exit {code}): "
                            f"{' '.join(source.stderr[-1:])}"
                        )
                    await self._retire(source)
                if slate is None:
                    slate = await self._start_slate()
                    await self._switch(slate, ChannelState.SLATE, self.reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
        finally:
            for task in (publisher, *helpers):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for epoch in list(self._alive):
                await epoch.kill()
                epoch.cleanup()
            shutil.rmtree(self._dir / ".work", ignore_errors=True)

    async def _watch(self, epoch: Epoch, waiter: asyncio.Task[int]) -> int:
        """Wait for a live source epoch to end; kill it if it stops producing segments."""
        # FFmpeg can stay alive on a feed it cannot decode; a stalled window is a lost source.
        stall = 3 * self.channel.segment_seconds + self.channel.source_timeout_seconds
        loop = asyncio.get_running_loop()
        last, since = epoch.published, loop.time()
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=_POLL_SECONDS * 5)
            if done:
                return waiter.result()
            if epoch.published != last:
                last, since = epoch.published, loop.time()
            elif loop.time() - since > stall:
                log.warning("live source stalled", extra={"channel": self.channel.id})
                epoch.stderr.append(f"no segment for {stall:g} s")
                await epoch.kill()
                return await waiter

    async def _first_segment(self, epoch: Epoch) -> bool:
        while epoch.proc is not None and epoch.proc.returncode is None:
            if epoch.poll() > 0:
                return True
            await asyncio.sleep(_POLL_SECONDS)
        return epoch.poll() > 0

    async def _switch(self, epoch: Epoch, state: ChannelState, reason: str) -> None:
        """Make ``epoch`` the one published from; its first segment starts a discontinuity."""
        old = self._current
        if old is not None and old is not epoch:
            await self._retire(old)
        self._current = epoch
        # Any earlier segment (this run, or before a restart) makes the new epoch a
        # discontinuity, so catch-up playlists stitched from the archive mark it too.
        self._pending_discontinuity = self._next_seq > 0
        self.state = state
        self.reason = reason
        await self._status()
        log.info("live channel switched", extra={"channel": self.channel.id, "to": state.value})

    async def _retire(self, epoch: Epoch) -> None:
        """Stop an epoch, publish what every rung finished, drop the rest."""
        await epoch.kill()
        if epoch is self._current:
            await self._publish_ready(epoch)
            self._current = None
        epoch.cleanup()
        self._alive.discard(epoch)

    # -- publishing -------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            epoch = self._current
            if epoch is not None:
                try:
                    await self._publish_ready(epoch)
                except OSError:
                    log.exception("publishing failed", extra={"channel": self.channel.id})
            await asyncio.sleep(_POLL_SECONDS)

    async def _publish_ready(self, epoch: Epoch) -> None:
        ready = epoch.poll()
        while epoch.published < ready:
            await self._publish(epoch, epoch.published)
            epoch.published += 1

    async def _publish(self, epoch: Epoch, index: int) -> None:
        seq = self._next_seq
        first = epoch.listed[epoch.rungs[0]][index]
        duration = max(0.001, first.end - first.start)
        if epoch.anchor is None:
            # The segment just appeared, so it ended about now; anchor the epoch's clock there.
            epoch.anchor = time.time() - first.end
        start = datetime.fromtimestamp(epoch.anchor + first.start, UTC)
        if self._window.starts and start < self._window.starts[-1]:
            start = self._window.starts[-1] + timedelta(seconds=self._window.durations[-1])
        discontinuity = index == 0 and self._pending_discontinuity
        sizes: dict[str, int] = {}
        for rung in epoch.rungs:
            listed = epoch.listed[rung][index]
            src = epoch.directory / rung / listed.name
            dest_dir = self._dir / rung
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest = dest_dir / f"{seq:010d}.ts"
            os.replace(src, dest)
            sizes[rung] = dest.stat().st_size
            if rung not in self._codecs:
                facts = await asyncio.to_thread(scan_segment, dest)
                if facts.avc_codec:
                    self._codecs[rung] = facts.avc_codec
            await self._archive.record(
                self.channel.id,
                rung,
                ArchiveEntry(
                    sequence=seq,
                    start=start,
                    duration=duration,
                    size=sizes[rung],
                    path=str(dest.relative_to(self._root)),
                    discontinuity=discontinuity,
                ),
            )
        self._next_seq = seq + 1
        self._slide(seq, duration, start, discontinuity, sizes)
        await self._register_rungs()
        await asyncio.to_thread(self._write_playlists)
        await self._status()
        if self._observer is not None:
            self._observer(self.channel.id, seq, self.state)

    def _slide(
        self, seq: int, duration: float, start: datetime, disc: bool, sizes: dict[str, int]
    ) -> None:
        w = self._window
        w.seqs.append(seq)
        w.durations.append(duration)
        w.starts.append(start)
        w.discontinuities.append(disc)
        for rung, size in sizes.items():
            w.sizes.setdefault(rung, []).append(size)
        while len(w.seqs) > self.channel.window_segments:
            if w.discontinuities[0]:
                w.discontinuity_sequence += 1
            del w.seqs[0], w.durations[0], w.starts[0], w.discontinuities[0]
            for values in w.sizes.values():
                del values[0]
        if w.discontinuities and w.discontinuities[0]:
            # A window never starts with a discontinuity tag: it is implied by the sequence.
            w.discontinuities[0] = False
            w.discontinuity_sequence += 1

    async def _register_rungs(self) -> None:
        if self._rungs_registered or len(self._codecs) < len(self.plan):
            return
        await self._archive.register_channel(
            self.channel.id, catchup_days=self.channel.catchup_days, rungs=self.rung_infos()
        )
        self._rungs_registered = True

    def rung_infos(self) -> list[RungInfo]:
        """Each rung's master-playlist facts (codecs as measured from its first segment)."""
        return [
            RungInfo(
                r.name,
                f"{self._codecs.get(r.name, 'avc1.42c01e')},{_AUDIO_CODEC}",
                r.width,
                r.height,
                r.frame_rate,
            )
            for r in self.plan
        ]

    def _write_playlists(self, *, endlist: bool = False) -> None:
        w = self._window
        if not w.seqs:
            return
        target = max(
            math.ceil(self.profile.segment_seconds),
            max(math.floor(d + 0.5) for d in w.durations),
        )
        for rung in self.plan:
            segments = [
                hls.Segment(
                    uri=f"{seq:010d}.ts",
                    duration=duration,
                    program_date_time=start,
                    discontinuity=disc,
                )
                for seq, duration, start, disc in zip(
                    w.seqs, w.durations, w.starts, w.discontinuities, strict=True
                )
            ]
            text = hls.render_media(
                hls.MediaPlaylist(
                    segments=segments,
                    media_sequence=w.seqs[0],
                    discontinuity_sequence=w.discontinuity_sequence,
                    endlist=endlist,
                    target_duration=target,
                )
            )
            _atomic_write(self._dir / rung.name / "index.m3u8", text)
        variants = []
        for info in self.rung_infos():
            sizes = w.sizes.get(info.name, [])
            if not sizes:
                continue
            bits = [s * 8 / d for s, d in zip(sizes, w.durations, strict=True) if d > 0]
            peak = max(1, math.ceil(max(bits)))
            average = max(1, min(peak, math.ceil(sum(sizes) * 8 / sum(w.durations))))
            variants.append(
                hls.Variant(
                    uri=f"{info.name}/index.m3u8",
                    bandwidth=peak,
                    average_bandwidth=average,
                    codecs=info.codecs,
                    resolution=(info.width, info.height),
                    frame_rate=info.frame_rate,
                )
            )
        variants.sort(key=lambda v: v.bandwidth)
        _atomic_write(self._dir / "master.m3u8", hls.render_master(hls.MasterPlaylist(variants)))

    def end_playlists(self) -> None:
        """Mark the live playlists ended (the channel was stopped)."""
        self._write_playlists(endlist=True)

    def status(self) -> ChannelStatus:
        """The channel's status now."""
        w = self._window
        return ChannelStatus(
            channel=self.channel,
            state=self.state,
            media_sequence=w.seqs[0] if w.seqs else self._next_seq,
            discontinuity_sequence=w.discontinuity_sequence,
            restarts=self.restarts,
            reason=self.reason,
            updated_at=datetime.now(UTC),
        )

    async def _status(self) -> None:
        s = self.status()
        await self._redis.hset(
            channel_key(self.channel.id),
            mapping={
                "state": s.state.value,
                "media_sequence": str(s.media_sequence),
                "discontinuity_sequence": str(s.discontinuity_sequence),
                "next_sequence": str(self._next_seq),
                "restarts": str(s.restarts),
                "reason": s.reason,
                "updated_at": s.updated_at.isoformat(),
            },
        )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _status_from_hash(raw: dict[bytes, bytes]) -> ChannelStatus:
    d = {k.decode(): v.decode() for k, v in raw.items()}
    channel = LiveChannel(
        id=d["id"],
        source=d["source"],
        profile=d["profile"],
        segment_seconds=int(d["segment_seconds"]),
        window_segments=int(d["window_segments"]),
        catchup_days=int(d["catchup_days"]),
        source_timeout_seconds=float(d["source_timeout_seconds"]),
    )
    return ChannelStatus(
        channel=channel,
        state=ChannelState(d.get("state", "STOPPED")),
        media_sequence=int(d.get("media_sequence", "0")),
        discontinuity_sequence=int(d.get("discontinuity_sequence", "0")),
        restarts=int(d.get("restarts", "0")),
        reason=d.get("reason", ""),
        updated_at=datetime.fromisoformat(d["updated_at"]),
    )


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
    ) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)
        self._archive = archive
        self._root = origin_root
        self._sources = sources or SourceGuard(SourceSettings())
        self._observer = observer
        self._running: dict[str, tuple[ChannelSupervisor, asyncio.Task[None]]] = {}

    async def start(self, channel: LiveChannel) -> ChannelStatus:
        """Persist and start a channel; refuse one already running here or a refused source."""
        channel.validate()
        resolve_profile(channel.profile, segment_seconds=channel.segment_seconds)
        if channel.id in self._running:
            raise ChannelRunning(f"channel {channel.id} is already running")
        await self._sources.live(channel.source)
        publish_dir(self._root, "live", channel.id)
        raw = await self._redis.hgetall(channel_key(channel.id))
        d = {k.decode(): v.decode() for k, v in raw.items()}
        await self._redis.hset(
            channel_key(channel.id),
            mapping={
                "id": channel.id,
                "source": channel.source,
                "profile": channel.profile,
                "segment_seconds": str(channel.segment_seconds),
                "window_segments": str(channel.window_segments),
                "catchup_days": str(channel.catchup_days),
                "source_timeout_seconds": str(channel.source_timeout_seconds),
                "desired": "running",
                "state": ChannelState.STARTING.value,
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )
        await self._redis.sadd(CHANNELS, channel.id)
        supervisor = ChannelSupervisor(
            channel,
            redis=self._redis,
            archive=self._archive,
            origin_root=self._root,
            next_sequence=int(d.get("next_sequence", "0")),
            discontinuity_sequence=int(d.get("discontinuity_sequence", "0")),
            restarts=int(d.get("restarts", "0")),
            sources=self._sources,
            observer=self._observer,
        )
        task = asyncio.create_task(supervisor.run(), name=f"live-{channel.id}")
        self._running[channel.id] = (supervisor, task)
        return supervisor.status()

    async def stop(self, channel_id: str) -> ChannelStatus:
        """Stop a channel (its archive stays for catch-up)."""
        if not await self._redis.sismember(CHANNELS, channel_id):
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        await self._halt(channel_id, end=True)
        await self._redis.hset(
            channel_key(channel_id),
            mapping={
                "desired": "stopped",
                "state": ChannelState.STOPPED.value,
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )
        return await self.get(channel_id)

    async def _halt(self, channel_id: str, *, end: bool) -> None:
        entry = self._running.pop(channel_id, None)
        if entry is None:
            return
        supervisor, task = entry
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if end:
            await asyncio.to_thread(supervisor.end_playlists)

    async def get(self, channel_id: str) -> ChannelStatus:
        """A channel's status (live from its supervisor when it runs here)."""
        entry = self._running.get(channel_id)
        if entry is not None:
            return entry[0].status()
        raw = await self._redis.hgetall(channel_key(channel_id))
        if not raw or b"source" not in raw:
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return _status_from_hash(raw)

    async def list_channels(self) -> list[ChannelStatus]:
        """Every channel, by id."""
        ids = sorted(m.decode() for m in await self._redis.smembers(CHANNELS))
        return [await self.get(i) for i in ids]

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
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )

    async def close(self) -> None:
        """Stop every supervisor, leaving channels marked to resume on the next start."""
        for channel_id in list(self._running):
            await self._halt(channel_id, end=False)
            await self._redis.hset(
                channel_key(channel_id),
                mapping={
                    "state": ChannelState.STOPPED.value,
                    "reason": "control service stopped; the channel resumes when it restarts",
                    "updated_at": datetime.now(UTC).isoformat(),
                },
            )
