"""Jobs and channels read only from allowed sources and write only under the origin root.

Refused at submission (INVALID_ARGUMENT naming the field, nothing queued or started)
and again before FFmpeg runs (a bad job already in the stream is dead-lettered with
the reason; FFmpeg, here a tripwire executable, never starts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from headend.settings import SettingsError, parse_networks
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from tests.support.tokens import Tokens
from transcode.archive import ArchiveIndex
from transcode.domain import ChannelState, LiveChannel
from transcode.errors import SourceRefused
from transcode.jobs import Job, JobState
from transcode.live import CHANNELS, ChannelSupervisor, LiveManager, channel_key
from transcode.queue import STREAM, JobQueue, job_key
from transcode.server import create_server
from transcode.settings import (
    ControlSettings,
    OriginSettings,
    QueueSettings,
    SourceSettings,
)
from transcode.sources import SourceGuard, publish_dir
from transcode.worker import Worker, vod_packager


@dataclass
class Rig:
    stub: pb_grpc.TranscodeServiceStub
    admin: tuple[tuple[str, str], ...]
    origin: Path
    media_root: Path
    outside: Path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(origin root, media root, a directory outside both) with a file and a symlink out."""
    origin, media_root, outside = tmp_path / "origin", tmp_path / "media", tmp_path / "outside"
    for folder in (origin, media_root, outside):
        folder.mkdir()
    (outside / "secret.mp4").write_bytes(b"not yours")
    (media_root / "film.mp4").write_bytes(b"a film")
    (media_root / "escape.mp4").symlink_to(outside / "secret.mp4")
    (media_root / "away").symlink_to(outside)
    return origin, media_root, outside


@pytest.fixture
async def rig(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, dirs: tuple[Path, Path, Path]
) -> AsyncIterator[Rig]:
    origin, media_root, outside = dirs
    sources = SourceSettings(media_roots=(media_root,))
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=origin,
        queue=QueueSettings(),
        sources=sources,
    )
    manager = LiveManager(
        redis=redis, archive=ArchiveIndex(redis), origin_root=origin, sources=SourceGuard(sources)
    )
    server, port = await create_server(settings, redis=redis, keys=keys, channels=manager)
    channel = client_channel(f"127.0.0.1:{port}")
    try:
        admin = bearer(await tokens())
        yield Rig(pb_grpc.TranscodeServiceStub(channel), admin, origin, media_root, outside)
    finally:
        await channel.close()
        await manager.close()
        await server.stop(0)


# Sources of every class, with "{media}" and "{outside}" filled in per test.
VOD_REFUSED = [
    pytest.param("concat:{media}/film.mp4|{media}/film.mp4", id="concat"),
    pytest.param("subfile,,start,0,end,0,,:{media}/film.mp4", id="subfile"),
    pytest.param("data:video/mp4;base64,AAAA", id="data"),
    pytest.param("pipe:0", id="pipe"),
    pytest.param("crypto+http://127.0.0.1/x.ts", id="nested-crypto"),
    pytest.param("hls+http://127.0.0.1/x.m3u8", id="nested-hls"),
    pytest.param("lavfi:testsrc2", id="lavfi"),
    pytest.param("file:{outside}/secret.mp4", id="file-colon"),
    pytest.param("file://{media}/../outside/secret.mp4", id="file-dotdot"),
    pytest.param("file://{media}/%2e%2e/outside/secret.mp4", id="file-encoded-dotdot"),
    pytest.param("{media}/../outside/secret.mp4", id="path-dotdot"),
    pytest.param("{outside}/secret.mp4", id="outside-media-roots"),
    pytest.param("/etc/hostname", id="etc-hostname"),
    pytest.param("{media}/escape.mp4", id="symlink-out"),
    pytest.param("{media}/away/secret.mp4", id="symlinked-directory-out"),
    pytest.param("http://127.0.0.1:6379/", id="loopback-redis"),
    pytest.param("http://localhost:8080/metrics", id="name-resolving-to-loopback"),
    pytest.param("http://2130706433/", id="decimal-loopback"),
    pytest.param("http://0x7f.1/", id="hex-loopback"),
    pytest.param("http://[::1]/x.mp4", id="ipv6-loopback"),
    pytest.param("http://[::ffff:127.0.0.1]/x.mp4", id="v4-mapped-loopback"),
    pytest.param("http://0.0.0.0:8080/", id="unspecified"),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
    pytest.param("https://10.0.0.5/film.mp4", id="host-outside-networks"),
    pytest.param("http://127.0.0.1\\@239.1.1.1/", id="parser-differential"),
    pytest.param("udp://239.1.1.1:5000", id="live-scheme-for-vod"),
    pytest.param("rtmp://239.1.1.1/live", id="unsupported-scheme"),
    pytest.param("relative/film.mp4", id="relative"),
]
LIVE_REFUSED = [
    pytest.param("udp://10.1.2.3:5000", id="udp-unicast-outside-networks"),
    pytest.param("udp://239.1.1.1:5000?connect=1", id="udp-option"),
    pytest.param("rtp://127.0.0.1:5004", id="rtp-loopback"),
    pytest.param("srt://169.254.169.254:9000", id="srt-metadata"),
    pytest.param("http://239.1.1.1/live.ts", id="http-not-allowed-for-live"),
    pytest.param("file://{outside}/secret.mp4", id="file-outside-media-roots"),
    pytest.param("file://{media}/escape.mp4", id="file-symlink-out"),
    pytest.param("lavfi:testsrc2", id="lavfi"),
    pytest.param("concat:{media}/film.mp4", id="concat"),
]


