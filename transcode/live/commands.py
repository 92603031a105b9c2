"""FFmpeg commands of live epochs: a checked source or the slate, decoded once, every rung
segmented with a CSV list (FFmpeg's own playlists are never served)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ffmpeg

from transcode.domain import LiveChannel
from transcode.ffmpeg_cmd import frame_rate_expr, rung_encoding, rung_video
from transcode.ladder import PlannedRung, Profile, plan_ladder
from transcode.probe import SourceInfo, VideoInfo
from transcode.sources import SourceInput

LIVE_FRAME_RATE = 25.0  # PAL broadcast rate; the slate and every source are normalised to it
SLATE_TEXT = "signal lost"


def plan_live(profile: Profile) -> tuple[PlannedRung, ...]:
    """Every rung of the profile at the live frame rate (a live source is not probed first)."""
    top = max(profile.rungs, key=lambda r: r.height)
    nominal = SourceInfo(
        uri="live",
        format_name="mpegts",
        duration_seconds=0.0,
        video=VideoInfo("h264", top.width, top.height, LIVE_FRAME_RATE, 1.0, "", 0, "", None),
        audio=None,
    )
    return plan_ladder(profile, nominal)


def ladder_bytes_per_second(plan: Sequence[PlannedRung]) -> float:
    """What the whole ladder writes per second at its peak rates (video maxrate plus audio)."""
    return sum((r.maxrate_kbps + r.audio_kbps) * 1000 / 8 for r in plan)


def source_input(source: SourceInput, *, timeout_seconds: float) -> tuple[str, dict[str, object]]:
    """The FFmpeg input URL and options for a checked live source."""
    micros = str(int(timeout_seconds * 1_000_000))
    options: dict[str, object] = {"fflags": "+genpts+discardcorrupt", **source.options}
    if source.scheme == "udp":
        parts = urlsplit(source.url)
        query = dict(parse_qsl(parts.query))
        # No data for this long raises an error, which is how a dropped feed is noticed.
        query.setdefault("timeout", micros)
        query.setdefault("overrun_nonfatal", "1")
        query.setdefault("fifo_size", "1000000")
        return urlunsplit(parts._replace(query=urlencode(query))), options
    if source.scheme != "file":
        options["rw_timeout"] = micros
        return source.url, options
    # A file is a test source: looped for ever, read at its native rate.
    options.update(stream_loop=-1, re=None)
    return source.url, options


def live_command(
    video: object,
    audio: object,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """Decode once, encode every rung, segment each with a CSV list under ``out_dir/<rung>``."""
    branches = video.filter_multi_output("split", len(plan))  # type: ignore[attr-defined]
    outputs = []
    for index, rung in enumerate(plan):
        rung_dir = out_dir / rung.name
        outputs.append(
            ffmpeg.output(
                rung_video(branches.stream(index), rung),
                audio,
                str(rung_dir / "seg_%06d.ts"),
                **{
                    **rung_encoding(rung, profile),
                    "tune": "zerolatency",
                    "f": "segment",
                    "segment_time": f"{profile.segment_seconds:g}",
                    "segment_format": "mpegts",
                    "segment_list": str(rung_dir / "list.csv"),
                    "segment_list_type": "csv",
                    "segment_list_flags": "+live",
                },
            )
        )
    node = ffmpeg.merge_outputs(*outputs).global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"
    )
    args: list[str] = node.compile(cmd=ffmpeg_bin)
    return args


def source_command(
    channel: LiveChannel,
    source: SourceInput,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
) -> list[str]:
    """The FFmpeg command of a source epoch (``source`` is the checked ``channel.source``)."""
    url, options = source_input(source, timeout_seconds=channel.source_timeout_seconds)
    stream = ffmpeg.input(url, **options)
    return live_command(stream["v:0"], stream["a:0"], plan, profile, out_dir)


def slate_command(plan: Sequence[PlannedRung], profile: Profile, out_dir: Path) -> list[str]:
    """The FFmpeg command of a slate epoch: a dark card saying the signal is lost, and silence."""
    top = max(plan, key=lambda r: r.height)
    video = ffmpeg.input(
        f"color=c=0x202020:s={top.width}x{top.height}:r={frame_rate_expr(LIVE_FRAME_RATE)}",
        f="lavfi",
        re=None,
    ).filter(
        "drawtext",
        text=SLATE_TEXT,
        fontcolor="white",
        fontsize=max(12, top.height // 10),
        x="(w-text_w)/2",
        y="(h-text_h)/2",
    )
    audio = ffmpeg.input(f"anullsrc=r={profile.audio_sample_rate}:cl=stereo", f="lavfi", re=None)
    return live_command(video, audio, plan, profile, out_dir)
