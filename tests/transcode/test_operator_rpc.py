"""The farm's part of the operator console over a real gRPC server: dead letters and their
retry (a retried job runs to the end on a real worker with real FFmpeg), live channels'
segment facts in their status, and their thumbnails (real FFmpeg, clear and encrypted
channels, none when off, never a file under the origin root), read by the admin and by
the channel's owner as the real EPG names it; the CLI verbs; the queue gauges."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.client import EpgClient
from epg.owners import OwnersSettings
from headend.auth import KeyStore
from headend.contentkeys import ContentKeyStore, KekRing
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from tests.epg.support import channel as guide_channel
from tests.epg.support import serve_epg
from tests.support.live import FAST, RUNGS, Recorder, live_channel
from tests.support.media import Media
from tests.support.net import free_port
from tests.support.tokens import Tokens
from transcode import cli
from transcode.archive import ArchiveIndex
from transcode.client import TranscodeClient
from transcode.domain import ChannelEncryption
from transcode.errors import JobNotRetryable, ThumbnailNotFound
from transcode.jobs import Job, JobState
from transcode.live import LiveManager
from transcode.live.encryption import LiveEncryption
from transcode.live.thumbnail import MAX_WIDTH
from transcode.queue import JobQueue
from transcode.queue.metrics import QueueMetrics
from transcode.server import create_control, create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings
from transcode.sources import SourceGuard
from transcode.worker import Worker, vod_packager

# Live channels encode in real time: one worker, so two live tests never share the cores.
pytestmark = pytest.mark.xdist_group("live")


@dataclass
class Rig:
    port: int
    stub: pb_grpc.TranscodeServiceStub
    admin: tuple[tuple[str, str], ...]
    tokens: Tokens
    redis: aioredis.Redis
    origin: Path
    manager: LiveManager
    recorder: Recorder
    sources: SourceSettings


@contextlib.asynccontextmanager
async def _rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    origin: Path,
    sources: SourceSettings,
    *,
    thumbnail_seconds: float = 0.1,
    encryption: LiveEncryption | None = None,
    epg_target: str = "",
) -> AsyncIterator[Rig]:
    """The control server (on a real EPG at ``epg_target``; none: a closed port)."""
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=origin,
        queue=QueueSettings(),
        sources=sources,
        owners=OwnersSettings(target=epg_target or f"127.0.0.1:{free_port()}"),
    )
    recorder = Recorder(origin)
    manager = LiveManager(
        redis=redis,
        archive=ArchiveIndex(redis),
        origin_root=origin,
        sources=SourceGuard(sources),
        observer=recorder.segment,
        settings=replace(FAST, thumbnail_seconds=thumbnail_seconds),
        encryption=encryption,
    )
    server, port = await create_server(settings, redis=redis, keys=keys, channels=manager)
    channel = client_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(
            port, pb_grpc.TranscodeServiceStub(channel), bearer(await tokens()), tokens, redis,
            origin, manager, recorder, sources,
        )  # fmt: skip
    finally:
        await channel.close()
        await manager.close()
        await server.stop(0)


@pytest.fixture
async def rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    """The control server on a real EPG, whose channels ``tv1`` and ``tv2`` are the
    broadcasters ``tvb``'s and ``rival``'s."""
    async with serve_epg(redis, keys, tokens) as epg:
        async with EpgClient(epg.target, await tokens()) as guide:
            await guide.create_channel(guide_channel("tv1", owner="tvb", number=1))
            await guide.create_channel(guide_channel("tv2", owner="rival", number=2))
        origin = tmp_path / "origin"
        async with _rig(
            redis, keys, tokens, origin, source_settings, epg_target=epg.target
        ) as made:
            yield made


# ---- dead letters and retry


@contextlib.asynccontextmanager
async def _worker(rig: Rig, consumer: str, sources: SourceSettings) -> AsyncIterator[Worker]:
    """A real worker (FFmpeg) whose source allow-lists are ``sources``."""
    worker = Worker(
        queue=JobQueue(rig.redis, max_deliveries=3),
        packager=vod_packager(origin_root=rig.origin, work_dir=None, sources=SourceGuard(sources)),
        consumer=consumer,
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=100,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def _watch(rig: Rig, name: str) -> list[pb.JobEvent]:
    """The job's events until it ends."""
    request = pb.WatchJobRequest(name=name)
    return [e async for e in rig.stub.WatchJob(request, metadata=rig.admin)]


