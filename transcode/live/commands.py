"""FFmpeg commands of live epochs: a checked source, decoded once, every rung segmented with
a CSV list (FFmpeg's own playlists are never served). A card (and the slate, which is one)
is ``card.py``'s.

A ``passthrough`` profile stream-copies the source into its one rung instead, cut on
the source's keyframes; its source is probed first (:func:`probe_passthrough`), which
refuses anything but H.264/AAC, and its slate is encoded to the probed source's size,
rate, H.264 profile and level and AAC sample rate and channels, so a player switching
to the slate at a discontinuity keeps its decoder configuration.

A live source carrying several programmes (an encoder's own ladder, one MPEG-TS service
per rendition) gives a passthrough channel one rung per programme, top first: ``src``,
then ``src1``, ``src2``... One FFmpeg copies them all and the slate encodes each rung as
its programme is. The publisher takes segment *k* of every rung together, so this assumes
what such an encoder does: the programmes' keyframes fall at the same instants, and each
rung's segment muxer then cuts at the same points. (A keyframe lost from one programme
moves that rung's cut a GOP later for one segment; the muxer cuts at multiples of
``segment_seconds``, so the next cut is aligned again.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ffmpeg

from transcode.domain import LiveChannel
from transcode.errors import CorruptSource, SourceNotFound, SourceRefused, UnsupportedSource
from transcode.ffmpeg_cmd import (
    audio_encoding,
    h264_level_name,
    h264_profile_name,
    rung_encoding,
    rung_video,
)
from transcode.ladder import PlannedRung, Profile, plan_ladder
from transcode.live.captions import CUES_NAME
from transcode.live.detect import FilterSpec, Thresholds, audio_filters, video_filters
from transcode.probe import AudioInfo, SourceInfo, VideoInfo, probe, require_remuxable
from transcode.sources import SourceInput
from transcode.tracks import Track, audio_of, subtitles_of

LIVE_FRAME_RATE = 25.0  # PAL broadcast rate; the slate and every source are normalised to it
# Input options that only make sense for FFmpeg's own read of a source, not for a probe.
_RUN_ONLY_OPTIONS = frozenset({"stream_loop", "re"})
# Beyond the source's own timeout: ffprobe reads a second or two of a feed to find its streams.
_PROBE_SLACK_SECONDS = 10.0


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


def plan_passthrough(profile: Profile, source: SourceInfo | None) -> tuple[PlannedRung, ...]:
    """The passthrough rungs as the probed ``source`` carries them, one per programme, top
    first (the nominal rung before any probe)."""
    if source is None:
        return plan_live(profile)
    rung = profile.rungs[0]
    return tuple(
        _passthrough_rung(profile, f"{rung.name}{index}" if index else rung.name, video, audio)
        for index, (video, audio) in enumerate(programmes(source))
    )


def programmes(source: SourceInfo) -> tuple[tuple[VideoInfo, AudioInfo | None], ...]:
    """Each rung's video and audio as probed, top first."""
    return tuple((p.video, p.audio) for p in source.programmes) or ((source.video, source.audio),)


def _selectors(source: SourceInfo | None) -> tuple[tuple[str, str], ...]:
    """Where FFmpeg finds each rung's video and audio in the source, top first."""
    if source is None or not source.programmes:
        return (("v:0", "a:0"),)
    return tuple(
        (f"p:{p.program_id}:v:{p.video_index}", f"p:{p.program_id}:a:{p.audio_index}")
        for p in source.programmes
    )


def _passthrough_rung(
    profile: Profile, name: str, video: VideoInfo, audio: AudioInfo | None
) -> PlannedRung:
    nominal = profile.rungs[0]
    video_kbps = round(video.bit_rate / 1000) if video.bit_rate else nominal.video_kbps
    frame_rate = video.frame_rate or LIVE_FRAME_RATE
    return PlannedRung(
        name=name,
        width=video.width,
        height=video.height,
        frame_rate=frame_rate,
        gop_frames=max(1, round(profile.gop_seconds * frame_rate)),
        video_kbps=video_kbps,
        maxrate_kbps=video_kbps,
        bufsize_kbps=2 * video_kbps,
        audio_kbps=round(audio.bit_rate / 1000) if audio and audio.bit_rate else 128,
        h264_profile=h264_profile_name(video.profile),
        h264_level=h264_level_name(video.level) or nominal.h264_level,
    )