def _fill(source: str, rig_or_dirs: Rig | tuple[Path, Path, Path]) -> str:
    if isinstance(rig_or_dirs, Rig):
        media, outside = rig_or_dirs.media_root, rig_or_dirs.outside
    else:
        media, outside = rig_or_dirs[1], rig_or_dirs[2]
    return source.format(media=media, outside=outside)


@pytest.mark.parametrize("source", VOD_REFUSED)
async def test_bad_vod_source_is_invalid_argument_and_nothing_is_queued(
    rig: Rig, redis: aioredis.Redis, source: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(
            pb.SubmitJobRequest(source=_fill(source, rig), asset="a"), metadata=rig.admin
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source" in error_details(info.value).fields
    assert list((await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)).jobs) == []
    assert await redis.xlen(STREAM) == 0
    assert await redis.keys(job_key("*")) == []
    assert list(rig.origin.iterdir()) == []


@pytest.mark.parametrize("source", LIVE_REFUSED)
async def test_bad_live_source_is_invalid_argument_and_nothing_starts(
    rig: Rig, redis: aioredis.Redis, source: str
) -> None:
    channel = pb.Channel(name="channels/c1", source=_fill(source, rig), profile="low")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(pb.StartChannelRequest(channel=channel), metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "channel.source" in error_details(info.value).fields
    listed = await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)
    assert list(listed.channels) == []
    assert await redis.exists(channel_key("c1")) == 0
    assert list(rig.origin.iterdir()) == []


async def test_allowed_sources_are_accepted(rig: Rig) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=f"{rig.media_root}/film.mp4", asset="film"),
        metadata=rig.admin,
    )
    assert job.state == pb.JOB_STATE_QUEUED
    status = await rig.stub.StartChannel(
        pb.StartChannelRequest(
            channel=pb.Channel(name="channels/mcast", source="udp://239.1.1.1:5000")
        ),
        metadata=rig.admin,
    )
    assert status.state == pb.CHANNEL_STATE_STARTING
    await rig.stub.StopChannel(pb.StopChannelRequest(name="channels/mcast"), metadata=rig.admin)


# --- the guard itself -----------------------------------------------------------------------


class FakeResolver:
    """Stands in for DNS (no name server here): fixed answers per host name."""

    def __init__(self, answers: Mapping[str, list[str]]) -> None:
        self._answers = answers

    async def addresses(self, host: str) -> list[str]:
        """The configured addresses of ``host``."""
        return list(self._answers.get(host, []))


BROAD = SourceSettings(
    vod_schemes=("http", "https"), networks=parse_networks("0.0.0.0/0,::/0")
)  # "anywhere" still excludes loopback, link-local and metadata addresses


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        pytest.param("metadata.internal", ["169.254.169.254"], id="metadata"),
        pytest.param("rebind.example", ["203.0.113.7", "127.0.0.1"], id="one-of-many-loopback"),
        pytest.param("alibaba.example", ["100.100.100.200"], id="alibaba-metadata"),
        pytest.param("azure.example", ["168.63.129.16"], id="azure-host"),
        pytest.param("v6.example", ["fd00:ec2::254"], id="aws-metadata-v6"),
        pytest.param("linklocal.example", ["fe80::1"], id="ipv6-link-local"),
        pytest.param("nowhere.example", [], id="does-not-resolve"),
    ],
)
async def test_broad_networks_never_admit_special_addresses(
    host: str, addresses: list[str]
) -> None:
    guard = SourceGuard(BROAD, resolver=FakeResolver({host: addresses}))
    with pytest.raises(SourceRefused) as info:
        await guard.vod(f"http://{host}/film.mp4")
    assert info.value.field == "source"


