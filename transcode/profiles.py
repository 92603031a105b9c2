"""Named ladder profiles that jobs and channels refer to by name."""

from __future__ import annotations

from transcode.errors import InvalidRequest
from transcode.ladder import Profile, Rung, default_profile, profile_with_overrides

# "low" is the thin-link ladder (and, being tiny, what tests and previews use).
LOW_RUNGS: tuple[Rung, ...] = (
    Rung("90p", 160, 90, 64, 32, "baseline", "1.1"),
    Rung("180p", 320, 180, 200, 48, "baseline", "1.3"),
)
# "passthrough" repackages an H.264/AAC source without re-encoding: one rung, "src",
# whose size, rate and codecs are the source's (these figures stand in until it is probed);
# a source carrying several programmes gets one rung per programme, "src", "src1"...
PASSTHROUGH_RUNGS: tuple[Rung, ...] = (Rung("src", 1920, 1080, 6000, 128, "high", "4.0"),)


def profile_names() -> tuple[str, ...]:
    """The profiles a job or channel may name."""
    return ("default", "low", "passthrough")


def resolve_profile(name: str, *, segment_seconds: float | None = None) -> Profile:
    """The named profile, optionally with a channel's own segment length."""
    if name == "default":
        profile = default_profile()
    elif name == "low":
        profile = Profile(name="low", rungs=LOW_RUNGS)
    elif name == "passthrough":
        profile = Profile(name="passthrough", rungs=PASSTHROUGH_RUNGS, passthrough=True)
    else:
        raise InvalidRequest("profile", f"unknown profile; one of {', '.join(profile_names())}")
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
