"""``TranscodeClient`` against a real TranscodeService: domain values in and out, errors rebuilt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings, ServiceUnavailable
from tests.support.media import Media
from tests.support.net import free_port
from tests.support.tokens import Tokens
from transcode.archive import ArchiveIndex
from transcode.client import TranscodeClient
from transcode.domain import ChannelState, Job, JobState
from transcode.errors import ChannelNotFound, ChannelRunning, JobExists, JobNotFound, SourceRefused
from transcode.live import LiveManager
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings
from transcode.sources import SourceGuard


@dataclass
class Rig:
    target: str
    tokens: Tokens


@pytest.fixture
async def rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    origin = tmp_path / "origin"
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=origin,
        queue=QueueSettings(),
        sources=source_settings,
    )
    manager = LiveManager(
        redis=redis,
        archive=ArchiveIndex(redis),
        origin_root=origin,
        sources=SourceGuard(source_settings),
    )
    server, port = await create_server(settings, redis=redis, keys=keys, channels=manager)
    try:
        yield Rig(f"127.0.0.1:{port}", tokens)
    finally:
        await manager.close()
        await server.stop(0)


async def _client(rig: Rig, who: str = "admin") -> TranscodeClient:
    return TranscodeClient(rig.target, await rig.tokens(who))


async def test_jobs_come_back_as_domain_values(rig: Rig, media: Media) -> None:
    async with await _client(rig) as transcode:
        job = await transcode.submit_job(str(media.clip), asset="clip", job_id="j1")
        assert isinstance(job, Job)
        assert (job.id, job.state, job.asset, job.profile) == (
            "j1",
            JobState.QUEUED,
            "clip",
            "default",
        )
        assert job.created_at.tzinfo is not None
        assert await transcode.list_jobs(state=JobState.QUEUED) == [job]
        cancelled = await transcode.cancel_job("j1")
        assert (cancelled.state, cancelled.reason) == (
            JobState.CANCELLED,
            "cancelled before it started",
        )
        events = [e async for e in transcode.watch_job("j1")]
        assert [e.state for e in events] == [JobState.QUEUED, JobState.CANCELLED]
        assert await transcode.list_jobs(state=JobState.QUEUED) == []
        assert [j.id for j in await transcode.list_jobs()] == ["j1"]


async def test_channels_come_back_as_domain_values(rig: Rig, media: Media) -> None:
    source = f"file://{media.clip}"
    async with await _client(rig) as transcode:
        started = await transcode.start_channel("loop", source, profile="low", segment_seconds=2)
        assert started.state is ChannelState.STARTING
        # Zeros took the service's defaults.
        assert (started.channel.segment_seconds, started.channel.window_segments) == (2, 6)
        assert started.channel.catchup_days == 7
        got = await transcode.get_channel("loop")
        assert (got.channel.id, got.channel.source) == ("loop", source)
        stopped = await transcode.stop_channel("loop")
        assert stopped.state is ChannelState.STOPPED
        listed = await transcode.list_channels()
    assert [(s.channel.id, s.state) for s in listed] == [("loop", ChannelState.STOPPED)]


async def test_a_domain_error_comes_back_as_the_same_leaf(rig: Rig, media: Media) -> None:
    async with await _client(rig) as transcode:
        await transcode.submit_job(str(media.clip), asset="a", job_id="dup")
        with pytest.raises(JobExists):
            await transcode.submit_job(str(media.long_clip), asset="b", job_id="dup")
        with pytest.raises(JobNotFound) as missing:
            await transcode.cancel_job("nope")
        assert missing.value.details == {"job_id": "nope"}
        with pytest.raises(JobNotFound):
            async for _ in transcode.watch_job("nope"):
                pass
        with pytest.raises(SourceRefused) as refused:
            await transcode.start_channel("c1", "udp://1.2.3.4:5")
        assert refused.value.field == "channel.source"
        with pytest.raises(ChannelNotFound):
            await transcode.get_channel("other")
        await transcode.start_channel("loop", f"file://{media.clip}", profile="low")
        with pytest.raises(ChannelRunning):
            await transcode.start_channel("loop", f"file://{media.clip}")
        await transcode.stop_channel("loop")


async def test_the_service_down_is_service_unavailable() -> None:
    async with TranscodeClient(f"127.0.0.1:{free_port()}", "key", timeout_seconds=2) as tc:
        with pytest.raises(ServiceUnavailable) as down:
            await tc.list_jobs()
        assert (down.value.service, down.value.reason) == ("transcode", "UNAVAILABLE")
        with pytest.raises(ServiceUnavailable):
            async for _ in tc.watch_job("j1"):
                pass
