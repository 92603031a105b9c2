"""Jobs, deliveries and job events on Redis Streams (the scripts are ``*.lua`` beside this)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from headend.clock import utc_now
from headend.lua import script
from headend.redisconn import block_ms as capped_block_ms
from transcode.errors import InvalidRequest, JobNotFound, JobNotRetryable
from transcode.jobs import DeadLetter, Job, JobEvent, JobState, Progress
from transcode.queue.codec import event_fields, event_from_fields, job_from_hash, text

# Every key of the queue carries one hash tag, so each script below (the stream and a
# job's keys together) runs in one Redis Cluster slot.
_TAG = "{jobs}"
STREAM = f"tc:{_TAG}"
GROUP = "tc:workers"
DEAD = f"tc:{_TAG}:dead"
DELAYED = f"tc:{_TAG}:delayed"
INDEX = f"tc:{_TAG}:index"
CANCEL_CHANNEL = "tc:cancel"
EVENTS_MAXLEN = 200
# Finished jobs' event streams are kept a day so late watchers still see the end.
EVENTS_TTL_SECONDS = 86_400
# A retry looks for the job's dead letters this many stream entries at a time.
_DEAD_SCAN = 1000
# A dead-letter page's cursor: the id of the stream entry it resumes after.
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def job_key(job_id: str) -> str:
    """The hash holding one job."""
    return f"tc:{_TAG}:job:{job_id}"


def events_key(job_id: str) -> str:
    """The stream of one job's events."""
    return f"tc:{_TAG}:job:{job_id}:events"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a job to a worker; ``message_id`` fences the worker's writes."""

    message_id: str
    job_id: str
    reclaimed: bool
    consumer: str

    @property
    def token(self) -> str:
        """The fencing token: the stream id alone is kept across XAUTOCLAIM, so add the owner."""
        return f"{self.message_id}|{self.consumer}"


@dataclass(frozen=True, slots=True)
class Started:
    """What ``begin`` decided: run the job, or it was skipped or dead-lettered."""

    job: Job | None
    outcome: str  # "run", "skip" (already finished or cancelled), "dead"
    reason: str = ""


class DeadLetterPage(NamedTuple):
    """A page of the dead-letter stream, the next page's cursor ("": none) and its length."""

    letters: list[DeadLetter]
    after: str
    total: int


class QueueDepth(NamedTuple):
    """The queue's size now (messages, so a job cancelled while queued counts until a worker
    skips it)."""

    queued: int
    running: int
    dead_letters: int


