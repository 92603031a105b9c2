"""Live packaging with AES-128 encryption against the same packaging in clear.

Subject: one live epoch as a node runs it, end to end: the channel's own FFmpeg command
(``live_command``: decode once, encode every rung, segment with CSV lists) over a clip
read as fast as FFmpeg goes, then our publisher moving every segment into the live
window, the playlists and the archive queue, encrypting every rung's file with the
period's content key (a real ``ContentKeyStore`` on a private Redis). Baseline, same
run, rounds interleaved: the same epoch of the same channel in clear. Throughput is
media seconds packaged per CPU-second (FFmpeg's, read from the waited-for children's
rusage, plus this process's, which holds the encryption threads), so a loaded host's
waits do not count.

The ladder is chosen to weigh on encryption: two small rungs (cheap to encode) at the
bit rates of a real ladder's top rungs (6 and 3 Mb/s of a noisy picture, 6.75 MB per
6 s segment), so the bytes to encrypt are a production ladder's while the encoding
is a fraction of it. The publish stage alone (FFmpeg left out) is reported too: it
is where all the extra work is, and it is several times slower encrypted.

Goal (issue 15): packaging ratio >= 0.9. ``BENCH_SHORT=1``: 12 s of media, 3 rounds,
the same floor.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import pytest
import redis.asyncio as aioredis

from bench.conftest import SHORT, Report, median
from headend.contentkeys import ContentKeyStore, KekRing
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelEncryption, ChannelState, LiveChannel
from transcode.ladder import Profile, Rung
from transcode.live import Epoch, Publisher, live_command, plan_live
from transcode.live.encryption import ChannelKeys, LiveEncryption
from transcode.live.store import ChannelStore

MEDIA_SECONDS = 12 if SHORT else 36
ROUNDS = 3 if SHORT else 5
GOAL = 0.9
PROFILE = Profile(
    name="bench",
    rungs=(
        Rung("360p", 640, 360, 6000, 128, "main", "3.1"),
        Rung("180p", 320, 180, 3000, 96, "baseline", "3.0"),
    ),
    preset="ultrafast",
)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noisy 640x360 25 fps H.264/AAC clip (noise keeps the rungs at their bit rates)."""
    path = tmp_path_factory.mktemp("live-encryption") / "clip.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25,noise=alls=30:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(MEDIA_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M",
         "-g", "50", "-c:a", "aac", "-b:a", "128k", str(path)],
        check=True,
    )  # fmt: skip
    return path


@dataclass(frozen=True)
class Spent:
    """CPU-seconds of one epoch: FFmpeg's and the publisher's (this process)."""

    ffmpeg: float
    publish: float
    segments: int

    @property
    def total(self) -> float:
        return self.ffmpeg + self.publish


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _epoch(
    clip: Path, root: Path, redis: aioredis.Redis, keys: LiveEncryption | None
) -> Spent:
    """Package ``clip`` as one epoch of a channel and publish every segment."""
    encryption = ChannelEncryption(enabled=keys is not None, rotation_seconds=600)
    channel = LiveChannel(id=root.name, source=str(clip), encryption=encryption)
    plan = plan_live(PROFILE)
    source = ffmpeg.input(str(clip))
    epoch = Epoch("source", 0, root / "work", [r.name for r in plan])
    publisher = Publisher(
        channel,
        plan,
        PROFILE,
        root=root,
        next_sequence=0,
        discontinuity_sequence=0,
        store=ChannelStore(channel, redis=redis, archive=ArchiveIndex(redis)),
        state=lambda: ChannelState.LIVE,
        on_disk_full=lambda reason: None,
        keys=ChannelKeys(channel, keys, timeout_seconds=2.0) if keys is not None else None,
    )
    before_ffmpeg = _children_cpu()
    await epoch.start(live_command(source.video, [source.audio], plan, PROFILE, root / "work"))
    assert await epoch.wait() == 0, epoch.last_error()
    spent_ffmpeg = _children_cpu() - before_ffmpeg
    before = time.process_time()
    await publisher.publish_ready(epoch, last=True)
    spent_publish = time.process_time() - before
    assert publisher.next_sequence == epoch.published > 0
    return Spent(spent_ffmpeg, spent_publish, publisher.next_sequence)


def test_live_packaging_encrypted_against_clear(
    benchmark, report: Report, clip: Path, tmp_path: Path
) -> None:
    clear: list[Spent] = []
    encrypted: list[Spent] = []

    async def run() -> None:
        server = RedisServer(tmp_path / "redis")
        server.start()
        client = connect(server.url, RedisSettings(socket_timeout_seconds=2.0))
        keys = LiveEncryption(
            ContentKeyStore(client, KekRing.generate("bench")),
            base_url="http://127.0.0.1:8000",
            rotation_seconds=600,
        )
        try:
            for n in range(ROUNDS + 1):  # the first pair warms up (page cache, imports)
                # Interleaved, so drift on a shared machine hits both sides alike.
                plain = await _epoch(clip, tmp_path / f"clear{n}", client, None)
                secret = await _epoch(clip, tmp_path / f"encrypted{n}", client, keys)
                if n:
                    clear.append(plain)
                    encrypted.append(secret)
        finally:
            await client.aclose()
            server.stop()

    benchmark.pedantic(lambda: asyncio.run(run()), rounds=1, iterations=1)

    def throughput(spent: list[Spent], part: str) -> float:
        return MEDIA_SECONDS / median([getattr(s, part) for s in spent])

    ladder_kbps = sum(r.video_kbps for r in PROFILE.rungs)
    ratio = report.ratio(
        f"live packaging encrypted vs clear ({ladder_kbps} kb/s ladder), media s per CPU-s",
        throughput(encrypted, "total"),
        throughput(clear, "total"),
        unit="media s per CPU-s",
    )
    publish_ratio = report.ratio(
        "live publish stage alone encrypted vs clear, media s per CPU-s",
        throughput(encrypted, "publish"),
        throughput(clear, "publish"),
        unit="media s per CPU-s",
    )
    report.line(
        f"live encryption: {encrypted[0].segments} segments x {len(PROFILE.rungs)} rungs per "
        f"epoch, FFmpeg {median([s.ffmpeg for s in clear]):.3f} / "
        f"{median([s.ffmpeg for s in encrypted]):.3f} CPU-s, publish "
        f"{median([s.publish for s in clear]) * 1e3:.1f} / "
        f"{median([s.publish for s in encrypted]) * 1e3:.1f} ms CPU (clear / encrypted), "
        f"{ROUNDS} rounds"
    )
    benchmark.extra_info.update(
        {"ratio": round(ratio, 3), "publish_ratio": round(publish_ratio, 3), "goal": GOAL}
    )
    assert ratio >= GOAL, f"encrypted packaging runs at {ratio:.2f}x clear (goal {GOAL})"