async def test_a_dead_letter_retried_runs_to_succeeded_on_a_real_worker(
    rig: Rig, media: Media
) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="retried", profile="low", job_id="r1"),
        metadata=rig.admin,
    )
    # A worker not yet told about the media folder refuses the source: dead-lettered at once.
    async with _worker(rig, "w-old", SourceSettings(media_roots=())):
        events = await _watch(rig, job.name)
    assert events[-1].state == pb.JOB_STATE_FAILED
    listed = await rig.stub.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=rig.admin)
    assert listed.total_size == 1
    (dead,) = listed.dead_letters
    assert (dead.job.name, dead.job.state, dead.deliveries) == (job.name, pb.JOB_STATE_FAILED, 1)
    assert "SourceRefused" in dead.reason
    assert abs(datetime.now(UTC).timestamp() - dead.dead_time.seconds) < 600
    assert listed.next_page_token == ""

    retried = await rig.stub.RetryJob(pb.RetryJobRequest(name=job.name), metadata=rig.admin)
    assert (retried.state, retried.deliveries, retried.reason) == (
        pb.JOB_STATE_QUEUED, 0, "retried by request",
    )  # fmt: skip
    after = await rig.stub.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=rig.admin)
    assert (list(after.dead_letters), after.total_size) == ([], 0)
    async with _worker(rig, "w-new", rig.sources):
        events = await _watch(rig, job.name)
    # Its events start afresh with the retry: the failed run's end does not end the watch.
    assert events[0].state == pb.JOB_STATE_QUEUED
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED
    done = await rig.stub.GetJob(pb.GetJobRequest(name=job.name), metadata=rig.admin)
    assert (done.state, done.deliveries, done.worker) == (pb.JOB_STATE_SUCCEEDED, 1, "w-new")
    assert (rig.origin / "vod" / "retried" / "master.m3u8").is_file()


async def test_retry_refuses_a_job_queued_or_succeeded_and_an_unknown_one(
    rig: Rig, media: Media
) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="q", job_id="q1"), metadata=rig.admin
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.RetryJob(pb.RetryJobRequest(name=job.name), metadata=rig.admin)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(info.value).reason == "JOB_NOT_RETRYABLE"
    again = await rig.stub.GetJob(pb.GetJobRequest(name=job.name), metadata=rig.admin)
    assert again == job
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.RetryJob(pb.RetryJobRequest(name="jobs/nope"), metadata=rig.admin)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def _dead_letters(redis: aioredis.Redis, *job_ids: str) -> None:
    """Jobs dead-lettered through the queue's own steps (no FFmpeg needed)."""
    queue = JobQueue(redis)
    await queue.ensure_group()
    now = datetime.now(UTC)
    for job_id in job_ids:
        await queue.submit(Job(job_id, "/m/a.mp4", "a", "default", JobState.QUEUED, now, now))
        delivery = await queue.next_delivery("w", block_ms=10, claim_idle_ms=60_000)
        assert delivery is not None
        await queue.begin(delivery, "w")
        await queue.dead_letter(delivery, reason=f"DiskFull: {job_id}")