class JobQueue:
    """Jobs, their stream deliveries and their events, on one Redis."""

    def __init__(self, redis: aioredis.Redis, *, max_deliveries: int = 3) -> None:
        # redis-py types every reply as a union of all RESP shapes; replies are decoded here.
        self._redis: Any = redis
        self.max_deliveries = max_deliveries
        self._begin = redis.register_script(script("transcode.queue", "begin"))
        self._heartbeat = redis.register_script(script("transcode.queue", "heartbeat"))
        self._finish = redis.register_script(script("transcode.queue", "finish"))
        self._retry = redis.register_script(script("transcode.queue", "retry"))
        self._cancel = redis.register_script(script("transcode.queue", "cancel"))
        self._dead = redis.register_script(script("transcode.queue", "dead"))
        self._promote = redis.register_script(script("transcode.queue", "promote"))
        self._lost = redis.register_script(script("transcode.queue", "lost"))
        self._requeue = redis.register_script(script("transcode.queue", "requeue"))

    async def ensure_group(self) -> None:
        """Create the consumer group (and stream) if missing."""
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except aioredis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def submit(self, job: Job) -> bool:
        """Store a new job and enqueue it; False when the id is already taken."""
        created = await self._redis.hsetnx(job_key(job.id), "id", job.id)
        if not created:
            return False
        mapping = {
            "id": job.id, "source": job.source, "asset": job.asset, "profile": job.profile,
            "state": JobState.QUEUED.value, "created_at": job.created_at.isoformat(),
            "updated_at": job.updated_at.isoformat(), "deliveries": "0", "reason": "",
            "percent": "0", "speed": "0", "eta": "0", "phase": "queued", "cancel": "0",
            "token": "", "worker": "", "output": "", "last_error": "",
            "key_rotation": str(job.encryption.rotation_seconds) if job.encryption else "",
            "subtitles": json.dumps([[s.uri, s.language, s.title] for s in job.subtitles]),
            "audio_language": job.audio_language, "format": job.format.value,
        }  # fmt: skip
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job.id), mapping=mapping)
            pipe.zadd(INDEX, {job.id: job.created_at.timestamp()})
            pipe.xadd(
                events_key(job.id),
                dict(zip(*[iter(event_fields("QUEUED"))] * 2, strict=True)),
                maxlen=EVENTS_MAXLEN,
            )
            pipe.xadd(STREAM, {"job": job.id})
            await pipe.execute()
        return True

    async def get(self, job_id: str) -> Job:
        """One job, or ``JobNotFound``."""
        raw = await self._redis.hgetall(job_key(job_id))
        if not raw or b"state" not in raw:
            raise JobNotFound(f"no job {job_id}", details={"job_id": job_id})
        return job_from_hash(raw)

    async def list_jobs(
        self, *, state: JobState | None = None, limit: int = 100, after: str = ""
    ) -> tuple[list[Job], str]:
        """A page of the newest jobs first (only those in ``state``, if given) after the
        cursor ``after`` ("": from the newest), and the next page's cursor ("": none).

        Keyset paging on the index (creation time, then id, both descending), so a job
        submitted between two pages never shifts the others. With ``state`` one page
        scans at most ``4 * limit`` index entries, so it may hold fewer than ``limit``.
        """
        scan = limit * 4 if state else limit
        if after:
            entries = await self._older(after, scan + 1)
        else:
            entries = await self._redis.zrevrange(INDEX, 0, scan, withscores=True)
        more = len(entries) > scan
        entries = entries[:scan]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, _ in entries:
                pipe.hgetall(job_key(text(job_id)))
            rows = await pipe.execute()
        jobs: list[Job] = []
        scanned = 0
        for raw in rows:
            scanned += 1
            if raw and b"state" in raw:
                job = job_from_hash(raw)
                if state is None or job.state == state:
                    jobs.append(job)
                    if len(jobs) == limit:
                        break
        if not more and scanned == len(entries):
            return jobs, ""
        # The next page resumes after the last entry this one looked at.
        job_id, score = entries[scanned - 1]
        return jobs, f"{score!r} {text(job_id)}"

    async def _older(self, after: str, count: int) -> list[tuple[bytes, float]]:
        """Up to ``count`` index entries after the cursor ``after`` (newest first)."""
        number, _, last = after.partition(" ")
        try:
            score = float(number)
        except ValueError as err:
            raise InvalidRequest("page_token", "not a token from a previous page") from err
        # Jobs created in the same instant sort by id, descending, as ZREVRANGE does.
        ties = await self._redis.zrangebyscore(INDEX, score, score, withscores=True)
        same = sorted((e for e in ties if text(e[0]) < last), key=lambda e: e[0], reverse=True)
        older = await self._redis.zrange(
            INDEX, f"({score!r}", "-inf", desc=True, byscore=True, offset=0, num=count,
            withscores=True,
        )  # fmt: skip
        return [*same, *older][:count]

    async def next_delivery(
        self, consumer: str, *, block_ms: int, claim_idle_ms: int
    ) -> Delivery | None:
        """The next job for ``consumer``: a crashed worker's first, else a new one."""
        await self._promote(keys=[DELAYED, STREAM], args=[time.time()])
        claimed = await self._redis.xautoclaim(
            STREAM, GROUP, consumer, min_idle_time=claim_idle_ms, start_id="0-0", count=1
        )
        messages = claimed[1] if claimed else []
        for message_id, fields in messages:
            if fields is None:  # deleted meanwhile
                continue
            delivery = Delivery(
                text(message_id), text(fields[b"job"]), reclaimed=True, consumer=consumer
            )
            await self._lost(
                keys=[job_key(delivery.job_id)],
                args=[
                    delivery.message_id,
                    f"worker lost: delivery idle for over {claim_idle_ms / 1000:g} s",
                ],
            )
            return delivery
        block = capped_block_ms(self._redis, block_ms)
        read = await self._redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=1, block=block)
        for _stream, entries in read or []:
            for message_id, fields in entries:
                return Delivery(
                    text(message_id), text(fields[b"job"]), reclaimed=False, consumer=consumer
                )
        return None

    async def begin(self, delivery: Delivery, consumer: str) -> Started:
        """Count the delivery and mark the job RUNNING, or skip / dead-letter it."""
        outcome, reason = await self._begin(
            keys=[job_key(delivery.job_id), events_key(delivery.job_id), STREAM, DEAD],
            args=[
                delivery.message_id,
                consumer,
                utc_now().isoformat(),
                self.max_deliveries,
                GROUP,
                EVENTS_TTL_SECONDS,
                delivery.job_id,
            ],
        )
        outcome, reason = text(outcome), text(reason)
        if outcome != "run":
            return Started(None, outcome, reason)
        return Started(await self.get(delivery.job_id), "run")

    async def heartbeat(
        self, delivery: Delivery, consumer: str, progress: Progress | None = None
    ) -> str:
        """Keep the delivery ours (reset its idle time) and record progress.

        Returns ``"ok"``, ``"cancel"`` when a cancel was asked, or ``"lost"`` when
        another worker owns the job now.
        """
        args: list[Any] = [delivery.token, consumer, GROUP]
        if progress is not None:
            args += [utc_now().isoformat(), *event_fields("RUNNING", "", progress)]
        result = await self._heartbeat(
            keys=[job_key(delivery.job_id), events_key(delivery.job_id), STREAM], args=args
        )
        return {0: "lost", 1: "ok", 2: "cancel"}[int(result)]

    async def finish(
        self, delivery: Delivery, state: JobState, *, reason: str = "", output: str = ""
    ) -> bool:
        """Record a terminal state and acknowledge; False if the job was taken over."""
        progress = Progress(100.0, 0, 0, "done") if state is JobState.SUCCEEDED else None
        done = await self._finish(
            keys=[job_key(delivery.job_id), events_key(delivery.job_id), STREAM],
            args=[
                delivery.token, GROUP, state.value, reason, utc_now().isoformat(), output,
                EVENTS_TTL_SECONDS, *event_fields(state.value, reason, progress),
            ],
        )  # fmt: skip
        return bool(done)

    async def retry(self, delivery: Delivery, *, reason: str, delay_seconds: float) -> bool:
        """Acknowledge a failed attempt and schedule the job again after ``delay_seconds``."""
        done = await self._retry(
            keys=[job_key(delivery.job_id), events_key(delivery.job_id), STREAM, DELAYED],
            args=[
                delivery.token, GROUP, reason, utc_now().isoformat(), time.time() + delay_seconds,
                delivery.job_id, *event_fields("QUEUED", reason, Progress(phase="retry")),
            ],
        )  # fmt: skip
        return bool(done)

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        """Fail the job for good and move it to the dead-letter stream with ``reason``."""
        done = await self._dead(
            keys=[job_key(delivery.job_id), events_key(delivery.job_id), STREAM, DEAD],
            args=[
                delivery.token, GROUP, reason, utc_now().isoformat(), delivery.job_id,
                EVENTS_TTL_SECONDS,
            ],
        )  # fmt: skip
        return bool(done)

    async def request_cancel(self, job_id: str) -> JobState:
        """Cancel a queued job now, or ask the running worker to stop; returns the state."""
        (state,) = await self._cancel(
            keys=[job_key(job_id), events_key(job_id), DELAYED],
            args=[job_id, utc_now().isoformat(), CANCEL_CHANNEL],
        )
        if text(state) == "missing":
            raise JobNotFound(f"no job {job_id}", details={"job_id": job_id})
        return JobState(text(state))

    async def events(self, job_id: str, *, block_ms: int = 5_000) -> AsyncIterator[JobEvent]:
        """Every event of a job from the first, then new ones, until a terminal state.

        A quiet job (queued behind others, a long encode without progress lines) is
        waited on in blocks kept under the Redis socket timeout, for as long as it lasts.
        """
        last = "0-0"
        block: int | None = None  # the first read returns what is already there at once
        while True:
            read = await self._redis.xread({events_key(job_id): last}, block=block, count=50)
            block = capped_block_ms(self._redis, block_ms)
            for _stream, entries in read or []:
                for message_id, fields in entries:
                    last = text(message_id)
                    event = event_from_fields(fields, job_id)
                    yield event
                    if event.state.terminal:
                        return
            if not read:
                job = await self.get(job_id)
                if job.state.terminal:
                    yield JobEvent(job_id, job.state, job.progress, job.reason)
                    return

    async def dead_letters(self, *, limit: int = 100, after: str = "") -> DeadLetterPage:
        """A page of the dead-letter stream, newest first, after the cursor ``after`` ("": from
        the newest), each entry with its job as it is now (one whose job hash is gone is left
        out). Keyset paging on the stream's entry ids, so a job dead-lettered between two
        pages never shifts the others."""
        end = "+"
        if after:
            if not _STREAM_ID.fullmatch(after):
                raise InvalidRequest("page_token", "not a token from a previous page")
            end = f"({after}"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(DEAD, max=end, min="-", count=limit + 1)
            pipe.xlen(DEAD)
            rows, total = await pipe.execute()
        more = len(rows) > limit
        rows = rows[:limit]
        async with self._redis.pipeline(transaction=False) as pipe:
            for _id, fields in rows:
                pipe.hgetall(job_key(text(fields[b"job"])))
            jobs = await pipe.execute()
        letters = [
            DeadLetter(
                job=job_from_hash(raw),
                reason=text(fields[b"reason"]),
                deliveries=int(text(fields[b"deliveries"])),
                dead_at=datetime.fromtimestamp(int(text(entry_id).split("-")[0]) / 1000, UTC),
            )
            for (entry_id, fields), raw in zip(rows, jobs, strict=True)
            if raw and b"state" in raw
        ]
        return DeadLetterPage(letters, text(rows[-1][0]) if more else "", int(total))

    async def requeue(self, job_id: str) -> int:
        """Queue a failed or cancelled job again with its deliveries reset and remove its dead
        letters, in one step; returns how many dead letters went. ``JobNotRetryable`` for a
        job queued, running or succeeded, ``JobNotFound`` for none."""
        reply = await self._requeue(
            keys=[job_key(job_id), events_key(job_id), STREAM, DEAD, DELAYED],
            args=[
                job_id, utc_now().isoformat(), _DEAD_SCAN,
                *event_fields("QUEUED", "retried by request", Progress(phase="queued")),
            ],
        )  # fmt: skip
        state = text(reply[0])
        if state == "missing":
            raise JobNotFound(f"no job {job_id}", details={"job_id": job_id})
        if state != "retried":
            raise JobNotRetryable(
                f"job {job_id} is {state.lower()}: only a failed or cancelled job is retried",
                details={"job_id": job_id, "state": state},
            )
        return int(reply[1])

    async def depth(self) -> QueueDepth:
        """How many jobs wait (in the stream or their retry's backoff), run, and are dead
        letters now: one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(STREAM)
            pipe.xpending(STREAM, GROUP)
            pipe.zcard(DELAYED)
            pipe.xlen(DEAD)
            stream, pending, delayed, dead = await pipe.execute()
        running = int(pending["pending"])
        return QueueDepth(int(stream) - running + int(delayed), running, int(dead))

    async def cancel_requests(self) -> AsyncGenerator[str, None]:
        """Job ids whose cancel is asked, as they are published."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CANCEL_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield text(message["data"])
        finally:
            await pubsub.unsubscribe(CANCEL_CHANNEL)
            await pubsub.aclose()
