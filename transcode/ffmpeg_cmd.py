"""FFmpeg command lines, built with ffmpeg-python (no shell strings anywhere).

Two shapes: the ladder (decode once, ``split``, scale and encode every rung;
one process per rung is the ladder of that rung alone, with the same encode
settings) and the stream-copy remux of an H.264/AAC mezzanine. Each writes MPEG-TS
segments, or with ``cmaf`` fMP4: an ``init.mp4`` and ``seg_%05d.m4s`` per single-track
rendition (video-only rungs, audio in renditions of its own), a fragment per keyframe in
video so that an I-frame playlist can point at one ``moof`` per I-frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from transcode.ladder import H264Profile, PlannedRung, Profile
from transcode.tracks import Track

# FFmpeg's own playlist is only read back for its segment list; ours replaces it.
FFMPEG_PLAYLIST = ".ffmpeg.m3u8"
SEGMENT_PATTERN = "seg_%05d.ts"
CMAF_SEGMENT_PATTERN = "seg_%05d.m4s"
CMAF_INIT = "init.mp4"
# The HLS muxer's mp4 flags are "+frag_custom+dash+delay_moov" (one fragment per segment);
# frag_keyframe adds a fragment at every keyframe. Video only: every audio frame is a sync
# sample, so audio would get a fragment per frame.
_KEYFRAME_FRAGMENTS = "movflags=+frag_keyframe"
# Keep every output on the source's timeline. By default the muxer shifts each output by
# its own most negative DTS (B-frame delay, which differs between baseline and high rungs
# and with the frame rate; AAC priming in an audio rendition), so the same source instant
# would get a different PTS in each rung and ABR or audio switches would jump.
_SOURCE_TIMELINE = {"avoid_negative_ts": "disabled", "hls_ts_options": "avoid_negative_ts=disabled"}
_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats")
# Progress every 0.25 s: it paces the segment scan that overlaps the encode.
_PROGRESS_ARGS = ("-progress", "pipe:1", "-stats_period", "0.25")


def segment_name(index: int) -> str:
    """The file name FFmpeg gives the ``index``-th segment (from 0)."""
    return SEGMENT_PATTERN % index


def cmaf_segment_name(index: int) -> str:
    """The file name FFmpeg gives the ``index``-th CMAF media segment (from 0)."""
    return CMAF_SEGMENT_PATTERN % index


def ladder_command(
    source: str,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_options: Mapping[str, str] | None = None,
    audio: Sequence[Track] = (),
    video_only: bool = False,
    cmaf: bool = False,
) -> list[str]:
    """One FFmpeg that decodes ``source`` once and writes every rung's HLS under ``out_dir``
    (a plan of one rung is the per-rung mode: each FFmpeg decodes the source itself).

    Each of the ``audio`` renditions is encoded once, at the profile's top audio rate, into
    its own directory; with renditions (or ``video_only``: the per-rung mode's rung processes,
    whose renditions another process writes) the rungs carry no audio. ``cmaf``: fMP4
    segments (the caller passes the audio as renditions: CMAF tracks are single-track)."""
    source_in = ffmpeg.input(source, **(input_options or {}))
    video = source_in["v:0"]
    muxed = None if audio or video_only else source_in["a:0"]
    if len(plan) <= 1:
        pictures = [video] * len(plan)
    else:
        branches = video.filter_multi_output("split", len(plan))
        pictures = [branches.stream(index) for index in range(len(plan))]
    outputs = [
        _rung_output(picture, muxed, rung, profile, out_dir, cmaf=cmaf)
        for picture, rung in zip(pictures, plan, strict=True)
    ]
    kbps = max(r.audio_kbps for r in profile.rungs)
    outputs += [
        ffmpeg.output(
            source_in[f"a:{track.index}"],
            str(out_dir / track.name / FFMPEG_PLAYLIST),
            **audio_encoding(kbps, profile),
            **_timeline(cmaf),
            **_hls_options(profile.segment_seconds, out_dir / track.name, cmaf=cmaf, video=False),
        )
        for track in audio
    ]
    return compile_command(ffmpeg.merge_outputs(*outputs), ffmpeg_bin)


def remux_command(
    source: str,
    rung_name: str,
    segment_seconds: float,
    out_dir: Path,
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_options: Mapping[str, str] | None = None,
    audio_name: str = "",
) -> list[str]:
    """Stream-copy an H.264/AAC source into MPEG-TS HLS segments (no re-encode); with
    ``audio_name``, CMAF: the video into ``rung_name``, the audio into ``audio_name``."""
    source_in = ffmpeg.input(source, **(input_options or {}))
    if audio_name:
        video = ffmpeg.output(
            source_in["v:0"],
            str(out_dir / rung_name / FFMPEG_PLAYLIST),
            c="copy",
            **_hls_options(segment_seconds, out_dir / rung_name, cmaf=True, video=True),
        )
        sound = ffmpeg.output(
            source_in["a:0"],
            str(out_dir / audio_name / FFMPEG_PLAYLIST),
            c="copy",
            **_hls_options(segment_seconds, out_dir / audio_name, cmaf=True, video=False),
        )
        output = ffmpeg.merge_outputs(video, sound)
    else:
        output = ffmpeg.output(
            source_in["v:0"],
            source_in["a:0"],
            str(out_dir / rung_name / FFMPEG_PLAYLIST),
            c="copy",
            **_hls_options(segment_seconds, out_dir / rung_name),
        )
    # At "info" FFmpeg describes its input (duration, codecs, size, rate) on stderr
    # before copying anything: the remux reads the source's facts from there instead
    # of starting an ffprobe, which at several hundred times realtime costs a lot.
    return compile_command(output, ffmpeg_bin, loglevel="info")


def frame_rate_expr(frame_rate: float) -> str:
    """An exact rational for FFmpeg (29.97 -> '30000/1001'), so GOPs do not drift."""
    fraction = Fraction(frame_rate).limit_denominator(1001)
    return f"{fraction.numerator}/{fraction.denominator}"


def h264_profile_name(probed: str) -> H264Profile:
    """x264's name for an H.264 profile as ffprobe names it ("Constrained Baseline" ->
    "baseline"); profiles x264 cannot match in 8-bit 4:2:0 map to "high"."""
    name = probed.lower()
    if "baseline" in name:
        return "baseline"
    if name == "main":
        return "main"
    return "high"


def h264_level_name(level: int) -> str:
    """An H.264 level as x264 takes it (ffprobe's 31 -> "3.1", 9 -> "1b"); "" if unknown."""
    if level <= 0:
        return ""
    if level == 9:
        return "1b"
    return f"{level // 10}.{level % 10}"


def rung_video(video: Any, rung: PlannedRung) -> Any:
    """The rung's picture: exact frame rate, size, square pixels, 4:2:0 (10-bit for an
    HEVC Main 10 rung)."""
    ten_bit = rung.codec == "hevc" and rung.hevc_profile == "main10"
    return (
        video.filter("fps", fps=frame_rate_expr(rung.frame_rate))
        .filter("scale", rung.width, rung.height)
        .filter("setsar", "1")
        .filter("format", "yuv420p10le" if ten_bit else "yuv420p")
    )


def rung_encoding(rung: PlannedRung, profile: Profile) -> dict[str, Any]:
    """H.264 (or HEVC)/AAC encoder options of a rung, shared by VOD packaging and live
    channels."""
    gop_seconds = f"{profile.gop_seconds:g}"
    if rung.codec == "hevc":
        return {**hevc_encoding(rung, profile), **audio_encoding(rung.audio_kbps, profile)}
    return {
        "c:v": "libx264",
        "preset": profile.preset,
        "profile:v": rung.h264_profile,
        "level:v": rung.h264_level,
        "b:v": f"{rung.video_kbps}k",
        "maxrate:v": f"{rung.maxrate_kbps}k",
        "bufsize:v": f"{rung.bufsize_kbps}k",
        # Aligned closed GOPs of gop_seconds in every rung, no scene-cut keyframes:
        # keyframes land on the same media times, so segments switch cleanly.
        "g": rung.gop_frames,
        "keyint_min": rung.gop_frames,
        "sc_threshold": 0,
        "flags": "+cgop",
        "force_key_frames": f"expr:gte(t,n_forced*{gop_seconds})",
        **audio_encoding(rung.audio_kbps, profile),
    }


def hevc_encoding(rung: PlannedRung, profile: Profile) -> dict[str, Any]:
    """libx265 options of an HEVC rung: the H.264 rungs' GOP rules, so its keyframes fall
    on the same instants and its segments on the same cuts.

    x265 takes its GOP rules in ``x265-params`` (FFmpeg's ``-g``/``-sc_threshold`` do not
    all reach it): closed GOPs (``open-gop=0``: a segment must decode alone, no leading
    pictures referring to the previous one), no scene-cut keyframes, and FFmpeg's forced
    keyframes made IDR (``forced-idr``; x265 would make them CRA-like I pictures).
    VBV comes from ``maxrate``/``bufsize`` as for x264. ``hvc1``: parameter sets in the
    sample entry only, as Apple's players want."""
    params = {
        "keyint": rung.gop_frames,
        "min-keyint": rung.gop_frames,
        "scenecut": 0,
        "open-gop": 0,
        "level-idc": rung.hevc_level,
        "high-tier": 0,  # Main tier: the level's bitrate limits were chosen for it
        "log-level": "error",
    }
    return {
        "c:v": "libx265",
        "preset": profile.preset,
        "profile:v": rung.hevc_profile,
        "b:v": f"{rung.video_kbps}k",
        "maxrate:v": f"{rung.maxrate_kbps}k",
        "bufsize:v": f"{rung.bufsize_kbps}k",
        "x265-params": ":".join(f"{key}={value}" for key, value in params.items() if value != ""),
        "forced-idr": 1,
        "force_key_frames": f"expr:gte(t,n_forced*{profile.gop_seconds:g})",
        "tag:v": "hvc1",
    }


def audio_encoding(kbps: int, profile: Profile) -> dict[str, Any]:
    """AAC encoder options: a rung's muxed audio, or an audio rendition of its own."""
    return {
        "c:a": "aac",
        "b:a": f"{kbps}k",
        "ar": profile.audio_sample_rate,
        "ac": profile.audio_channels,
    }


def _rung_output(
    video: Any,
    audio: Any | None,
    rung: PlannedRung,
    profile: Profile,
    out_dir: Path,
    *,
    cmaf: bool = False,
) -> Any:
    scaled = rung_video(video, rung)
    encode: dict[str, Any] = {**rung_encoding(rung, profile), **_timeline(cmaf)}
    rung_dir = out_dir / rung.name
    return ffmpeg.output(
        *((scaled,) if audio is None else (scaled, audio)),
        str(rung_dir / FFMPEG_PLAYLIST),
        **encode,
        **_hls_options(profile.segment_seconds, rung_dir, cmaf=cmaf, video=True),
    )


def _timeline(cmaf: bool) -> dict[str, str]:
    # The mp4 muxer starts every track's decode time at 0 and puts the B-frame delay and
    # AAC priming in composition offsets and edit lists, the same in every rung; the
    # segment options carry the fragmenting flags there instead of the TS options.
    if cmaf:
        return {"avoid_negative_ts": "disabled"}
    return _SOURCE_TIMELINE


def _hls_options(
    segment_seconds: float, rung_dir: Path, *, cmaf: bool = False, video: bool = True
) -> dict[str, Any]:
    common = {
        "f": "hls",
        "hls_time": f"{segment_seconds:g}",
        "hls_playlist_type": "vod",
        "hls_list_size": 0,
    }
    if not cmaf:
        return {
            **common,
            "hls_segment_type": "mpegts",
            "hls_segment_filename": str(rung_dir / SEGMENT_PATTERN),
        }
    return {
        **common,
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": CMAF_INIT,
        "hls_segment_filename": str(rung_dir / CMAF_SEGMENT_PATTERN),
        **({"hls_segment_options": _KEYFRAME_FRAGMENTS} if video else {}),
    }


def compile_command(node: Any, ffmpeg_bin: str, *, loglevel: str = "error") -> list[str]:
    """The argument list of an ffmpeg-python graph, with the house's global and ``-progress``
    arguments (``transcode.runner.run_ffmpeg`` reads the progress)."""
    node = node.global_args(*_GLOBAL_ARGS, "-loglevel", loglevel, *_PROGRESS_ARGS)
    args: list[str] = node.compile(cmd=ffmpeg_bin)
    return args


def thumbnail_command(max_width: int, ffmpeg_bin: str = "ffmpeg") -> list[str]:
    """One JPEG of the first key frame of an MPEG-TS segment read on stdin, at most
    ``max_width`` pixels wide (never upscaled), written to stdout: no file anywhere."""
    # Only key frames are decoded: a segment starts with one, and the rest is never needed.
    source = ffmpeg.input("pipe:0", f="mpegts", skip_frame="nokey", threads=1)
    scaled = source.video.filter("scale", f"min({max_width},iw)", -2)
    output = ffmpeg.output(scaled, "pipe:1", vframes=1, f="image2", vcodec="mjpeg", q=5)
    args: list[str] = output.global_args(*_GLOBAL_ARGS, "-loglevel", "error").compile(
        cmd=ffmpeg_bin
    )
    return args
