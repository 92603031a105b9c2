"""Seed data and idempotent seeding through the services' public gRPC faces.

A :class:`Plan` says what a world holds: a broadcaster's channels and guide, a
carrier with its packages, subscribers and boxes. :func:`seed` makes it so and
:func:`start_live` starts live channels. ``headend demo`` seeds
:func:`demo_plan`; the e2e tests seed their own plan with the same steps.

Every step creates what is missing and leaves what exists, so seeding again (a
restarted demo on its kept Redis) comes up on the same world: a channel,
carrier, subscriber or box that is already there counts as present
(``AlreadyExists``), a package held is not re-windowed, a guide is written with the
REPLACE policy (the same programmes keep their ids) and a running live channel
is not restarted. Only device secrets change: activating a box issues a new one,
the only way to learn it (the service keeps its hash alone).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from epg.client import EpgClient
from epg.domain import Channel, Programme, Rights, Text, WritePolicy
from headend.errors import AlreadyExists
from headend.local import BLACKOUT_SLATE
from headend.rpc import ClientTls
from subscriber.client import SubscriberClient
from subscriber.domain import DeviceProfile, NetworkType, Package
from transcode.client import TranscodeClient
from transcode.domain import Card, ChannelEncryption, ChannelState, Multicast
from transcode.jobs import PackageFormat

Texts = tuple[tuple[str, str], ...]  # (language, text)
# Seeding is a one-off batch, often on a machine busy starting everything else: a slow
# call may take longer than a hot-path caller would wait.
CALL_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A channel the broadcaster has."""

    channel_id: str
    number: int
    names: Texts
    owner: str
    group: str
    catchup_days: int
    logo_url: str
    timezone: str = ""


