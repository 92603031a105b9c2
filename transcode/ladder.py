"""Ladder profiles and planning: which rungs a source gets, at what size, rate and bitrate.

Pure: the planner takes a probed ``SourceInfo`` and a ``Profile`` and returns
the rungs to encode. The default ladder follows Apple's HLS Authoring
Specification, extended down to 416x234 for thin rural links. A rung is H.264 or
HEVC (``Rung.codec``); an HEVC rung's level is chosen from its planned size, frame
rate and VBV figures (:func:`hevc_level`), and every rung of a profile shares its GOP
rules, so HEVC and H.264 keyframes fall on the same instants.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from transcode.errors import InvalidProfile
from transcode.probe import MAX_PROGRAMMES, SourceInfo, VideoInfo
from transcode.tracks import MAX_AUDIO_TRACKS, TRACK_PREFIXES

H264Profile = Literal["baseline", "main", "high"]
VideoCodec = Literal["h264", "hevc"]
HevcProfile = Literal["main", "main10"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_PRESETS = frozenset(
    {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"}
)


class ProcessMode(enum.Enum):
    """How a ladder is encoded: one FFmpeg decoding once for every rung, or one per rung."""

    SINGLE = "single"
    PER_RUNG = "per_rung"


@dataclass(frozen=True, slots=True)
class Rung:
    """One nominal rendition of a profile (before fitting to a source)."""

    name: str  # directory name under the asset, e.g. "720p"
    width: int
    height: int
    video_kbps: int
    audio_kbps: int = 128
    h264_profile: H264Profile = "high"
    h264_level: str = "3.1"
    max_frame_rate: float | None = None  # None: the profile's low-rung rule decides
    # "hevc": libx265 in CMAF only; its level is chosen when planned (``hevc_level``) and
    # the h264_* fields are unused.
    codec: VideoCodec = "h264"
    hevc_profile: HevcProfile = "main"


@dataclass(frozen=True, slots=True)
class Profile:
    """A channel's packaging profile: the ladder and the GOP and segment rules."""

    name: str
    rungs: tuple[Rung, ...]
    segment_seconds: float = 6.0
    gop_seconds: float = 2.0
    # Rungs shorter than this get their frame rate capped (thin links, small screens).
    low_rung_below_height: int = 540
    low_rung_max_fps: float = 30.0
    preset: str = "veryfast"  # x264 preset (and x265's, same names, for HEVC rungs)
    audio_sample_rate: int = 48000
    audio_channels: int = 2
    # Peak-to-average allowance for capped VBR (Apple: peak <= 200% of average).
    maxrate_factor: float = 1.10
    bufsize_factor: float = 2.0
    # Remux only: the source's own H.264/AAC is stream-copied into one rung (one per
    # programme of a source carrying several, named after it), cut on its keyframes; the
    # rung's figures are nominal until the source is probed.
    passthrough: bool = False
    # A source's audio tracks kept as renditions when it has several (``transcode.tracks``).
    max_audio_tracks: int = 4

    def __post_init__(self) -> None:
        validate_profile(self)


@dataclass(frozen=True, slots=True)
class PlannedRung:
    """A rung fitted to one source: the exact size, frame rate, GOP and bitrates to encode."""

    name: str
    width: int
    height: int
    frame_rate: float
    gop_frames: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    audio_kbps: int
    h264_profile: H264Profile
    h264_level: str
    codec: VideoCodec = "h264"
    hevc_profile: HevcProfile = "main"
    hevc_level: str = ""  # Main tier, e.g. "3.1" (HEVC rungs only)


class _HevcLevel(NamedTuple):
    name: str
    max_luma_ps: int  # samples per picture
    max_luma_sr: int  # samples per second
    max_kbps: int  # Main tier MaxBR (CpbBrVclFactor 1000 for Main and Main 10)
    max_cpb_kbit: int


_HEVC_LEVELS = (
    _HevcLevel("1", 36_864, 552_960, 128, 350),
    _HevcLevel("2", 122_880, 3_686_400, 1_500, 1_500),
    _HevcLevel("2.1", 245_760, 7_372_800, 3_000, 3_000),
    _HevcLevel("3", 552_960, 16_588_800, 6_000, 6_000),
    _HevcLevel("3.1", 983_040, 33_177_600, 10_000, 10_000),
    _HevcLevel("4", 2_228_224, 66_846_720, 12_000, 12_000),
    _HevcLevel("4.1", 2_228_224, 133_693_440, 20_000, 20_000),
    _HevcLevel("5", 8_912_896, 267_386_880, 25_000, 25_000),
    _HevcLevel("5.1", 8_912_896, 534_773_760, 40_000, 40_000),
    _HevcLevel("5.2", 8_912_896, 1_069_547_520, 60_000, 60_000),
    _HevcLevel("6", 35_651_584, 1_069_547_520, 60_000, 60_000),
    _HevcLevel("6.1", 35_651_584, 2_139_095_040, 120_000, 120_000),
    _HevcLevel("6.2", 35_651_584, 4_278_190_080, 240_000, 240_000),
)
_CODEC_ORDER: tuple[VideoCodec, ...] = ("h264", "hevc")

