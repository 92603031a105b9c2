"""Seeding twice against one real Redis comes up on the same world (``make demo`` again),
and the demo's live channels start as its plan says (one encrypted) unless they run."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.auth import PLAYBACK, KeyStore
from headend.local import BLACKOUT_SLATE
from headend.rpc import RpcSettings, bearer, client_channel
from headend.seed import (
    CHANNELS,
    DASH_CHANNEL,
    ENCRYPTED,
    KEY_ROTATION_SECONDS,
    MULTICAST,
    MULTICAST_CHANNEL,
    SLATE_TEXT,
    Plan,
    Targets,
    demo_live,
    demo_plan,
    make_sources,
    seed,
    start_live,
)
from protos import epg_pb2, epg_pb2_grpc, subscriber_pb2, subscriber_pb2_grpc
from tests.support.media import probe_streams
from tests.support.tokens import Tokens
from tests.support.world import Services, journey_plan, start_services
from transcode.archive import ArchiveIndex
from transcode.client import TranscodeClient
from transcode.domain import ChannelEncryption
from transcode.jobs import PackageFormat
from transcode.live import LiveManager
from transcode.live.detect import FREEZE_NOISE_DB
from transcode.server import create_server as create_transcode
from transcode.settings import (
    ControlSettings,
    LiveSettings,
    MulticastSettings,
    QueueSettings,
    SourceSettings,
)
from transcode.sources import SourceGuard

NOW = datetime(2026, 3, 2, 9, 40, tzinfo=UTC)


@pytest.fixture
async def services(redis: aioredis.Redis) -> AsyncIterator[Services]:
    """EPG and subscriber servers on port 0 over the test Redis."""
    up = await start_services(redis)
    yield up
    await up.stop()


def _targets(services: Services) -> Targets:
    return Targets(services.epg_target, services.subscriber_target)


async def _guide(services: Services, plan: Plan) -> dict[str, list[bytes]]:
    """Every channel as stored, and each guide's programmes over its plan's span."""
    md = bearer(services.api_key)
    async with client_channel(services.epg_target) as chan:
        epg = epg_pb2_grpc.EpgServiceStub(chan)
        listed = await epg.ListChannels(epg_pb2.ListChannelsRequest(), metadata=md)
        view = {"channels": [c.SerializeToString(deterministic=True) for c in listed.channels]}
        for channel_id, programmes in plan.guides.items():
            start, stop = min(p.start for p in programmes), max(p.stop for p in programmes)
            request = epg_pb2.ListProgrammesRequest(parent=f"channels/{channel_id}", page_size=1000)
            request.start.FromDatetime(start)
            request.stop.FromDatetime(stop)
            got = await epg.ListProgrammes(request, metadata=md)
            assert not got.next_page_token  # a plan's guide fits one page
            view[channel_id] = [p.SerializeToString(deterministic=True) for p in got.programmes]
    return view


async def _accounts(services: Services, plan: Plan) -> dict[str, Any]:
    """The carrier, packages and each subscriber with its version, entitlements and boxes
    (activation times aside: activating issues a new secret)."""
    md = bearer(services.api_key)
    carrier = plan.carrier_id
    async with client_channel(services.subscriber_target) as chan:
        subs = subscriber_pb2_grpc.SubscriberServiceStub(chan)
        view: dict[str, Any] = {
            "carrier": await subs.GetCarrier(
                subscriber_pb2.GetCarrierRequest(name=f"carriers/{carrier}"), metadata=md
            ),
            "packages": await subs.ListPackages(subscriber_pb2.ListPackagesRequest(), metadata=md),
        }
        for spec in plan.subscribers:
            sid = spec.subscriber_id
            devices = await subs.ListDevices(
                subscriber_pb2.ListDevicesRequest(parent=f"carriers/{carrier}/subscribers/{sid}"),
                metadata=md,
            )
            for device in devices.devices:
                device.ClearField("activate_time")
            view[sid] = (
                await subs.GetSubscriber(
                    subscriber_pb2.GetSubscriberRequest(
                        name=f"carriers/{carrier}/subscribers/{sid}"
                    ),
                    metadata=md,
                ),
                await subs.ListEntitlements(
                    subscriber_pb2.ListEntitlementsRequest(
                        parent=f"carriers/{carrier}/subscribers/{sid}"
                    ),
                    metadata=md,
                ),
                devices,
            )
    return view


async def _logs_in(services: Services, redis: aioredis.Redis, mac: str, secret: str) -> str:
    """The subscriber a box logs in as (the front door's call, with a playback key)."""
    _, token = await KeyStore(redis).create(PLAYBACK)
    async with client_channel(services.subscriber_target) as chan:
        login = await subscriber_pb2_grpc.SubscriberServiceStub(chan).DeviceLogin(
            subscriber_pb2.DeviceLoginRequest(mac=mac, device_secret=secret), metadata=bearer(token)
        )
    return str(login.subscriber_id)


@pytest.mark.parametrize(
    "make_plan",
    [pytest.param(demo_plan, id="demo"), pytest.param(journey_plan, id="journey")],
)
async def test_seeding_twice_comes_up_on_the_same_world(
    services: Services, redis: aioredis.Redis, make_plan: Callable[[datetime], Plan]
) -> None:
    plan = make_plan(NOW)
    first = await seed(plan, _targets(services), services.api_key)
    guide, accounts = await _guide(services, plan), await _accounts(services, plan)

    again = await seed(plan, _targets(services), services.api_key)

    assert await _guide(services, plan) == guide
    assert await _accounts(services, plan) == accounts
    assert (again.carrier, again.programmes) == (first.carrier, first.programmes)
    assert {k: (b.mac, b.subscriber) for k, b in again.boxes.items()} == {
        k: (b.mac, b.subscriber) for k, b in first.boxes.items()
    }
    for box in again.boxes.values():
        assert await _logs_in(services, redis, box.mac, box.secret) == box.subscriber


async def test_a_later_run_keeps_the_accounts_and_brings_the_guide_up_to_date(
    services: Services,
) -> None:
    # The crash this guards against: the demo's second run sent the same idempotency keys
    # with a new service end ("idempotency_key: already used with a different request").
    await seed(demo_plan(NOW), _targets(services), services.api_key)
    accounts = await _accounts(services, demo_plan(NOW))
    later = demo_plan(NOW + timedelta(hours=5))

    await seed(later, _targets(services), services.api_key)

    assert await _accounts(services, later) == accounts
    guide = await _guide(services, later)
    assert all(len(guide[cid]) == len(later.guides[cid]) for cid in later.guides)


@pytest.fixture
async def transcode(redis: aioredis.Redis, keys: KeyStore, tmp_path: Path) -> AsyncIterator[str]:
    """A TranscodeService (no content keys: an encrypted channel runs, publishing nothing)
    whose channels may read files under ``tmp_path``; its target."""
    origin = tmp_path / "origin"
    sources = SourceSettings(media_roots=(tmp_path,))
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0), redis_url="unused://", origin_root=origin,
        queue=QueueSettings(), sources=sources,
    )  # fmt: skip
    manager = LiveManager(
        redis=redis, archive=ArchiveIndex(redis), origin_root=origin, sources=SourceGuard(sources),
        # No multicast sent from the host's namespace (the kids channel has a group).
        settings=LiveSettings(multicast=MulticastSettings(enabled=False)),
    )  # fmt: skip
    server, port = await create_transcode(settings, redis=redis, keys=keys, channels=manager)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await manager.close()
        await server.stop(0)