async def test_dead_letters_page_with_tokens_newest_first(rig: Rig) -> None:
    await _dead_letters(rig.redis, "d1", "d2", "d3")
    first = await rig.stub.ListDeadLetters(
        pb.ListDeadLettersRequest(page_size=2), metadata=rig.admin
    )
    assert [d.job.name for d in first.dead_letters] == ["jobs/d3", "jobs/d2"]
    assert first.total_size == 3
    rest = await rig.stub.ListDeadLetters(
        pb.ListDeadLettersRequest(page_size=2, page_token=first.next_page_token),
        metadata=rig.admin,
    )
    assert ([d.job.name for d in rest.dead_letters], rest.next_page_token) == (["jobs/d1"], "")
    # A token of another list is refused, as a made-up one is.
    jobs = await rig.stub.ListJobs(pb.ListJobsRequest(page_size=1), metadata=rig.admin)
    for token in (jobs.next_page_token, "nope"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await rig.stub.ListDeadLetters(
                pb.ListDeadLettersRequest(page_token=token), metadata=rig.admin
            )
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in error_details(info.value).fields


@pytest.mark.parametrize(
    ("call", "request_"),
    [
        pytest.param("ListDeadLetters", pb.ListDeadLettersRequest(), id="dead-letters"),
        pytest.param("RetryJob", pb.RetryJobRequest(name="jobs/d1"), id="retry"),
        pytest.param(
            "GetChannelThumbnail", pb.GetChannelThumbnailRequest(name="channels/tv1"), id="thumb"
        ),
    ],
)
async def test_only_the_admin_may_call_the_console_methods(
    rig: Rig, call: str, request_: object
) -> None:
    await _dead_letters(rig.redis, "d1")
    before = await rig.redis.hgetall("tc:{jobs}:job:d1")
    for who in ("carrier:acme", "broadcaster:tv1", "playback"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await getattr(rig.stub, call)(request_, metadata=bearer(await rig.tokens(who)))
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED, who
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, call)(request_)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert await rig.redis.hgetall("tc:{jobs}:job:d1") == before


@pytest.mark.parametrize(
    ("call", "request_"),
    [
        pytest.param("RetryJob", pb.RetryJobRequest(name="job/d1"), id="retry-collection"),
        pytest.param("RetryJob", pb.RetryJobRequest(name="jobs/D 1"), id="retry-id"),
        pytest.param("RetryJob", pb.RetryJobRequest(name=""), id="retry-empty"),
        pytest.param(
            "GetChannelThumbnail",
            pb.GetChannelThumbnailRequest(name="channels/TV 1"),
            id="thumb-id",
        ),
        pytest.param(
            "GetChannelThumbnail", pb.GetChannelThumbnailRequest(name="jobs/tv1"), id="thumb-kind"
        ),
        pytest.param(
            "ListDeadLetters", pb.ListDeadLettersRequest(page_size=-1), id="negative-page"
        ),
    ],
)
async def test_bad_names_are_invalid_argument(rig: Rig, call: str, request_: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, call)(request_, metadata=rig.admin)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_cli_lists_dead_letters_and_retries_one(rig: Rig) -> None:
    await _dead_letters(rig.redis, "d1", "d2")
    env = {"TRANSCODE_TARGET": f"127.0.0.1:{rig.port}", "HEADEND_API_KEY": rig.admin[0][1][7:]}
    table = io.StringIO()
    assert await cli.list_dead_letters(_parse("transcode", "dead-letters"), env, table) == 0
    assert [line.split()[:3] for line in table.getvalue().splitlines()] == [
        ["ID", "STATE", "DELIVERIES"], ["d2", "failed", "1"], ["d1", "failed", "1"],
    ]  # fmt: skip
    out = io.StringIO()
    assert await cli.retry_job(_parse("transcode", "retry", "d1", "-o", "json"), env, out) == 0
    [job] = json.loads(out.getvalue())
    assert (job["id"], job["state"], job["deliveries"]) == ("d1", "queued", 0)
    as_json = io.StringIO()
    args = _parse("transcode", "dead-letters", "-o", "json")
    assert await cli.list_dead_letters(args, env, as_json) == 0
    [left] = json.loads(as_json.getvalue())
    assert (left["id"], left["reason"]) == ("d2", "dead-lettered after 1 deliveries: DiskFull: d2")
    with pytest.raises(JobNotRetryable):  # refused: queued now
        await cli.retry_job(_parse("transcode", "retry", "d1"), env, io.StringIO())


async def test_the_queue_gauges_count_queued_running_and_dead(redis: aioredis.Redis) -> None:
    queue = JobQueue(redis)
    await queue.ensure_group()
    await _dead_letters(redis, "d1")
    now = datetime.now(UTC)
    for job_id in ("q1", "q2"):
        await queue.submit(Job(job_id, "/m/a.mp4", "a", "default", JobState.QUEUED, now, now))
    delivery = await queue.next_delivery("w", block_ms=10, claim_idle_ms=60_000)
    assert delivery is not None
    await queue.begin(delivery, "w")
    registry = CollectorRegistry()
    await QueueMetrics(registry).refresh(queue)
    value = registry.get_sample_value
    assert value("transcode_queue_jobs", {"state": "queued"}) == 1
    assert value("transcode_queue_jobs", {"state": "running"}) == 1
    assert value("transcode_queue_dead_letters") == 1


# ---- live channels: segment facts and thumbnails


def _jpeg_size(data: bytes) -> tuple[str, int, int]:
    """ffprobe's codec, width and height of an image given on stdin."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
         "-of", "csv=p=0", "-"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    codec, width, height = done.stdout.decode().strip().split(",")
    return codec, int(width), int(height)


def _has_video(segment: Path) -> bool:
    """ffprobe finds a video stream in the file (an encrypted segment has none to find)."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
         str(segment)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return "video" in done.stdout


def _no_picture_under(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert path.suffix not in {".jpg", ".jpeg"}, path
            with path.open("rb") as handle:
                assert handle.read(3) != b"\xff\xd8\xff", f"{path} is a JPEG"


async def _published(rig: Rig, channel: str, count: int) -> None:
    recorder = rig.recorder
    async with asyncio.timeout(120):
        await recorder.until(lambda: len(recorder.published[channel]) >= count)


async def _asked_thumbnail(rig: Rig, channel: str) -> pb.ChannelThumbnail:
    """The channel's thumbnail, read as the console does: every read asks the node for
    fresh ones, so the first may be NOT_FOUND until the next segment's capture."""
    request = pb.GetChannelThumbnailRequest(name=f"channels/{channel}")
    async with asyncio.timeout(60):
        while True:
            try:
                return await rig.stub.GetChannelThumbnail(request, metadata=rig.admin)
            except grpc.aio.AioRpcError as err:
                if err.code() is not grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.2)


async def test_a_running_channel_has_a_thumbnail_and_its_segment_facts(
    rig: Rig, media: Media
) -> None:
    await rig.manager.start(live_channel("tv1", f"file://{media.clip}"))
    await _published(rig, "tv1", 3)
    supervisor = rig.manager.supervisor("tv1")
    assert supervisor is not None
    # Nobody has looked: segments are published, no picture is taken.
    await supervisor.thumbnailer.settled()
    assert rig.manager.metrics.thumbnails.labels("tv1", "captured")._value.get() == 0
    thumb = await _asked_thumbnail(rig, "tv1")
    assert thumb.name == "channels/tv1"
    codec, width, height = _jpeg_size(thumb.jpeg)
    assert codec == "mjpeg"
    assert 0 < width <= MAX_WIDTH
    assert height > 0
    status = await rig.stub.GetChannel(
        pb.GetChannelRequest(name="channels/tv1"), metadata=rig.admin
    )
    assert status.HasField("last_segment_time")
    assert thumb.capture_time.ToDatetime() <= status.last_segment_time.ToDatetime()
    assert status.target_duration_seconds == 2
    assert [r.name for r in status.rungs] == list(RUNGS)
    assert all(r.bandwidth > 0 for r in status.rungs)
    async with TranscodeClient(f"127.0.0.1:{rig.port}", rig.admin[0][1][7:]) as client:
        same = await client.channel_thumbnail("tv1")
        status_now = await client.get_channel("tv1")
    assert same.channel_id == "tv1"
    # The same picture, unless the thumbnail was renewed meanwhile (a loaded machine can
    # take longer than TC_THUMBNAIL_SECONDS between the two asks): then a later one.
    first_at = thumb.capture_time.ToDatetime(tzinfo=UTC)
    if same.captured_at == first_at:
        assert same.jpeg == thumb.jpeg
    else:
        assert same.captured_at > first_at
    assert status_now.last_segment_at is not None
    assert [r.name for r in status_now.rungs] == list(RUNGS)
    # The dashboard reads what the console does.
    registry = rig.manager.metrics.registry
    gauge = registry.get_sample_value
    labels = {"channel": "tv1"}
    assert gauge("transcode_live_target_duration_seconds", labels) == 2
    assert gauge("transcode_live_channel_state", {**labels, "state": "LIVE"}) == 1
    assert status.state == pb.CHANNEL_STATE_LIVE
    captured = rig.manager.metrics.thumbnails.labels("tv1", "captured")._value.get()
    assert captured >= 1
    _no_picture_under(rig.origin)
    await _only_its_owner_reads_it(rig)
    await rig.manager.stop("tv1")


# What the console's mosaic reads of a channel: to its owner as to the admin.
_CHANNEL_READS: tuple[tuple[str, object], ...] = (
    ("GetChannel", pb.GetChannelRequest(name="channels/tv1")),
    ("GetChannelThumbnail", pb.GetChannelThumbnailRequest(name="channels/tv1")),
    ("ListChannels", pb.ListChannelsRequest()),
)


async def _refused(rig: Rig, who: str, call: str, request: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, call)(request, metadata=bearer(await rig.tokens(who)))
    return info.value.code()


async def _only_its_owner_reads_it(rig: Rig) -> None:
    """``tv1`` running: its owner (the EPG's ``tvb``) reads its live state and thumbnail;
    another broadcaster, a carrier and playback are refused, as the EPG refuses them."""
    owner = bearer(await rig.tokens("broadcaster:tvb"))
    mine = await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=owner)
    assert [c.channel.name for c in mine.channels] == ["channels/tv1"]
    status = await rig.stub.GetChannel(pb.GetChannelRequest(name="channels/tv1"), metadata=owner)
    assert (status.state, [r.name for r in status.rungs]) == (pb.CHANNEL_STATE_LIVE, list(RUNGS))
    thumb = await rig.stub.GetChannelThumbnail(
        pb.GetChannelThumbnailRequest(name="channels/tv1"), metadata=owner
    )
    assert _jpeg_size(thumb.jpeg)[0] == "mjpeg"
    rival = bearer(await rig.tokens("broadcaster:rival"))
    assert (
        list((await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rival)).channels) == []
    )
    for call, request in _CHANNEL_READS[:2]:
        assert (
            await _refused(rig, "broadcaster:rival", call, request)
            is grpc.StatusCode.PERMISSION_DENIED
        )
    # A channel nobody has is refused alike: a broadcaster learns nothing of others'.
    never = pb.GetChannelRequest(name="channels/never")
    assert (
        await _refused(rig, "broadcaster:rival", "GetChannel", never)
        is grpc.StatusCode.PERMISSION_DENIED
    )
    for who in ("carrier:acme", "playback"):
        for call, request in _CHANNEL_READS:
            assert await _refused(rig, who, call, request) is grpc.StatusCode.PERMISSION_DENIED, who