@dataclass(frozen=True, slots=True)
class ProgrammeSpec:
    """A programme in a channel's guide; ``label`` names its id in :attr:`World.programmes`."""

    start: datetime
    stop: datetime
    titles: Texts
    categories: Texts = ()
    catchup_allowed: bool = True
    blackout_regions: tuple[str, ...] = ()
    blackout_slate: str = ""
    label: str = ""
    audio_languages: tuple[str, ...] = ()
    subtitle_languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageSpec:
    """A catalogue package."""

    package_id: str
    name: str
    channel_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BoxSpec:
    """A set-top box bound to a subscriber; ``label`` names it in :attr:`World.boxes`."""

    label: str
    mac: str
    serial: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    """An account with the packages it holds and its boxes."""

    subscriber_id: str
    display_name: str
    region_code: str
    max_streams: int
    packages: tuple[str, ...]
    boxes: tuple[BoxSpec, ...]
    service_end: datetime | None = None
    entitled_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A whole world: the broadcaster's side, then the carrier's."""

    channels: tuple[ChannelSpec, ...]
    guides: Mapping[str, tuple[ProgrammeSpec, ...]]  # channel id -> programmes
    carrier_id: str
    carrier_name: str
    network_type: NetworkType
    packages: tuple[PackageSpec, ...]
    subscribers: tuple[SubscriberSpec, ...]
    # What the carrier's box models play (defining one again changes nothing).
    device_profiles: tuple[DeviceProfile, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveSpec:
    """A live channel for the transcode service (0 = the service's default)."""

    channel_id: str
    source: str
    profile: str = "low"
    catchup_days: int = 7
    segment_seconds: int = 0
    window_segments: int = 0
    # AES-128 segments, the key rotating every ``rotation_seconds`` of media (0: the
    # node's CONTENT_KEY_ROTATION_SECONDS); clear by default.
    encryption: ChannelEncryption = field(default_factory=ChannelEncryption)
    # The source's audio and subtitle streams by language, in order (``transcode.tracks``).
    audio_languages: tuple[str, ...] = ()
    subtitle_languages: tuple[str, ...] = ()
    # A generated card instead of a source (``source`` then empty).
    card: Card | None = None
    # Also sent to a multicast group (None: HTTP only).
    multicast: Multicast | None = None
    # Packagings besides MPEG-TS (CMAF: CMAF-HLS and MPEG-DASH too).
    formats: tuple[PackageFormat, ...] = ()


@dataclass(frozen=True, slots=True)
class Box:
    """A bound, activated box and the secret it logs in with."""

    mac: str
    secret: str
    subscriber: str


@dataclass
class World:
    """What seeding left: the carrier, its boxes by label, programme ids by label."""

    carrier: str
    boxes: dict[str, Box]
    programmes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where the services listen (``transcode`` only for :func:`start_live`)."""

    epg: str
    subscriber: str
    transcode: str = ""
    tls: ClientTls | None = None


def _texts(texts: Texts) -> tuple[Text, ...]:
    return tuple(Text(lang, text) for lang, text in texts)


def _channel(spec: ChannelSpec) -> Channel:
    return Channel(
        spec.channel_id, spec.number, _texts(spec.names), spec.owner, timezone=spec.timezone,
        logo_url=spec.logo_url, catchup_days=spec.catchup_days, group=spec.group,
    )  # fmt: skip


def _programme(channel_id: str, spec: ProgrammeSpec) -> Programme:
    rights = Rights(spec.catchup_allowed, spec.blackout_regions, spec.blackout_slate)
    return Programme(
        "", channel_id, spec.start, spec.stop, _texts(spec.titles),
        categories=_texts(spec.categories), rights=rights,
        audio_languages=spec.audio_languages, subtitle_languages=spec.subtitle_languages,
    )  # fmt: skip


async def seed_guide(epg: EpgClient, plan: Plan) -> dict[str, str]:
    """The plan's channels (missing ones created) and guides (REPLACE); labelled ids."""
    for spec in plan.channels:
        with contextlib.suppress(AlreadyExists):
            await epg.create_channel(_channel(spec))
    labelled: dict[str, str] = {}
    for channel_id, programmes in plan.guides.items():
        guide = [_programme(channel_id, p) for p in programmes]
        await epg.put_programmes(channel_id, guide, policy=WritePolicy.REPLACE)
        labels = {p.start: p for p in programmes if p.label}
        if labels:
            # The write names only the programmes it changed: read the labelled ones back.
            stop = max(p.stop for p in labels.values())
            for stored in await epg.range(channel_id, min(labels), stop):
                wanted = labels.get(stored.start)
                if wanted is not None:
                    labelled[wanted.label] = stored.id
    return labelled


async def seed_accounts(subs: SubscriberClient, plan: Plan) -> dict[str, Box]:
    """The plan's carrier, packages, subscribers, entitlements and boxes; each box activated."""
    carrier = plan.carrier_id
    with contextlib.suppress(AlreadyExists):
        await subs.create_carrier(carrier, plan.carrier_name, plan.network_type)
    for package in plan.packages:
        # Defining a package is create-or-replace, and changes nothing when it is the same.
        await subs.define_package(Package(package.package_id, package.name, package.channel_ids))
    for profile in plan.device_profiles:
        await subs.define_device_profile(profile)
    boxes = {}
    for sub in plan.subscribers:
        with contextlib.suppress(AlreadyExists):
            await subs.create_subscriber(
                carrier, sub.subscriber_id, display_name=sub.display_name,
                region_code=sub.region_code, service_end=sub.service_end,
                max_streams=sub.max_streams,
            )  # fmt: skip
        held, _ = await subs.list_entitlements(carrier, sub.subscriber_id)
        # Entitling again would re-window a package held (a new valid_from): leave it.
        held_ids = {e.package_id for e in held}
        for package_id in (p for p in sub.packages if p not in held_ids):
            await subs.entitle(
                carrier, sub.subscriber_id, package_id, valid_until=sub.entitled_until
            )
        for box in sub.boxes:
            with contextlib.suppress(AlreadyExists):
                await subs.bind_device(
                    carrier, sub.subscriber_id, box.mac, serial=box.serial, model=box.model
                )
            # A fresh activation (no idempotency key) issues a new secret: the only way
            # to know the current one.
            _, secret = await subs.activate_device(carrier, box.mac)
            boxes[box.label] = Box(box.mac, secret, sub.subscriber_id)
    return boxes


async def seed(plan: Plan, targets: Targets, api_key: str) -> World:
    """Make the plan's world (what exists is kept) with an admin key."""
    tls, timeout = targets.tls, CALL_SECONDS
    async with EpgClient(targets.epg, api_key, tls=tls, timeout_seconds=timeout) as epg:
        programmes = await seed_guide(epg, plan)
    async with SubscriberClient(
        targets.subscriber, api_key, tls=tls, timeout_seconds=timeout
    ) as subs:
        boxes = await seed_accounts(subs, plan)
    return World(plan.carrier_id, boxes, programmes)


async def start_live(targets: Targets, api_key: str, channels: Sequence[LiveSpec]) -> list[str]:
    """Start the live channels not running yet (a stopped one is started again); their ids.

    A running channel is left as it runs, its encryption too: a channel a plan now
    encrypts stays clear until it is stopped (``headend channel stop``) and seeded again."""
    async with TranscodeClient(
        targets.transcode, api_key, tls=targets.tls, timeout_seconds=CALL_SECONDS
    ) as transcode:
        listed = await transcode.list_channels()
        running = {s.channel.id for s in listed if s.state is not ChannelState.STOPPED}
        started = []
        for spec in channels:
            if spec.channel_id in running:
                continue
            await transcode.start_channel(
                spec.channel_id, spec.source, profile=spec.profile,
                segment_seconds=spec.segment_seconds, window_segments=spec.window_segments,
                catchup_days=spec.catchup_days, encrypt=spec.encryption.enabled,
                key_rotation_seconds=spec.encryption.rotation_seconds,
                audio_languages=spec.audio_languages, subtitle_languages=spec.subtitle_languages,
                card=spec.card, multicast=spec.multicast, formats=spec.formats,
            )  # fmt: skip
            started.append(spec.channel_id)
    return started


# ----------------------------------------------------------------------------- the demo's world

BROADCASTER = "btv"
SLATE_TEXT = "此节目在您所在地区不可播放\nThis programme is not available in your region"
CARRIER = "telecom-bj"
SUBSCRIBER = "sub-0001"
REGION = "110101"
BOX = "box"  # the demo box's label
BOX_MAC = "00:1a:2b:3c:4d:5e"
BOX_MODEL = "Demo STB"
# The demo box's model is a managed-network IPTV box: it joins multicast groups where its
# region has one, else plays HLS over MPEG-TS.
IPTV_PROFILE = DeviceProfile(
    CARRIER, "iptv-stb", "IPTV set-top boxes", (BOX_MODEL,), ("multicast", "hls-ts"), ("h264",)
)
PACKAGE = "basic"
SLATE = "http://127.0.0.1:8080/slates/regional-blackout.m3u8"
# The demo's encrypted channel: its key rotates every 30 s of media (five 6-second
# segments), so the journey's last step sees a rotation within a minute.
ENCRYPTED = "btv-news.bj.cn"
KEY_ROTATION_SECONDS = 30
# The demo's multicast channel: RTP to an administratively scoped group on loopback only
# (TTL 1, sent from 127.0.0.1), given to boxes in the demo box's region.
MULTICAST_CHANNEL = "btv-kids.bj.cn"
MULTICAST = Multicast("239.255.0.1", 5000, ttl=1, interface="127.0.0.1", regions=(REGION,))
# The demo's channel packaged as CMAF too (CMAF-HLS and a live MPEG-DASH manifest): clear,
# its audio muxed (live CMAF remuxes the rungs' audio).
DASH_CHANNEL = "btv-kids.bj.cn"


@dataclass(frozen=True, slots=True)
class DemoChannel:
    """A demo channel and the synthetic picture and tone that feed it."""

    channel_id: str
    number: int
    name_zh: str
    name_en: str
    group: str
    lavfi: str
    tone_hz: int
    # A second audio track (English, at twice the tone) and Chinese and English subtitles.
    multilingual: bool = False

    @property
    def audio_languages(self) -> tuple[str, ...]:
        """The languages of its source's audio streams, in order."""
        return ("zh", "en") if self.multilingual else ()

    @property
    def subtitle_languages(self) -> tuple[str, ...]:
        """The languages of its source's subtitle streams, in order."""
        return ("zh", "en") if self.multilingual else ()


CHANNELS: tuple[DemoChannel, ...] = (
    DemoChannel(
        "btv1.bj.cn",
        1,
        "北京卫视",
        "BTV Satellite",
        "Provincial",
        "testsrc2",
        440,
        multilingual=True,
    ),
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


def guide_day(ch: DemoChannel, now: datetime) -> tuple[ProgrammeSpec, ...]:
    """Half-hour programmes from 12 h before ``now`` to 12 h after; one in twelve not
    catch-up-allowed and, on the news channel, one blacked out in the demo box's region."""
    start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    start -= timedelta(hours=12)

    def programmes() -> Iterator[ProgrammeSpec]:
        for i in range(48):
            zh, en = TITLES[(i + ch.number) % len(TITLES)]
            begin = start + timedelta(minutes=30 * i)
            blackout = ch.group == "News" and i == 30
            yield ProgrammeSpec(
                begin,
                begin + timedelta(minutes=30),
                (("zh", zh), ("en", en)),
                categories=(("en", ch.group),),
                catchup_allowed=i % 12 != 5,
                blackout_regions=(REGION,) if blackout else (),
                blackout_slate=SLATE if blackout else "",
                audio_languages=ch.audio_languages,
                subtitle_languages=ch.subtitle_languages,
            )

    return tuple(programmes())


def demo_plan(now: datetime) -> Plan:
    """The demo: broadcaster ``btv`` with three channels and a day of guide around ``now``;
    carrier ``telecom-bj`` with one subscriber in region 110101, one box, one package."""
    return Plan(
        channels=tuple(
            ChannelSpec(
                ch.channel_id,
                ch.number,
                (("zh", ch.name_zh), ("en", ch.name_en)),
                owner=BROADCASTER,
                group=ch.group,
                catchup_days=7,
                logo_url=f"http://127.0.0.1/logos/{ch.channel_id}.png",
                timezone="Asia/Shanghai",
            )
            for ch in CHANNELS
        ),
        guides={ch.channel_id: guide_day(ch, now) for ch in CHANNELS},
        carrier_id=CARRIER,
        carrier_name="Telecom Beijing",
        network_type="telecom",
        packages=(PackageSpec(PACKAGE, "Basic", tuple(c.channel_id for c in CHANNELS)),),
        subscribers=(
            SubscriberSpec(
                SUBSCRIBER,
                "Zhang Wei",
                REGION,
                max_streams=2,
                packages=(PACKAGE,),
                boxes=(BoxSpec(BOX, BOX_MAC, serial="SN-0001", model=BOX_MODEL),),
                service_end=now + timedelta(days=365),
                entitled_until=now + timedelta(days=365),
            ),
        ),
        device_profiles=(IPTV_PROFILE,),
    )


def make_sources(folder: Path, channels: Sequence[DemoChannel] = CHANNELS) -> dict[str, Path]:
    """A 12 s clip per channel (made once), looped by the live ingest: H.264/AAC in MP4, or
    for a multilingual channel Matroska with its second audio track and its subtitles."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for ch in channels:
        path = folder / f"{ch.channel_id}{'.mkv' if ch.multilingual else '.mp4'}"
        if not path.exists():
            staged = path.with_name(f".{path.name}")
            subprocess.run(["ffmpeg", "-v", "error", "-y", *_clip_args(ch, folder), str(staged)],
                           check=True)  # fmt: skip
            staged.rename(path)
        sources[ch.channel_id] = path
    return sources


# The demo's subtitles, every 4 s of the 12 s clip (Chinese, English).
_LINES = (("欢迎收看北京卫视", "Welcome to BTV Satellite"), ("现在播出新闻", "The news is on"),
          ("谢谢收看", "Thank you for watching"))  # fmt: skip


def _clip_args(ch: DemoChannel, folder: Path) -> list[str]:
    # Scrolled: a still picture would be "frozen" to the live ingest, which puts such a
    # channel on its slate.
    tone = f"sine=frequency={ch.tone_hz}:sample_rate=48000:d=12"
    inputs = ["-f", "lavfi", "-i", f"{ch.lavfi}=s=640x360:r=25:d=12,scroll=h=0.002",
              "-f", "lavfi", "-i", tone]  # fmt: skip
    maps = ["-map", "0:v", "-map", "1:a"]
    if ch.multilingual:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={2 * ch.tone_hz}:sample_rate=48000:d=12"]
        maps += ["-map", "2:a"]
        for n, language in enumerate(ch.subtitle_languages):
            srt = folder / f"{ch.channel_id}.{language}.srt"
            srt.write_text("\n".join(
                f"{i + 1}\n00:00:{4 * i:02d},200 --> 00:00:{4 * i + 3:02d},500\n{lines[n]}\n"
                for i, lines in enumerate(_LINES)
            ), encoding="utf-8")  # fmt: skip
            inputs += ["-i", str(srt)]
            maps += ["-map", f"{3 + n}:s"]
        for n, language in enumerate(ch.audio_languages):
            maps += [f"-metadata:s:a:{n}", f"language={language}"]
        for n, language in enumerate(ch.subtitle_languages):
            maps += [f"-metadata:s:s:{n}", f"language={language}"]
        maps += ["-c:s", "srt", "-f", "matroska"]
    return [*inputs, *maps, "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-t", "12"]  # fmt: skip


def demo_live(sources: Mapping[str, Path]) -> tuple[LiveSpec, ...]:
    """Each demo channel live from its looped clip, :data:`ENCRYPTED` encrypted,
    :data:`MULTICAST_CHANNEL` also sent by multicast, :data:`DASH_CHANNEL` also packaged as
    CMAF, and the slate card blacked-out boxes see instead (``headend.local.BLACKOUT_SLATE``)."""
    encrypted = ChannelEncryption(enabled=True, rotation_seconds=KEY_ROTATION_SECONDS)
    return (
        *(
            LiveSpec(
                ch.channel_id,
                sources[ch.channel_id].resolve().as_uri(),
                encryption=encrypted if ch.channel_id == ENCRYPTED else ChannelEncryption(),
                audio_languages=ch.audio_languages,
                subtitle_languages=ch.subtitle_languages,
                multicast=MULTICAST if ch.channel_id == MULTICAST_CHANNEL else None,
                formats=(PackageFormat.CMAF,) if ch.channel_id == DASH_CHANNEL else (),
            )
            for ch in CHANNELS
        ),
        LiveSpec(BLACKOUT_SLATE, "", catchup_days=1, card=Card(SLATE_TEXT)),
    )