async def test_explicitly_listed_special_network_is_admitted() -> None:
    settings = SourceSettings(vod_schemes=("http",), networks=parse_networks("127.0.0.1/32"))
    guard = SourceGuard(settings, resolver=FakeResolver({"feeds.local": ["127.0.0.1"]}))
    checked = await guard.vod("http://feeds.local:8080/a.mp4?sig=a%2Fb")
    # FFmpeg gets the checked address's host, no redirects and only HTTP's own protocols.
    assert checked.url == "http://feeds.local:8080/a.mp4?sig=a%2Fb"
    assert checked.options == {"protocol_whitelist": "http,https,tcp,tls", "max_redirects": "0"}


async def test_udp_on_loopback_is_a_local_listen_and_allowed() -> None:
    checked = await SourceGuard(SourceSettings()).live("udp://127.0.0.1:5000?pkt_size=1316")
    assert checked.url == "udp://127.0.0.1:5000?pkt_size=1316"
    assert checked.options == {"protocol_whitelist": "udp"}


async def test_file_source_is_given_to_ffmpeg_resolved(dirs: tuple[Path, Path, Path]) -> None:
    _origin, media_root, _outside = dirs
    (media_root / "alias.mp4").symlink_to(media_root / "film.mp4")
    guard = SourceGuard(SourceSettings(media_roots=(media_root,)))
    checked = await guard.vod(f"file://{media_root}/alias.mp4")
    assert checked.url == str((media_root / "film.mp4").resolve())
    assert checked.options == {"protocol_whitelist": "file"}


# --- outputs stay under the origin root -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        pytest.param("vod", "../../etc", id="traversal"),
        pytest.param("vod", "/etc", id="absolute"),
        pytest.param("vod", "Bad Asset", id="not-an-id"),
        pytest.param("live", "../x", id="live-traversal"),
    ],
)
def test_publish_dir_refuses_names_outside_the_root(tmp_path: Path, kind: str, name: str) -> None:
    with pytest.raises(SourceRefused) as info:
        publish_dir(tmp_path, kind, name)
    assert info.value.field == ("channel.id" if kind == "live" else "asset")


def test_publish_dir_refuses_a_symlinked_kind_directory(dirs: tuple[Path, Path, Path]) -> None:
    origin, _media, outside = dirs
    (origin / "vod").symlink_to(outside)
    with pytest.raises(SourceRefused) as info:
        publish_dir(origin, "vod", "film")
    assert info.value.field == "output"


# --- defence in depth: the worker and the live supervisor check again --------------------


def _tripwire(folder: Path) -> tuple[Path, Path]:
    """An executable that records that it ran: stands in for ffmpeg/ffprobe here."""
    marker = folder / "ffmpeg-ran"
    script = folder / "tripwire"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    script.chmod(0o755)
    return script, marker


