"""``headend demo``: the whole platform locally, seeded, with a set-top box's journey.

Seeds a broadcaster (``btv``) with three channels and a day of guide, a
carrier (``telecom-bj``) with one subscriber and one box, starts live
transcoding from synthetic sources, then walks the journey a box makes.
Everything goes through the services' public gRPC and HTTP faces, exactly
as a broadcaster, a carrier and a box would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from google.protobuf.timestamp_pb2 import Timestamp

from cdn_ctl.stb import PlayStats, SetTopBox
from headend.errors import Unavailable
from headend.local import (
    CDN_ADMIN_PORT,
    EPG_PORT,
    FRONT_DOOR_PORT,
    ORIGIN_PORT,
    SUBSCRIBER_PORT,
    TRANSCODE_PORT,
    LocalSecrets,
)
from headend.rpc import bearer, client_channel
from headend.stack import StackSettings
from protos import (
    epg_pb2,
    epg_pb2_grpc,
    subscriber_pb2,
    subscriber_pb2_grpc,
    transcode_pb2,
    transcode_pb2_grpc,
)

BROADCASTER = "btv"
CARRIER = "telecom-bj"
SUBSCRIBER = "sub-0001"
REGION = "110101"
BOX_MAC = "00:1a:2b:3c:4d:5e"
PACKAGE = "basic"


@dataclass(frozen=True, slots=True)
class DemoChannel:
    """A seeded channel and the synthetic picture that feeds it."""

    channel_id: str
    number: int
    name_zh: str
    name_en: str
    group: str
    lavfi: str
    tone_hz: int


CHANNELS: tuple[DemoChannel, ...] = (
    DemoChannel("btv1.bj.cn", 1, "北京卫视", "BTV Satellite", "Provincial", "testsrc2", 440),
    DemoChannel("btv-news.bj.cn", 2, "北京新闻", "BTV News", "News", "smptehdbars", 660),
    DemoChannel("btv-kids.bj.cn", 3, "卡酷少儿", "BTV Kids", "Kids", "rgbtestsrc", 880),
)

TITLES = (
    ("新闻联播", "Evening News"),
    ("天气预报", "Weather"),
    ("电视剧", "Drama"),
    ("纪录片", "Documentary"),
    ("体育新闻", "Sports Desk"),
    ("动画片", "Cartoons"),
)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where the demo's services listen."""

    epg: str
    subscriber: str
    transcode: str


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the journey needs from the seed."""

    mac: str
    device_secret: str
    channels: tuple[DemoChannel, ...]


def _ts(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def make_sources(folder: Path, channels: Sequence[DemoChannel] = CHANNELS) -> dict[str, Path]:
    """A short H.264/AAC clip per channel (made once), looped by the live ingest."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for ch in channels:
        path = folder / f"{ch.channel_id}.mp4"
        if not path.exists():
            staged = path.with_suffix(".tmp.mp4")
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y",
                 "-f", "lavfi", "-i", f"{ch.lavfi}=s=640x360:r=25:d=12",
                 "-f", "lavfi", "-i", f"sine=frequency={ch.tone_hz}:sample_rate=48000:d=12",
                 "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-b:a", "96k", "-shortest", str(staged)],
                check=True,
            )  # fmt: skip
            staged.rename(path)
        sources[ch.channel_id] = path
    return sources


def guide_day(ch: DemoChannel, now: datetime) -> list[epg_pb2.Programme]:
    """Half-hour programmes from 12 h ago to 12 h ahead; one not catch-up-allowed and,
    on the news channel, one blacked out in the demo box's region."""
    start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    start -= timedelta(hours=12)
    out = []
    for i in range(48):
        zh, en = TITLES[(i + ch.number) % len(TITLES)]
        begin = start + timedelta(minutes=30 * i)
        programme = epg_pb2.Programme(
            channel_id=ch.channel_id,
            start=_ts(begin),
            stop=_ts(begin + timedelta(minutes=30)),
            titles=[epg_pb2.LocalizedText(lang="zh", text=zh),
                    epg_pb2.LocalizedText(lang="en", text=en)],
            categories=[epg_pb2.LocalizedText(lang="en", text=ch.group)],
            catchup_allowed=i % 12 != 5,
        )  # fmt: skip
        if ch.group == "News" and i == 30:
            programme.blackout_regions.append(REGION)
            programme.blackout_slate = "http://127.0.0.1:8080/slates/regional-blackout.m3u8"
        out.append(programme)
    return out


