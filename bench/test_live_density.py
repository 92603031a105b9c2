"""Live density, remux only: CPU per channel-second of ``passthrough`` channels vs bare FFmpeg.

Subject: N real passthrough channels on a ``LiveManager`` (probe, FFmpeg stream copy
into segments, our publisher: whole-file checks, keyframe scan, playlists, the
archive index in a private Redis). Baseline, same run, same input: N bare
``ffmpeg -re -stream_loop -1 -i feed.ts -c copy -f hls -hls_time 6`` processes.
Both sides read the same 1080p ~6 Mb/s H.264/AAC MPEG-TS file at its native rate
(``-re``, looped), so the comparison is like for like; a UDP sender per channel
would add the senders' CPU and loss to both sides without changing what is measured.
CPU is the FFmpeg processes' user+system time over a window after a warm-up, plus
(ours) this process's and what the channels cost the Redis server, read from each
process's CPU clock to the nanosecond: CPU-seconds per channel-second. The Redis
server's idle work (its timers, about 0.0017 CPU-s per second here) is measured before
the channels start and taken out: a node shares its Redis with the whole platform, so
that cost does not grow with channels (with 16 channels it would add about 0.02;
the report shows the figure with it too). Both sides run at once, measured over the
same window, so a noisy host's slow and fast spells (this VM's FFmpeg CPU varies by
+-15% between minutes) weigh on both alike.

Goal (issue 13): ratio <= 1.25. ``BENCH_SHORT=1``: 2 channels, a 6 s window, 2 rounds
(about 40 s), floor 2.0 (a short window weighs start-up and the first segment's
measurement more).
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from bench.conftest import SHORT, Report, median
from bench.media import ffmpeg
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from transcode.archive import ArchiveIndex
from transcode.domain import LiveChannel
from transcode.live import LiveManager
from transcode.settings import SourceSettings
from transcode.sources import SourceGuard

# 16 in full mode: a node runs many channels, and over 16 processes a side the spread
# between single FFmpeg processes (+-10% here) averages out better than over 8.
CHANNELS = 2 if SHORT else 16
WARMUP_SECONDS = 3.0 if SHORT else 8.0
WINDOW_SECONDS = 6.0 if SHORT else 60.0
# The Redis server's idle work is measured over this before the channels start.
REDIS_IDLE_SECONDS = 2.0 if SHORT else 5.0
ROUNDS = 2 if SHORT else 3
GOAL = 1.25
# The short window is noisy (1.2-1.65 in repeated runs on this machine): its floor only
# catches a gross regression; the goal is asserted in full mode.
FLOOR = 2.0 if SHORT else GOAL


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1080p25 ~6 Mb/s H.264/AAC MPEG-TS clip with 2 s GOPs (looped by both sides)."""
    path = tmp_path_factory.mktemp("live-density") / "feed.ts"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-b:v", "6M", "-maxrate", "6M", "-bufsize", "6M", "-g", "50", "-keyint_min", "50"),
        *("-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts"),
        str(path),
    )
    return path


def _cpu_seconds(proc: psutil.Process) -> float:
    """A process's CPU time (every thread, user + system), to the nanosecond.

    Read from the kernel's per-process CPU clock: ``cpu_times()`` counts 10 ms ticks,
    and over a short window (12 channel-seconds) a tick per process is a tenth of the
    difference measured.
    """
    try:
        # clock_getcpuclockid(pid): CPUCLOCK_SCHED (2) of the whole process, per the kernel.
        return time.clock_gettime(((~proc.pid) << 3) | 2)
    except OSError:
        times = proc.cpu_times()
        return times.user + times.system


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            total += _cpu_seconds(proc)
        except psutil.NoSuchProcess:
            continue
    return total


def _reaped_cpu() -> float:
    """CPU-seconds of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "ffmpeg"]


@dataclass(frozen=True)
class Spent:
    """CPU-seconds over one window: ours by part (FFmpegs, this process, the channels'
    share of Redis), bare, and the Redis server's idle work over the same time."""

    ffmpeg: float
    node: float
    redis: float
    bare: float
    redis_idle: float

    @property
    def ours(self) -> float:
        return self.ffmpeg + self.node + self.redis


