"""``headend worker``: takes VOD jobs off the Redis stream and packages them.

A worker runs one job at a time per slot. While a job runs it heartbeats:
the heartbeat resets the delivery's idle time (so no other worker reclaims
it), records progress, and learns of cancels (also pushed over pub/sub for
promptness). Failures end the job, not the worker: permanent ones (bad,
missing or corrupt source) fail the job at once; transient ones are retried
with backoff and dead-lettered after the last allowed delivery. A job whose
source or output the allow-lists refuse (``sources.SourceGuard``, checked
again here before FFmpeg starts) is dead-lettered at once with the reason.
An encrypted job's output is encrypted before it is published, with keys from
the content key store (``CONTENT_KEKS``; a worker without it fails such jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import ConnectionError as RedisConnectionError

from headend import logs
from headend.contentkeys import ContentKeyStore, CpixKeyProvider
from headend.contentkeys.kek import DEFAULT_BASE_URL
from headend.contentkeys.provider import provider_for
from headend.errors import FailedPrecondition, HeadendError, InvalidArgument, NotFound
from headend.metrics import MetricsEndpoint
from headend.redisconn import RedisUnreachable, connect_checked
from headend.rpc.server import EXIT_FAILED, load_settings, stop_event
from headend.tasks import Backoff, Supervisor, SupervisorMetrics
from transcode.encrypt import AssetEncryption, AssetKeys
from transcode.errors import EncodeFailed, SourceRefused
from transcode.jobs import Job, JobState, Progress, retry_delay
from transcode.ladder import ProcessMode
from transcode.package import package_vod
from transcode.profiles import resolve_profile
from transcode.progress import Progress as PackageProgress
from transcode.queue import Delivery, JobQueue
from transcode.settings import QueueSettings, SourceSettings, WorkerSettings
from transcode.sources import SourceGuard, publish_dir

log = logging.getLogger(__name__)

_NAME = "transcode-worker"

ProgressCallback = Callable[[Progress], None]
# Errors a retry cannot fix: the request or the source itself is wrong.
_PERMANENT = (InvalidArgument, NotFound, FailedPrecondition)
_MIN_PROGRESS_INTERVAL_SECONDS = 0.25
# A slot that failed (Redis away) tries again soon: an outage should cost seconds, not minutes.
RESTART_BACKOFF = Backoff(first_seconds=0.5, cap_seconds=5.0)
# How long a stopping worker waits for its slots to hand their jobs back.
_STOP_SECONDS = 10.0


class Packager(Protocol):
    """Packages one job's source into its published output; returns the output path."""

    async def __call__(self, job: Job, on_progress: ProgressCallback) -> str: ...