async def test_the_demo_encrypts_one_channel_and_keeps_a_running_one_as_it_runs(
    transcode: str, tokens: Tokens, tmp_path: Path
) -> None:
    sources = {}
    for ch in CHANNELS:
        sources[ch.channel_id] = tmp_path / f"{ch.channel_id}.mp4"
        sources[ch.channel_id].write_bytes(b"")  # never played: the channels' config is checked
    targets, admin = Targets("", "", transcode), await tokens()
    clear = [replace(spec, encryption=ChannelEncryption()) for spec in demo_live(sources)]
    # An earlier demo left the news channel running clear: seeding keeps it so.
    assert await start_live(targets, admin, [clear[1]]) == [ENCRYPTED]

    started = await start_live(targets, admin, demo_live(sources))

    # Every other channel, and the slate card blacked-out boxes see.
    assert started == [
        *(c.channel_id for c in CHANNELS if c.channel_id != ENCRYPTED),
        BLACKOUT_SLATE,
    ]
    async with TranscodeClient(transcode, admin) as client:
        listed = await client.list_channels()
    running = {s.channel.id: s.channel.encryption for s in listed}
    # The news channel stays clear until it is stopped.
    assert running == {c: ChannelEncryption() for c in (*(c.channel_id for c in CHANNELS),
                                                         BLACKOUT_SLATE)}  # fmt: skip
    tracks = {s.channel.id: (s.channel.audio_languages, s.channel.subtitle_languages)
              for s in listed}  # fmt: skip
    assert tracks == {"btv1.bj.cn": (("zh", "en"), ("zh", "en")),
                      "btv-news.bj.cn": ((), ()), "btv-kids.bj.cn": ((), ()),
                      BLACKOUT_SLATE: ((), ())}  # fmt: skip
    groups = {s.channel.id: s.channel.multicast for s in listed if s.channel.multicast}
    assert groups == {MULTICAST_CHANNEL: MULTICAST}
    assert {s.channel.id: s.channel.formats for s in listed if s.channel.formats} == {
        DASH_CHANNEL: (PackageFormat.CMAF,)
    }
    slate = next(s.channel for s in listed if s.channel.id == BLACKOUT_SLATE)
    assert slate.card is not None
    assert (slate.source, slate.card.text) == ("", SLATE_TEXT)
    async with TranscodeClient(transcode, admin) as client:
        await client.stop_channel(ENCRYPTED)
    assert await start_live(targets, admin, demo_live(sources)) == [ENCRYPTED]
    async with TranscodeClient(transcode, admin) as client:
        news = next(s for s in await client.list_channels() if s.channel.id == ENCRYPTED)
    assert news.channel.encryption == ChannelEncryption(True, KEY_ROTATION_SECONDS)


def test_no_demo_source_looks_frozen_to_the_live_ingest(tmp_path: Path) -> None:
    # The ingest's own freeze filter (its noise floor), over two seconds: a still test
    # card would put its channel on the slate for the whole demo.
    sources = make_sources(tmp_path)
    assert set(sources) == {c.channel_id for c in CHANNELS}
    for channel, path in sources.items():
        probe = subprocess.run(
            ["ffmpeg", "-v", "info", "-i", str(path), "-an", "-vf",
             f"freezedetect=n={FREEZE_NOISE_DB}:d=2,metadata=mode=print", "-f", "null", "-"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "freeze_start" not in probe.stderr, channel
    # The multilingual channel's source has the streams its channel names, in order.
    streams = probe_streams(sources["btv1.bj.cn"])
    languages = [
        (s["codec_type"], s["tags"]["language"])  # type: ignore[index]
        for s in streams
        if s["codec_type"] in ("audio", "subtitle")
    ]
    assert languages == [("audio", "zh"), ("audio", "en"), ("subtitle", "zh"), ("subtitle", "en")]
