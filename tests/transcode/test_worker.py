"""Workers with real FFmpeg: crash recovery, dead letters, cancel, bad sources, re-runs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.redisconn import connect
from headend.redisproc import RedisServer
from tests.support.media import Media
from tests.transcode.control_media import children, kill_group, looped, start_worker
from transcode import hls_parse
from transcode.errors import DiskFull
from transcode.jobs import Job, JobState, Progress
from transcode.queue import JobQueue
from transcode.settings import QueueSettings, SourceSettings
from transcode.sources import SourceGuard
from transcode.worker import ProgressCallback, Worker, vod_packager

FAST = QueueSettings(max_deliveries=3, claim_idle_seconds=1.0, retry_base_seconds=0.0)


def _job(job_id: str, source: Path | str, asset: str) -> Job:
    now = datetime.now(UTC)
    return Job(job_id, str(source), asset, "low", JobState.QUEUED, now, now)


@pytest.fixture(scope="module")
def long_source(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minute of the 5 s clip: about two seconds of encoding, long enough to interrupt."""
    return looped(media.clip, tmp_path_factory.mktemp("long") / "one_minute.mp4", 60)


@pytest.fixture
async def queue(redis: aioredis.Redis) -> JobQueue:
    q = JobQueue(redis, max_deliveries=FAST.max_deliveries)
    await q.ensure_group()
    return q


class InProcess:
    """A Worker running in this event loop, stopped at teardown."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(worker.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await self.task


@pytest.fixture
async def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    return root


@pytest.fixture
async def worker(
    queue: JobQueue, origin: Path, source_settings: SourceSettings
) -> AsyncIterator[InProcess]:
    running = InProcess(
        Worker(
            queue=queue,
            packager=vod_packager(
                origin_root=origin, work_dir=None, sources=SourceGuard(source_settings)
            ),
            consumer="w-test",
            settings=FAST,
            heartbeat_seconds=0.3,
            block_ms=100,
        )
    )
    yield running
    await running.close()


async def _until_done(queue: JobQueue, job_id: str) -> Job:
    async for event in queue.events(job_id, block_ms=500):
        if event.state.terminal:
            break
    return await queue.get(job_id)


async def _until_encoding(queue: JobQueue, job_id: str) -> None:
    async for event in queue.events(job_id, block_ms=500):
        assert not event.state.terminal, event
        if event.state is JobState.RUNNING and event.progress.percent > 0:
            return


def _vod_entries(origin: Path) -> list[str]:
    vod = origin / "vod"
    return sorted(p.name for p in vod.iterdir()) if vod.exists() else []


async def test_job_is_packaged_and_published(
    queue: JobQueue, worker: InProcess, origin: Path, media: Media
) -> None:
    await queue.submit(_job("ok1", media.clip, "clip"))
    job = await _until_done(queue, "ok1")
    assert (job.state, job.output, job.deliveries) == (
        JobState.SUCCEEDED,
        "/vod/clip/master.m3u8",
        1,
    )
    master = hls_parse.parse_master((origin / "vod/clip/master.m3u8").read_text())
    assert [v.uri for v in master.variants] == ["90p/index.m3u8", "180p/index.m3u8"]
    assert job.progress.percent == 100.0


async def test_rerun_replaces_output_cleanly(
    queue: JobQueue, worker: InProcess, origin: Path, media: Media
) -> None:
    await queue.submit(_job("first", media.long_clip, "asset"))
    assert (await _until_done(queue, "first")).state is JobState.SUCCEEDED
    await queue.submit(_job("second", media.clip, "asset"))
    assert (await _until_done(queue, "second")).state is JobState.SUCCEEDED
    media_pl = hls_parse.parse_media((origin / "vod/asset/180p/index.m3u8").read_text())
    assert sum(s.duration for s in media_pl.segments) == pytest.approx(5.0, abs=0.5)
    # No temp or previous copies are left beside the published asset.
    assert _vod_entries(origin) == ["asset"]
    listed = {s.uri for s in media_pl.segments}
    on_disk = {p.name for p in (origin / "vod/asset/180p").glob("*.ts")}
    assert on_disk == listed


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param("missing", "SourceNotFound", id="missing-source"),
        pytest.param("corrupt", "CorruptSource", id="corrupt-source"),
        pytest.param("truncated", "CorruptSource", id="truncated-source"),
        pytest.param("png_video", "UnsupportedSource", id="unsupported-codec"),
    ],
)
async def test_bad_source_fails_without_output_and_worker_serves_next(
    queue: JobQueue, worker: InProcess, origin: Path, media: Media, source: str, reason: str
) -> None:
    # A missing file inside the media roots (one outside them is refused before FFmpeg runs).
    path = media.clip.parent / "missing.mp4" if source == "missing" else getattr(media, source)
    await queue.submit(_job("bad", path, "bad"))
    job = await _until_done(queue, "bad")
    assert job.state is JobState.FAILED
    assert job.reason.startswith(reason), job.reason
    assert job.deliveries == 1  # a bad source is not retried
    assert "bad" not in _vod_entries(origin)
    await queue.submit(_job("next", media.clip, "next"))
    assert (await _until_done(queue, "next")).state is JobState.SUCCEEDED
    assert _vod_entries(origin) == ["next"]


async def test_cancel_running_job_publishes_nothing_and_worker_continues(
    queue: JobQueue, worker: InProcess, origin: Path, media: Media
) -> None:
    await queue.submit(_job("long", media.endless, "endless"))
    await _until_encoding(queue, "long")
    assert await queue.request_cancel("long") is JobState.RUNNING
    job = await _until_done(queue, "long")
    assert (job.state, job.reason) == (JobState.CANCELLED, "cancelled by request")
    assert _vod_entries(origin) == []
    await queue.submit(_job("after", media.clip, "after"))
    assert (await _until_done(queue, "after")).state is JobState.SUCCEEDED


class DiskFullPackager:
    """A stand-in for a full disk (a real ENOSPC needs a tiny file system we cannot mount)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, job: Job, on_progress: ProgressCallback) -> str:
        self.calls += 1
        on_progress(Progress(10.0, 1.0, 5.0, "encode"))
        raise DiskFull("the output file system is full (ENOSPC)")


