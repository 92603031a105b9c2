"""Transcode use cases: jobs and live channels, with the authorization decisions.

Everything is the admin's, but for reading live channels' state and thumbnails: a
broadcaster reads those of the channels it owns. Owners are the guide's, so the EPG is
asked with the broadcaster's own key (``Owners``); another broadcaster's channel is
refused as the EPG refuses it (PERMISSION_DENIED). Imports no gRPC; the servicer in
``server.py`` only converts messages.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from headend.auth import Principal, require_admin
from headend.clock import utc_now
from transcode.domain import (
    ChannelStatus,
    LiveChannel,
    NodeInfo,
    Thumbnail,
    check_rotation,
    validate_channel_id,
    validate_id,
    validate_tracks_languages,
)
from transcode.errors import InvalidRequest, JobExists
from transcode.jobs import (
    Job,
    JobEncryption,
    JobEvent,
    JobState,
    PackageFormat,
    SubtitleFile,
    validate_format,
    validate_subtitle_files,
)
from transcode.live.sourcing import check_inputs
from transcode.outputs import LiveOutput, MulticastOutput, live_output, multicast_output
from transcode.profiles import require_format, require_live, resolve_profile
from transcode.queue import DeadLetterPage, JobQueue
from transcode.sources import SourceInput
from transcode.sourceurl import validate_source

MAX_LIST = 1000


class Channels(Protocol):
    """Runs live channels (``live.LiveManager``)."""

    async def start(self, channel: LiveChannel) -> ChannelStatus: ...
    async def stop(self, channel_id: str) -> ChannelStatus: ...
    async def get(self, channel_id: str) -> ChannelStatus: ...
    async def list_channels(self) -> list[ChannelStatus]: ...


class Nodes(Protocol):
    """The farm's transcode nodes (``farm.NodeDirectory``)."""

    async def nodes(self) -> list[NodeInfo]: ...
    async def drain(self, node_id: str, *, resume: bool = ...) -> NodeInfo: ...


class Thumbnails(Protocol):
    """The live channels' latest thumbnails (``live.ThumbnailStore``)."""

    async def get(self, channel_id: str) -> Thumbnail: ...


class Owners(Protocol):
    """The channels a broadcaster owns, as the EPG tells its key (``epg.owners.ChannelOwners``)."""

    async def owned(self, principal: Principal, api_key: str) -> frozenset[str]: ...
    async def require(self, principal: Principal, api_key: str, channel_id: str) -> None: ...


class Sources(Protocol):
    """Checks sources against the allow-lists (``sources.SourceGuard``)."""

    async def vod(self, source: str, *, field_name: str = ...) -> SourceInput: ...
    async def live(self, source: str, *, field_name: str = ...) -> SourceInput: ...


