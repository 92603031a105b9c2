"""CMAF catch-up at the origin: a segment packaged on request against the archived TS file.

Subject: ``GET /catchup/{channel}/w/{from}/{to}/720p/{seq}.m4s`` through a real origin over
a real Redis archive index (``transcode.origin.cmaf_catchup``): the window read from the
index, the archived TS read whole and remuxed on a worker thread (video track), the media
segment's bytes sent. Baseline, same origin, rounds interleaved: ``GET .../{seq:010d}.ts``
of the same window, the archived file sent as it is (what TS catch-up costs). The ratio is
requests/s, ours over the file's (medians): the price of packaging just in time. The
real-time factor (media seconds packaged per second, one request at a time) is reported
too: it bounds how many catch-up viewers a core serves without a cache in front.

``BENCH_SHORT=1``: a 2 s segment, 5 rounds; full: a 6 s segment, 11 rounds; both a 720p
rung at about 5 Mb/s (noisy), 1 s GOPs, AAC. Floors in both modes: ratio >= 0.02 and at
least 10 times real time. Measured here (2 shared cores): short 0.16 (40 ms per 2 s
segment, 49x real time; the file 6.5 ms), full 0.16 (73 ms per 6 s segment, 82x real
time; the file 11.6 ms).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.conftest import SHORT, Report, median
from bench.media import live_segment
from headend.redisconn import connect
from headend.redisproc import RedisServer
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry
from transcode.origin import start_origin
from transcode.settings import OriginSettings

SECONDS = 2 if SHORT else 6
ROUNDS = 5 if SHORT else 11
ITERATIONS = 3
FLOOR = 0.02
REALTIME_FLOOR = 10.0


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archived 720p rung segment: H.264 at about 5 Mb/s (noisy), 1 s GOPs, AAC."""
    return live_segment(tmp_path_factory.mktemp("catchup-cmaf") / "segment.ts", SECONDS)


async def _per_call(http: aiohttp.ClientSession, url: str, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        async with http.get(url) as response:
            assert response.status == 200, url
            await response.read()
    return (time.perf_counter() - start) / iterations


def test_jit_cmaf_segment_against_the_ts_file(
    benchmark: pytest.FixtureFixture,  # type: ignore[name-defined]
    report: Report,
    segment: Path,
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    loop = asyncio.new_event_loop()
    try:
        redis = connect(server.url)
        root = tmp_path / "origin"
        rel = "live/ch1/720p/0000000000.ts"
        (root / rel).parent.mkdir(parents=True)
        shutil.copyfile(segment, root / rel)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        index = ArchiveIndex(redis)
        entry = ArchiveEntry(0, start, float(SECONDS), segment.stat().st_size, rel)

        async def setup() -> tuple[web.AppRunner, aiohttp.ClientSession, str]:
            rung = RungInfo("720p", "avc1.42c01f,mp4a.40.2", 1280, 720, 25.0)
            await index.register_channel("ch1", catchup_days=1, rungs=[rung])
            await index.record("ch1", "720p", entry)
            runner, port = await start_origin(
                OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
            )
            first, last = int(start.timestamp()) - 10, int(start.timestamp()) + 60
            base = f"http://127.0.0.1:{port}/catchup/ch1/w/{first}/{last}/720p"
            return runner, aiohttp.ClientSession(), base

        runner, http, base = loop.run_until_complete(setup())
        ours_url, theirs_url = f"{base}/0.m4s", f"{base}/0000000000.ts"
        baseline: list[float] = []
        subject: list[float] = []

        def measure_baseline() -> None:
            baseline.append(loop.run_until_complete(_per_call(http, theirs_url, ITERATIONS)))

        def run_subject() -> None:
            subject.append(loop.run_until_complete(_per_call(http, ours_url, ITERATIONS)))

        benchmark.pedantic(run_subject, setup=measure_baseline, rounds=ROUNDS, warmup_rounds=1)
        ratio = report.ratio(
            f"CMAF catch-up segment packaged on request ({SECONDS} s 720p) vs its TS file, "
            "requests/s",
            1 / median(subject),
            1 / median(baseline),
            unit="requests/s",
        )
        realtime = SECONDS / median(subject)
        report.line(
            f"CMAF catch-up JIT: {median(subject) * 1e3:.1f} ms per segment, "
            f"{realtime:.0f}x real time (TS file: {median(baseline) * 1e3:.1f} ms)"
        )
        benchmark.extra_info.update({"ratio": round(ratio, 3), "realtime": round(realtime, 1)})

        async def teardown() -> None:
            await http.close()
            await runner.cleanup()
            await redis.aclose()

        loop.run_until_complete(teardown())
        assert ratio >= FLOOR
        assert realtime >= REALTIME_FLOOR
    finally:
        loop.close()
        server.stop()