async def _round(feed: Path, work: Path) -> Spent:
    """CPU-seconds of our channels and of the bare FFmpegs over one window, both running
    at once (a noisy host's slow and fast spells then weigh on both sides alike)."""
    server = RedisServer(work / "redis")
    server.start()
    redis_proc = psutil.Process(server.pid)
    idle_from = _cpu_seconds(redis_proc), time.monotonic()
    await asyncio.sleep(REDIS_IDLE_SECONDS)
    idle_rate = (_cpu_seconds(redis_proc) - idle_from[0]) / (time.monotonic() - idle_from[1])
    client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
    manager = LiveManager(
        redis=client,
        archive=ArchiveIndex(client),
        origin_root=work / "origin",
        sources=SourceGuard(SourceSettings(media_roots=(feed.parent.resolve(),))),
    )
    bare: list[asyncio.subprocess.Process] = []
    try:
        for n in range(CHANNELS):
            await manager.start(
                LiveChannel(
                    id=f"pt{n}",
                    source=str(feed),
                    profile="passthrough",
                    segment_seconds=6,
                    window_segments=6,
                    catchup_days=1,
                )
            )
            out = work / f"bare{n}"
            out.mkdir(parents=True)
            bare.append(
                await asyncio.create_subprocess_exec(
                    *("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"),
                    *("-re", "-stream_loop", "-1", "-i", str(feed), "-c", "copy", "-f", "hls"),
                    *("-hls_time", "6", "-hls_list_size", "6", "-hls_flags", "delete_segments"),
                    *("-hls_segment_filename", str(out / "s%06d.ts"), str(out / "index.m3u8")),
                    stdin=subprocess.DEVNULL,
                )
            )
        await asyncio.sleep(WARMUP_SECONDS)
        bare_procs = [psutil.Process(p.pid) for p in bare]
        bare_pids = {p.pid for p in bare}
        # The channels' segmenters; the node's short thumbnail captures (one JPEG from stdin
        # to stdout) come and go, and are counted once they end, below.
        ours_ffmpeg = [
            p for p in _ffmpeg_children() if p.pid not in bare_pids and "pipe:1" not in p.cmdline()
        ]
        assert len(ours_ffmpeg) == CHANNELS, "every channel runs one FFmpeg"
        # Ours: its FFmpegs, this process (the manager: probe, publisher, index) and Redis.
        sides = [ours_ffmpeg, [psutil.Process()], [redis_proc], bare_procs]
        started, before = time.monotonic(), [_cpu(side) for side in sides]
        reaped_before = _reaped_cpu()
        await asyncio.sleep(WINDOW_SECONDS)
        redis_idle = idle_rate * (time.monotonic() - started)
        ffmpeg, node, redis, baseline = (
            _cpu(side) - b for side, b in zip(sides, before, strict=True)
        )
        # Children that ended inside the window: the thumbnail captures (the segmenters and
        # the bare FFmpegs run on, so none of them is in this sum).
        ffmpeg += _reaped_cpu() - reaped_before
        spent = Spent(ffmpeg, node, redis - redis_idle, baseline, redis_idle)
        for n in range(CHANNELS):
            published = (work / "origin" / "live" / f"pt{n}" / "src" / "index.m3u8").exists()
            assert published or WINDOW_SECONDS < 12, f"pt{n} published nothing"
        return spent
    finally:
        for proc in bare:
            proc.kill()
            await proc.wait()
        await manager.close()
        await client.aclose()
        server.stop()


# Full mode: 3 rounds x 2 sides x (8 s warm-up + 60 s window), past the default 300 s.
@pytest.mark.timeout(900)
def test_passthrough_density_against_bareffmpeg(
    benchmark, report: Report, feed: Path, tmp_path: Path
) -> None:
    channel_seconds = CHANNELS * WINDOW_SECONDS
    rounds: list[Spent] = []

    def one_round() -> None:
        rounds.append(asyncio.run(_round(feed, tmp_path / f"round{len(rounds) + 1}")))

    def per_channel_second(part: str) -> float:
        return median([getattr(r, part) for r in rounds]) / channel_seconds

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)

    ours, bare = per_channel_second("ours"), per_channel_second("bare")
    ratio = report.ratio(
        f"live density passthrough x{CHANNELS}, 1080p25 6 Mb/s, CPU-s per channel-second",
        ours,
        bare,
        unit="CPU-s per channel-second",
    )
    with_idle = (ours + per_channel_second("redis_idle")) / bare
    report.line(
        f"live density: ours {ours:.5f} (FFmpeg {per_channel_second('ffmpeg'):.5f}, node "
        f"{per_channel_second('node'):.5f}, Redis {per_channel_second('redis'):.5f}) vs bare "
        f"ffmpeg -c copy -f hls {bare:.5f} CPU-s per channel-second ({CHANNELS} channels, "
        f"{WINDOW_SECONDS:g} s window, {ROUNDS} rounds, {os.cpu_count()} cores); "
        f"{with_idle:.2f}x with the idle Redis counted"
    )
    benchmark.extra_info.update(
        {
            "ratio": round(ratio, 3),
            "ours_cpu_per_channel_second": round(ours, 5),
            "bare_cpu_per_channel_second": round(bare, 5),
            "ratio_with_idle_redis": round(with_idle, 3),
            "channels": CHANNELS,
            "floor": FLOOR,
        }
    )
    assert ratio <= FLOOR, f"passthrough costs {ratio:.2f}x bare FFmpeg (limit {FLOOR})"
