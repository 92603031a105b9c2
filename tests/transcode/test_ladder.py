"""Ladder planning and FFmpeg command building (pure; no media needed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from transcode import ffmpeg_cmd
from transcode.errors import InvalidProfile
from transcode.ladder import (
    Profile,
    Rung,
    default_profile,
    describe,
    plan_ladder,
    profile_with_overrides,
)
from transcode.probe import AudioInfo, SourceInfo, VideoInfo


def source(width: int, height: int, fps: float, *, sar: float = 1.0) -> SourceInfo:
    """A probed source of the given shape."""
    return SourceInfo(
        uri="in.mp4",
        format_name="mov,mp4",
        duration_seconds=60.0,
        video=VideoInfo("h264", width, height, fps, sar, "High", 40, "yuv420p", None),
        audio=AudioInfo("aac", "LC", 48000, 2, None),
    )


def test_default_ladder_matches_the_authoring_table() -> None:
    rungs = default_profile().rungs

    assert [(r.width, r.height, r.video_kbps) for r in rungs] == [
        (416, 234, 145),
        (640, 360, 365),
        (768, 432, 730),
        (960, 540, 2000),
        (1280, 720, 3000),
        (1920, 1080, 6000),
    ]


@pytest.mark.parametrize(
    ("src", "names", "fps"),
    [
        pytest.param(
            source(1920, 1080, 50.0),
            ["234p", "360p", "432p", "540p", "720p", "1080p"],
            [25.0, 25.0, 25.0, 50.0, 50.0, 50.0],
            id="1080p50-low-rungs-halved",
        ),
        pytest.param(
            source(1920, 1080, 60000 / 1001),
            ["234p", "360p", "432p", "540p", "720p", "1080p"],
            [30000 / 1001] * 3 + [60000 / 1001] * 3,
            id="1080p59.94-low-rungs-29.97",
        ),
        pytest.param(
            source(1280, 720, 25.0),
            ["234p", "360p", "432p", "540p", "720p"],
            [25.0] * 5,
            id="720p25-no-upscale-no-cap",
        ),
        pytest.param(
            source(1000, 562, 30.0),
            ["234p", "360p", "432p", "540p"],
            [30.0] * 4,
            id="odd-source-stops-below-its-height",
        ),
    ],
)
def test_plan_never_upscales_and_caps_low_rung_rates(
    src: SourceInfo, names: list[str], fps: list[float]
) -> None:
    plan = plan_ladder(default_profile(), src)

    assert [r.name for r in plan] == names
    assert [r.frame_rate for r in plan] == pytest.approx(fps)
    assert all(r.height <= src.video.height for r in plan)
    # 2 s GOPs at each rung's own rate.
    assert [r.gop_frames for r in plan] == [round(2 * f) for f in fps]


def test_four_by_three_source_keeps_its_aspect() -> None:
    plan = plan_ladder(default_profile(), source(720, 576, 25.0, sar=16 / 15))

    # 720x576 with 16:15 pixels displays as 4:3.
    assert [(r.width, r.height) for r in plan] == [(312, 234), (480, 360), (576, 432), (720, 540)]


def test_source_smaller_than_every_rung_gets_one_rung_at_its_own_size() -> None:
    plan = plan_ladder(default_profile(), source(320, 180, 30.0))

    assert len(plan) == 1
    assert (plan[0].width, plan[0].height) == (320, 180)
    assert plan[0].video_kbps < 145  # scaled down with the pixel count


def test_rung_frame_rate_override_wins() -> None:
    profile = replace(
        default_profile(),
        rungs=(Rung("720p", 1280, 720, 3000, max_frame_rate=30.0),),
    )

    (rung,) = plan_ladder(profile, source(1920, 1080, 50.0))

    assert rung.frame_rate == 25.0


def test_per_channel_overrides_replace_fields_and_validate() -> None:
    base = default_profile()

    sport = profile_with_overrides(base, {"name": "sport", "preset": "faster"})

    assert (sport.name, sport.preset, sport.rungs) == ("sport", "faster", base.rungs)
    with pytest.raises(InvalidProfile) as caught:
        profile_with_overrides(base, {"colour": "red"})
    assert caught.value.field == "colour"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"rungs": ()}, "rungs", id="no-rungs"),
        pytest.param({"segment_seconds": 5.0}, "segment_seconds", id="segment-not-gop-multiple"),
        pytest.param({"gop_seconds": 8.0}, "gop_seconds", id="gop-longer-than-segment"),
        pytest.param({"preset": "warp"}, "preset", id="unknown-preset"),
        pytest.param({"name": "Bad Name"}, "name", id="bad-name"),
        pytest.param({"rungs": (Rung("a", 641, 360, 365),)}, "rungs.width", id="odd-width"),
        pytest.param(
            {"rungs": (Rung("a", 640, 360, 365), Rung("a", 320, 180, 100))},
            "rungs.name",
            id="duplicate-rung",
        ),
        pytest.param({"rungs": (Rung("a", 640, 360, 5),)}, "rungs.video_kbps", id="tiny-bitrate"),
    ],
)
def test_invalid_profiles_are_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidProfile) as caught:
        replace(default_profile(), **changes)  # type: ignore[arg-type]

    assert caught.value.field == field


def test_describe_lists_each_rung() -> None:
    plan = plan_ladder(default_profile(), source(1280, 720, 25.0))

    assert describe(plan)[0] == "234p 416x234@25.000 145k+64k"


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_one_process_ladder_decodes_once_and_splits() -> None:
    profile = default_profile()
    plan = plan_ladder(profile, source(1920, 1080, 50.0))[:3]

    args = ffmpeg_cmd.ladder_command("in.mp4", plan, profile, Path("/out"))

    assert args.count("-i") == 1
    (graph,) = _option(args, "-filter_complex")
    assert "split=3" in graph
    assert _option(args, "-g") == ["50", "50", "50"]
    assert _option(args, "-keyint_min") == ["50", "50", "50"]
    assert _option(args, "-sc_threshold") == ["0", "0", "0"]
    assert _option(args, "-force_key_frames") == ["expr:gte(t,n_forced*2)"] * 3
    assert _option(args, "-hls_time") == ["6"] * 3
    assert _option(args, "-c:a") == ["aac"] * 3
    assert _option(args, "-progress") == ["pipe:1"]
    assert "/out/234p/seg_%05d.ts" in args


def test_per_rung_mode_builds_one_command_per_rung_with_the_same_settings() -> None:
    profile = default_profile()
    plan = plan_ladder(profile, source(1920, 1080, 50.0))[:3]

    commands = [ffmpeg_cmd.ladder_command("in.mp4", [r], profile, Path("/out")) for r in plan]

    assert [c.count("-i") for c in commands] == [1, 1, 1]
    assert [_option(c, "-b:v") for c in commands] == [["145k"], ["365k"], ["730k"]]
    assert all("split" not in " ".join(c) for c in commands)


@pytest.mark.parametrize(
    ("rate", "expr"),
    [
        pytest.param(30000 / 1001, "30000/1001", id="29.97"),
        pytest.param(25.0, "25/1", id="25"),
        pytest.param(60000 / 1001, "60000/1001", id="59.94"),
    ],
)
def test_frame_rates_are_exact_rationals(rate: float, expr: str) -> None:
    assert ffmpeg_cmd.frame_rate_expr(rate) == expr


def test_profile_is_frozen_and_comparable() -> None:
    assert default_profile() == default_profile()
    assert isinstance(default_profile(), Profile)
