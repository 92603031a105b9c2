"""``TranscodeClient`` against a real TranscodeService: domain values in and out, errors rebuilt."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings, ServiceUnavailable
from tests.support.media import Media, write_srt
from tests.support.net import free_port
from tests.support.tokens import Tokens
from transcode import cli
from transcode.archive import ArchiveIndex
from transcode.client import TranscodeClient
from transcode.domain import ChannelState, NodeInfo
from transcode.errors import ChannelNotFound, ChannelRunning, JobExists, JobNotFound, SourceRefused
from transcode.farm import NodeDirectory
from transcode.jobs import Job, JobState, SubtitleFile
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


async def test_a_job_keeps_its_subtitle_files_and_default_audio(rig: Rig, media: Media) -> None:
    srt = write_srt(media.clip.parent / "client-job.srt")
    attached = SubtitleFile(str(srt), "yue", "粤语")
    async with await _client(rig) as transcode:
        job = await transcode.submit_job(
            str(media.clip), asset="clip", job_id="subs", subtitles=[attached], audio_language="zh"
        )
        assert (job.subtitles, job.audio_language) == ((attached,), "zh")
        assert (await transcode.list_jobs())[0].subtitles == (attached,)


async def test_channels_come_back_as_domain_values(rig: Rig, media: Media) -> None:
    source = f"file://{media.clip}"
    async with await _client(rig) as transcode:
        started = await transcode.start_channel(
            "loop", source, profile="low", segment_seconds=2, audio_languages=["zh", "en"],
            subtitle_languages=["zh"], audio_language="en",
        )  # fmt: skip
        tracks = (started.channel.audio_languages, started.channel.subtitle_languages)
        assert (*tracks, started.channel.audio_language) == (("zh", "en"), ("zh",), "en")
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


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def _cli(command: Any, rig: Rig, *argv: str) -> str:
    """Run one ``headend transcode|channel`` command against the rig; its stdout."""
    env = {"TRANSCODE_TARGET": rig.target, "HEADEND_API_KEY": await rig.tokens("admin")}
    out = io.StringIO()
    assert await command(_parse(*argv), env, out) == 0
    return out.getvalue()


async def _each_format(command: Any, rig: Rig, *argv: str) -> tuple[list[str], Any, list[str]]:
    """The table's lines, the parsed JSON, and the CSV header of one command."""
    table = (await _cli(command, rig, *argv)).splitlines()
    as_json = json.loads(await _cli(command, rig, *argv, "-o", "json"))
    reader = csv.reader(io.StringIO(await _cli(command, rig, *argv, "-o", "csv")))
    return table, as_json, next(reader)


async def test_the_cli_prints_jobs_nodes_and_channels_as_table_json_or_csv(
    rig: Rig, media: Media, redis: aioredis.Redis
) -> None:
    async with await _client(rig) as transcode:
        await transcode.submit_job(str(media.clip), asset="clip", job_id="j1")
    table, jobs, header = await _each_format(cli.list_jobs, rig, "transcode", "jobs")
    assert table[1].split()[:4] == ["j1", "queued", "clip", "0.0"]
    assert (jobs[0]["id"], jobs[0]["state"], jobs[0]["progress"]["percent"]) == ("j1", "queued", 0)
    assert header == list(cli.JOB_COLUMNS)
    cancelled = await _cli(cli.cancel_job, rig, "transcode", "cancel", "j1", "-o", "json")
    assert json.loads(cancelled)[0]["reason"] == "cancelled before it started"

    await NodeDirectory(redis).advertise(
        NodeInfo("n1", "county-a", capacity=4, load=1, channels=("c1", "c2")), ttl_seconds=60
    )
    table, nodes, header = await _each_format(cli.list_nodes, rig, "transcode", "nodes")
    assert table[0].split() == ["ID", "GROUP", "STATE", "LOAD", "CAPACITY", "CHANNELS"]
    assert table[1].split() == ["n1", "county-a", "active", "1", "4", "c1,c2"]
    assert nodes == [{"id": "n1", "group": "county-a", "capacity": 4, "load": 1,
                      "draining": False, "channels": ["c1", "c2"], "state": "active"}]  # fmt: skip
    assert header == list(cli.NODE_COLUMNS)
    drained = await _cli(cli.drain_node, rig, "transcode", "drain", "n1", "-o", "csv")
    assert [row["id"] for row in csv.DictReader(io.StringIO(drained))] == ["n1"]

    source = f"file://{media.clip}"
    await _cli(cli.start_channel, rig, "channel", "start", "loop", source, "--profile", "low")
    stopped = await _cli(cli.stop_channel, rig, "channel", "stop", "loop")
    assert stopped.splitlines()[1].split()[:2] == ["loop", "stopped"]
    table, channels, header = await _each_format(cli.list_channels, rig, "channel", "list")
    assert table[0].split() == [c.upper() for c in cli.CHANNEL_COLUMNS]
    assert table[1].split()[:2] == ["loop", "stopped"]
    assert (channels[0]["id"], channels[0]["state"], channels[0]["source"]) == (
        "loop", "stopped", source
    )  # fmt: skip
    assert channels[0]["channel"]["profile"] == "low"  # the configuration, whole
    assert header == list(cli.CHANNEL_COLUMNS)
    table, status, header = await _each_format(cli.channel_status, rig, "channel", "status", "loop")
    assert table[1].split()[:2] == ["loop", "stopped"]
    assert len(table) == 2  # no switches yet: no switch table under it
    assert (status[0]["reason"], status[0]["source_index"], status[0]["source_history"]) == (
        "stopped on request", -1, []
    )  # fmt: skip
    assert header == list(cli.STATUS_COLUMNS)