async def test_with_the_epg_down_a_broadcaster_is_unavailable_and_the_admin_served(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> None:
    async with _rig(redis, keys, tokens, tmp_path / "origin", source_settings) as rig:
        for call, request in _CHANNEL_READS:
            code = await _refused(rig, "broadcaster:tvb", call, request)
            assert code is grpc.StatusCode.UNAVAILABLE, call
            # A carrier is refused before the EPG is asked.
            code = await _refused(rig, "carrier:acme", call, request)
            assert code is grpc.StatusCode.PERMISSION_DENIED, call
        listed = await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)
        assert list(listed.channels) == []


async def test_an_encrypted_channel_has_a_thumbnail_of_its_clear_picture(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
    media: Media,
) -> None:
    store = ContentKeyStore(redis, KekRing.generate("kek1"))
    encryption = LiveEncryption(store, base_url="http://127.0.0.1:9", rotation_seconds=600)
    origin = tmp_path / "origin"
    async with _rig(redis, keys, tokens, origin, source_settings, encryption=encryption) as rig:
        channel = live_channel("enc1", f"file://{media.clip}")
        await rig.manager.start(replace(channel, encryption=ChannelEncryption(True, 600)))
        await _published(rig, "enc1", 2)
        thumb = await _asked_thumbnail(rig, "enc1")
        assert _jpeg_size(thumb.jpeg)[0] == "mjpeg"
        # What boxes can fetch stays encrypted, and no picture of it is on the origin.
        segment = next((origin / "live" / "enc1" / RUNGS[0]).glob("*.ts"))
        assert not _has_video(segment)
        _no_picture_under(origin)
        await rig.manager.stop("enc1")


