"""The gRPC ``TranscodeService`` servicer (proto <-> domain only) and the control process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.owners import ChannelOwners
from headend.auth import KeyStore
from headend.contentkeys import ContentKeyStore
from headend.metrics import RpcMetrics
from headend.redisconn import RedisSettings
from headend.rpc import (
    RpcServer,
    ServiceSpec,
    caller_key,
    principal,
    run_service,
    start_server,
)
from headend.rpc.resources import decode_token, encode_token, page, page_size
from headend.rpc.server import Component
from headend.settings import Env
from headend.tasks import Supervisor, SupervisorMetrics
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from transcode.alertcards import alert_cards
from transcode.archive import ArchiveIndex, Retention
from transcode.convert import (
    CHANNEL,
    JOB,
    NODE,
    channel_from_pb,
    dead_letter_to_pb,
    event_to_pb,
    job_state,
    job_to_pb,
    live_output_to_pb,
    multicast_output_to_pb,
    node_to_pb,
    package_format,
    status_to_pb,
    subtitles_from_pb,
    thumbnail_to_pb,
)
from transcode.cuesync import cue_sync
from transcode.domain import validate_channel_id, validate_id
from transcode.farm import ChannelIntents, Node, NodeDirectory
from transcode.farm.process import assemble
from transcode.live.push import Pusher, PushSettings, check_root
from transcode.live.thumbnail import ThumbnailStore
from transcode.queue import JobQueue
from transcode.queue.metrics import QueueMetrics
from transcode.service import Channels, Nodes, TranscodeService
from transcode.settings import ControlSettings
from transcode.sources import SourceGuard

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TranscodeService"].full_name


def _job_id(name: str) -> str:
    return validate_id("name", JOB.id(name))


def _channel_id(name: str) -> str:
    return validate_channel_id("name", CHANNEL.id(name))


class TranscodeServicer(pb_grpc.TranscodeServiceServicer):
    """Converts messages (resource names <-> ids) and delegates to ``TranscodeService``."""

    def __init__(self, service: TranscodeService) -> None:
        self._service = service

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        """Queue a packaging job."""
        job = await self._service.submit(
            principal(),
            source=request.source,
            asset=request.asset,
            profile=request.profile,
            job_id=request.job_id,
            encrypt=request.encryption.enabled,
            key_rotation_seconds=request.encryption.rotation_seconds,
            subtitles=subtitles_from_pb(request.subtitles),
            audio_language=request.audio_language,
            package_format=package_format(request.format),
        )
        return job_to_pb(job)

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        """One job."""
        return job_to_pb(await self._service.get(principal(), _job_id(request.name)))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobEvent]:
        """A job's events until it ends."""
        async for event in self._service.watch(principal(), _job_id(request.name)):
            yield event_to_pb(event)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        """Cancel a queued or running job."""
        return job_to_pb(await self._service.cancel(principal(), _job_id(request.name)))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        """A page of jobs, newest first, optionally in one state."""
        state = job_state(request.state)
        # The token carries the queue's own cursor, bound to the state filter.
        query = f"state={state.value if state else ''}"
        jobs, cursor = await self._service.list_jobs(
            principal(),
            state=state,
            limit=page_size(request.page_size),
            after=decode_token(request.page_token, query=query),
        )
        token = encode_token(cursor, query=query)
        return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs], next_page_token=token)

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDeadLettersResponse:
        """A page of the dead-letter stream, newest first."""
        query = "deadLetters"  # the token carries the stream's entry id
        found = await self._service.dead_letters(
            principal(),
            limit=page_size(request.page_size),
            after=decode_token(request.page_token, query=query),
        )
        return pb.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_pb(d) for d in found.letters],
            next_page_token=encode_token(found.after, query=query),
            total_size=found.total,
        )

    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        """Queue a failed or cancelled job again."""
        return job_to_pb(await self._service.retry(principal(), _job_id(request.name)))

    async def StartChannel(
        self, request: pb.StartChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        """Start a live channel."""
        channel = channel_from_pb(request.channel)
        validate_channel_id("channel.name", channel.id)
        return status_to_pb(await self._service.start_channel(principal(), channel))

    async def StopChannel(
        self, request: pb.StopChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        """Stop a live channel."""
        status = await self._service.stop_channel(principal(), _channel_id(request.name))
        return status_to_pb(status)

    async def GetChannel(
        self, request: pb.GetChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelStatus:
        """One channel's status."""
        status = await self._service.get_channel(
            principal(), _channel_id(request.name), api_key=caller_key()
        )
        return status_to_pb(status)

    async def ListChannels(
        self, request: pb.ListChannelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChannelsResponse:
        """A page of channels' statuses, by channel id."""
        statuses, token = page(
            await self._service.list_channels(principal(), api_key=caller_key()),
            key=lambda s: s.channel.id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListChannelsResponse(
            channels=[status_to_pb(s) for s in statuses], next_page_token=token
        )

    async def GetChannelThumbnail(
        self, request: pb.GetChannelThumbnailRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChannelThumbnail:
        """A running channel's latest thumbnail."""
        thumbnail = await self._service.thumbnail(
            principal(), _channel_id(request.name), api_key=caller_key()
        )
        return thumbnail_to_pb(thumbnail)

    async def ListMulticastOutputs(
        self, request: pb.ListMulticastOutputsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMulticastOutputsResponse:
        """A page of the channels' multicast outputs, by channel id."""
        outputs, token = page(
            await self._service.list_multicast_outputs(principal()),
            key=lambda o: o.channel,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListMulticastOutputsResponse(
            outputs=[multicast_output_to_pb(o) for o in outputs], next_page_token=token
        )

    async def ListLiveOutputs(
        self, request: pb.ListLiveOutputsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLiveOutputsResponse:
        """A page of the live channels' outputs, by channel id."""
        outputs, token = page(
            await self._service.list_live_outputs(principal()),
            key=lambda o: o.channel,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListLiveOutputsResponse(
            outputs=[live_output_to_pb(o) for o in outputs], next_page_token=token
        )

    async def ListNodes(
        self, request: pb.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNodesResponse:
        """A page of the live transcode nodes, by node id."""
        nodes, token = page(
            await self._service.list_nodes(principal()),
            key=lambda n: n.id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListNodesResponse(nodes=[node_to_pb(n) for n in nodes], next_page_token=token)

    async def DrainNode(
        self, request: pb.DrainNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        """Drain a node (or take it back into placement)."""
        node = await self._service.drain_node(
            principal(), NODE.id(request.name), resume=request.resume
        )
        return node_to_pb(node)


async def create_server(
    settings: ControlSettings,
    *,
    redis: aioredis.Redis,
    keys: KeyStore,
    channels: Channels,
    nodes: Nodes | None = None,
    metrics: RpcMetrics | None = None,
    components: Sequence[Component] = (),
) -> tuple[RpcServer, int]:
    """Start the gRPC server for ``TranscodeService`` on ``settings.rpc`` (``components``
    start and stop with it), asking the EPG at ``settings.owners`` which channels a
    broadcaster owns and, with ``TC_ALERTS_API_KEY``, which alerts need a card channel and
    which cues go into the running channels' signal queues."""
    queue = JobQueue(redis, max_deliveries=settings.queue.max_deliveries)
    await queue.ensure_group()
    owners = ChannelOwners(settings.owners)
    service = TranscodeService(
        queue=queue,
        channels=channels,
        sources=SourceGuard(settings.sources),
        nodes=nodes or NodeDirectory(redis),
        thumbnails=ThumbnailStore(redis),
        owners=owners,
        key_rotation_seconds=settings.content_keys.rotation_seconds,
    )
    extra: list[Component] = []
    if settings.alert_cards.enabled:  # the farm's EPG playback key: alerts and cues
        registry = metrics.registry if metrics is not None else CollectorRegistry()
        extra.append(
            alert_cards(settings.alert_cards, settings.owners, channels=service, registry=registry)
        )
        extra.append(
            cue_sync(
                settings.cue_sync,
                settings.owners,
                api_key=settings.alert_cards.api_key,
                redis=redis,
                channels=channels,
                registry=registry,
            )
        )
    servicer = TranscodeServicer(service)
    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=lambda s: pb_grpc.add_TranscodeServiceServicer_to_server(servicer, s),
    )
    return await start_server(
        settings.rpc,
        services=[spec],
        authenticator=keys,
        metrics=metrics,
        components=[owners, *components, *extra],
    )


async def create_control(
    settings: ControlSettings, redis: aioredis.Redis, *, push: PushSettings | None = None
) -> tuple[RpcServer, int]:
    """The control process on ``redis``: the gRPC server, retention and, unless
    ``TC_EMBEDDED_NODE=false``, a transcode node of its own (single-host installs), which
    mirrors what it publishes to origins when ``push`` is on, as a standalone node does."""
    index = ArchiveIndex(redis)
    # One owner for every background task (the node's channels, their store writes,
    # retention), on the registry the gRPC metrics endpoint serves.
    metrics = RpcMetrics()
    tasks = Supervisor(
        backoff=settings.live.restart_backoff,
        metrics=SupervisorMetrics(metrics.registry),
        stop_seconds=settings.live.stop_seconds,
    )
    node = None
    pusher = None
    if settings.embedded_node:
        node, pusher = assemble(
            settings, redis=redis, index=index, push=push or PushSettings(), tasks=tasks
        )
    # Content keys go with the archive that needs them (none to retire without CONTENT_KEKS).
    keks = settings.content_keys.keks
    retired = ContentKeyStore(redis, keks) if keks is not None else None
    retention = Retention(index, root=settings.origin_root, keys=retired)
    depth = QueueMetrics(metrics.registry)
    queue = JobQueue(redis)
    return await create_server(
        settings,
        redis=redis,
        keys=KeyStore(redis),
        channels=ChannelIntents(redis, stop_wait_seconds=settings.node.lease_seconds + 5),
        metrics=metrics,
        components=[
            _background(settings, node, pusher, tasks, retention),
            _refreshed(depth, queue, tasks),
        ],
    )


@contextlib.asynccontextmanager
async def _background(
    settings: ControlSettings,
    node: Node | None,
    pusher: Pusher | None,
    tasks: Supervisor,
    retention: Retention,
) -> AsyncIterator[None]:
    """Archive retention and the embedded node (if any) with its pusher, until the server
    stops."""
    stop = asyncio.Event()
    tasks.spawn(
        "archive-retention",
        lambda: retention.run(interval_seconds=settings.retention_interval_seconds, stop=stop),
    )
    try:
        if pusher is not None:
            pusher.start()
        if node is not None:
            node.start()
        yield
    finally:
        stop.set()
        if node is not None:
            await node.close()
        if pusher is not None:
            await pusher.close()
        await tasks.close()


@contextlib.asynccontextmanager
async def _refreshed(
    depth: QueueMetrics, queue: JobQueue, tasks: Supervisor
) -> AsyncIterator[None]:
    """The job queue's gauges, read from Redis as the server starts, then until it stops."""
    await depth.refresh(queue)
    stop = asyncio.Event()
    tasks.spawn("queue-metrics", lambda: depth.run(queue, stop=stop))
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True, slots=True)
class ControlProcessSettings:
    """What ``python -m transcode`` reads: the control settings and its embedded node's push."""

    control: ControlSettings
    push: PushSettings

    @property
    def redis_url(self) -> str | None:
        """The shared Redis."""
        return self.control.redis_url

    @property
    def log_level(self) -> str:
        """The process's log level."""
        return self.control.log_level

    @property
    def redis(self) -> RedisSettings:
        """How the Redis client connects."""
        return self.control.redis

    @classmethod
    def from_env(cls, env: Env) -> ControlProcessSettings:
        """``ControlSettings`` and ``PushSettings`` (``TC_ORIGIN_PUSH_URLS``...); with push on
        and an embedded node, ``ORIGIN_ROOT`` must not be an origin's root."""
        control = ControlSettings.from_env(env)
        push = PushSettings.from_env(env)
        if control.embedded_node:
            check_root(push, control.origin_root)
        return cls(control, push)


async def _create_process(
    settings: ControlProcessSettings, redis: aioredis.Redis
) -> tuple[RpcServer, int]:
    return await create_control(settings.control, redis, push=settings.push)


def main() -> None:
    """``python -m transcode``: the gRPC control service (port ``TRANSCODE_GRPC_PORT``)."""
    run_service("transcode", ControlProcessSettings.from_env, _create_process)