DEFAULT_RUNGS: tuple[Rung, ...] = (
    Rung("234p", 416, 234, 145, 64, "baseline", "2.1"),
    Rung("360p", 640, 360, 365, 96, "main", "3.0"),
    Rung("432p", 768, 432, 730, 96, "main", "3.1"),
    Rung("540p", 960, 540, 2000, 128, "high", "3.1"),
    Rung("720p", 1280, 720, 3000, 128, "high", "3.1"),
    Rung("1080p", 1920, 1080, 6000, 128, "high", "4.0"),
)


def default_profile() -> Profile:
    """The platform's default ladder (Apple's authoring ladder plus rural low rungs)."""
    return Profile(name="default", rungs=DEFAULT_RUNGS)


def profile_with_overrides(base: Profile, overrides: Mapping[str, object]) -> Profile:
    """A per-channel profile: ``base`` with scalar fields and/or ``rungs`` replaced."""
    allowed = set(Profile.__dataclass_fields__)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise InvalidProfile(unknown[0], "not a profile field")
    try:
        return replace(base, **overrides)  # type: ignore[arg-type]  # validated in __post_init__
    except TypeError as err:
        raise InvalidProfile("profile", str(err)) from err


def validate_profile(profile: Profile) -> None:
    """Raise ``InvalidProfile`` naming the first bad field."""
    if not _NAME.match(profile.name):
        raise InvalidProfile("name", f"must match {_NAME.pattern}, got {profile.name!r}")
    if not profile.rungs:
        raise InvalidProfile("rungs", "a profile needs at least one rung")
    if not 1.0 <= profile.segment_seconds <= 20.0:
        raise InvalidProfile("segment_seconds", "must be between 1 and 20")
    if not 0.5 <= profile.gop_seconds <= profile.segment_seconds:
        raise InvalidProfile("gop_seconds", "must be between 0.5 and segment_seconds")
    ratio = profile.segment_seconds / profile.gop_seconds
    if abs(ratio - round(ratio)) > 1e-6:
        # Segments can only be cut on GOP boundaries; a fractional ratio gives uneven segments.
        raise InvalidProfile("segment_seconds", "must be a whole multiple of gop_seconds")
    if profile.passthrough and len(profile.rungs) != 1:
        raise InvalidProfile("rungs", "a passthrough profile has exactly one rung")
    if profile.passthrough and not _NAME.match(f"{profile.rungs[0].name}{MAX_PROGRAMMES - 1}"):
        # Programmes after the first are rungs named after it with a number (src1, src2...).
        raise InvalidProfile("rungs.name", "a passthrough rung name needs room for a number")
    if profile.preset not in _PRESETS:
        raise InvalidProfile("preset", f"unknown x264/x265 preset {profile.preset!r}")
    if not 1.0 <= profile.maxrate_factor <= 2.0:
        raise InvalidProfile("maxrate_factor", "must be between 1.0 and 2.0")
    if not 1 <= profile.max_audio_tracks <= MAX_AUDIO_TRACKS:
        raise InvalidProfile("max_audio_tracks", f"must be between 1 and {MAX_AUDIO_TRACKS}")
    names: set[str] = set()
    for rung in profile.rungs:
        if not _NAME.match(rung.name) or rung.name in names:
            raise InvalidProfile("rungs.name", f"bad or duplicate rung name {rung.name!r}")
        if rung.name.startswith(TRACK_PREFIXES):
            raise InvalidProfile("rungs.name", f"{rung.name}: audio-/subs- name renditions")
        names.add(rung.name)
        if rung.width < 16 or rung.height < 16 or rung.width % 2 or rung.height % 2:
            raise InvalidProfile("rungs.width", f"{rung.name}: sizes must be even and >= 16")
        if not 16 <= rung.video_kbps <= 100_000:
            raise InvalidProfile("rungs.video_kbps", f"{rung.name}: out of range")
        if not 16 <= rung.audio_kbps <= 512:
            raise InvalidProfile("rungs.audio_kbps", f"{rung.name}: out of range")
        if rung.codec not in _CODEC_ORDER:
            raise InvalidProfile("rungs.codec", f"{rung.name}: one of {', '.join(_CODEC_ORDER)}")
        if rung.hevc_profile not in ("main", "main10"):
            raise InvalidProfile("rungs.hevc_profile", f"{rung.name}: main or main10")
        if rung.codec == "hevc" and profile.passthrough:
            raise InvalidProfile("rungs.codec", "a passthrough rung copies the source's H.264")