async def probe_passthrough(
    source: SourceInput,
    *,
    timeout_seconds: float,
    previous: SourceInfo | None = None,
    ffprobe: str = "ffprobe",
) -> SourceInfo | None:
    """Probe a passthrough channel's checked source before FFmpeg copies it.

    Raises ``SourceRefused`` (the channel stops with the reason) when the source is
    not H.264 video with AAC audio. A source that cannot be reached now returns
    ``previous``: FFmpeg then fails on it the same way and the slate runs.
    """
    url, options = source_input(source, timeout_seconds=timeout_seconds)
    probe_options = {k: str(v) for k, v in options.items() if k not in _RUN_ONLY_OPTIONS}
    try:
        async with asyncio.timeout(timeout_seconds + _PROBE_SLACK_SECONDS):
            info = await probe(
                url, ffprobe=ffprobe, input_options=probe_options, live=True, programmes=True
            )
    except (SourceNotFound, CorruptSource, TimeoutError):
        return previous
    except UnsupportedSource as err:
        raise _not_remuxable(err) from err
    try:
        require_remuxable(info)
    except UnsupportedSource as err:
        raise _not_remuxable(err) from err
    return info


def _not_remuxable(err: UnsupportedSource) -> SourceRefused:
    return SourceRefused(
        "channel.source", f"the passthrough profile needs H.264 video and AAC audio: {err.message}"
    )


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
    sounds: Sequence[object],
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    tracks: Sequence[Track] = (),
    subtitles: Sequence[object] = (),
    ffmpeg_bin: str = "ffmpeg",
    loglevel: str = "error",
) -> list[str]:
    """Decode once, encode every rung, segment each with a CSV list under ``out_dir/<rung>``.

    ``sounds``: the one audio muxed into every rung, or one per audio rendition of
    ``tracks`` (then the rungs are video only and each rendition is segmented in its own
    directory alike); ``subtitles``: one stream per subtitle rendition of ``tracks``, each
    decoded to the WebVTT file ``captions.py`` cuts."""
    branches = video.filter_multi_output("split", len(plan))  # type: ignore[attr-defined]
    audio_tracks, subtitle_tracks = audio_of(tracks), subtitles_of(tracks)
    muxed = None
    if not audio_tracks:
        # A filtered sound (the detectors') feeds one output only: split it too.
        (sound,) = sounds
        muxed = sound.filter_multi_output("asplit", len(plan))  # type: ignore[attr-defined]
    outputs = []
    for index, rung in enumerate(plan):
        rung_dir = out_dir / rung.name
        streams = [rung_video(branches.stream(index), rung)]
        if muxed is not None:
            streams.append(muxed.stream(index))
        outputs.append(
            ffmpeg.output(
                *streams,
                str(rung_dir / "seg_%06d.ts"),
                **{
                    **rung_encoding(rung, profile),
                    "tune": "zerolatency",
                    **segment_options(profile, rung_dir),
                },
            )
        )
    kbps = max(r.audio_kbps for r in profile.rungs)
    for track, sound in zip(audio_tracks, sounds if audio_tracks else (), strict=True):
        track_dir = out_dir / track.name
        outputs.append(
            ffmpeg.output(
                sound,
                str(track_dir / "seg_%06d.ts"),
                **audio_encoding(kbps, profile),
                **segment_options(profile, track_dir),
            )
        )
    for track, text in zip(subtitle_tracks, subtitles, strict=True):
        # Flushed packet by packet: the publisher reads each cue as soon as it is decoded.
        cues = out_dir / track.name / CUES_NAME
        outputs.append(
            ffmpeg.output(text, str(cues), **{"c:s": "webvtt", "f": "webvtt", "flush_packets": 1})
        )
    return compile_command(ffmpeg.merge_outputs(*outputs), ffmpeg_bin, loglevel=loglevel)


