"""The cue reconciler (``transcode/cuesync.py``) against a real EPG (``CueService`` and the
guide) and the farm's real Redis: a cue inserted is queued for a running channel (not a
stopped one), a cue cancelled before its start is taken out, a running one cancelled has
its return moved; programme boundaries only for the channels configured; while the EPG is
down every queue is kept; and the control server running it with the farm's playback key."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.client import EpgClient
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind
from epg.owners import OwnersSettings
from headend.auth import ADMIN, KeyStore
from headend.clock import utc_now
from headend.metrics import RpcMetrics
from headend.rpc import RpcSettings
from headend.settings import SettingsError
from tests.epg.support import channel, prog, serve_epg
from tests.support.farm import until
from transcode.alertcards import AlertCardSettings
from transcode.archive import write_plainly
from transcode.cuesync import CueSync, CueSyncMetrics, cue_sync
from transcode.domain import LiveChannel
from transcode.farm import ChannelIntents
from transcode.live.cuequeue import QueuedSignal, parse_member, placement_writes, queue_key
from transcode.live.splice import SegmentationDescriptor, TimeSignal, decode
from transcode.server import create_server
from transcode.settings import ControlSettings, CueSyncSettings, QueueSettings

# ---------------------------------------------------------------- settings


def test_the_defaults_and_a_full_environment() -> None:
    assert CueSyncSettings.from_env({}) == CueSyncSettings()
    assert CueSyncSettings() == CueSyncSettings(2.0, 600.0, 30.0, frozenset(), 30.0)
    settings = CueSyncSettings.from_env(
        {
            "TC_CUE_SYNC_SECONDS": "0.5",
            "TC_CUE_LOOKAHEAD_SECONDS": "120",
            "TC_CUE_LATE_SECONDS": "10",
            "TC_PROGRAMME_CUE_CHANNELS": "cctv1, gd1.gdtv.cn",
            "TC_PROGRAMME_CUE_SECONDS": "60",
        }
    )
    assert settings == CueSyncSettings(0.5, 120.0, 10.0, frozenset({"cctv1", "gd1.gdtv.cn"}), 60)
    assert settings.signals_programmes("cctv1")
    assert not settings.signals_programmes("cctv2")
    every = CueSyncSettings.from_env({"TC_PROGRAMME_CUE_CHANNELS": "*"})
    assert every.signals_programmes("cctv2")
    assert not CueSyncSettings().signals_programmes("cctv1")
    control = ControlSettings.from_env(
        {"REDIS_URL": "redis://localhost", "TC_PROGRAMME_CUE_CHANNELS": "*"}
    )
    assert control.cue_sync == every


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"TC_CUE_SYNC_SECONDS": "0"}, "TC_CUE_SYNC_SECONDS", id="interval"),
        pytest.param({"TC_CUE_LOOKAHEAD_SECONDS": "soon"}, "TC_CUE_LOOKAHEAD_SECONDS", id="ahead"),
        pytest.param({"TC_CUE_LATE_SECONDS": "-1"}, "TC_CUE_LATE_SECONDS", id="late"),
        pytest.param({"TC_CUE_LATE_SECONDS": "3601"}, "TC_CUE_LATE_SECONDS", id="late-too-long"),
        pytest.param(
            {"TC_PROGRAMME_CUE_CHANNELS": "cctv1,../etc"},
            "TC_PROGRAMME_CUE_CHANNELS",
            id="not-a-channel-id",
        ),
        pytest.param({"TC_PROGRAMME_CUE_SECONDS": "0"}, "TC_PROGRAMME_CUE_SECONDS", id="guide"),
        pytest.param(
            {"TC_CUE_LOOKAHEAD_SECONDS": "20"},
            "TC_CUE_LOOKAHEAD_SECONDS",
            id="window-shorter-than-the-guide-reads",
        ),
        pytest.param(
            {"TC_CUE_LOOKAHEAD_SECONDS": "30", "TC_CUE_SYNC_SECONDS": "60"},
            "TC_CUE_LOOKAHEAD_SECONDS",
            id="window-shorter-than-a-pass",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        CueSyncSettings.from_env(env)
    assert caught.value.name == variable


# ---------------------------------------------------------------- the reconciler


@dataclass
class Rig:
    redis: aioredis.Redis
    target: str
    playback_key: str
    cues: CueClient  # the admin's
    guide: EpgClient  # the admin's
    farm: ChannelIntents
    registry: CollectorRegistry
    epg_up: contextlib.AsyncExitStack
    stack: contextlib.AsyncExitStack

    def sync(self, **settings: Any) -> CueSync:
        """A reconciler as the control server builds it, driven pass by pass by the test
        (closed with the rig)."""
        sync = cue_sync(
            CueSyncSettings(**settings),
            OwnersSettings(target=self.target),
            api_key=self.playback_key,
            redis=self.redis,
            channels=self.farm,
            registry=self.registry,
        )
        self.stack.push_async_callback(sync.close)
        return sync

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def rig(redis: aioredis.Redis, keys: KeyStore, tokens: Any) -> AsyncIterator[Rig]:
    async with contextlib.AsyncExitStack() as stack:
        epg_up = contextlib.AsyncExitStack()
        epg = await epg_up.enter_async_context(serve_epg(redis, keys, tokens))
        stack.push_async_callback(epg_up.aclose)
        admin = await epg.token(ADMIN)
        guide = await stack.enter_async_context(EpgClient(epg.target, admin))
        cues = await stack.enter_async_context(CueClient(epg.target, admin))
        farm = ChannelIntents(redis, stop_wait_seconds=0)
        for number, channel_id in enumerate(("ch1", "ch2", "ch3"), start=1):
            await guide.create_channel(channel(channel_id, number=number))
            await farm.start(LiveChannel(id=channel_id, source="udp://239.1.1.1:5000"))
        await farm.stop("ch3")
        yield Rig(
            redis,
            epg.target,
            await epg.token("playback"),
            cues,
            guide,
            farm,
            CollectorRegistry(),
            epg_up,
            stack,
        )


async def _queued(redis: aioredis.Redis, channel_id: str) -> dict[str, QueuedSignal]:
    client: Any = redis
    return {s.id: s for s in map(parse_member, await client.zrange(queue_key(channel_id), 0, -1))}


def _break(cue_id: str, channel_id: str, start: datetime, seconds: float = 60.0) -> Cue:
    return Cue(cue_id, channel_id, CueKind.BREAK, start, seconds)


def _segmentation_type(section: bytes) -> int:
    info = decode(section)
    assert isinstance(info.command, TimeSignal)
    (descriptor,) = info.descriptors
    assert isinstance(descriptor, SegmentationDescriptor)
    return descriptor.segmentation_type_id


async def test_a_cue_is_queued_for_its_running_channel_and_taken_out_when_withdrawn(
    rig: Rig,
) -> None:
    start = utc_now().replace(microsecond=0) + timedelta(minutes=2)
    cue = await rig.cues.insert(_break("c1", "ch1", start))
    await rig.cues.insert(_break("c3", "ch3", start))  # ch3 is stopped
    await rig.cues.insert(_break("c9", "ch1", start + timedelta(hours=1)))  # past the window
    sync = rig.sync(lookahead_seconds=600)
    await sync.reconcile()
    queued = await _queued(rig.redis, "ch1")
    assert [(s.kind, s.at) for s in sorted(queued.values(), key=lambda s: s.at)] == [
        ("out", start),
        ("in", cue.end),
    ]
    assert await _queued(rig.redis, "ch2") == {}
    assert await _queued(rig.redis, "ch3") == {}
    assert rig.sample("transcode_cue_signals_queued_total") == 2

    await sync.reconcile()  # nothing changed: nothing written
    assert await _queued(rig.redis, "ch1") == queued
    assert rig.sample("transcode_cue_signals_queued_total") == 2

    await rig.cues.cancel("ch1", "c1")
    await sync.reconcile()
    assert await _queued(rig.redis, "ch1") == {}
    assert rig.sample("transcode_cue_signals_removed_total") == 2
    assert rig.sample("transcode_cue_sync_passes_total", outcome="ok") == 3


async def test_cancelling_a_running_cue_moves_its_return(rig: Rig) -> None:
    start = utc_now().replace(microsecond=0) - timedelta(seconds=5)
    await rig.cues.insert(_break("c1", "ch1", start, seconds=600))
    sync = rig.sync()
    await sync.reconcile()
    before = await _queued(rig.redis, "ch1")
    (planned,) = [s for s in before.values() if s.kind == "in"]
    assert planned.at == start + timedelta(seconds=600)
    # The node publishing the channel places the out on its next segment.
    await write_plainly(rig.redis, placement_writes("ch1", [before["c1/out"]]))

    ended = await rig.cues.cancel("ch1", "c1")
    await sync.reconcile()
    after = await _queued(rig.redis, "ch1")
    (moved,) = after.values()
    assert moved.kind == "in"
    assert moved.id != planned.id
    assert start < moved.at == ended.end <= utc_now()
    assert rig.sample("transcode_cue_signals_removed_total") == 1


@pytest.mark.parametrize(
    ("listed", "signalled"),
    [
        pytest.param(frozenset({"ch1"}), {"ch1"}, id="listed-channel-only"),
        pytest.param(frozenset({"*"}), {"ch1", "ch2"}, id="every-running-channel"),
        pytest.param(frozenset(), set(), id="none-by-default"),
    ],
)
async def test_programme_boundaries_are_signalled_for_the_channels_configured(
    rig: Rig, listed: frozenset[str], signalled: set[str]
) -> None:
    start = utc_now().replace(microsecond=0) + timedelta(minutes=1)
    for channel_id in ("ch1", "ch2", "ch3"):
        await rig.guide.put_programmes(channel_id, [prog(start, 10, ch=channel_id)])
    sync = rig.sync(programme_channels=listed)
    await sync.reconcile()
    for channel_id in ("ch1", "ch2"):
        queued = await _queued(rig.redis, channel_id)
        if channel_id not in signalled:
            assert queued == {}
            continue
        (first,) = await rig.guide.range(channel_id, start, start + timedelta(minutes=1))
        begins, ends = queued[f"prog-{first.id}/start"], queued[f"prog-{first.id}/end"]
        assert len(queued) == 2
        assert (begins.at, ends.at) == (first.start, first.stop)
        assert (begins.kind, ends.kind) == ("out", "in")  # one range per programme
        assert _segmentation_type(begins.section) == 0x10
        assert _segmentation_type(ends.section) == 0x11
    assert await _queued(rig.redis, "ch3") == {}  # stopped


async def test_the_guide_is_read_again_only_every_programme_seconds(rig: Rig) -> None:
    start = utc_now().replace(microsecond=0) + timedelta(minutes=1)
    await rig.guide.put_programmes("ch1", [prog(start, 10, ch="ch1", pid="news")])
    clock = [utc_now()]
    sync = CueSync(
        CueSyncSettings(programme_channels=frozenset({"ch1"}), programme_seconds=30),
        redis=rig.redis,
        channels=rig.farm,
        cues=CueClient(rig.target, rig.playback_key),
        guide=EpgClient(rig.target, rig.playback_key),
        metrics=CueSyncMetrics(rig.registry),
        now=lambda: clock[0],
    )
    rig.stack.push_async_callback(sync.close)
    await sync.reconcile()
    assert sorted(await _queued(rig.redis, "ch1")) == ["prog-news/end", "prog-news/start"]

    # The programme moves: seen at the next read of the guide, not before.
    await rig.guide.delete_programmes("ch1", ids=["news"])
    later = start + timedelta(minutes=2)
    await rig.guide.put_programmes("ch1", [prog(later, 10, ch="ch1", pid="film")])
    clock[0] += timedelta(seconds=29)
    await sync.reconcile()
    assert sorted(await _queued(rig.redis, "ch1")) == ["prog-news/end", "prog-news/start"]
    clock[0] += timedelta(seconds=1)
    await sync.reconcile()
    queued = await _queued(rig.redis, "ch1")
    assert sorted(queued) == ["prog-film/end", "prog-film/start"]
    assert queued["prog-film/start"].at == later


async def test_while_the_epg_is_down_passes_are_skipped_and_queues_kept(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    start = utc_now().replace(microsecond=0) + timedelta(minutes=2)
    await rig.cues.insert(_break("c1", "ch1", start))
    sync = rig.sync()
    await sync.reconcile()
    queued = await _queued(rig.redis, "ch1")
    assert len(queued) == 2

    await rig.epg_up.aclose()
    with caplog.at_level(logging.WARNING, logger="transcode.cuesync"):
        await sync.reconcile()
        await sync.reconcile()
    assert await _queued(rig.redis, "ch1") == queued
    assert rig.sample("transcode_cue_sync_passes_total", outcome="epg_unavailable") == 2
    assert rig.sample("transcode_cue_sync_passes_total", outcome="ok") == 1
    paused = [r for r in caplog.records if r.getMessage().startswith("cue sync paused")]
    assert len(paused) == 1  # once per outage


# ---------------------------------------------------------------- the control server


async def test_the_control_server_queues_cues_with_the_farms_playback_key(
    rig: Rig, keys: KeyStore, tmp_path: Path
) -> None:
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path,
        queue=QueueSettings(),
        embedded_node=False,
        owners=OwnersSettings(target=rig.target),
        alert_cards=AlertCardSettings(api_key=rig.playback_key, interval_seconds=300),
        cue_sync=CueSyncSettings(interval_seconds=0.1),
    )
    metrics = RpcMetrics()
    server, _port = await create_server(
        settings, redis=rig.redis, keys=keys, channels=rig.farm, metrics=metrics
    )
    try:
        start = utc_now().replace(microsecond=0) + timedelta(minutes=2)
        await rig.cues.insert(_break("c1", "ch2", start))

        async def queued() -> bool:
            return "c1/out" in await _queued(rig.redis, "ch2")

        await until("the cue queued by the control server's passes", queued, poll_seconds=0.05)
        value = metrics.registry.get_sample_value("transcode_cue_signals_queued_total")
        assert value == 2
    finally:
        await server.stop(0)


async def test_without_the_playback_key_the_control_server_syncs_no_cues(
    redis: aioredis.Redis, keys: KeyStore, tmp_path: Path
) -> None:
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path,
        queue=QueueSettings(),
        embedded_node=False,
    )
    metrics = RpcMetrics()
    server, _port = await create_server(
        settings, redis=redis, keys=keys, channels=ChannelIntents(redis), metrics=metrics
    )
    await server.stop(0)
    passes = metrics.registry.get_sample_value("transcode_cue_sync_passes_total", {"outcome": "ok"})
    assert passes is None