def has_hevc(profile: Profile) -> bool:
    """Whether the profile encodes HEVC rungs (CMAF only: ``transcode.profiles.require_format``)."""
    return any(rung.codec == "hevc" for rung in profile.rungs)


def plan_ladder(profile: Profile, source: SourceInfo) -> tuple[PlannedRung, ...]:
    """Fit the profile to the source: never upscale, keep aspect, cap low-rung frame rates.

    H.264 rungs come first, then HEVC ones (each by height): a player starts with the
    first variant it can decode, and HEVC is the optional extra."""
    video = source.video
    display_aspect = video.width * video.sample_aspect / video.height
    fitting: list[Rung] = []
    for codec in _CODEC_ORDER:
        rungs = [r for r in profile.rungs if r.codec == codec]
        fitting += [r for r in rungs if r.height <= video.height] or _own_size(rungs, video)
    planned = []
    for rung in sorted(
        fitting, key=lambda r: (_CODEC_ORDER.index(r.codec), r.height, r.video_kbps)
    ):
        height = rung.height
        # Width follows the source's display aspect (a 4:3 source stays 4:3), kept even.
        width = max(16, 2 * round(height * display_aspect / 2))
        fps = _rung_frame_rate(profile, rung, video.frame_rate)
        maxrate = math.ceil(rung.video_kbps * profile.maxrate_factor)
        bufsize = math.ceil(rung.video_kbps * profile.bufsize_factor)
        planned.append(
            PlannedRung(
                name=rung.name,
                width=width,
                height=height,
                frame_rate=fps,
                gop_frames=max(1, round(profile.gop_seconds * fps)),
                video_kbps=rung.video_kbps,
                maxrate_kbps=maxrate,
                bufsize_kbps=bufsize,
                audio_kbps=rung.audio_kbps,
                h264_profile=rung.h264_profile,
                h264_level=rung.h264_level,
                codec=rung.codec,
                hevc_profile=rung.hevc_profile,
                hevc_level=(
                    hevc_level(width, height, fps, maxrate, bufsize) if rung.codec == "hevc" else ""
                ),
            )
        )
    return tuple(planned)


def _own_size(rungs: Sequence[Rung], video: VideoInfo) -> list[Rung]:
    """A source smaller than every rung (of one codec) still gets one rendition, at its
    own size; none when the profile has no rung of that codec."""
    if not rungs:
        return []
    smallest = min(rungs, key=lambda r: r.height)
    scale = (video.width * video.height) / (smallest.width * smallest.height)
    return [
        replace(
            smallest,
            width=video.width - video.width % 2,
            height=video.height - video.height % 2,
            video_kbps=max(16, round(smallest.video_kbps * scale)),
        )
    ]


def hevc_level(width: int, height: int, fps: float, maxrate_kbps: int, bufsize_kbps: int) -> str:
    """The lowest HEVC Main-tier level (ITU-T H.265 table A.8) whose picture size, luma
    sample rate, bitrate and CPB hold the rung, e.g. "3.1" (level_idc 93 in CODECS)."""
    luma = width * height
    for level in _HEVC_LEVELS:
        if (
            luma <= level.max_luma_ps
            and max(width, height) ** 2 <= 8 * level.max_luma_ps
            and luma * fps <= level.max_luma_sr
            and maxrate_kbps <= level.max_kbps
            and bufsize_kbps <= level.max_cpb_kbit
        ):
            return level.name
    raise InvalidProfile(
        "rungs", f"{width}x{height}@{fps:g} at {maxrate_kbps} kbps is past HEVC level 6.2"
    )


def _rung_frame_rate(profile: Profile, rung: Rung, source_fps: float) -> float:
    cap = rung.max_frame_rate
    if cap is None and rung.height < profile.low_rung_below_height:
        cap = profile.low_rung_max_fps
    if cap is None or source_fps <= cap:
        return source_fps
    # Halving keeps every other frame, so motion cadence stays even (50 -> 25, 59.94 -> 29.97).
    half = source_fps / 2
    return half if half <= cap else cap


def describe(plan: Sequence[PlannedRung]) -> tuple[str, ...]:
    """One line per rung: name, size, frame rate, bitrates (for logs and the CLI)."""
    return tuple(
        f"{r.name} {r.width}x{r.height}@{r.frame_rate:.3f} {r.video_kbps}k+{r.audio_kbps}k"
        for r in plan
    )
