"""The Redis Streams job queue: delivery, reclaim, fencing, retry, dead letters, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.redisha import ClusterSet
from transcode.archive import tag_of
from transcode.errors import InvalidRequest, JobNotFound, JobNotRetryable
from transcode.jobs import Job, JobEvent, JobState, Progress, retry_delay
from transcode.queue import (
    DEAD,
    DELAYED,
    GROUP,
    INDEX,
    STREAM,
    JobQueue,
    QueueDepth,
    events_key,
    job_key,
)
from transcode.queue.codec import event_from_fields


def _job(job_id: str = "j1") -> Job:
    now = datetime.now(UTC)
    return Job(job_id, "/media/in.mp4", "asset1", "default", JobState.QUEUED, now, now)


@pytest.fixture
async def queue(redis: aioredis.Redis) -> JobQueue:
    q = JobQueue(redis, max_deliveries=3)
    await q.ensure_group()
    return q


async def _pending(redis: aioredis.Redis) -> int:
    info = await redis.xpending(STREAM, GROUP)
    return int(info["pending"])


def test_every_key_of_the_queue_shares_one_hash_tag() -> None:
    # Each script holds the stream and a job's keys together: one Cluster slot.
    keys = [STREAM, DEAD, DELAYED, INDEX, job_key("j1"), events_key("j2")]
    assert {tag_of(k) for k in keys} == {"jobs"}


async def test_submit_then_get_and_duplicate_refused(queue: JobQueue) -> None:
    assert await queue.submit(_job())
    assert not await queue.submit(_job())
    job = await queue.get("j1")
    assert (job.state, job.deliveries, job.asset) == (JobState.QUEUED, 0, "asset1")
    jobs, cursor = await queue.list_jobs()
    assert ([j.id for j in jobs], cursor) == (["j1"], "")


async def test_list_jobs_pages_through_jobs_created_in_the_same_instant(
    queue: JobQueue,
) -> None:
    same = datetime(2026, 1, 1, tzinfo=UTC)
    older = datetime(2025, 1, 1, tzinfo=UTC)
    for job_id, at in [("a", same), ("c", same), ("b", same), ("old", older)]:
        await queue.submit(Job(job_id, "/m/in.mp4", "x", "default", JobState.QUEUED, at, at))
    await queue.request_cancel("c")
    seen, cursor = [], ""
    while True:
        page, cursor = await queue.list_jobs(limit=1, after=cursor)
        seen += [j.id for j in page]
        if not cursor:
            break
    assert seen == ["c", "b", "a", "old"]
    queued, cursor = await queue.list_jobs(state=JobState.QUEUED, limit=2)
    rest, end = await queue.list_jobs(state=JobState.QUEUED, limit=2, after=cursor)
    assert ([j.id for j in queued], [j.id for j in rest], end) == (["b", "a"], ["old"], "")
    with pytest.raises(InvalidRequest):
        await queue.list_jobs(after="not-a-cursor")


async def test_get_unknown_job_is_not_found(queue: JobQueue, redis: aioredis.Redis) -> None:
    with pytest.raises(JobNotFound):
        await queue.get("nope")
    with pytest.raises(JobNotFound):
        await queue.request_cancel("nope")
    assert not await redis.exists(job_key("nope"))


async def test_delivery_runs_and_finishes_with_ack(queue: JobQueue, redis: aioredis.Redis) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=100, claim_idle_ms=60_000)
    assert delivery is not None
    assert not delivery.reclaimed
    started = await queue.begin(delivery, "w1")
    assert started.job is not None
    assert (started.job.state, started.job.deliveries, started.job.worker) == (
        JobState.RUNNING,
        1,
        "w1",
    )
    assert await queue.heartbeat(delivery, "w1", Progress(50.0, 2.0, 3.0, "encoding")) == "ok"
    assert (await queue.get("j1")).progress == Progress(50.0, 2.0, 3.0, "encoding")
    assert await queue.finish(delivery, JobState.SUCCEEDED, output="/vod/asset1/master.m3u8")
    job = await queue.get("j1")
    assert (job.state, job.progress.percent, job.output) == (
        JobState.SUCCEEDED,
        100.0,
        "/vod/asset1/master.m3u8",
    )
    assert await _pending(redis) == 0
    states = [e.state async for e in queue.events("j1")]
    assert states == [JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]


async def test_idle_delivery_is_reclaimed_and_old_owner_is_fenced(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    first = await queue.next_delivery("w1", block_ms=100, claim_idle_ms=60_000)
    assert first is not None
    await queue.begin(first, "w1")
    # Not idle long enough yet: nobody else gets it.
    assert await queue.next_delivery("w2", block_ms=10, claim_idle_ms=60_000) is None
    second = await queue.next_delivery("w2", block_ms=10, claim_idle_ms=0)
    assert second is not None
    assert second.reclaimed
    assert second.job_id == "j1"
    started = await queue.begin(second, "w2")
    assert started.job is not None
    assert started.job.deliveries == 2
    # The presumed-dead first worker can no longer write to the job.
    assert not await queue.finish(first, JobState.FAILED, reason="late")
    assert await queue.heartbeat(first, "w1") == "lost"
    assert (await queue.get("j1")).state is JobState.RUNNING
    assert await queue.finish(second, JobState.SUCCEEDED)
    assert await _pending(redis) == 0


async def test_heartbeat_keeps_a_live_delivery_from_being_reclaimed(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=100, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    await asyncio.sleep(0.3)  # let it go idle, then heartbeat resets the idle time
    assert await queue.heartbeat(delivery, "w1") == "ok"
    assert await queue.next_delivery("w2", block_ms=10, claim_idle_ms=200) is None


async def test_poison_job_is_dead_lettered_after_max_deliveries(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    for n in range(1, 4):
        delivery = await queue.next_delivery(f"w{n}", block_ms=10, claim_idle_ms=0)
        assert delivery is not None
        started = await queue.begin(delivery, f"w{n}")
        assert started.outcome == "run"
        assert started.job is not None
        assert started.job.deliveries == n
        # ... and worker n dies without acknowledging.
    last = await queue.next_delivery("w4", block_ms=10, claim_idle_ms=0)
    assert last is not None
    started = await queue.begin(last, "w4")
    assert started.outcome == "dead"
    job = await queue.get("j1")
    assert job.state is JobState.FAILED
    assert job.reason.startswith("dead-lettered after 3 deliveries: worker lost")
    (dead,) = (await queue.dead_letters()).letters
    assert (dead.job_id, dead.deliveries) == ("j1", 3)
    assert "worker lost" in dead.reason
    assert await _pending(redis) == 0
    assert await redis.xlen(DEAD) == 1


async def test_failed_attempt_is_retried_after_its_backoff(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    assert await queue.retry(delivery, reason="Unavailable: disk busy", delay_seconds=3600)
    job = await queue.get("j1")
    assert (job.state, job.reason) == (JobState.QUEUED, "Unavailable: disk busy")
    assert await _pending(redis) == 0
    # Not due yet.
    assert await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000) is None
    await redis.zadd(DELAYED, {"j1": 0})  # the backoff has elapsed
    again = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert again is not None
    assert again.job_id == "j1"
    started = await queue.begin(again, "w1")
    assert started.job is not None
    assert started.job.deliveries == 2


async def test_dead_letter_records_the_reason(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    assert await queue.dead_letter(delivery, reason="DiskFull: no space left")
    job = await queue.get("j1")
    assert job.state is JobState.FAILED
    assert job.reason == "dead-lettered after 1 deliveries: DiskFull: no space left"
    assert [d.job_id for d in (await queue.dead_letters()).letters] == ["j1"]


async def test_cancel_queued_job_is_immediate_and_never_runs(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    assert await queue.request_cancel("j1") is JobState.CANCELLED
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    started = await queue.begin(delivery, "w1")
    assert (started.outcome, started.job) == ("skip", None)
    job = await queue.get("j1")
    assert (job.state, job.deliveries) == (JobState.CANCELLED, 0)
    assert await _pending(redis) == 0


async def test_cancel_running_job_is_published_and_seen_by_heartbeat(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    requests = queue.cancel_requests()
    listening = asyncio.ensure_future(requests.__anext__())
    await asyncio.sleep(0.1)  # the subscription is set up when the first read starts
    assert await queue.request_cancel("j1") is JobState.RUNNING
    assert await asyncio.wait_for(listening, 5) == "j1"
    await requests.aclose()
    assert await queue.heartbeat(delivery, "w1") == "cancel"
    assert (await queue.get("j1")).cancel_requested


async def test_cancel_finished_job_changes_nothing(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    await queue.finish(delivery, JobState.SUCCEEDED)
    before = await queue.get("j1")
    assert await queue.request_cancel("j1") is JobState.SUCCEEDED
    assert await queue.get("j1") == before


@pytest.mark.parametrize(
    ("deliveries", "expected"),
    [
        pytest.param(1, 2.0, id="first-retry-base"),
        pytest.param(2, 4.0, id="doubles"),
        pytest.param(4, 16.0, id="doubles-again"),
        pytest.param(10, 60.0, id="capped"),
    ],
)
def test_retry_delay_backs_off_exponentially(deliveries: int, expected: float) -> None:
    assert retry_delay(deliveries, base_seconds=2.0, max_seconds=60.0) == expected


async def test_cancel_asked_of_a_dead_worker_is_honoured_on_reclaim(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    first = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert first is not None
    await queue.begin(first, "w1")
    assert await queue.request_cancel("j1") is JobState.RUNNING  # ... but w1 has died
    again = await queue.next_delivery("w2", block_ms=10, claim_idle_ms=0)
    assert again is not None
    started = await queue.begin(again, "w2")
    assert (started.outcome, started.reason) == ("skip", "CANCELLED")
    job = await queue.get("j1")
    assert (job.state, job.reason, job.deliveries) == (
        JobState.CANCELLED,
        "cancelled by request",
        1,
    )
    assert await _pending(redis) == 0


async def test_watching_a_quiet_job_outlives_the_redis_socket_timeout(
    queue: JobQueue, redis_server: RedisServer, redis_cluster: ClusterSet | None
) -> None:
    """redis-py 8 times reads out after 5 s: a watcher of a job queued behind others must
    not end (``WatchJob``, ``headend transcode submit --wait``)."""
    url = redis_server.url if redis_cluster is None else redis_cluster.url
    client = connect(url, RedisSettings(socket_timeout_seconds=1.0))
    try:
        await queue.submit(_job("quiet"))
        events = JobQueue(client).events("quiet", block_ms=60_000)
        assert (await anext(events)).state is JobState.QUEUED
        following = asyncio.ensure_future(anext(events))
        done, _ = await asyncio.wait({following}, timeout=3)  # three socket timeouts
        assert done == set()
        await queue.request_cancel("quiet")
        assert (await asyncio.wait_for(following, 5)).state is JobState.CANCELLED
    finally:
        await client.aclose()


# ---- the dead-letter stream and an operator's retry


async def _dead(queue: JobQueue, job_id: str, reason: str = "DiskFull: no space") -> None:
    await queue.submit(_job(job_id))
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    assert delivery.job_id == job_id
    await queue.begin(delivery, "w1")
    assert await queue.dead_letter(delivery, reason=reason)


async def test_dead_letters_page_newest_first_with_each_job_as_it_is_now(queue: JobQueue) -> None:
    for job_id in ("j1", "j2", "j3"):
        await _dead(queue, job_id, reason=f"EncodeFailed: {job_id}")
    first = await queue.dead_letters(limit=2)
    assert ([d.job_id for d in first.letters], first.total) == (["j3", "j2"], 3)
    assert first.letters[0].reason == "dead-lettered after 1 deliveries: EncodeFailed: j3"
    assert first.letters[0].deliveries == 1
    assert first.letters[0].job.state is JobState.FAILED
    assert abs((datetime.now(UTC) - first.letters[0].dead_at).total_seconds()) < 60
    # A job dead-lettered between two pages shifts nothing: keyset paging on entry ids.
    await _dead(queue, "j4")
    rest = await queue.dead_letters(limit=2, after=first.after)
    assert ([d.job_id for d in rest.letters], rest.after, rest.total) == (["j1"], "", 4)
    with pytest.raises(InvalidRequest):
        await queue.dead_letters(after="not-an-id")


async def test_requeue_resets_the_job_and_removes_its_dead_letters_then_it_runs(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await _dead(queue, "j1")
    await _dead(queue, "j2")
    # An entry from before, of the same job: every one of its dead letters goes.
    await redis.xadd(DEAD, {"job": "j1", "reason": "older", "deliveries": "3"})
    assert await queue.requeue("j1") == 2
    job = await queue.get("j1")
    assert (job.state, job.deliveries, job.reason, job.worker, job.cancel_requested) == (
        JobState.QUEUED, 0, "retried by request", "", False,
    )  # fmt: skip
    assert [d.job_id for d in (await queue.dead_letters()).letters] == ["j2"]
    # Its events start afresh: a watcher is not ended by the failed run's last event.
    assert [e.state for e in await _events_now(redis, "j1")] == [JobState.QUEUED]
    assert await redis.ttl(events_key("j1")) == -1
    delivery = await queue.next_delivery("w2", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    started = await queue.begin(delivery, "w2")
    assert started.job is not None
    assert (started.job.state, started.job.deliveries) == (JobState.RUNNING, 1)
    assert await queue.finish(delivery, JobState.SUCCEEDED)
    assert (await queue.get("j1")).state is JobState.SUCCEEDED
    assert await _pending(redis) == 0


async def _events_now(redis: aioredis.Redis, job_id: str) -> list[JobEvent]:
    client: Any = redis  # replies are decoded here (redis-py's unions)
    return [event_from_fields(f, job_id) for _id, f in await client.xrange(events_key(job_id))]


async def test_two_retries_at_once_queue_the_job_once(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await _dead(queue, "j1")
    results = await asyncio.gather(queue.requeue("j1"), queue.requeue("j1"), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["JobNotRetryable", "int"]
    assert await redis.xlen(STREAM) == 1
    assert (await queue.dead_letters()).total == 0


async def _queued(queue: JobQueue) -> None:
    await queue.submit(_job())


async def _running(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")


async def _succeeded(queue: JobQueue) -> None:
    await queue.submit(_job())
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    await queue.finish(delivery, JobState.SUCCEEDED)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_queued, id="queued"),
        pytest.param(_running, id="running"),
        pytest.param(_succeeded, id="succeeded"),
    ],
)
async def test_requeue_refuses_a_job_that_has_not_ended_badly_and_changes_nothing(
    queue: JobQueue, redis: aioredis.Redis, make: Callable[[JobQueue], Awaitable[None]]
) -> None:
    await make(queue)
    before = (await redis.hgetall(job_key("j1")), await redis.xlen(STREAM))
    with pytest.raises(JobNotRetryable):
        await queue.requeue("j1")
    assert (await redis.hgetall(job_key("j1")), await redis.xlen(STREAM)) == before
    with pytest.raises(JobNotFound):
        await queue.requeue("nope")
    assert not await redis.exists(job_key("nope"))


async def test_a_job_cancelled_while_queued_then_retried_runs_once(
    queue: JobQueue, redis: aioredis.Redis
) -> None:
    await queue.submit(_job())
    assert await queue.request_cancel("j1") is JobState.CANCELLED
    await queue.requeue("j1")  # its first message is still in the stream
    old = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    new = await queue.next_delivery("w2", block_ms=10, claim_idle_ms=60_000)
    assert old is not None
    assert new is not None
    assert (await queue.begin(old, "w1")).outcome == "skip"
    started = await queue.begin(new, "w2")
    assert started.job is not None
    assert (started.job.deliveries, started.job.worker) == (1, "w2")
    assert await queue.next_delivery("w3", block_ms=10, claim_idle_ms=60_000) is None


async def test_depth_counts_queued_running_and_dead(queue: JobQueue) -> None:
    await _dead(queue, "d1")
    await queue.submit(_job("r1"))
    delivery = await queue.next_delivery("w1", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w1")
    await queue.submit(_job("q1"))
    await queue.submit(_job("q2"))
    assert await queue.depth() == QueueDepth(queued=2, running=1, dead_letters=1)