async def test_transient_failure_is_retried_then_dead_lettered(queue: JobQueue) -> None:
    packager = DiskFullPackager()
    running = InProcess(
        Worker(
            queue=queue, packager=packager, consumer="w-full", settings=FAST,
            heartbeat_seconds=0.3, block_ms=50,
        )
    )  # fmt: skip
    try:
        await queue.submit(_job("full", "/media/x.mp4", "full"))
        job = await _until_done(queue, "full")
    finally:
        await running.close()
    assert packager.calls == FAST.max_deliveries
    assert job.state is JobState.FAILED
    assert (
        job.reason
        == "dead-lettered after 3 deliveries: DiskFull: the output file system is full (ENOSPC)"
    )
    (dead,) = (await queue.dead_letters()).letters
    assert (dead.job_id, dead.deliveries) == ("full", 3)
    assert running.worker.metrics.finished.labels("dead")._value.get() == 1


async def test_worker_killed_mid_job_is_reclaimed_and_finished_by_another_process(
    queue: JobQueue,
    redis_server: RedisServer,
    origin: Path,
    long_source: Path,
    tmp_path: Path,
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "ORIGIN_ROOT": str(origin),
        "TC_CLAIM_IDLE_SECONDS": "1",
        "TC_MAX_DELIVERIES": "3",
        "TC_MEDIA_ROOTS": str(long_source.parent),
        "LOG_LEVEL": "info",
    }
    first = start_worker({**env, "TC_WORKER_NAME": "w-a"}, tmp_path / "w-a.log")
    second = None
    try:
        await queue.submit(_job("crash", long_source, "crash"))
        await _until_encoding(queue, "crash")
        encoders = children(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
        for pid in encoders:  # the dead worker's FFmpeg, in its own process group
            kill_group(pid)
        running = await queue.get("crash")
        assert (running.state, running.worker, running.deliveries) == (JobState.RUNNING, "w-a", 1)
        assert 0 < running.progress.percent < 100
        second = start_worker({**env, "TC_WORKER_NAME": "w-b"}, tmp_path / "w-b.log")
        job = await _until_done(queue, "crash")
        assert (job.state, job.worker, job.deliveries) == (JobState.SUCCEEDED, "w-b", 2)
        master = hls_parse.parse_master((origin / "vod/crash/master.m3u8").read_text())
        assert len(master.variants) == 2
        rung = hls_parse.parse_media((origin / "vod/crash/180p/index.m3u8").read_text())
        assert sum(s.duration for s in rung.segments) == pytest.approx(60, abs=1)
        assert _vod_entries(origin) == ["crash"]
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_worker_rides_out_a_redis_restart_and_serves_the_next_job(
    tmp_path: Path, origin: Path, media: Media, source_settings: SourceSettings
) -> None:
    """Its loops fail while Redis is away, are restarted with backoff (counted), and serve
    again once it is back: no worker restart needed."""
    private = RedisServer(tmp_path / "redis")
    await asyncio.to_thread(private.start)
    client = connect(private.url)
    queue = JobQueue(client, max_deliveries=FAST.max_deliveries)
    await queue.ensure_group()
    running = InProcess(
        Worker(
            queue=queue,
            packager=vod_packager(
                origin_root=origin, work_dir=None, sources=SourceGuard(source_settings)
            ),
            consumer="w-restart",
            settings=FAST,
            heartbeat_seconds=0.3,
            block_ms=100,
        )
    )
    supervisor = running.worker.supervisor

    async def slot_failed() -> bool:
        status = supervisor.status("slot-0")
        return status is not None and status.restarts >= 1

    try:
        private.kill()
        await asyncio.wait_for(_polled(slot_failed), 15)
        await asyncio.to_thread(private.start)
        await queue.submit(_job("after", media.clip, "after"))
        job = await asyncio.wait_for(_until_done(queue, "after"), 60)
        assert job.state is JobState.SUCCEEDED
        restarts = running.worker.metrics.registry.get_sample_value(
            "headend_task_restarts_total", {"task": "slot-0"}
        )
        assert restarts is not None
        assert restarts >= 1
    finally:
        await running.close()
        await client.aclose()
        await asyncio.to_thread(private.stop)


async def _polled(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a supervisor's observable state (it offers no event to await)."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.05)