def segment_options(profile: Profile, rung_dir: Path) -> dict[str, object]:
    return {
        "f": "segment",
        "segment_time": f"{profile.segment_seconds:g}",
        "segment_format": "mpegts",
        "segment_list": str(rung_dir / "list.csv"),
        "segment_list_type": "csv",
        "segment_list_flags": "+live",
    }


def compile_command(
    node: ffmpeg.nodes.OutputStream, ffmpeg_bin: str, *, loglevel: str = "error"
) -> list[str]:
    args: list[str] = node.global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel
    ).compile(cmd=ffmpeg_bin)
    return args


def _detected(stream: Any, filters: Sequence[FilterSpec]) -> Any:
    for name, options in filters:
        stream = stream.filter(name, **options)
    return stream


def passthrough_command(
    stream: Any,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    probed: SourceInfo | None,
    ffmpeg_bin: str = "ffmpeg",
    loglevel: str = "error",
) -> list[str]:
    """Stream-copy the source (each programme of ``probed``, the ``plan`` made from it)
    into its rung, a segment cut at the first keyframe after each ``segment_seconds``
    (durations follow the source's GOPs; the publisher's TARGETDURATION follows the real
    durations)."""
    outputs = []
    for rung, (video, audio) in zip(plan, _selectors(probed), strict=True):
        rung_dir = out_dir / rung.name
        outputs.append(
            ffmpeg.output(
                stream[video],
                stream[audio],
                str(rung_dir / "seg_%06d.ts"),
                c="copy",
                **segment_options(profile, rung_dir),
            )
        )
    return compile_command(ffmpeg.merge_outputs(*outputs), ffmpeg_bin, loglevel=loglevel)


def source_command(
    channel: LiveChannel,
    source: SourceInput,
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    thresholds: Thresholds | None = None,
    probed: SourceInfo | None = None,
    tracks: Sequence[Track] = (),
) -> list[str]:
    """The FFmpeg command of a source epoch (``source`` is one of the channel's, checked;
    ``probed``, a passthrough channel's probe of it, which ``plan`` was made from).

    With ``thresholds`` FFmpeg also runs the health detectors (``detect``) and logs at info
    level for them; a passthrough copy is not decoded, so only its continuity is checked.
    ``tracks`` (not for passthrough): the audio and subtitle renditions, from the source's
    streams ``a:<index>`` and ``s:<index>``; the detectors listen to the first audio.
    """
    url, options = source_input(source, timeout_seconds=channel.source_timeout_seconds)
    stream = ffmpeg.input(url, **options)
    loglevel = "error" if thresholds is None else "level+info"
    if profile.passthrough:
        return passthrough_command(stream, plan, profile, out_dir, probed=probed, loglevel=loglevel)
    video = stream["v:0"]
    sounds = [stream[f"a:{t.index}"] for t in audio_of(tracks)] or [stream["a:0"]]
    if thresholds is not None:
        video = _detected(video, video_filters(thresholds))
        sounds[0] = _detected(sounds[0], audio_filters(thresholds))
    subtitles = [stream[f"s:{t.index}"] for t in subtitles_of(tracks)]
    return live_command(
        video, sounds, plan, profile, out_dir, tracks=tracks, subtitles=subtitles, loglevel=loglevel
    )


def health_command(
    channel: LiveChannel,
    source: SourceInput,
    thresholds: Thresholds,
    *,
    seconds: float,
    passthrough: bool = False,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """A bounded read of a source (``seconds`` of it) through the detectors, output discarded:
    how a preferred source is checked without touching the running epoch."""
    url, options = source_input(source, timeout_seconds=channel.source_timeout_seconds)
    stream = ffmpeg.input(url, **options)
    video, audio = stream["v:0"], stream["a:0"]
    if not passthrough:
        video = _detected(video, video_filters(thresholds))
        audio = _detected(audio, audio_filters(thresholds))
    copy = {"c": "copy"} if passthrough else {}
    output = ffmpeg.output(video, audio, "-", f="null", t=f"{seconds:g}", **copy)
    return compile_command(output, ffmpeg_bin, loglevel="level+info")