async def test_no_thumbnail_when_capturing_is_off_or_the_channel_unknown(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
    media: Media,
) -> None:
    origin = tmp_path / "origin"
    async with _rig(redis, keys, tokens, origin, source_settings, thumbnail_seconds=0) as rig:
        await rig.manager.start(live_channel("off1", f"file://{media.clip}"))
        await _published(rig, "off1", 2)
        for name in ("channels/off1", "channels/never"):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await rig.stub.GetChannelThumbnail(
                    pb.GetChannelThumbnailRequest(name=name), metadata=rig.admin
                )
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            assert error_details(info.value).reason == "THUMBNAIL_NOT_FOUND"
        async with TranscodeClient(f"127.0.0.1:{rig.port}", rig.admin[0][1][7:]) as client:
            with pytest.raises(ThumbnailNotFound):
                await client.channel_thumbnail("off1")
        supervisor = rig.manager.supervisor("off1")
        assert supervisor is not None
        assert not supervisor.thumbnailer.due()
        await rig.manager.stop("off1")


async def test_the_control_process_serves_the_queue_gauges_on_its_one_registry(
    redis: aioredis.Redis, tmp_path: Path, source_settings: SourceSettings
) -> None:
    await _dead_letters(redis, "d1", "d2")
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path / "origin",
        queue=QueueSettings(),
        sources=source_settings,
        embedded_node=False,
    )
    server, _port = await create_control(settings, redis)
    try:
        registry = server.metrics.registry  # read once as the server starts
        assert registry.get_sample_value("transcode_queue_dead_letters") == 2
        assert registry.get_sample_value("transcode_queue_jobs", {"state": "queued"}) == 0
        # The gRPC metrics are on the same registry.
        assert (
            registry.get_sample_value("grpc_server_calls_in_flight", {"pool": "public"}) is not None
        )
    finally:
        await server.stop(0)
