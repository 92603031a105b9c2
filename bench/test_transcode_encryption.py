"""Encrypted VOD packaging throughput: the same packaging with AES-128 and rotating keys vs clear.

Subjects, each against the same call without ``encryption`` in the same run, same input,
same output file system (``/dev/shm`` when it exists), rounds alternating which side goes
first so drift on a shared machine hits both. Content keys come from a real
``ContentKeyStore`` on a private Redis, a new key every 10 s of media: the asset's scope is
emptied and its keys made again each round, every segment is AES-128-CBC encrypted whole,
every I-frame written as its own encrypted file.

Two ratios per subject: wall time (what a job waits) and CPU time of this process and
its FFmpeg children (what a farm pays; Redis's few commands not counted). The floors are
asserted on CPU time: on the shared 2-core machine the wall time of one short encode
spread 5.8-8.2 s while the encryption step itself took 7-20 ms of it (a wall-time short
run measured 0.755), and CPU time does not count other processes' load.

- ``package_vod``: the packaging step as jobs run it, the "low" ladder encoded from a fixed
  720p H.264/AAC source (60 s; ``BENCH_SHORT=1``: 20 s). Goal (issue 15): ratio >= 0.9.
- ``remux_vod``: the worst case, a stream copy at hundreds of times realtime whose 5 Mbit/s
  segments are all there is to encrypt (60 s 720p; full: 600 s 1080p). AES-CBC is serial
  per segment and runs after FFmpeg, at about 300 MB/s a core on the loaded 2-core CI
  machine against a copy writing about 200 MB/s, so this ratio is about 0.5 (short run: CPU
  0.515, wall 0.36-0.47): reported, with a floor of 0.35 that catches encrypting twice.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bench.conftest import SHORT, Report, median
from bench.media import looped_mezzanine, scratch
from headend.contentkeys import ContentKeyStore, KekRing
from headend.redisconn import connect
from headend.redisproc import RedisServer
from transcode.encrypt import AssetEncryption
from transcode.hls_parse import parse_media
from transcode.package import PackageResult, package_vod, remux_vod
from transcode.profiles import resolve_profile

ENCODE_SECONDS = 20 if SHORT else 60
REMUX_SECONDS = 60 if SHORT else 600
REMUX_SIZE = "1280x720" if SHORT else "1920x1080"
ROUNDS = 7
ENCODE_FLOOR = 0.9
REMUX_FLOOR = 0.35
ROTATION_SECONDS = 10

# One packaging run: (output directory, encryption or None) -> its result.
Package = Callable[[Path, AssetEncryption | None], Awaitable[PackageResult]]


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The encode's 720p source and the remux's mezzanine, made once per session."""
    root = tmp_path_factory.mktemp("encryption-bench")
    return {
        "encode": looped_mezzanine(root, "1280x720", ENCODE_SECONDS),
        "remux": looped_mezzanine(root, REMUX_SIZE, REMUX_SECONDS),
    }


@pytest.fixture
def out_root(tmp_path: Path) -> Iterator[Path]:
    with scratch("encryption-bench", tmp_path) as root:
        yield root


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server.url
    server.stop()


def _compare(
    benchmark, report: Report, package: Package, out_root: Path, redis_url: str, name: str,
    seconds: int, floor: float,
) -> Path:  # fmt: skip
    """Medians of ``package`` encrypted vs clear, alternating; asserts the CPU floor."""
    clear_dir = out_root / "vod" / "clear"
    ours_dir = out_root / "vod" / "film"
    keks = KekRing.generate("k1")
    # (wall seconds, CPU seconds) of each run.
    baseline: list[tuple[float, float]] = []
    subject: list[tuple[float, float]] = []

    async def timed(dest: Path, encrypted: bool) -> tuple[float, float]:
        client = connect(redis_url)
        try:
            # Connected before the clock starts, as a worker's client is.
            await client.ping()
            store = ContentKeyStore(client, keks)
            encryption = AssetEncryption("film", ROTATION_SECONDS, store, "http://fd", "bench")
            start, cpu = time.perf_counter(), _cpu_seconds()
            await package(dest, encryption if encrypted else None)
            return time.perf_counter() - start, _cpu_seconds() - cpu
        finally:
            await client.aclose()

    def clear() -> None:
        shutil.rmtree(clear_dir, ignore_errors=True)
        baseline.append(asyncio.run(timed(clear_dir, False)))

    turn = [0]

    def before_ours() -> None:
        # Alternate which side runs first in each round, so neither always follows the other.
        shutil.rmtree(ours_dir, ignore_errors=True)
        turn[0] += 1
        if turn[0] % 2:
            clear()

    def after_ours() -> None:
        if not turn[0] % 2:
            clear()

    def ours() -> None:
        subject.append(asyncio.run(timed(ours_dir, True)))

    benchmark.pedantic(ours, setup=before_ours, teardown=after_ours, rounds=ROUNDS, warmup_rounds=1)

    wall = report.ratio(
        f"transcode {name} encrypted vs clear, {seconds}s, wall",
        seconds / median([w for w, _ in subject]),
        seconds / median([w for w, _ in baseline]),
        unit="x realtime",
    )
    cpu = report.ratio(
        f"transcode {name} encrypted vs clear, {seconds}s, CPU",
        seconds / median([c for _, c in subject]),
        seconds / median([c for _, c in baseline]),
        unit="media s per CPU s",
    )
    benchmark.extra_info.update({"wall_ratio": round(wall, 3), "cpu_ratio": round(cpu, 3)})
    print(f"\n{name} {seconds}s: throughput ratio wall {wall:.3f}, CPU {cpu:.3f} (floor {floor})")
    assert cpu >= floor
    return ours_dir


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (FFmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _check_encrypted(dest: Path, rung: str, seconds: int) -> None:
    media = parse_media((dest / rung / "index.m3u8").read_text())
    assert all(s.key is not None for s in media.segments)
    assert len({s.key.uri for s in media.segments if s.key}) == seconds // ROTATION_SECONDS


def test_encrypted_ladder_packaging_throughput_against_clear(
    benchmark, report: Report, sources: dict[str, Path], out_root: Path, redis_url: str
) -> None:
    profile = resolve_profile("low")

    async def package(dest: Path, encryption: AssetEncryption | None) -> PackageResult:
        return await package_vod(str(sources["encode"]), dest, profile, encryption=encryption)

    dest = _compare(
        benchmark, report, package, out_root, redis_url, "package_vod low ladder 720p",
        ENCODE_SECONDS, ENCODE_FLOOR,
    )  # fmt: skip
    _check_encrypted(dest, "180p", ENCODE_SECONDS)


def test_encrypted_remux_throughput_against_clear(
    benchmark, report: Report, sources: dict[str, Path], out_root: Path, redis_url: str
) -> None:
    async def package(dest: Path, encryption: AssetEncryption | None) -> PackageResult:
        return await remux_vod(str(sources["remux"]), dest, encryption=encryption)

    dest = _compare(
        benchmark, report, package, out_root, redis_url, f"remux_vod {REMUX_SIZE}",
        REMUX_SECONDS, REMUX_FLOOR,
    )  # fmt: skip
    _check_encrypted(dest, "src", REMUX_SECONDS)
