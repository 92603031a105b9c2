"""The gRPC ``TranscodeService`` servicer (proto <-> domain only) and the control process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2

from headend import logs
from headend.auth import KeyStore
from headend.metrics import RpcMetrics
from headend.redisconn import RedisSettings, RedisUnreachable, connect_checked
from headend.rpc import RpcServer, ServiceSpec, principal, serve, start_server
from headend.settings import SettingsError, environ
from headend.tasks import Supervisor, SupervisorMetrics
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from transcode.archive import ArchiveIndex, Retention
from transcode.domain import ChannelState, ChannelStatus, Job, JobEvent, JobState, LiveChannel
from transcode.queue import JobQueue
from transcode.service import Channels, TranscodeService
from transcode.settings import ControlSettings
from transcode.sources import SourceGuard

log = logging.getLogger(__name__)

SERVICE_NAME = "headend.transcode.v1.TranscodeService"

_JOB_STATE = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
_JOB_STATE_BACK = {v: k for k, v in _JOB_STATE.items()}
_CHANNEL_STATE = {
    ChannelState.STOPPED: pb.CHANNEL_STATE_STOPPED,
    ChannelState.STARTING: pb.CHANNEL_STATE_STARTING,
    ChannelState.LIVE: pb.CHANNEL_STATE_LIVE,
    ChannelState.SLATE: pb.CHANNEL_STATE_SLATE,
    ChannelState.DEGRADED: pb.CHANNEL_STATE_DEGRADED,
    ChannelState.RECOVERING: pb.CHANNEL_STATE_RECOVERING,
}


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _progress(percent: float, speed: float, eta: float, phase: str) -> pb.Progress:
    return pb.Progress(percent=percent, speed=speed, eta_seconds=eta, phase=phase)


def job_to_pb(job: Job) -> pb.Job:
    """A domain job as its message."""
    p = job.progress
    return pb.Job(
        id=job.id,
        source=job.source,
        asset=job.asset,
        profile=job.profile,
        state=_JOB_STATE[job.state],
        progress=_progress(p.percent, p.speed, p.eta_seconds, p.phase),
        reason=job.reason,
        deliveries=job.deliveries,
        worker=job.worker,
        output=job.output,
        created_at=_ts(job.created_at),
        updated_at=_ts(job.updated_at),
    )


def event_to_pb(event: JobEvent) -> pb.JobEvent:
    """A job event as its message."""
    p = event.progress
    return pb.JobEvent(
        job_id=event.job_id,
        state=_JOB_STATE[event.state],
        progress=_progress(p.percent, p.speed, p.eta_seconds, p.phase),
        reason=event.reason,
    )


def channel_from_pb(msg: pb.Channel) -> LiveChannel:
    """A channel message as the domain value (zeros mean defaults)."""
    defaults = LiveChannel(id="", source="")
    return LiveChannel(
        id=msg.id,
        source=msg.source,
        profile=msg.profile or defaults.profile,
        segment_seconds=msg.segment_seconds or defaults.segment_seconds,
        window_segments=msg.window_segments or defaults.window_segments,
        catchup_days=msg.catchup_days or defaults.catchup_days,
    )


def status_to_pb(status: ChannelStatus) -> pb.ChannelStatus:
    """A channel status as its message."""
    c = status.channel
    return pb.ChannelStatus(
        channel=pb.Channel(
            id=c.id,
            source=c.source,
            profile=c.profile,
            segment_seconds=c.segment_seconds,
            window_segments=c.window_segments,
            catchup_days=c.catchup_days,
        ),
        state=_CHANNEL_STATE[status.state],
        media_sequence=status.media_sequence,
        discontinuity_sequence=status.discontinuity_sequence,
        restarts=status.restarts,
        reason=status.reason,
        updated_at=_ts(status.updated_at),
    )


class TranscodeServicer(pb_grpc.TranscodeServiceServicer):
    """Converts messages and delegates to ``TranscodeService``."""

    def __init__(self, service: TranscodeService) -> None:
        self._service = service

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        job = await self._service.submit(
            principal(),
            source=request.source,
            asset=request.asset,
            profile=request.profile,
            job_id=request.job_id,
        )
        return job_to_pb(job)

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return job_to_pb(await self._service.get(principal(), request.job_id))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobEvent]:
        async for event in self._service.watch(principal(), request.job_id):
            yield event_to_pb(event)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        return job_to_pb(await self._service.cancel(principal(), request.job_id))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        state = _JOB_STATE_BACK.get(request.state)
        jobs = await self._service.list_jobs(principal(), state=state, limit=request.limit)
        return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs])

    async def StartChannel(
        self, request: pb.StartChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        status = await self._service.start_channel(principal(), channel_from_pb(request.channel))
        return status_to_pb(status)

    async def StopChannel(
        self, request: pb.StopChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        return status_to_pb(await self._service.stop_channel(principal(), request.channel_id))

    async def GetChannel(
        self, request: pb.GetChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        return status_to_pb(await self._service.get_channel(principal(), request.channel_id))

    async def ListChannels(
        self, request: pb.ListChannelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChannelsResponse:
        statuses = await self._service.list_channels(principal())
        return pb.ListChannelsResponse(channels=[status_to_pb(s) for s in statuses])


async def create_server(
    settings: ControlSettings,
    *,
    redis: aioredis.Redis,
    keys: KeyStore,
    channels: Channels,
    metrics: RpcMetrics | None = None,
) -> tuple[RpcServer, int]:
    """Start the gRPC server for ``TranscodeService`` on ``settings.rpc``."""
    queue = JobQueue(redis, max_deliveries=settings.queue.max_deliveries)
    await queue.ensure_group()
    service = TranscodeService(
        queue=queue, channels=channels, sources=SourceGuard(settings.sources)
    )
    servicer = TranscodeServicer(service)
    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=lambda s: pb_grpc.add_TranscodeServiceServicer_to_server(servicer, s),
    )
    return await start_server(settings.rpc, services=[spec], authenticator=keys, metrics=metrics)


async def run_control(settings: ControlSettings, *, redis: RedisSettings | None = None) -> None:
    """Run the control service, its live channels and archive retention until SIGTERM."""
    from transcode.live import LiveManager

    try:
        client = await connect_checked(settings.redis_url, redis, name="transcode-control")
    except RedisUnreachable as err:
        raise SystemExit(f"transcode: {err.message}") from err
    index = ArchiveIndex(client)
    # One owner for every background task (channels, their store writes, retention), on
    # the registry the gRPC metrics endpoint serves.
    metrics = RpcMetrics()
    tasks = Supervisor(
        backoff=settings.live.restart_backoff,
        metrics=SupervisorMetrics(metrics.registry),
        stop_seconds=settings.live.stop_seconds,
    )
    manager = LiveManager(
        redis=client,
        archive=index,
        origin_root=settings.origin_root,
        sources=SourceGuard(settings.sources),
        settings=settings.live,
        tasks=tasks,
        registry=metrics.registry,
    )
    stop = asyncio.Event()
    retention = Retention(index, root=settings.origin_root)
    tasks.spawn(
        "archive-retention",
        lambda: retention.run(interval_seconds=settings.retention_interval_seconds, stop=stop),
    )
    try:
        await manager.resume()
        server, _port = await create_server(
            settings, redis=client, keys=KeyStore(client), channels=manager, metrics=metrics
        )
        await serve(server)
    finally:
        stop.set()
        await manager.close()
        await tasks.close()
        await client.aclose()


def main() -> None:
    """``python -m transcode``: the gRPC control service (port ``TRANSCODE_GRPC_PORT``)."""
    try:
        env = environ()
        settings = ControlSettings.from_env(env)
        redis = RedisSettings.from_env(env)
    except SettingsError as err:
        raise SystemExit(f"transcode: {err}") from err
    logs.configure("transcode", settings.log_level)
    asyncio.run(run_control(settings, redis=redis))
