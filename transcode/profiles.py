"""Named ladder profiles that jobs and channels refer to by name."""

from __future__ import annotations

from dataclasses import replace

from transcode.errors import InvalidRequest
from transcode.jobs import PackageFormat
from transcode.ladder import (
    DEFAULT_RUNGS,
    Profile,
    Rung,
    default_profile,
    has_hevc,
    profile_with_overrides,
)

# "low" is the thin-link ladder (and, being tiny, what tests and previews use).
LOW_RUNGS: tuple[Rung, ...] = (
    Rung("90p", 160, 90, 64, 32, "baseline", "1.1"),
    Rung("180p", 320, 180, 200, 48, "baseline", "1.3"),
)
# "passthrough" repackages an H.264/AAC source without re-encoding: one rung, "src",
# whose size, rate and codecs are the source's (these figures stand in until it is probed);
# a source carrying several programmes gets one rung per programme, "src", "src1"...
PASSTHROUGH_RUNGS: tuple[Rung, ...] = (Rung("src", 1920, 1080, 6000, 128, "high", "4.0"),)
# HEVC reaches H.264's quality at about 60 % of its bitrate (x265 against x264 at the
# same "veryfast"-class preset on broadcast content); its rungs are named "<size>-hevc".
HEVC_BITRATE_SHARE = 0.6
# The mixed ladder adds HEVC only where the saving pays for a second encode: the sizes
# that carry most of the bytes.
MIXED_HEVC_MIN_HEIGHT = 540


def hevc_rung(rung: Rung, share: float = HEVC_BITRATE_SHARE) -> Rung:
    """The HEVC (Main, 8-bit) counterpart of an H.264 rung: same size, ``share`` of its
    video bitrate, named ``<name>-hevc``."""
    return replace(
        rung,
        name=f"{rung.name}-hevc",
        video_kbps=max(16, round(rung.video_kbps * share)),
        codec="hevc",
        hevc_profile="main",
    )


HEVC_RUNGS: tuple[Rung, ...] = tuple(hevc_rung(r) for r in DEFAULT_RUNGS)
MIXED_RUNGS: tuple[Rung, ...] = (
    *DEFAULT_RUNGS,
    *(hevc_rung(r) for r in DEFAULT_RUNGS if r.height >= MIXED_HEVC_MIN_HEIGHT),
)


def profile_names() -> tuple[str, ...]:
    """The profiles a job or channel may name (H.264; live channels are sized by these)."""
    return ("default", "low", "passthrough")


def vod_profile_names() -> tuple[str, ...]:
    """Every profile a VOD job may name: ``profile_names`` and the HEVC ones (CMAF only)."""
    return (*profile_names(), *_HEVC_PROFILES)


_HEVC_PROFILES = ("hevc", "default-hevc")


def require_live(name: str) -> str:
    """Refuse (on "profile") an HEVC profile for a live channel: live rungs are H.264, and
    its MPEG-TS outputs (multicast, TS HLS) cannot carry the ``hvc1`` rungs."""
    if name in _HEVC_PROFILES:
        raise InvalidRequest(
            "profile",
            f"{name!r} is a VOD (CMAF) profile; a live channel names one of "
            f"{', '.join(profile_names())}",
        )
    return name


def resolve_profile(name: str, *, segment_seconds: float | None = None) -> Profile:
    """The named profile, optionally with a channel's own segment length."""
    if name == "default":
        profile = default_profile()
    elif name == "low":
        profile = Profile(name="low", rungs=LOW_RUNGS)
    elif name == "passthrough":
        profile = Profile(name="passthrough", rungs=PASSTHROUGH_RUNGS, passthrough=True)
    elif name == "hevc":
        profile = Profile(name="hevc", rungs=HEVC_RUNGS)
    elif name == "default-hevc":
        profile = Profile(name="default-hevc", rungs=MIXED_RUNGS)
    else:
        raise InvalidRequest("profile", f"unknown profile; one of {', '.join(vod_profile_names())}")
    if segment_seconds is not None and segment_seconds != profile.segment_seconds:
        # GOPs must divide segments evenly; 2 s GOPs unless the segment is shorter. (A
        # passthrough channel keeps its source's GOPs; these rules shape only its slate.)
        gop = min(profile.gop_seconds, segment_seconds)
        if segment_seconds % gop:
            gop = segment_seconds
        profile = profile_with_overrides(
            profile, {"segment_seconds": float(segment_seconds), "gop_seconds": float(gop)}
        )
    return profile


def require_format(profile: Profile, package_format: PackageFormat) -> Profile:
    """Refuse (on "format") HEVC rungs in MPEG-TS: HLS carries HEVC in fMP4 only (Apple's
    authoring rules; ``hvc1`` sample entries), so an HEVC profile is a CMAF job's."""
    if has_hevc(profile) and package_format is not PackageFormat.CMAF:
        raise InvalidRequest(
            "format",
            f"profile {profile.name!r} has HEVC rungs, which are packaged in CMAF only: "
            "submit it as CMAF, or name an H.264 profile",
        )
    return profile
