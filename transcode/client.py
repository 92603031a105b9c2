"""The one client of ``TranscodeService``: domain values in and out, the server's errors rebuilt.

Every caller dials the transcode control plane through :class:`TranscodeClient`:
``headend transcode``/``headend channel`` and the demo's seeding. A failed call
raises the ``TranscodeError`` leaf the service raised (``JobNotFound``,
``ChannelRunning``, ``SourceRefused`` ...), rebuilt from the ``ErrorInfo`` it
sent, or ``ServiceUnavailable`` when it got no answer::

    async with TranscodeClient("transcode.internal:50053", api_key) as transcode:
        job = await transcode.submit_job("/media/film.mp4", asset="film")
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from headend.rpc import ServiceClient
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from transcode.convert import (
    CHANNEL,
    JOB,
    NODE,
    dead_letter_from_pb,
    event_from_pb,
    job_from_pb,
    job_state_to_pb,
    live_output_from_pb,
    multicast_output_from_pb,
    multicast_to_pb,
    node_from_pb,
    package_format_to_pb,
    status_from_pb,
    subtitle_to_pb,
    thumbnail_from_pb,
)
from transcode.domain import Card, ChannelStatus, Multicast, NodeInfo, Thumbnail
from transcode.errors import TranscodeError
from transcode.jobs import DeadLetter, Job, JobEvent, JobState, PackageFormat, SubtitleFile
from transcode.outputs import LiveOutput, MulticastOutput

# The service pages every list; the client's lists read every page.
_PAGE_SIZE = 1000
T = TypeVar("T")


class TranscodeClient(ServiceClient):
    """``TranscodeService`` over one gRPC channel, with an API key and a per-call timeout;
    a job's event stream runs until the job ends."""

    service = "transcode"
    root = TranscodeError

    @functools.cached_property
    def _stub(self) -> pb_grpc.TranscodeServiceStub:
        return pb_grpc.TranscodeServiceStub(self.channel)

    # ---- VOD packaging jobs

    async def submit_job(
        self,
        source: str,
        *,
        asset: str,
        profile: str = "",
        job_id: str = "",
        encrypt: bool = False,
        key_rotation_seconds: int = 0,
        subtitles: Sequence[SubtitleFile] = (),
        audio_language: str = "",
        package_format: PackageFormat = PackageFormat.TS,
    ) -> Job:
        """Queue ``source`` for packaging into ``/vod/<asset>/`` (empty profile: "default";
        empty ``job_id``: generated, else an idempotent submit); ``encrypt``: AES-128 with a
        key every ``key_rotation_seconds`` of media (0: the service's default); ``subtitles``:
        files published as subtitle renditions; ``audio_language``: the default audio track;
        ``package_format``: MPEG-TS or CMAF."""
        request = pb.SubmitJobRequest(
            source=source,
            asset=asset,
            profile=profile,
            job_id=job_id,
            encryption=pb.Job.Encryption(enabled=encrypt, rotation_seconds=key_rotation_seconds),
            subtitles=[subtitle_to_pb(s) for s in subtitles],
            audio_language=audio_language,
            format=package_format_to_pb(package_format),
        )
        return job_from_pb(await self.call(self._stub.SubmitJob, request))

    async def watch_job(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events, from its state now until it ends."""
        request = pb.WatchJobRequest(name=JOB.format(job_id))
        with self.mapped():
            async for event in self._stub.WatchJob(request, metadata=self.metadata):
                yield event_from_pb(event)

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a queued or running job."""
        request = pb.CancelJobRequest(name=JOB.format(job_id))
        return job_from_pb(await self.call(self._stub.CancelJob, request))

    async def list_jobs(self, *, state: JobState | None = None, limit: int = 0) -> list[Job]:
        """Jobs, newest first, in ``state`` (None: any), at most ``limit`` (0: 100), read
        page by page (a state filter's page may be short)."""
        wanted = limit or 100
        jobs: list[Job] = []
        token = ""
        while True:
            request = pb.ListJobsRequest(
                state=job_state_to_pb(state), page_size=wanted - len(jobs), page_token=token
            )
            reply: pb.ListJobsResponse = await self.call(self._stub.ListJobs, request)
            jobs.extend(job_from_pb(job) for job in reply.jobs)
            token = reply.next_page_token
            if not token or len(jobs) >= wanted:
                return jobs

    async def list_dead_letters(self, *, limit: int = 0) -> tuple[list[DeadLetter], int]:
        """Dead letters, newest first, at most ``limit`` (0: 100), each with its job as it is
        now, and how many the stream holds."""
        wanted = limit or 100
        letters: list[DeadLetter] = []
        token = ""
        while True:
            request = pb.ListDeadLettersRequest(page_size=wanted - len(letters), page_token=token)
            reply: pb.ListDeadLettersResponse = await self.call(self._stub.ListDeadLetters, request)
            letters.extend(dead_letter_from_pb(d) for d in reply.dead_letters)
            token = reply.next_page_token
            if not token or len(letters) >= wanted:
                return letters, reply.total_size

    async def retry_job(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again (``JobNotRetryable`` for any other)."""
        request = pb.RetryJobRequest(name=JOB.format(job_id))
        return job_from_pb(await self.call(self._stub.RetryJob, request))

    async def _every_page(
        self, call: Callable[[str, int], Awaitable[tuple[list[T], str]]], *, limit: int = 0
    ) -> list[T]:
        """Every item ``call`` (page token, page size) pages through; ``limit``: stop once
        that many are read (0: every page)."""
        items: list[T] = []
        token = ""
        while True:
            size = _PAGE_SIZE if not limit else min(_PAGE_SIZE, limit - len(items))
            found, token = await call(token, size)
            items.extend(found)
            if not token or (limit and len(items) >= limit):
                return items

    # ---- live channels

    async def start_channel(
        self,
        channel_id: str,
        source: str,
        *,
        profile: str = "",
        segment_seconds: int = 0,
        window_segments: int = 0,
        catchup_days: int = 0,
        node_group: str = "",
        backup_sources: Sequence[str] = (),
        encrypt: bool = False,
        key_rotation_seconds: int = 0,
        audio_languages: Sequence[str] = (),
        subtitle_languages: Sequence[str] = (),
        audio_language: str = "",
        card: Card | None = None,
        multicast: Multicast | None = None,
        formats: Sequence[PackageFormat] = (),
    ) -> ChannelStatus:
        """Start a live channel (an empty or 0 setting: the service's default; ``node_group``:
        run only on nodes of that group; ``backup_sources``: taken in order when the source
        is lost or impaired; ``encrypt``: AES-128 segments whose key rotates every
        ``key_rotation_seconds`` of media; ``audio_languages``/``subtitle_languages``: the
        source's audio and subtitle streams in order, ``audio_language`` the default;
        ``card``: a generated card instead of a source, ``source`` then empty; ``multicast``:
        the channel's multicast output as well; ``formats``: packagings besides MPEG-TS)."""
        channel = pb.Channel(
            name=CHANNEL.format(channel_id),
            source=source,
            profile=profile,
            segment_seconds=segment_seconds,
            window_segments=window_segments,
            catchup_days=catchup_days,
            node_group=node_group,
            backup_sources=list(backup_sources),
            encryption=pb.Channel.Encryption(
                enabled=encrypt, rotation_seconds=key_rotation_seconds
            ),
            audio_languages=list(audio_languages),
            subtitle_languages=list(subtitle_languages),
            audio_language=audio_language,
            card=None if card is None else pb.Card(text=card.text, audio_uri=card.audio_uri),
            multicast=None if multicast is None else multicast_to_pb(multicast),
            formats=[package_format_to_pb(f) for f in formats],
        )
        request = pb.StartChannelRequest(channel=channel)
        return status_from_pb(await self.call(self._stub.StartChannel, request))

    async def stop_channel(self, channel_id: str) -> ChannelStatus:
        """Stop a live channel (its archive stays)."""
        request = pb.StopChannelRequest(name=CHANNEL.format(channel_id))
        return status_from_pb(await self.call(self._stub.StopChannel, request))

    async def get_channel(self, channel_id: str) -> ChannelStatus:
        """One channel's status."""
        request = pb.GetChannelRequest(name=CHANNEL.format(channel_id))
        return status_from_pb(await self.call(self._stub.GetChannel, request))

    async def list_channels(self) -> list[ChannelStatus]:
        """Every channel's status, stopped ones included, by channel id."""

        async def one(token: str, size: int) -> tuple[list[ChannelStatus], str]:
            request = pb.ListChannelsRequest(page_size=size, page_token=token)
            reply: pb.ListChannelsResponse = await self.call(self._stub.ListChannels, request)
            return [status_from_pb(s) for s in reply.channels], reply.next_page_token

        return await self._every_page(one)

    async def channel_thumbnail(self, channel_id: str) -> Thumbnail:
        """A running channel's latest thumbnail (``ThumbnailNotFound`` when none is recent)."""
        request = pb.GetChannelThumbnailRequest(name=CHANNEL.format(channel_id))
        return thumbnail_from_pb(await self.call(self._stub.GetChannelThumbnail, request))

    async def list_multicast_outputs(self, *, limit: int = 0) -> list[MulticastOutput]:
        """Every channel's multicast output, by channel id (``headend cdn multicast``);
        ``limit``: stop once that many are read (0: every page)."""

        async def one(token: str, size: int) -> tuple[list[MulticastOutput], str]:
            request = pb.ListMulticastOutputsRequest(page_size=size, page_token=token)
            reply: pb.ListMulticastOutputsResponse = await self.call(
                self._stub.ListMulticastOutputs, request
            )
            return [multicast_output_from_pb(o) for o in reply.outputs], reply.next_page_token

        return await self._every_page(one, limit=limit)

    async def list_live_outputs(self, *, limit: int = 0) -> list[LiveOutput]:
        """Every live channel's outputs, by channel id (the front doors' directory);
        ``limit``: stop once that many are read (0: every page)."""

        async def one(token: str, size: int) -> tuple[list[LiveOutput], str]:
            request = pb.ListLiveOutputsRequest(page_size=size, page_token=token)
            reply: pb.ListLiveOutputsResponse = await self.call(self._stub.ListLiveOutputs, request)
            return [live_output_from_pb(o) for o in reply.outputs], reply.next_page_token

        return await self._every_page(one, limit=limit)

    # ---- transcode nodes

    async def list_nodes(self) -> list[NodeInfo]:
        """Every live transcode node with its load and channels, by node id."""

        async def one(token: str, size: int) -> tuple[list[NodeInfo], str]:
            request = pb.ListNodesRequest(page_size=size, page_token=token)
            reply: pb.ListNodesResponse = await self.call(self._stub.ListNodes, request)
            return [node_from_pb(n) for n in reply.nodes], reply.next_page_token

        return await self._every_page(one)

    async def drain_node(self, node_id: str, *, resume: bool = False) -> NodeInfo:
        """Move a node's channels off it and place none there (``resume``: undo)."""
        request = pb.DrainNodeRequest(name=NODE.format(node_id), resume=resume)
        return node_from_pb(await self.call(self._stub.DrainNode, request))
