"""The gRPC TranscodeService on a real server: jobs, streaming progress, channels, errors;
and the transcode processes' start-up failures and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from headend.redisproc import RedisServer
from headend.rpc import bearer, error_details
from headend.rpc.server import EXIT_FAILED, EXIT_SETTINGS, EXIT_STOPPED
from protos import transcode_pb2 as pb
from tests.support.media import Media
from tests.support.transcode_rig import Rig
from transcode import cli
from transcode.settings import QueueSettings
from transcode.worker import Worker, vod_packager


async def test_submit_watch_get_list(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="clip", profile="low"),
        metadata=rig.admin,
    )
    assert job.state == pb.JOB_STATE_QUEUED
    assert job.name.startswith("jobs/")
    stop = asyncio.Event()
    worker = Worker(
        queue=rig.queue,
        packager=vod_packager(origin_root=rig.origin, work_dir=None, sources=rig.sources),
        consumer="w1",
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=100,
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        events = [
            e
            async for e in rig.stub.WatchJob(pb.WatchJobRequest(name=job.name), metadata=rig.admin)
        ]
    finally:
        stop.set()
        await task
    states = [e.state for e in events]
    assert states[0] == pb.JOB_STATE_QUEUED
    assert states[-1] == pb.JOB_STATE_SUCCEEDED
    assert pb.JOB_STATE_RUNNING in states
    percents = [e.progress.percent for e in events if e.state == pb.JOB_STATE_RUNNING]
    assert percents == sorted(percents)
    assert events[-1].progress.percent == 100.0
    got = await rig.stub.GetJob(pb.GetJobRequest(name=job.name), metadata=rig.admin)
    assert (got.state, got.output, got.worker) == (
        pb.JOB_STATE_SUCCEEDED,
        "/vod/clip/master.m3u8",
        "w1",
    )
    assert (rig.origin / "vod/clip/master.m3u8").is_file()
    listed = await rig.stub.ListJobs(
        pb.ListJobsRequest(state=pb.JOB_STATE_SUCCEEDED), metadata=rig.admin
    )
    assert [j.name for j in listed.jobs] == [job.name]
    none = await rig.stub.ListJobs(
        pb.ListJobsRequest(state=pb.JOB_STATE_FAILED), metadata=rig.admin
    )
    assert list(none.jobs) == []


async def test_cancel_queued_job(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="c", job_id="j-cancel"),
        metadata=rig.admin,
    )
    cancelled = await rig.stub.CancelJob(pb.CancelJobRequest(name=job.name), metadata=rig.admin)
    assert cancelled.state == pb.JOB_STATE_CANCELLED
    assert cancelled.reason == "cancelled before it started"
    events = [
        e async for e in rig.stub.WatchJob(pb.WatchJobRequest(name=job.name), metadata=rig.admin)
    ]
    assert [e.state for e in events] == [pb.JOB_STATE_QUEUED, pb.JOB_STATE_CANCELLED]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(pb.SubmitJobRequest(asset="a"), "source", id="missing-source"),
        pytest.param(
            pb.SubmitJobRequest(source="rel/path.mp4", asset="a"), "source", id="relative"
        ),
        pytest.param(
            pb.SubmitJobRequest(source="/m/a.mp4", asset="Bad Asset"), "asset", id="asset"
        ),
        pytest.param(
            pb.SubmitJobRequest(source="/m/a.mp4", asset="a", profile="../x"),
            "profile",
            id="profile",
        ),
        pytest.param(
            pb.SubmitJobRequest(
                source="/m/a.mp4",
                asset="a",
                subtitles=[pb.Job.Subtitle(uri="/m/a.txt", language="en")],
            ),
            "subtitles[0].uri",
            id="subtitle-not-a-subtitle-file",
        ),
        pytest.param(
            pb.SubmitJobRequest(
                source="/m/a.mp4",
                asset="a",
                subtitles=[pb.Job.Subtitle(uri="/m/a.srt", language="English")],
            ),
            "subtitles[0].language",
            id="subtitle-language",
        ),
        pytest.param(
            pb.SubmitJobRequest(
                source="/m/a.mp4",
                asset="a",
                subtitles=[pb.Job.Subtitle(uri="/etc/passwd.srt", language="en")],
            ),
            "subtitles[0].uri",
            id="subtitle-outside-media-roots",
        ),
        pytest.param(
            pb.SubmitJobRequest(source="/m/a.mp4", asset="a", audio_language="中文"),
            "audio_language",
            id="audio-language",
        ),
    ],
)
async def test_bad_submit_is_invalid_argument_and_queues_nothing(
    rig: Rig, request_: pb.SubmitJobRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(request_, metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields
    listed = await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)
    assert list(listed.jobs) == []


async def test_duplicate_job_id_already_exists(rig: Rig, media: Media) -> None:
    first, second = str(media.clip), str(media.long_clip)
    req = pb.SubmitJobRequest(source=first, asset="a", job_id="dup")
    await rig.stub.SubmitJob(req, metadata=rig.admin)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(
            pb.SubmitJobRequest(source=second, asset="b", job_id="dup"), metadata=rig.admin
        )
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    got = await rig.stub.GetJob(pb.GetJobRequest(name="jobs/dup"), metadata=rig.admin)
    assert got.source == first


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("GetJob", id="get"),
        pytest.param("CancelJob", id="cancel"),
    ],
)
async def test_unknown_job_not_found(rig: Rig, call: str) -> None:
    request = (
        pb.GetJobRequest(name="jobs/nope")
        if call == "GetJob"
        else pb.CancelJobRequest(name="jobs/nope")
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, call)(request, metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(info.value).reason == "JOB_NOT_FOUND"


async def test_watch_unknown_job_not_found(rig: Rig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in rig.stub.WatchJob(pb.WatchJobRequest(name="jobs/nope"), metadata=rig.admin):
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "who",
    [pytest.param("carrier:acme", id="carrier"), pytest.param("broadcaster:tv1", id="broadcaster")],
)
async def test_non_admin_is_denied_and_nothing_changes(rig: Rig, who: str) -> None:
    other = bearer(await rig.tokens(who))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(pb.SubmitJobRequest(source="/m/a.mp4", asset="a"), metadata=other)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(
            pb.StartChannelRequest(
                channel=pb.Channel(name="channels/c1", source="udp://239.1.1.1:5000")
            ),
            metadata=other,
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list((await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)).jobs) == []
    assert (
        list((await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)).channels)
        == []
    )


async def test_missing_key_is_unauthenticated(rig: Rig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.ListJobs(pb.ListJobsRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


_BAD_MULTICAST: list[tuple[str, dict[str, Any], str]] = [
    ("unicast-group", {"group": "10.0.0.1"}, "group"),
    ("control-block", {"group": "224.0.0.251"}, "group"),
    ("not-an-address", {"group": "239.1.1"}, "group"),
    ("port", {"port": 0}, "port"),
    ("port-too-high", {"port": 70000}, "port"),
    ("ttl", {"ttl": 300}, "ttl"),
    ("interface", {"interface": "eth0"}, "interface"),
    ("rung", {"rung": "../x"}, "rung"),
    ("mux-rate", {"mux_rate_kbps": 100}, "mux_rate_kbps"),
    ("region", {"regions": ["99"]}, "regions[0]"),
    ("protocol", {"protocol": 7}, "protocol"),
]


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        pytest.param(
            pb.Channel(name="channels/c1", source="rtmp://x/y"), "channel.source", id="scheme"
        ),
        pytest.param(
            pb.Channel(name="channels/c1", source="udp://239.1.1.1"), "channel.source", id="no-port"
        ),
        pytest.param(
            pb.Channel(name="channels/C 1", source="udp://1.2.3.4:5"), "channel.name", id="name"
        ),
        pytest.param(
            pb.Channel(name="channels/c1", source="udp://239.1.2.3:5", window_segments=3),
            "channel.window_segments",
            id="window-too-short",
        ),
        pytest.param(
            pb.Channel(name="channels/c1", source="udp://239.1.2.3:5", profile="nope"),
            "profile",
            id="profile",
        ),
        pytest.param(
            pb.Channel(name="channels/c1", source="udp://1.2.3.4:5"),
            "channel.source",
            id="not-allowed-host",
        ),
        pytest.param(
            pb.Channel(name="channels/c1", source="udp://239.1.2.3:5", audio_languages=["zh", "x"]),
            "channel.audio_languages[1]",
            id="audio-language",
        ),
        pytest.param(
            pb.Channel(
                name="channels/c1", source="udp://239.1.2.3:5", audio_languages=["zh", "chi"]
            ),
            "channel.audio_languages",
            id="audio-language-twice",
        ),
        pytest.param(
            pb.Channel(
                name="channels/c1",
                source="udp://239.1.2.3:5",
                audio_languages=["zh", "en"],
                audio_language="fr",
            ),
            "channel.audio_language",
            id="default-not-a-track",
        ),
        pytest.param(
            pb.Channel(
                name="channels/c1", source="udp://239.1.2.3:5", subtitle_languages=["e"] * 9
            ),
            "channel.subtitle_languages",
            id="too-many-subtitles",
        ),
        *(
            pytest.param(
                pb.Channel(
                    name="channels/c1",
                    source="udp://239.1.2.3:5",
                    multicast=pb.Multicast(**{"group": "239.9.9.9", "port": 5000, **bad}),
                ),
                f"channel.multicast.{field}",
                id=f"multicast-{case}",
            )
            for case, bad, field in _BAD_MULTICAST
        ),
    ],
)
async def test_bad_channel_is_invalid_argument(rig: Rig, channel: pb.Channel, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(pb.StartChannelRequest(channel=channel), metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields
    assert (
        list((await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)).channels)
        == []
    )


async def test_channel_start_get_stop(rig: Rig, media: Media) -> None:
    started = await rig.stub.StartChannel(
        pb.StartChannelRequest(
            channel=pb.Channel(
                name="channels/loop",
                source=f"file://{media.clip}",
                profile="low",
                segment_seconds=2,
            )
        ),
        metadata=rig.admin,
    )
    assert started.state == pb.CHANNEL_STATE_STARTING
    assert started.channel.window_segments == 6
    assert started.channel.catchup_days == 7
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(
            pb.StartChannelRequest(
                channel=pb.Channel(name="channels/loop", source=f"file://{media.clip}")
            ),
            metadata=rig.admin,
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await rig.stub.GetChannel(pb.GetChannelRequest(name="channels/loop"), metadata=rig.admin)
    assert got.channel.source == f"file://{media.clip}"
    stopped = await rig.stub.StopChannel(
        pb.StopChannelRequest(name="channels/loop"), metadata=rig.admin
    )
    assert stopped.state == pb.CHANNEL_STATE_STOPPED
    listed = await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)
    assert [(c.channel.name, c.state) for c in listed.channels] == [
        ("channels/loop", pb.CHANNEL_STATE_STOPPED)
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.GetChannel(pb.GetChannelRequest(name="channels/other"), metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(info.value).reason == "CHANNEL_NOT_FOUND"


async def test_list_jobs_pages_newest_first_and_refuses_a_token_of_another_state(
    rig: Rig, media: Media
) -> None:
    for job_id in ("j1", "j2", "j3", "j4"):
        await rig.stub.SubmitJob(
            pb.SubmitJobRequest(source=str(media.clip), asset="a", job_id=job_id),
            metadata=rig.admin,
        )
    await rig.stub.CancelJob(pb.CancelJobRequest(name="jobs/j3"), metadata=rig.admin)

    first = await rig.stub.ListJobs(pb.ListJobsRequest(page_size=3), metadata=rig.admin)
    last = await rig.stub.ListJobs(
        pb.ListJobsRequest(page_size=3, page_token=first.next_page_token), metadata=rig.admin
    )
    assert [j.name for j in first.jobs] == ["jobs/j4", "jobs/j3", "jobs/j2"]
    assert ([j.name for j in last.jobs], last.next_page_token) == (["jobs/j1"], "")

    queued, token = [], ""
    while True:
        got = await rig.stub.ListJobs(
            pb.ListJobsRequest(state=pb.JOB_STATE_QUEUED, page_size=1, page_token=token),
            metadata=rig.admin,
        )
        queued += [j.name for j in got.jobs]
        token = got.next_page_token
        if not token:
            break
    assert queued == ["jobs/j4", "jobs/j2", "jobs/j1"]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.ListJobs(
            pb.ListJobsRequest(
                state=pb.JOB_STATE_CANCELLED, page_size=3, page_token=first.next_page_token
            ),
            metadata=rig.admin,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in error_details(info.value).fields


@pytest.mark.parametrize(
    ("call", "request_", "field"),
    [
        pytest.param("GetJob", pb.GetJobRequest(name="j1"), "name", id="job-bare-id"),
        pytest.param("GetJob", pb.GetJobRequest(name="jobs/J 1"), "name", id="job-bad-id"),
        pytest.param("CancelJob", pb.CancelJobRequest(name="channels/j1"), "name", id="cancel"),
        pytest.param("ListJobs", pb.ListJobsRequest(page_size=-1), "page_size", id="page-size"),
        pytest.param("ListJobs", pb.ListJobsRequest(page_token="x"), "page_token", id="token"),
        pytest.param("GetChannel", pb.GetChannelRequest(name="jobs/c1"), "name", id="channel"),
        pytest.param("StopChannel", pb.StopChannelRequest(name="channels/c1/x"), "name", id="stop"),
        pytest.param(
            "StartChannel",
            pb.StartChannelRequest(channel=pb.Channel(name="c1", source="udp://239.1.1.1:5000")),
            "channel.name",
            id="start",
        ),
        pytest.param("DrainNode", pb.DrainNodeRequest(name="node-1"), "name", id="node"),
        pytest.param(
            "ListNodes", pb.ListNodesRequest(page_token="nope"), "page_token", id="nodes-token"
        ),
    ],
)
async def test_bad_names_and_pages_are_invalid_argument_on_their_field(
    rig: Rig, call: str, request_: object, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(rig.stub, call)(request_, metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_cli_submit_wait_jobs_cancel(rig: Rig, media: Media) -> None:
    env = {"TRANSCODE_TARGET": f"127.0.0.1:{rig.port}", "HEADEND_API_KEY": rig.admin[0][1][7:]}
    stop = asyncio.Event()
    worker = Worker(
        queue=rig.queue,
        packager=vod_packager(origin_root=rig.origin, work_dir=None, sources=rig.sources),
        consumer="w-cli",
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=100,
    )
    task = asyncio.create_task(worker.run(stop))
    out = io.StringIO()
    try:
        args = _parse("transcode", "submit", str(media.clip), "--asset", "cli", "--profile",
                      "low", "--job-id", "cli1", "--wait")  # fmt: skip
        assert await cli.submit_job(args, env, out) == 0
        missing = str(media.clip.parent / "nonexistent.mp4")
        bad = _parse("transcode", "submit", missing, "--asset", "x", "--job-id",
                     "cli2", "--wait")  # fmt: skip
        assert await cli.submit_job(bad, env, out) == 1
    finally:
        stop.set()
        await task
    assert out.getvalue().splitlines()[:2] == ["job cli1 queued", "job cli1 succeeded"]
    assert "job cli2 failed SourceNotFound" in out.getvalue()
    listing = io.StringIO()
    assert (
        await cli.list_jobs(_parse("transcode", "jobs", "--state", "succeeded"), env, listing) == 0
    )
    assert [line.split()[:2] for line in listing.getvalue().splitlines()] == [
        ["ID", "STATE"],
        ["cli1", "succeeded"],
    ]
    as_json, as_csv = io.StringIO(), io.StringIO()
    succeeded = ("transcode", "jobs", "--state", "succeeded")
    assert await cli.list_jobs(_parse(*succeeded, "-o", "json"), env, as_json) == 0
    [job] = json.loads(as_json.getvalue())
    assert (job["id"], job["state"], job["progress"]["percent"]) == ("cli1", "succeeded", 100.0)
    assert await cli.list_jobs(_parse(*succeeded, "-o", "csv"), env, as_csv) == 0
    reader = csv.DictReader(io.StringIO(as_csv.getvalue()))
    assert reader.fieldnames == list(cli.JOB_COLUMNS)
    assert [(row["id"], row["percent"]) for row in reader] == [("cli1", "100.0")]
    with pytest.raises(cli.CliError):
        await cli.list_jobs(_parse("transcode", "jobs"), {}, listing)


# ---------------------------------------------------------------- the processes


async def _process(module: str, env: dict[str, str], tmp_path: Path) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TC_", "ORIGIN_"))}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module,
        env={**clean, "ORIGIN_ROOT": str(tmp_path / "origin"), **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _exit(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize(
    ("module", "env", "code", "needle"),
    [
        pytest.param("transcode", {"REDIS_URL": "redis://x", "TRANSCODE_GRPC_PORT": "http"},
                     EXIT_SETTINGS, "transcode: setting TRANSCODE_GRPC_PORT", id="control-setting"),
        pytest.param("transcode", {"REDIS_URL": "unix:///nonexistent/redis.sock"},
                     EXIT_FAILED, "transcode: cannot reach Redis", id="control-no-redis"),
        pytest.param("transcode.origin", {"REDIS_URL": "redis://x", "ORIGIN_PORT": "http"},
                     EXIT_SETTINGS, "transcode-origin: setting ORIGIN_PORT", id="origin-setting"),
        pytest.param("transcode.origin", {"REDIS_URL": "unix:///nonexistent/redis.sock"},
                     EXIT_FAILED, "transcode-origin: cannot reach Redis", id="origin-no-redis"),
        pytest.param("transcode.worker", {},
                     EXIT_SETTINGS, "transcode-worker: setting REDIS_URL", id="worker-setting"),
        pytest.param("transcode.worker", {"REDIS_URL": "unix:///nonexistent/redis.sock"},
                     EXIT_FAILED, "transcode-worker: cannot reach Redis", id="worker-no-redis"),
    ],
)  # fmt: skip
async def test_every_transcode_process_fails_to_start_with_one_line_and_the_same_codes(
    module: str, env: dict[str, str], code: int, needle: str, tmp_path: Path
) -> None:
    returncode, err = await _exit(await _process(module, env, tmp_path))

    assert returncode == code
    (line,) = err.strip().splitlines()
    assert line.startswith(needle)


@pytest.mark.parametrize(
    ("module", "port_variable"),
    [
        pytest.param("transcode", "TRANSCODE_GRPC_PORT", id="control"),
        pytest.param("transcode.origin", "ORIGIN_PORT", id="origin"),
    ],
)
async def test_a_transcode_server_on_a_busy_port_exits_failed(
    module: str, port_variable: str, redis: aioredis.Redis, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"REDIS_URL": redis_server.url, port_variable: str(port)}
        returncode, err = await _exit(await _process(module, env, tmp_path))

    assert returncode == EXIT_FAILED
    assert f"cannot listen on 127.0.0.1:{port}" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("module", "env"),
    [
        pytest.param("transcode", {"TRANSCODE_GRPC_PORT": "0", "TRANSCODE_DRAIN_SECONDS": "0"},
                     id="control"),
        pytest.param("transcode.origin", {"ORIGIN_PORT": "0"}, id="origin"),
    ],
)  # fmt: skip
async def test_a_transcode_server_stops_on_sigterm_with_exit_zero(
    module: str, env: dict[str, str], redis: aioredis.Redis, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    proc = await _process(module, {"REDIS_URL": redis_server.url, **env}, tmp_path)
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, "the process exited before it was ready"
        if json.loads(line)["msg"] == f"{module.replace('.', '-')} service ready":
            break

    proc.send_signal(signal.SIGTERM)

    returncode, err = await _exit(proc)
    assert returncode == EXIT_STOPPED, err