async def seed(targets: Targets, api_key: str, sources: dict[str, Path]) -> Seeded:
    """Create the broadcaster's channels and guide, the carrier's subscriber and box,
    and start live transcoding. Idempotent enough to run against a restarted stack."""
    auth = bearer(api_key)
    now = datetime.now(UTC)
    async with client_channel(targets.epg) as channel:
        epg = epg_pb2_grpc.EpgServiceStub(channel)
        listed = await epg.ListChannels(epg_pb2.ListChannelsRequest(), metadata=auth)
        existing = {c.id for c in listed.channels}
        for ch in CHANNELS:
            if ch.channel_id not in existing:
                await epg.CreateChannel(
                    epg_pb2.CreateChannelRequest(
                        channel=epg_pb2.Channel(
                            id=ch.channel_id,
                            number=ch.number,
                            names=[epg_pb2.LocalizedText(lang="zh", text=ch.name_zh),
                                   epg_pb2.LocalizedText(lang="en", text=ch.name_en)],
                            logo_url=f"http://127.0.0.1/logos/{ch.channel_id}.png",
                            owner=BROADCASTER,
                            timezone="Asia/Shanghai",
                            catchup_days=7,
                            group=ch.group,
                            active=True,
                        )
                    ),
                    metadata=auth,
                )  # fmt: skip
            await epg.PutProgrammes(
                epg_pb2.PutProgrammesRequest(
                    channel_id=ch.channel_id,
                    programmes=guide_day(ch, now),
                    policy=epg_pb2.WRITE_POLICY_REPLACE,
                ),
                metadata=auth,
            )
    async with client_channel(targets.subscriber) as channel:
        subs = subscriber_pb2_grpc.SubscriberServiceStub(channel)
        key = f"demo-{now.date().isoformat()}"
        await subs.CreateCarrier(
            subscriber_pb2.CreateCarrierRequest(
                carrier_id=CARRIER, name="Telecom Beijing", network_type=subscriber_pb2.TELECOM,
                idempotency_key=f"{key}-carrier",
            ),
            metadata=auth,
        )  # fmt: skip
        await subs.DefinePackage(
            subscriber_pb2.DefinePackageRequest(
                package=subscriber_pb2.Package(
                    package_id=PACKAGE, name="Basic",
                    channel_ids=[c.channel_id for c in CHANNELS],
                ),
                idempotency_key=f"{key}-package",
            ),
            metadata=auth,
        )  # fmt: skip
        await subs.CreateSubscriber(
            subscriber_pb2.CreateSubscriberRequest(
                carrier_id=CARRIER, subscriber_id=SUBSCRIBER, display_name="Zhang Wei",
                region_code=REGION, service_end=_ts(now + timedelta(days=365)), max_streams=2,
                idempotency_key=f"{key}-subscriber",
            ),
            metadata=auth,
        )  # fmt: skip
        await subs.BindDevice(
            subscriber_pb2.BindDeviceRequest(
                carrier_id=CARRIER, subscriber_id=SUBSCRIBER, mac=BOX_MAC,
                serial="SN-0001", model="Demo STB", idempotency_key=f"{key}-device",
            ),
            metadata=auth,
        )  # fmt: skip
        await subs.Entitle(
            subscriber_pb2.EntitleRequest(
                carrier_id=CARRIER, subscriber_id=SUBSCRIBER, package_id=PACKAGE,
                valid_until=_ts(now + timedelta(days=365)), idempotency_key=f"{key}-entitle",
            ),
            metadata=auth,
        )  # fmt: skip
        # A fresh activation (no idempotency key) rotates the secret so the
        # demo always knows the current one.
        activated = await subs.ActivateDevice(
            subscriber_pb2.ActivateDeviceRequest(carrier_id=CARRIER, mac=BOX_MAC), metadata=auth
        )
    async with client_channel(targets.transcode) as channel:
        tc = transcode_pb2_grpc.TranscodeServiceStub(channel)
        listed = await tc.ListChannels(transcode_pb2.ListChannelsRequest(), metadata=auth)
        running = {c.channel.id for c in listed.channels}
        for ch in CHANNELS:
            if ch.channel_id not in running:
                await tc.StartChannel(
                    transcode_pb2.StartChannelRequest(
                        channel=transcode_pb2.Channel(
                            id=ch.channel_id,
                            source=sources[ch.channel_id].resolve().as_uri(),
                            profile="low",
                            catchup_days=7,
                        )
                    ),
                    metadata=auth,
                )
    return Seeded(BOX_MAC, activated.device_secret, CHANNELS)


async def _wait_live(origin: str, channel: str, *, timeout_seconds: float = 90.0) -> None:
    """Until the origin has the channel's first segments (a live window needs a few)."""
    url = f"{origin}/live/{channel}/master.m3u8"
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise Unavailable(f"no live segments for {channel} after {timeout_seconds:.0f} s")
            await asyncio.sleep(1)


