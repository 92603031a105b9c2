"""Channel RPCs when things go wrong: a Redis outage is UNAVAILABLE with a RetryInfo (never
UNKNOWN), a failed supervisor does not poison StopChannel, malformed requests are
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from tests.support.live import LiveRig, channel_processes, live_rig
from tests.support.media import Media
from tests.support.tokens import Tokens
from transcode.live import Phase, channel_key
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings

pytestmark = pytest.mark.xdist_group("live")


@dataclass
class Rig:
    stub: pb_grpc.TranscodeServiceStub
    admin: tuple[tuple[str, str], ...]
    live: LiveRig
    clip: Path


@pytest.fixture
async def rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    media: Media,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    # Keys and the job queue stay on the session's Redis; the channels' Redis is the
    # one that fails.
    async with live_rig(tmp_path, media_roots=source_settings.media_roots) as live:
        settings = ControlSettings(
            rpc=RpcSettings(port=0, grace_seconds=0),
            redis_url="unused://",
            origin_root=live.root,
            queue=QueueSettings(),
            sources=source_settings,
        )
        server, port = await create_server(settings, redis=redis, keys=keys, channels=live.manager)
        channel = client_channel(f"127.0.0.1:{port}")
        try:
            yield Rig(
                pb_grpc.TranscodeServiceStub(channel), bearer(await tokens()), live, media.clip
            )
        finally:
            await channel.close()
            await server.stop(0)


def _channel(rig: Rig, channel_id: str) -> pb.Channel:
    return pb.Channel(
        name=f"channels/{channel_id}", source=f"file://{rig.clip}", profile="low", segment_seconds=1
    )


async def _until(rig: Rig, channel: str, phase: Phase) -> None:
    recorder = rig.live.recorder
    async with asyncio.timeout(60):
        await recorder.until(lambda: phase in recorder.phases[channel])


async def _unavailable(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert error_details(info.value).retry_delay_seconds is not None


async def test_a_redis_outage_is_unavailable_with_retry_and_stop_still_stops(rig: Rig) -> None:
    await rig.stub.StartChannel(
        pb.StartChannelRequest(channel=_channel(rig, "a.ch")), metadata=rig.admin
    )
    await _until(rig, "a.ch", Phase.LIVE)
    await rig.live.kill_redis()
    await _until(rig, "a.ch", Phase.STORE_DOWN)

    # A channel running here still reports, from memory: degraded, and why.
    status = await rig.stub.GetChannel(
        pb.GetChannelRequest(name="channels/a.ch"), metadata=rig.admin
    )
    assert status.state == pb.CHANNEL_STATE_DEGRADED
    assert "store unavailable" in status.reason
    await _unavailable(rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin))
    await _unavailable(
        rig.stub.StartChannel(
            pb.StartChannelRequest(channel=_channel(rig, "b.ch")), metadata=rig.admin
        )
    )
    # Stopped here at once; only saving that waits for Redis, which the caller is told.
    await _unavailable(
        rig.stub.StopChannel(pb.StopChannelRequest(name="channels/a.ch"), metadata=rig.admin)
    )
    assert rig.live.manager.supervisor("a.ch") is None
    assert not channel_processes("a.ch")

    await rig.live.start_redis()
    stopped = await rig.stub.StopChannel(
        pb.StopChannelRequest(name="channels/a.ch"), metadata=rig.admin
    )
    assert stopped.state == pb.CHANNEL_STATE_STOPPED
    saved = await rig.live.redis.hgetall(channel_key("a.ch"))
    assert (saved[b"state"], saved[b"desired"]) == (b"STOPPED", b"stopped")


async def test_a_failed_supervisor_reports_recovering_and_stops_cleanly(rig: Rig) -> None:
    work = rig.live.root / "live" / "c.ch" / ".work"
    work.parent.mkdir(parents=True)
    work.write_text("a file where the work directory goes")
    await rig.stub.StartChannel(
        pb.StartChannelRequest(channel=_channel(rig, "c.ch")), metadata=rig.admin
    )
    await _until(rig, "c.ch", Phase.FAILED)
    status = await rig.stub.GetChannel(
        pb.GetChannelRequest(name="channels/c.ch"), metadata=rig.admin
    )
    assert status.state == pb.CHANNEL_STATE_RECOVERING
    assert "NotADirectoryError" in status.reason
    stopped = await rig.stub.StopChannel(
        pb.StopChannelRequest(name="channels/c.ch"), metadata=rig.admin
    )
    assert stopped.state == pb.CHANNEL_STATE_STOPPED


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        pytest.param(
            pb.Channel(name="channels/", source="udp://239.1.1.1:5000"), "channel.name", id="no-id"
        ),
        pytest.param(
            pb.Channel(name="channels/a b", source="udp://239.1.1.1:5000"),
            "channel.name",
            id="bad-id",
        ),
        pytest.param(
            pb.Channel(name="channels/a.ch", source="ftp://x/y"), "channel.source", id="scheme"
        ),
        pytest.param(
            pb.Channel(name="channels/a.ch", source="udp://239.1.1.1:5000", profile="huge"),
            "profile",
            id="profile",
        ),
        pytest.param(
            pb.Channel(name="channels/a.ch", source="udp://239.1.1.1:5000", segment_seconds=11),
            "channel.segment_seconds",
            id="segment",
        ),
        pytest.param(
            pb.Channel(name="channels/a.ch", source="udp://239.1.1.1:5000", window_segments=3),
            "channel.window_segments",
            id="window",
        ),
    ],
)
async def test_malformed_start_is_invalid_argument(
    rig: Rig, channel: pb.Channel, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(pb.StartChannelRequest(channel=channel), metadata=rig.admin)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields


@pytest.mark.parametrize("channel_id", ["", "../etc", "a b", "x" * 200])
async def test_malformed_channel_ids_are_invalid_argument(rig: Rig, channel_id: str) -> None:
    for call in (
        rig.stub.StopChannel(
            pb.StopChannelRequest(name=f"channels/{channel_id}"), metadata=rig.admin
        ),
        rig.stub.GetChannel(
            pb.GetChannelRequest(name=f"channels/{channel_id}"), metadata=rig.admin
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in error_details(info.value).fields
