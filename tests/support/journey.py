"""The whole platform for the set-top box journey, in this process and its children.

Real Redis, EPG and subscriber gRPC servers (port 0), transcode's gRPC
control with a live channel fed by FFmpeg ``testsrc2`` over UDP loopback
(2 s segments, the "low" ladder), the origin, three nginx edges, and the
routing face with the front door (port 0), seeded with the
:func:`tests.support.world.journey_plan` world.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.edge import EdgeConfig, EdgeProcess
from cdn_ctl.frontdoor.app import FrontDoor
from cdn_ctl.health import HealthPolicy
from cdn_ctl.routing import Controller
from cdn_ctl.server import RoutingProcess
from cdn_ctl.server import create_server as create_cdn
from cdn_ctl.settings import CdnSettings
from cdn_ctl.store import EdgeStore
from epg.owners import OwnersSettings
from headend.auth import PLAYBACK, KeyStore, Principal
from headend.contentkeys import ContentKeySettings
from headend.pki import LocalPki
from headend.redisconn import RedisSettings, connect
from headend.rpc import RpcSettings
from headend.seed import LiveSpec, Targets, World, start_live
from tests.support.console import console_face
from tests.support.live import Feed
from tests.support.net import free_port
from tests.support.world import (
    LIVE,
    OTHER_REGION,
    REGION,
    RING,
    Services,
    frontdoor_settings,
    seed_world,
    server_rpc,
    start_services,
)
from transcode.alertcards import AlertCardSettings
from transcode.archive import ArchiveIndex
from transcode.client import TranscodeClient
from transcode.jobs import PackageFormat
from transcode.live import LiveManager
from transcode.live.encryption import live_encryption
from transcode.origin import start_origin
from transcode.server import create_server as create_transcode
from transcode.settings import (
    ControlSettings,
    CueSyncSettings,
    OriginSettings,
    QueueSettings,
    SourceSettings,
)
from transcode.sources import SourceGuard

# The emergency feed of ``build_stack(emergency=True)``.
EMERGENCY = "emergency.cn"


@dataclass
class Stack:
    """Everything the journey tests talk to."""

    url: str
    world: World
    services: Services
    edges: list[EdgeProcess]
    frontdoor: FrontDoor
    controller: Controller
    origin_port: int
    admin_url: str = ""
    channel: str = LIVE
    # With ``console=True``: the operator console's URL, and the live channel's feed (a
    # test cuts the source with ``feed.stop()``).
    console_url: str = ""
    feed: Feed | None = None
    # With ``emergency=True``: two keys of one emergency agency (issuer and confirmer).
    emergency_keys: tuple[str, str] = ("", "")
    # transcode's gRPC control (a caller starts more live channels there).
    transcode_target: str = ""

    def edge(self, edge_id: str) -> EdgeProcess:
        """One edge by id."""
        return next(e for e in self.edges if e.config.edge_id == edge_id)


@contextlib.asynccontextmanager
async def build_stack(
    redis_url: str,
    workdir: Path,
    *,
    edge_sessions: int = 100,
    access_log: bool = True,
    door: dict[str, Any] | None = None,
    pki: LocalPki | None = None,
    redis_settings: RedisSettings | None = None,
    content_keys: ContentKeySettings | None = None,
    multilingual: Path | None = None,
    console: bool = False,
    emergency: bool = False,
    cmaf: bool = False,
) -> AsyncIterator[Stack]:
    """Start everything (torn down in reverse order, also when a step fails); the CDN
    faces run as the real :class:`cdn_ctl.server.RoutingProcess` (``door`` overrides
    front door settings; ``redis_settings`` how every part's client connects and what
    an acknowledged write waits for; ``content_keys``: the live channel is encrypted
    with them and the front door hands its keys out; ``multilingual``: the live channel
    loops this file instead, its two audio streams (zh, en) and one subtitle stream (en)
    each a rendition; ``console``: the CDN's gRPC service and the operator console run
    too, in front of every service; ``emergency``: a second live channel, the emergency
    feed :data:`EMERGENCY` (SMPTE bars, the same ladder and segments), also the front
    door's blackout slate, two keys of an emergency agency, and the farm reading the
    EPG's alerts and cues with its playback key; ``cmaf``: the live channel is published as
    CMAF too, CMAF-HLS and DASH through the front door)."""
    door = door or {}
    # Encrypted segments name their keys at the front door: its port is chosen first.
    door_port = free_port() if content_keys is not None else 0
    keys = ContentKeySettings()
    if content_keys is not None:
        keys = replace(content_keys, base_url=f"http://127.0.0.1:{door_port}")
    async with contextlib.AsyncExitStack() as down:
        redis = connect(redis_url, redis_settings)
        down.push_async_callback(redis.aclose)
        await redis.flushall()
        services = await start_services(redis, pki=pki, redis_settings=redis_settings)
        down.push_async_callback(services.stop)
        world = await seed_world(
            services.epg_target, services.subscriber_target, services.api_key, tls=services.tls
        )
        root = workdir / "origin"
        sources = SourceSettings(
            media_roots=(multilingual.parent.resolve(),) if multilingual else ()
        )
        manager = LiveManager(
            redis=redis,
            archive=ArchiveIndex(redis),
            origin_root=root,
            encryption=live_encryption(keys, redis),
            sources=SourceGuard(sources),
        )
        down.push_async_callback(manager.close)
        # With the emergency feed, the farm reads the EPG with its playback key: alert
        # cards, and the cues it signals into the live channel (read every 0.5 s).
        farm_key = (await KeyStore(redis).create(PLAYBACK))[1] if emergency else ""
        control = ControlSettings(
            rpc=server_rpc(pki), redis_url=redis_url, origin_root=root, queue=QueueSettings(),
            sources=sources,
            owners=OwnersSettings(target=services.epg_target, tls=services.tls),
            alert_cards=AlertCardSettings(api_key=farm_key, profile="low", segment_seconds=2),
            cue_sync=CueSyncSettings(interval_seconds=0.5),
        )  # fmt: skip
        transcode, tc_port = await create_transcode(
            control, redis=redis, keys=KeyStore(redis), channels=manager
        )
        down.push_async_callback(transcode.stop, 0)
        feed = Feed().start()
        down.callback(feed.stop)
        origin_runner, origin_port = await start_origin(
            OriginSettings(
                redis_url=redis_url, origin_root=root, port=0, content_key_base_url=keys.base_url
            ),
            redis=redis,
        )
        down.push_async_callback(origin_runner.cleanup)
        emergency_keys = ("", "")
        if emergency:
            bars = Feed(video="smptebars=s=320x180:r=25").start()
            down.callback(bars.stop)
            await start_live(
                Targets(services.epg_target, services.subscriber_target, f"127.0.0.1:{tc_port}",
                        tls=services.tls),
                services.api_key,
                [LiveSpec(EMERGENCY, bars.source, catchup_days=1, segment_seconds=2,
                          window_segments=6)],
            )  # fmt: skip
            store_keys = KeyStore(redis)
            agency = Principal("emergency", "bj-eb")
            emergency_keys = ((await store_keys.create(agency))[1],
                              (await store_keys.create(agency))[1])  # fmt: skip
            door = {"blackout_channel": EMERGENCY, **door}
        if content_keys is None:
            await start_live(
                Targets(services.epg_target, services.subscriber_target, f"127.0.0.1:{tc_port}",
                        tls=services.tls),
                services.api_key,
                [LiveSpec(LIVE, f"file://{multilingual}", catchup_days=1, segment_seconds=2,
                          window_segments=6, audio_languages=("zh", "en"),
                          subtitle_languages=("en",))
                 if multilingual else
                 LiveSpec(LIVE, feed.source, catchup_days=1, segment_seconds=2, window_segments=6,
                          formats=(PackageFormat.CMAF,) if cmaf else ())],
            )  # fmt: skip
        else:
            async with TranscodeClient(
                f"127.0.0.1:{tc_port}", services.api_key, tls=services.tls
            ) as client:
                await client.start_channel(
                    LIVE, feed.source, profile="low", catchup_days=1, segment_seconds=2,
                    window_segments=6, encrypt=True, key_rotation_seconds=keys.rotation_seconds,
                )  # fmt: skip
        edges = []
        store = EdgeStore(redis)
        # Two village edges in the boxes' region (one is the failover of the other) and one
        # in another region.
        for edge_id, region in (("edge-a", REGION), ("edge-b", REGION), ("edge-c", OTHER_REGION)):
            port = free_port()
            proc = EdgeProcess(
                EdgeConfig(edge_id=edge_id, listen_port=port, upstream=f"127.0.0.1:{origin_port}"),
                prefix=workdir / edge_id,
                keys=RING,
            )
            await proc.start()
            down.push_async_callback(proc.stop)
            edges.append(proc)
            await store.create(
                Edge(edge_id, region, Tier.EDGE, "127.0.0.1", port, edge_sessions, 1e4, 1e4)
            )
        http = await down.enter_async_context(aiohttp.ClientSession())
        _, playback_key = await KeyStore(redis).create(PLAYBACK)
        settings = CdnSettings(
            rpc=RpcSettings(port=0),
            keys=RING,
            http_port=door_port,
            admin_port=0,
            # Fast detection: a dead edge is down after 2 of the last 3 probes (0.2 s
            # apart), and back 2 s after it answers again.
            health=HealthPolicy(window=3, fall=2, rise=1, hold_down_seconds=2.0),
            probe_interval_seconds=0.2,
            refresh_seconds=0.5,
            replica_id="e2e",
            frontdoor=frontdoor_settings(
                services,
                api_key=playback_key,
                grpc_tls=services.tls,
                **{"transcode_target": f"127.0.0.1:{tc_port}", **door},
            ),
            content_keys=keys,
        )
        process = RoutingProcess(settings, redis=redis, http=http, access_log=access_log)
        await process.start()
        down.push_async_callback(process.stop)
        frontdoor = process.frontdoor
        assert frontdoor is not None
        await asyncio.wait_for(frontdoor.epg.watching.wait(), 10)
        for channel in (LIVE, EMERGENCY) if emergency else (LIVE,):
            await asyncio.wait_for(
                until_live(http, f"http://127.0.0.1:{origin_port}/live/{channel}/master.m3u8"), 60
            )
        if cmaf:  # its MPD is out, and the front door's directory knows it
            await asyncio.wait_for(
                until_live(http, f"http://127.0.0.1:{origin_port}/live/{LIVE}/manifest.mpd"), 60
            )
            assert frontdoor.outputs is not None
            await asyncio.wait_for(frontdoor.outputs.loaded.wait(), 10)
        console_url = ""
        if console:
            cdn, cdn_port = await create_cdn(
                CdnSettings(rpc=RpcSettings(port=0), keys=RING), redis=redis, keys=KeyStore(redis)
            )
            down.push_async_callback(cdn.stop, 0)
            targets = {
                "EPG_TARGET": services.epg_target,
                "SUBSCRIBER_TARGET": services.subscriber_target,
                "TRANSCODE_TARGET": f"127.0.0.1:{tc_port}",
                "CDN_TARGET": f"127.0.0.1:{cdn_port}",
            }
            face = await down.enter_async_context(console_face(targets))
            console_url = face.base
        yield Stack(
            f"http://127.0.0.1:{process.port}",
            world,
            services,
            edges,
            frontdoor,
            process.controller,
            origin_port,
            admin_url=f"http://127.0.0.1:{process.admin_port}",
            console_url=console_url,
            feed=feed,
            emergency_keys=emergency_keys,
            transcode_target=f"127.0.0.1:{tc_port}",
        )


async def until_live(http: aiohttp.ClientSession, url: str) -> None:
    """Return once the origin serves the channel's master (its first segments are out;
    the live supervisor offers no event to await from outside)."""
    while True:
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)


async def ffmpeg_play(
    url: str,
    *,
    before: Sequence[str] = (),
    after: Sequence[str] = (),
    fps: float | None = None,
    timeout_seconds: float = 180.0,
) -> tuple[float, str]:
    """Play ``url`` with FFmpeg (a real HLS client), copying to nowhere: the seconds of media
    it played and its warnings; it must exit 0 within ``timeout_seconds``. ``before``:
    input options; ``after``: output options (``-t 20``). ``fps``: count the seconds played
    by the video frames written at that rate instead of by the output time, for a playlist
    whose joins send the timestamps back (a cut to another channel's segments, a new epoch
    of the source). FFmpeg is killed when it overruns or the caller gives up (cancelled),
    so a hung player never outlives its test."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", *before, "-i", url,
        *after, "-c", "copy", "-f", "null", "-progress", "pipe:1", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_seconds)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    key, scale = ("out_time_us=", 1e6) if fps is None else ("frame=", fps)
    played = max(
        (int(line.split("=")[1]) for line in out.decode().splitlines()
         if line.startswith(key) and line.split("=")[1].isdigit()),
        default=0,
    ) / scale  # fmt: skip
    assert proc.returncode == 0, err.decode()[-2000:]
    return played, err.decode()