class TranscodeService:
    """Jobs and channels for the platform operator; live state for channels' owners too."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        channels: Channels,
        sources: Sources,
        nodes: Nodes,
        thumbnails: Thumbnails,
        owners: Owners,
        key_rotation_seconds: int,
    ) -> None:
        self._queue = queue
        self._owners = owners
        self._thumbnails = thumbnails
        # An encrypted job's rotation when the request names none (CONTENT_KEY_ROTATION_SECONDS).
        self._key_rotation_seconds = key_rotation_seconds
        self._channels = channels
        self._sources = sources
        self._nodes = nodes

    async def submit(
        self,
        principal: Principal,
        *,
        source: str,
        asset: str,
        profile: str,
        job_id: str = "",
        encrypt: bool = False,
        key_rotation_seconds: int = 0,
        subtitles: Sequence[SubtitleFile] = (),
        audio_language: str = "",
        package_format: PackageFormat = PackageFormat.TS,
    ) -> Job:
        """Validate and queue a packaging job; a source outside the allow-lists is refused.

        ``encrypt``: AES-128 with a new content key every ``key_rotation_seconds`` of media
        (0: the service's default), recorded in the job as resolved. ``subtitles``: files
        published as subtitle renditions (each under the same allow-lists as the source);
        ``audio_language``: the default of the source's audio tracks. ``package_format``:
        MPEG-TS or CMAF (CMAF cannot be encrypted yet, and HEVC profiles are CMAF only:
        refused on ``format``).
        """
        require_admin(principal)
        source = validate_source(source)
        validate_id("asset", asset)
        profile = profile or "default"
        validate_id("profile", profile)
        job_id = validate_id("job_id", job_id) if job_id else secrets.token_hex(8)
        encryption = self._encryption(encrypt, key_rotation_seconds)
        validate_format(package_format, encryption is not None)
        # An unknown profile or HEVC rungs in MPEG-TS are refused here, not by a failed job.
        require_format(resolve_profile(profile), package_format)
        subtitles = tuple(subtitles)
        validate_subtitle_files(subtitles)
        validate_tracks_languages((), (), audio_language, prefix="")
        for index, subtitle in enumerate(subtitles):
            await self._sources.vod(subtitle.uri, field_name=f"subtitles[{index}].uri")
        await self._sources.vod(source)
        now = utc_now()
        job = Job(
            job_id, source, asset, profile, JobState.QUEUED, now, now, encryption=encryption,
            subtitles=subtitles, audio_language=audio_language, format=package_format,
        )  # fmt: skip
        if not await self._queue.submit(job):
            raise JobExists(f"job {job_id} already exists", details={"job_id": job_id})
        return await self._queue.get(job_id)

    def _encryption(self, enabled: bool, rotation_seconds: int) -> JobEncryption | None:
        if not enabled:
            if rotation_seconds:
                raise InvalidRequest(
                    "encryption.enabled", "must be true when a key rotation is given"
                )
            return None
        check_rotation(rotation_seconds, "encryption.rotation_seconds")
        return JobEncryption(rotation_seconds or self._key_rotation_seconds)

    async def get(self, principal: Principal, job_id: str) -> Job:
        """One job."""
        require_admin(principal)
        return await self._queue.get(validate_id("job_id", job_id))

    async def watch(self, principal: Principal, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events until it ends."""
        require_admin(principal)
        await self._queue.get(validate_id("job_id", job_id))
        async for event in self._queue.events(job_id):
            yield event

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        """Cancel a queued job or ask its worker to stop it; finished jobs are left alone."""
        require_admin(principal)
        await self._queue.request_cancel(validate_id("job_id", job_id))
        return await self._queue.get(job_id)

    async def list_jobs(
        self, principal: Principal, *, state: JobState | None, limit: int, after: str = ""
    ) -> tuple[list[Job], str]:
        """A page of at most ``limit`` jobs, newest first, after the queue's cursor ``after``,
        and the next page's cursor ("": the last page)."""
        require_admin(principal)
        return await self._queue.list_jobs(state=state, limit=_limit(limit), after=after)

    async def dead_letters(
        self, principal: Principal, *, limit: int, after: str = ""
    ) -> DeadLetterPage:
        """A page of at most ``limit`` dead letters, newest first, after the queue's cursor
        ``after``, the next page's cursor ("": the last page) and how many there are."""
        require_admin(principal)
        return await self._queue.dead_letters(limit=_limit(limit), after=after)

    async def retry(self, principal: Principal, job_id: str) -> Job:
        """Queue a failed or cancelled job again (deliveries reset, its dead letters gone);
        ``JobNotRetryable`` for one queued, running or succeeded."""
        require_admin(principal)
        await self._queue.requeue(validate_id("job_id", job_id))
        return await self._queue.get(job_id)

    async def start_channel(self, principal: Principal, channel: LiveChannel) -> ChannelStatus:
        """Start (and persist) a live channel; a source or card audio file outside the
        allow-lists is refused. Starting a running channel again with the same configuration
        returns its status; with another, ``ChannelRunning``."""
        require_admin(principal)
        channel.validate()
        require_live(channel.profile)
        await check_inputs(self._sources, channel)
        return await self._channels.start(channel)

    async def stop_channel(self, principal: Principal, channel_id: str) -> ChannelStatus:
        """Stop a live channel; its archive stays for catch-up."""
        require_admin(principal)
        return await self._channels.stop(validate_channel_id("channel_id", channel_id))

    async def _readable(self, principal: Principal, api_key: str, channel_id: str) -> str:
        """``channel_id`` once ``principal`` may read its live state: the admin any channel's,
        a broadcaster (calling with ``api_key``) those of the channels it owns."""
        if principal.role != "broadcaster":
            require_admin(principal)
        channel_id = validate_channel_id("channel_id", channel_id)
        if principal.role == "broadcaster":
            await self._owners.require(principal, api_key, channel_id)
        return channel_id

    async def get_channel(
        self, principal: Principal, channel_id: str, *, api_key: str
    ) -> ChannelStatus:
        """One channel's status."""
        return await self._channels.get(await self._readable(principal, api_key, channel_id))

    async def list_channels(self, principal: Principal, *, api_key: str) -> list[ChannelStatus]:
        """Every known channel's status (a broadcaster's: its own channels')."""
        if principal.role != "broadcaster":
            require_admin(principal)
            return await self._channels.list_channels()
        owned = await self._owners.owned(principal, api_key)
        return [s for s in await self._channels.list_channels() if s.channel.id in owned]

    async def list_multicast_outputs(self, principal: Principal) -> list[MulticastOutput]:
        """Every channel's multicast output (channels without one left out), for the admin
        and the front doors (the playback role): group, port, regions and whether the channel
        runs, never a source URL."""
        found = (multicast_output(s) for s in await self._outputs_for(principal))
        return [output for output in found if output is not None]

    async def list_live_outputs(self, principal: Principal) -> list[LiveOutput]:
        """Every live channel's outputs (multicast group, packagings, running), for the
        admin and the front doors (the playback role): never a source URL."""
        return [live_output(s) for s in await self._outputs_for(principal)]

    async def _outputs_for(self, principal: Principal) -> list[ChannelStatus]:
        """The channels whose outputs ``principal`` may list: the admin and the playback
        role see every one."""
        if principal.role != "playback":
            require_admin(principal)
        return await self._channels.list_channels()

    async def thumbnail(self, principal: Principal, channel_id: str, *, api_key: str) -> Thumbnail:
        """A running channel's latest thumbnail; ``ThumbnailNotFound`` when none is recent."""
        return await self._thumbnails.get(await self._readable(principal, api_key, channel_id))

    async def list_nodes(self, principal: Principal) -> list[NodeInfo]:
        """Every live transcode node with its load and channels."""
        require_admin(principal)
        return await self._nodes.nodes()

    async def drain_node(self, principal: Principal, node_id: str, *, resume: bool) -> NodeInfo:
        """Move a node's channels off it and place none there (``resume``: undo)."""
        require_admin(principal)
        if not node_id or len(node_id) > 128 or "|" in node_id:
            raise InvalidRequest("node", "must be a node id (at most 128 characters, no '|')")
        return await self._nodes.drain(node_id, resume=resume)


def _limit(limit: int) -> int:
    """A page size the queue reads at once (1 to ``MAX_LIST``)."""
    if not 0 < limit <= MAX_LIST:
        raise InvalidRequest("page_size", f"must be between 1 and {MAX_LIST}")
    return limit