@pytest.mark.parametrize(
    ("source", "asset", "why"),
    [
        pytest.param("concat:{media}/film.mp4|{media}/film.mp4", "a", "source", id="concat"),
        pytest.param("{outside}/secret.mp4", "a", "TC_MEDIA_ROOTS", id="outside-roots"),
        pytest.param("{media}/escape.mp4", "a", "TC_MEDIA_ROOTS", id="symlink-out"),
        pytest.param("http://localhost:6379/", "a", "TC_SOURCE_NETWORKS", id="loopback"),
        pytest.param("{media}/film.mp4", "../../etc", "asset", id="output-traversal"),
    ],
)
async def test_bad_job_in_the_stream_is_dead_lettered_before_ffmpeg(
    redis: aioredis.Redis,
    dirs: tuple[Path, Path, Path],
    tmp_path: Path,
    source: str,
    asset: str,
    why: str,
) -> None:
    origin, media_root, _outside = dirs
    tripwire, marker = _tripwire(tmp_path)
    queue = JobQueue(redis, max_deliveries=3)
    await queue.ensure_group()
    now = datetime.now(UTC)
    # Straight into Redis, as an older release or a hand-edited stream could have put it.
    await queue.submit(Job("bad", _fill(source, dirs), asset, "low", JobState.QUEUED, now, now))
    worker = Worker(
        queue=queue,
        packager=vod_packager(
            origin_root=origin,
            work_dir=None,
            sources=SourceGuard(SourceSettings(media_roots=(media_root,))),
            ffmpeg_bin=str(tripwire),
            ffprobe_bin=str(tripwire),
        ),
        consumer="w-guard",
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=50,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(30):
            job = await queue.get("bad")
            while not job.state.terminal:
                await asyncio.sleep(0.05)
                job = await queue.get("bad")
    finally:
        stop.set()
        await task
    assert job.state is JobState.FAILED
    assert "SourceRefused" in job.reason
    assert why in job.reason
    assert job.deliveries == 1
    (dead,) = (await queue.dead_letters()).letters
    assert dead.job_id == "bad"
    assert "SourceRefused" in dead.reason
    assert not marker.exists()  # neither ffprobe nor ffmpeg ever started
    assert list(origin.iterdir()) == []


async def test_channel_with_a_now_refused_source_is_not_resumed(
    redis: aioredis.Redis, dirs: tuple[Path, Path, Path]
) -> None:
    origin, _media, outside = dirs
    await redis.hset(
        channel_key("old"),
        mapping={
            "id": "old", "source": f"file://{outside}/secret.mp4", "profile": "low",
            "segment_seconds": "2", "window_segments": "6", "catchup_days": "1",
            "source_timeout_seconds": "3", "desired": "running", "state": "LIVE",
            "updated_at": datetime.now(UTC).isoformat(),
        },
    )  # fmt: skip
    await redis.sadd(CHANNELS, "old")
    manager = LiveManager(redis=redis, archive=ArchiveIndex(redis), origin_root=origin)
    try:
        await manager.resume()
        status = await manager.get("old")
    finally:
        await manager.close()
    assert status.state is ChannelState.STOPPED
    assert status.reason.startswith("refused: channel.source: file sources are off here")
    assert list(origin.iterdir()) == []


async def test_supervisor_checks_the_source_again_before_ffmpeg(
    redis: aioredis.Redis, dirs: tuple[Path, Path, Path]
) -> None:
    origin, media_root, _outside = dirs
    channel = LiveChannel(id="late", source=f"file://{media_root}/escape.mp4", profile="low")
    supervisor = ChannelSupervisor(
        channel,
        redis=redis,
        archive=ArchiveIndex(redis),
        origin_root=origin,
        next_sequence=0,
        discontinuity_sequence=0,
        restarts=0,
        sources=SourceGuard(SourceSettings(media_roots=(media_root,))),
    )
    async with asyncio.timeout(10):
        await supervisor.run()  # returns: the channel stops instead of running FFmpeg
    assert supervisor.state is ChannelState.STOPPED
    assert "TC_MEDIA_ROOTS" in supervisor.reason
    assert not (origin / "live" / "late" / ".work").exists()
    assert (await redis.hget(channel_key("late"), "state")) == b"STOPPED"


# --- settings are validated at start-up, naming the variable -------------------------------


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"TC_LIVE_SOURCE_SCHEMES": "udp,lavfi"}, "TC_LIVE_SOURCE_SCHEMES", id="lavfi"),
        pytest.param({"TC_VOD_SOURCE_SCHEMES": "udp"}, "TC_VOD_SOURCE_SCHEMES", id="vod-udp"),
        pytest.param({"TC_SOURCE_NETWORKS": "10.0.0.1/8"}, "TC_SOURCE_NETWORKS", id="host-bits"),
        pytest.param({"TC_SOURCE_NETWORKS": "example.com"}, "TC_SOURCE_NETWORKS", id="name"),
        pytest.param({"TC_MEDIA_ROOTS": "media"}, "TC_MEDIA_ROOTS", id="relative-root"),
        pytest.param({"TC_MEDIA_ROOTS": "/"}, "TC_MEDIA_ROOTS", id="fs-root"),
    ],
)
def test_bad_source_settings_stop_start_up(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        SourceSettings.from_env(env)
    assert info.value.name == name


def test_bad_origin_networks_stop_start_up() -> None:
    with pytest.raises(SettingsError) as info:
        OriginSettings.from_env({"REDIS_URL": "redis://x", "ORIGIN_ALLOWED_NETWORKS": "edges"})
    assert info.value.name == "ORIGIN_ALLOWED_NETWORKS"


def test_source_settings_defaults() -> None:
    settings = SourceSettings.from_env({})
    assert settings == SourceSettings()
    assert settings.live_schemes == ("udp", "rtp", "srt", "file")
    assert settings.vod_schemes == ("file", "http", "https")
    assert [str(n) for n in settings.networks] == ["239.0.0.0/8"]
    assert settings.media_roots == ()
