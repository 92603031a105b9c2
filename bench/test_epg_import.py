"""XMLTV import of a generated guide: programmes per second, peak memory, ratio to bare lxml.

Subject: ``EpgService.import_xmltv`` of a 500-channel x 7-day guide (about
120,000 programmes, titles, descriptions and categories in Chinese and
English, explicit +0800 offsets) into a real redis-server, run in a fresh
subprocess so its peak RSS (``ru_maxrss``) is the import's alone. Redis is
flushed before each round, so every round writes everything.

Baseline, same run, same file, same kind of subprocess: a bare lxml
``iterparse`` over the file with the same hardened options, freeing each
element (the floor any streaming importer stands on).

Goals (issue 3): >= 20,000 programmes/s and peak RSS < 300 MB.
``BENCH_SHORT=1`` uses 50 channels x 2 days and asserts the memory bound and
that every programme was written; the throughput goal is asserted in full mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from bench.conftest import SHORT, Report, median
from headend.redisproc import RedisServer

CHANNELS = 50 if SHORT else 500
DAYS = 2 if SHORT else 7
ROUNDS = 2 if SHORT else 3
DURATIONS = (30, 45, 60, 35, 40, 50)  # minutes; ~43 on average -> ~33 programmes a day
START = datetime(2026, 3, 2, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def generate_guide(path: Path, channels: int, days: int) -> int:
    """Write a realistic XMLTV guide; returns the number of programmes."""
    count = 0
    end = START + timedelta(days=days)
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n')
        f.write('<tv generator-info-name="bench">\n')
        for c in range(channels):
            f.write(
                f'<channel id="ch{c}.bench.cn"><display-name lang="zh">频道 {c}</display-name>'
                f'<display-name lang="en">Channel {c}</display-name>'
                f'<icon src="https://img.example.cn/{c}.png"/></channel>\n'
            )
        for c in range(channels):
            when, i = START, 0
            while when < end:
                stop = when + timedelta(minutes=DURATIONS[(c + i) % len(DURATIONS)])
                local_start = (when + timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
                local_stop = (stop + timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
                f.write(
                    f'<programme start="{local_start} +0800" stop="{local_stop} +0800" '
                    f'channel="ch{c}.bench.cn"><title lang="zh">节目 {c}-{i}</title>'
                    f'<title lang="en">Show {c}-{i}</title>'
                    f'<desc lang="zh">第 {i} 集: 一段关于城市与乡村生活的纪录片。</desc>'
                    f'<category lang="zh">纪录片</category>'
                    f'<episode-num system="xmltv_ns">0.{i}.0/1</episode-num></programme>\n'
                )
                when, i = stop, i + 1
                count += 1
        f.write("</tv>\n")
    return count


def child_import(path: str, redis_url: str) -> None:
    """Subprocess body: import the file as the admin; print seconds, counts, peak RSS."""
    import asyncio
    import resource
    import time

    import redis.asyncio as aioredis

    from epg.service import EpgService
    from epg.store import EpgStore
    from headend.auth import ADMIN

    async def run(f: IO[bytes]) -> dict[str, float]:
        client = aioredis.Redis.from_url(redis_url)
        service = EpgService(store=EpgStore(client), max_import_bytes=4 * 1024**3)
        began = time.perf_counter()
        report = await service.import_xmltv(ADMIN, f, owner="bench")
        seconds = time.perf_counter() - began
        await client.aclose()
        return {
            "seconds": seconds,
            "written": report.programmes_written,
            "problems": len(report.problems),
        }

    with open(path, "rb") as f:
        out = asyncio.run(run(f))
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def child_iterparse(path: str) -> None:
    """Subprocess body: the bare lxml baseline with the importer's parser options."""
    import resource
    import time

    from lxml import etree

    began = time.perf_counter()
    count = 0
    context = etree.iterparse(
        path,
        events=("end",),
        tag="programme",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    for _event, el in context:
        count += 1
        el.clear()
        while el.getprevious() is not None:
            del el.getparent()[0]
    seconds = time.perf_counter() - began
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "count": count, "rss_mb": rss}))


def _child(code: str, *args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("epg-bench") / "guide.xml"
    return path, generate_guide(path, CHANNELS, DAYS)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("epg-bench-redis"))
    server.start()
    yield server
    server.stop()


def test_epg_xmltv_import(
    benchmark: Any,
    guide: tuple[Path, int],
    redis_server: RedisServer,
    report: Report,
) -> None:
    path, total = guide
    baseline = [
        _child(
            "import sys; from bench.test_epg_import import child_iterparse;"
            "child_iterparse(sys.argv[1])",
            str(path),
        )
        for _ in range(ROUNDS)
    ]
    assert all(b["count"] == total for b in baseline)
    runs: list[dict[str, float]] = []
    sync = redis.Redis.from_url(redis_server.url)

    def flush() -> None:
        sync.flushall()

    def one() -> None:
        runs.append(
            _child(
                "import sys; from bench.test_epg_import import child_import;"
                "child_import(sys.argv[1], sys.argv[2])",
                str(path),
                redis_server.url,
            )
        )

    benchmark.pedantic(one, setup=flush, rounds=ROUNDS, iterations=1)
    sync.close()
    assert all(r["written"] == total and r["problems"] == 0 for r in runs)
    import_s = median([r["seconds"] for r in runs])
    bare_s = median([b["seconds"] for b in baseline])
    rate, bare_rate = total / import_s, total / bare_s
    peak = max(r["rss_mb"] for r in runs)
    ratio = report.ratio(
        f"epg xmltv import {CHANNELS}ch x {DAYS}d ({total} programmes)",
        rate,
        bare_rate,
        unit="programmes/s (vs bare lxml iterparse)",
    )
    report.line(
        f"epg xmltv import peak RSS {peak:.0f} MB "
        f"(bare iterparse {max(b['rss_mb'] for b in baseline):.0f} MB)"
    )
    benchmark.extra_info.update(
        {
            "programmes": total,
            "programmes_per_s": rate,
            "bare_iterparse_per_s": bare_rate,
            "ratio_to_bare_iterparse": ratio,
            "peak_rss_mb": peak,
        }
    )
    print(
        f"\nepg import: {rate:,.0f} programmes/s, ratio to bare iterparse {ratio:.3f}, "
        f"peak RSS {peak:.0f} MB"
    )
    assert peak < 300
    if not SHORT:
        assert rate >= 20_000