def _stop_edge(edge_dir: Path, edge_id: str) -> bool:
    """Stop one local edge's nginx the way a power cut in a village would."""
    pid_file = edge_dir / edge_id / "nginx.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        return False
    return True


async def journey(
    front_door: str, origin: str, edge_dir: Path, seeded: Seeded, *, out: Callable[[str], None]
) -> str:
    """Walk a box's journey through the front door, printing each step; returns the
    lineup URL a person can open in a player."""
    channel = seeded.channels[0].channel_id
    out(f"waiting for the first live segments of {channel} ...")
    await _wait_live(origin, channel)
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(
            http, front_door, mac=seeded.mac, secret=seeded.device_secret,
            on_event=lambda text: out(f"    {text}"),
        )  # fmt: skip
        out(f"1. box {seeded.mac} logs in: POST {front_door}/api/login")
        await box.login()
        out(f"2. lineup: GET {front_door}/lineup.m3u")
        for entry in await box.lineup():
            out(f"    {entry.number:>3}  {entry.channel_id:<16} {entry.name}  "
                f"(catch-up {entry.catchup_days} days)")  # fmt: skip
        out(f"3. guide: GET {front_door}/guide.xml.gz")
        guide = await box.guide()
        now = datetime.now(UTC)
        upcoming = sorted(
            (datetime.strptime(start, "%Y%m%d%H%M%S %z"), ch, title)
            for ch, start, title in guide.programmes
            if datetime.strptime(start, "%Y%m%d%H%M%S %z") >= now
        )[:6]
        out(f"    {len(guide.programmes)} programmes, {guide.size_bytes:,} bytes gzipped; next up:")
        for start, ch, title in upcoming:
            out(f"    {start:%H:%M %z}  {ch:<16} {title}")
        out(f"4. live: GET {front_door}/live/{channel}/master.m3u8, then variant polls")
        stats = PlayStats()
        playing = asyncio.create_task(box.play_live(channel, seconds=45, stats=stats))
        for _ in range(3):
            await stats.progress.wait()
            stats.progress.clear()
        victim = stats.edges[-1] if stats.edges else ""
        if victim and _stop_edge(edge_dir, victim):
            out(f"5. failover: stopping {victim} mid-play (its village loses power) ...")
        await playing
        out(f"    played {stats.segments} segments ({stats.media_seconds:.0f} s of media) via "
            f"{' -> '.join(dict.fromkeys(stats.edges))}; failovers {stats.failovers}, "
            f"errors {len(stats.errors)}")  # fmt: skip
        await box.stop(stats.lease)
        end = datetime.now(UTC) - timedelta(seconds=10)
        out(f"6. catch-up: the last 30 s of {channel}")
        await box.play_catchup(channel, end - timedelta(seconds=30), end)
        return f"{front_door}/lineup.m3u?token={box.token}"


def run(settings: StackSettings, secrets: LocalSecrets) -> Seeded:
    """Seed the running local stack and walk the journey, printing each step."""
    host, port = settings.host, settings.port
    targets = Targets(
        epg=f"{host}:{port(EPG_PORT)}",
        subscriber=f"{host}:{port(SUBSCRIBER_PORT)}",
        transcode=f"{host}:{port(TRANSCODE_PORT)}",
    )
    print("seeding: broadcaster btv (3 channels, a day of guide), carrier telecom-bj", flush=True)
    sources = make_sources(settings.var_dir / "demo-media")
    seeded = asyncio.run(seed(targets, secrets.service_api_key, sources))
    print(f"  box {seeded.mac} activated; live transcoding started for "
          f"{', '.join(c.channel_id for c in seeded.channels)}", flush=True)  # fmt: skip
    front_door = f"http://{host}:{port(FRONT_DOOR_PORT)}"
    lineup = asyncio.run(
        journey(
            front_door,
            f"http://{host}:{port(ORIGIN_PORT)}",
            settings.var_dir / "edges",
            seeded,
            out=lambda text: print(text, flush=True),
        )
    )
    print(
        "\nThe platform stays up. Open the lineup in VLC or ffplay (the token lasts 12 h):\n"
        f"    vlc '{lineup}'\n"
        f"    ffplay '{front_door}/live/{seeded.channels[0].channel_id}/master.m3u8?token="
        f"{lineup.rpartition('token=')[2]}'\n"
        "Route explanations (admin listener, with the admin key from var/secrets.env):\n"
        f'    curl -H "Authorization: Bearer $SERVICE_API_KEY" '
        f"'http://{host}:{port(CDN_ADMIN_PORT)}/debug/route?"
        f"channel={seeded.channels[0].channel_id}&region={REGION}'",
        flush=True,
    )
    return seeded