class WorkerMetrics:
    """Jobs finished by outcome, and jobs running now."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.finished = Counter(
            "transcode_worker_jobs_total",
            "Jobs this worker finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.running = Gauge(
            "transcode_worker_jobs_running", "Jobs running now.", registry=self.registry
        )


class _Run:
    """One job in progress: its task, latest progress and why it was stopped."""

    def __init__(self, delivery: Delivery, task: asyncio.Task[str]) -> None:
        self.delivery = delivery
        self.task = task
        self.progress = Progress(phase="starting")
        self.changed = asyncio.Event()
        self.stop_reason = ""  # "cancel", "lost" or "shutdown"


class Worker:
    """Consumes jobs from the queue until stopped."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        packager: Packager,
        consumer: str,
        settings: QueueSettings,
        heartbeat_seconds: float,
        block_ms: int = 1000,
        slots: int = 1,
        metrics: WorkerMetrics | None = None,
        backoff: Backoff = RESTART_BACKOFF,
    ) -> None:
        self._queue = queue
        self._packager = packager
        self.consumer = consumer
        self._settings = settings
        self._heartbeat_seconds = heartbeat_seconds
        self._block_ms = block_ms
        self._slots = slots
        self._runs: dict[str, _Run] = {}
        # Slot loops running now; ``_idle`` is set whenever none is.
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.metrics = metrics or WorkerMetrics()
        # Task liveness and restarts go to the worker's own metrics registry.
        self.supervisor = Supervisor(
            backoff=backoff, metrics=SupervisorMetrics(self.metrics.registry)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve jobs until ``stop`` is set; a running job is handed back on the way out.

        The slot loops and the cancel subscription run under :attr:`supervisor`: a
        Redis outage ends a loop with its error, which is logged, counted and
        restarted with backoff, so the worker resumes by itself when Redis returns.
        """
        self.supervisor.spawn("cancels", self._watch_cancels)
        for slot in range(self._slots):
            self.supervisor.spawn(f"slot-{slot}", functools.partial(self._loop, stop))
        log.info("worker started", extra={"consumer": self.consumer})
        try:
            await stop.wait()
        finally:
            for run in list(self._runs.values()):
                run.stop_reason = "shutdown"
                run.task.cancel()
            # Slots hand their jobs back and return once stop is set; only then is
            # anything still running (the cancel subscription, a slot backing off) cancelled.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), _STOP_SECONDS)
            await self.supervisor.close()
            log.info("worker stopped", extra={"consumer": self.consumer})

    async def _loop(self, stop: asyncio.Event) -> None:
        """One slot: take deliveries and run them until ``stop`` (failures end the run)."""
        self._busy += 1
        self._idle.clear()
        try:
            # After a Redis that lost its data comes back, the group must exist again.
            await self._queue.ensure_group()
            while not stop.is_set():
                delivery = await self._queue.next_delivery(
                    self.consumer,
                    block_ms=self._block_ms,
                    claim_idle_ms=int(self._settings.claim_idle_seconds * 1000),
                )
                if delivery is not None and not stop.is_set():
                    await self.process(delivery)
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def process(self, delivery: Delivery) -> JobState | None:
        """Run one delivery to its end; returns the state recorded (None if skipped/lost)."""
        started = await self._queue.begin(delivery, self.consumer)
        if started.job is None:
            log.info(
                "delivery not run",
                extra={"job": delivery.job_id, "outcome": started.outcome,
                       "reason": started.reason},
            )  # fmt: skip
            if started.outcome == "dead":
                self.metrics.finished.labels("dead").inc()
            return None
        job = started.job
        log.info(
            "job started",
            extra={"job": job.id, "deliveries": job.deliveries, "reclaimed": delivery.reclaimed},
        )
        holder: list[_Run] = []

        def on_progress(progress: Progress) -> None:
            if holder:
                holder[0].progress = progress
                holder[0].changed.set()

        task = asyncio.create_task(self._packager(job, on_progress))
        run = _Run(delivery, task)
        holder.append(run)
        self._runs[job.id] = run
        self.metrics.running.inc()
        beat = asyncio.create_task(self._heartbeat(run))
        try:
            return await self._settle(job, run)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._runs.pop(job.id, None)
            self.metrics.running.dec()

    async def _settle(self, job: Job, run: _Run) -> JobState | None:
        delivery = run.delivery
        try:
            output = await run.task
        except asyncio.CancelledError:
            if not run.task.cancelled():
                raise  # this coroutine itself was cancelled
            return await self._stopped(job, run)
        except SourceRefused as err:
            return await self._refused(job, delivery, err)
        except HeadendError as err:
            return await self._failed(job, delivery, err, permanent=isinstance(err, _PERMANENT))
        except Exception as err:  # an unexpected fault must not take the worker down
            log.exception("job crashed", extra={"job": job.id})
            return await self._failed(job, delivery, err, permanent=False)
        await self._queue.finish(delivery, JobState.SUCCEEDED, output=output)
        self.metrics.finished.labels("succeeded").inc()
        log.info("job succeeded", extra={"job": job.id, "output": output})
        return JobState.SUCCEEDED

    async def _stopped(self, job: Job, run: _Run) -> JobState | None:
        if run.stop_reason == "cancel":
            await self._queue.finish(
                run.delivery, JobState.CANCELLED, reason="cancelled by request"
            )
            self.metrics.finished.labels("cancelled").inc()
            log.info("job cancelled", extra={"job": job.id})
            return JobState.CANCELLED
        if run.stop_reason == "shutdown":
            # Hand the job straight back so another worker need not wait for the claim timeout.
            await self._queue.retry(run.delivery, reason="worker shut down", delay_seconds=0)
            return JobState.QUEUED
        log.warning("job taken over by another worker", extra={"job": job.id})
        return None

    async def _refused(self, job: Job, delivery: Delivery, err: SourceRefused) -> JobState:
        reason = f"{type(err).__name__}: {err}"
        await self._queue.dead_letter(delivery, reason=reason)
        self.metrics.finished.labels("dead").inc()
        log.warning("job refused and dead-lettered", extra={"job": job.id, "reason": reason})
        return JobState.FAILED

    async def _failed(
        self, job: Job, delivery: Delivery, err: BaseException, *, permanent: bool
    ) -> JobState:
        reason = f"{type(err).__name__}: {err}"
        if permanent:
            await self._queue.finish(delivery, JobState.FAILED, reason=reason)
            self.metrics.finished.labels("failed").inc()
            log.info("job failed", extra={"job": job.id, "reason": reason})
            return JobState.FAILED
        if job.deliveries >= self._settings.max_deliveries:
            await self._queue.dead_letter(delivery, reason=reason)
            self.metrics.finished.labels("dead").inc()
            log.warning("job dead-lettered", extra={"job": job.id, "reason": reason})
            return JobState.FAILED
        delay = retry_delay(
            job.deliveries,
            base_seconds=self._settings.retry_base_seconds,
            max_seconds=self._settings.retry_max_seconds,
        )
        await self._queue.retry(delivery, reason=reason, delay_seconds=delay)
        self.metrics.finished.labels("retried").inc()
        log.info("job will be retried", extra={"job": job.id, "delay_s": delay, "reason": reason})
        return JobState.QUEUED

    async def _heartbeat(self, run: _Run) -> None:
        last_sent = 0.0
        loop = asyncio.get_running_loop()
        while not run.task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), self._heartbeat_seconds)
            # Coalesce bursts of progress lines into a few writes per second.
            wait = last_sent + _MIN_PROGRESS_INTERVAL_SECONDS - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            progress = run.progress if run.changed.is_set() else None
            run.changed.clear()
            try:
                status = await self._queue.heartbeat(run.delivery, self.consumer, progress)
            except aioredis.RedisError:
                log.exception("heartbeat failed")
                continue
            last_sent = loop.time()
            if status in ("cancel", "lost") and not run.task.done():
                run.stop_reason = status
                run.task.cancel()
                return

    async def _watch_cancels(self) -> None:
        """Stop runs whose cancel is published (the heartbeat would learn it later)."""
        async for job_id in self._queue.cancel_requests():
            run = self._runs.get(job_id)
            if run is not None and not run.task.done():
                run.stop_reason = "cancel"
                run.task.cancel()
        # The subscription ends only with its connection: fail, to be restarted.
        raise RedisConnectionError("the cancel subscription ended")


def vod_packager(
    *,
    origin_root: Path,
    work_dir: Path | None,
    process_mode: ProcessMode = ProcessMode.SINGLE,
    sources: SourceGuard | None = None,
    ffmpeg_bin: str = "ffmpeg",
    ffprobe_bin: str = "ffprobe",
    keys: AssetKeys | None = None,
    key_base_url: str = DEFAULT_BASE_URL,
) -> Packager:
    """The real packager: ``package.package_vod`` publishing into ``<origin_root>/vod/<asset>``.

    The job's source and output are checked (``SourceRefused``) before anything runs. An
    encrypted job takes its keys from ``keys`` (key URIs under ``key_base_url``); without
    ``keys`` it fails before FFmpeg starts.
    """
    guard = sources or SourceGuard(SourceSettings())

    def encryption_of(job: Job) -> AssetEncryption | None:
        if job.encryption is None:
            return None
        if keys is None:
            raise EncodeFailed("this worker cannot encrypt: CONTENT_KEKS is not set")
        return AssetEncryption(
            asset=job.asset,
            rotation_seconds=job.encryption.rotation_seconds,
            keys=keys,
            key_base_url=key_base_url,
            principal=f"job/{job.id}",
        )

    async def package(job: Job, on_progress: ProgressCallback) -> str:
        # The job came off Redis: check it as if it were submitted now (defence in depth).
        dest = publish_dir(origin_root, "vod", job.asset)
        source = await guard.vod(job.source)
        subtitles = [
            replace(s, uri=(await guard.vod(s.uri, field_name="subtitles.uri")).url)
            for s in job.subtitles
        ]
        encryption = encryption_of(job)
        if job.deliveries > 1:
            # An earlier delivery may have died mid-encode and left its temp output.
            await asyncio.to_thread(_remove_stale_temps, work_dir or origin_root / "vod", job.asset)

        def report(p: PackageProgress) -> None:
            on_progress(Progress(p.percent, p.speed, p.eta_seconds or 0.0, p.phase))

        result = await package_vod(
            source.url,
            dest,
            resolve_profile(job.profile),
            work_dir=work_dir,
            on_progress=report,
            process_mode=process_mode,
            ffmpeg_bin=ffmpeg_bin,
            ffprobe_bin=ffprobe_bin,
            input_options=source.options,
            encryption=encryption,
            subtitle_files=subtitles,
            default_language=job.audio_language,
            package_format=job.format,
        )
        return f"/vod/{job.asset}/{result.master_path.name}"

    return package


def _remove_stale_temps(parent: Path, asset: str) -> None:
    """Delete ``.{asset}.tmp-*`` directories (package_vod's temp naming) under ``parent``."""
    for stale in parent.glob(f".{asset}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


async def run_worker(settings: WorkerSettings, *, stop: asyncio.Event) -> None:
    """Serve jobs until ``stop``; ``RedisUnreachable`` when Redis does not answer at start."""
    client = await connect_checked(settings.redis_url, settings.redis, name=_NAME)
    metrics = WorkerMetrics()
    content_keys = settings.content_keys
    provider = provider_for(content_keys)
    keys = None
    if content_keys.keks is not None:
        keys = ContentKeyStore(client, content_keys.keks, provider)
    endpoint = None
    if settings.metrics_port is not None:
        endpoint = MetricsEndpoint(metrics.registry, settings.host, settings.metrics_port)
    worker = Worker(
        queue=JobQueue(client, max_deliveries=settings.queue.max_deliveries),
        packager=vod_packager(
            origin_root=settings.origin_root,
            work_dir=settings.work_dir,
            process_mode=settings.process_mode,
            sources=SourceGuard(settings.sources),
            keys=keys,
            key_base_url=content_keys.base_url,
        ),
        consumer=settings.consumer,
        settings=settings.queue,
        heartbeat_seconds=settings.heartbeat_seconds,
        metrics=metrics,
    )
    try:
        await worker.run(stop)
    finally:
        if endpoint is not None:
            endpoint.close()
        if isinstance(provider, CpixKeyProvider):
            await provider.aclose()
        await client.aclose()


async def _serve(settings: WorkerSettings) -> None:
    await run_worker(settings, stop=stop_event())


def main() -> None:
    """``python -m transcode.worker`` / ``headend worker``: serve jobs until SIGTERM/SIGINT,
    with the exit codes of every service (``headend.rpc.server``)."""
    settings = load_settings(_NAME, WorkerSettings.from_env)
    logs.configure(_NAME, settings.log_level)
    try:
        asyncio.run(_serve(settings))
    except RedisUnreachable as err:
        print(f"{_NAME}: {err}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from err


if __name__ == "__main__":
    main()
