"""ffprobe: what a source holds, read once before any encode or remux."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from transcode.errors import CorruptSource, SourceNotFound, ToolUnavailable, UnsupportedSource

# Video codecs a broadcaster or studio hands us that FFmpeg decodes reliably.
TRANSCODABLE_VIDEO = frozenset(
    {"h264", "hevc", "mpeg2video", "mpeg1video", "mpeg4", "vp8", "vp9", "av1", "prores", "dnxhd"}
)
# Stream copy into MPEG-TS HLS needs what every set-top box decodes.
REMUXABLE_VIDEO = frozenset({"h264"})
REMUXABLE_AUDIO = frozenset({"aac"})
# Subtitle codecs FFmpeg turns into WebVTT text (bitmap subtitles cannot be). Teletext
# decodes to text through libzvbi (``-txt_format text``).
TEXT_SUBTITLES = frozenset(
    {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "dvb_teletext"}
)
# A live source's programmes become a passthrough channel's rungs; more than this is a
# multiplex of channels, not one channel's ladder.
MAX_PROGRAMMES = 8


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The first real video stream (cover art excluded)."""

    codec: str
    width: int
    height: int
    frame_rate: float
    sample_aspect: float  # 1.0 for square pixels
    profile: str  # ffprobe's name, e.g. "High", "Constrained Baseline"
    level: int  # e.g. 31 for 3.1
    pix_fmt: str
    bit_rate: int | None


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """The first audio stream."""

    codec: str
    profile: str  # e.g. "LC", "HE-AAC"
    sample_rate: int
    channels: int
    bit_rate: int | None


@dataclass(frozen=True, slots=True)
class StreamTags:
    """One audio or text-subtitle stream of a source: its place among the source's streams of
    its kind (FFmpeg's ``a:<n>`` / ``s:<n>``) and what its tags say about it."""

    index: int
    codec: str
    language: str  # the ``language`` tag as given (ISO 639-2 "chi", BCP-47 "zh"), or ""
    title: str  # the ``title`` tag, or ""
    default: bool  # the stream's default disposition


@dataclass(frozen=True, slots=True)
class Programme:
    """One programme (an MPEG-TS service) of a live source carrying several: its first
    H.264 video and first AAC audio (else its first of each, which a stream copy refuses),
    and their places among its video and audio streams (FFmpeg's ``p:<id>:v:<n>``)."""

    program_id: int
    video: VideoInfo
    audio: AudioInfo | None
    video_index: int
    audio_index: int


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What ffprobe found in a source."""

    uri: str
    format_name: str
    duration_seconds: float
    video: VideoInfo  # the top programme's when there are several
    audio: AudioInfo | None
    # Asked for (``probe(programmes=True)``) and more than one: those with video, top first
    # (taller, then wider, then the lower programme id), so the order is the same each probe.
    programmes: tuple[Programme, ...] = ()
    # Every audio stream, and every subtitle stream FFmpeg can turn into text, in order.
    audio_streams: tuple[StreamTags, ...] = ()
    subtitle_streams: tuple[StreamTags, ...] = ()


async def probe(
    source: str,
    *,
    ffprobe: str = "ffprobe",
    input_options: Mapping[str, str] | None = None,
    live: bool = False,
    programmes: bool = False,
) -> SourceInfo:
    """Probe ``source`` (a path or URL); raise a ``TranscodeError`` leaf when it is unusable.

    ``live``: a feed, not a file; it has no duration (``duration_seconds`` is 0).
    ``programmes``: also learn its programmes (``SourceInfo.programmes``).
    """
    if await asyncio.to_thread(is_local_missing, source):
        raise SourceNotFound(f"source {source} does not exist", details={"source": source})
    options = [arg for key, value in (input_options or {}).items() for arg in (f"-{key}", value)]
    args = [
        ffprobe,
        *("-v", "error", "-print_format", "json", "-show_format", "-show_streams"),
        *(("-show_programs",) if programmes else ()),
        *options,
        source,
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError as err:
        raise ToolUnavailable(f"{ffprobe} is not installed") from err
    try:
        out, err_text = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    reason = err_text.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        last = reason[-1] if reason else f"ffprobe exited {proc.returncode}"
        if "No such file" in last or "404" in last or "Connection refused" in last:
            raise SourceNotFound(f"source {source} cannot be opened: {last}")
        raise CorruptSource(f"source {source} cannot be read: {last}", details={"source": source})
    return parse_probe(source, json.loads(out or b"{}"), live=live)


def parse_probe(source: str, data: dict[str, Any], *, live: bool = False) -> SourceInfo:
    """Turn ffprobe's JSON into ``SourceInfo``; raise when there is no usable video
    (or, unless ``live``, no duration)."""
    streams = data.get("streams", [])
    video = next((s for s in streams if _is_video(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt = data.get("format", {})
    if video is None:
        raise UnsupportedSource(f"source {source} has no video stream", details={"source": source})
    duration = _float(fmt.get("duration")) or _float(video.get("duration"))
    if live:
        duration = 0.0
    elif not duration or duration <= 0:
        raise CorruptSource(f"source {source} has no readable duration", details={"source": source})
    programmes = _programmes(source, data.get("programs", []))
    top = programmes[0] if programmes else None
    return SourceInfo(
        uri=source,
        format_name=str(fmt.get("format_name", "")),
        duration_seconds=duration,
        video=top.video if top else _video_info(video),
        audio=top.audio if top else None if audio is None else _audio_info(audio),
        programmes=programmes,
        audio_streams=_tagged(streams, "audio", None),
        subtitle_streams=_tagged(streams, "subtitle", TEXT_SUBTITLES),
    )


def _tagged(
    streams: list[dict[str, Any]], kind: str, codecs: frozenset[str] | None
) -> tuple[StreamTags, ...]:
    """The ``kind`` streams (of ``codecs``, when given) with their index among all of that kind."""
    found = []
    for index, stream in enumerate(s for s in streams if s.get("codec_type") == kind):
        codec = str(stream.get("codec_name", ""))
        if codecs is not None and codec not in codecs:
            continue
        tags = stream.get("tags") or {}
        found.append(
            StreamTags(
                index=index,
                codec=codec,
                language=str(tags.get("language", "")),
                title=str(tags.get("title", "")),
                default=bool((stream.get("disposition") or {}).get("default")),
            )
        )
    return tuple(found)


def _programmes(source: str, programs: list[dict[str, Any]]) -> tuple[Programme, ...]:
    """The programmes with video of a source carrying more than one, top first."""
    if len(programs) < 2:
        return ()
    found: list[Programme] = []
    for program in programs:
        streams = program.get("streams", [])
        videos = [s for s in streams if s.get("codec_type") == "video"]
        audios = [s for s in streams if s.get("codec_type") == "audio"]
        video = _first([s for s in videos if _is_video(s)], REMUXABLE_VIDEO)
        if video is None:
            continue  # a radio service or data: not a rung
        if len(found) == MAX_PROGRAMMES:
            raise UnsupportedSource(
                f"source {source} carries more than {MAX_PROGRAMMES} programmes with video",
                details={"source": source},
            )
        audio = _first(audios, REMUXABLE_AUDIO)
        found.append(
            Programme(
                program_id=int(program["program_id"]),
                video=_video_info(video),
                audio=None if audio is None else _audio_info(audio),
                video_index=videos.index(video),
                audio_index=0 if audio is None else audios.index(audio),
            )
        )
    found.sort(key=lambda p: (-p.video.height, -p.video.width, p.program_id))
    return tuple(found)


def _first(streams: list[dict[str, Any]], codecs: frozenset[str]) -> dict[str, Any] | None:
    """The first of ``streams`` in ``codecs``, else the first."""
    return next((s for s in streams if s.get("codec_name") in codecs), None) or next(
        iter(streams), None
    )


def _is_video(stream: dict[str, Any]) -> bool:
    """A real picture: cover art excluded."""
    return bool(
        stream.get("codec_type") == "video"
        and not stream.get("disposition", {}).get("attached_pic")
        and stream.get("width")
    )


def _video_info(video: dict[str, Any]) -> VideoInfo:
    sar = video.get("sample_aspect_ratio") or "1:1"
    sar_value = float(Fraction(*map(int, sar.split(":")))) if sar != "0:1" else 1.0
    return VideoInfo(
        codec=str(video.get("codec_name", "")),
        width=int(video["width"]),
        height=int(video["height"]),
        frame_rate=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        sample_aspect=sar_value or 1.0,
        profile=str(video.get("profile", "")),
        level=int(video.get("level", 0) or 0),
        pix_fmt=str(video.get("pix_fmt", "")),
        bit_rate=_int(video.get("bit_rate")),
    )


def _audio_info(audio: dict[str, Any]) -> AudioInfo:
    return AudioInfo(
        codec=str(audio.get("codec_name", "")),
        profile=str(audio.get("profile", "")),
        sample_rate=int(audio.get("sample_rate", 0) or 0),
        channels=int(audio.get("channels", 0) or 0),
        bit_rate=_int(audio.get("bit_rate")),
    )


def require_transcodable(info: SourceInfo) -> None:
    """Raise ``UnsupportedSource`` unless the ladder can be encoded from this source."""
    if info.video.codec not in TRANSCODABLE_VIDEO:
        raise UnsupportedSource(
            f"unsupported video codec {info.video.codec!r}", details={"codec": info.video.codec}
        )
    if info.audio is None:
        raise UnsupportedSource(f"source {info.uri} has no audio stream")
    if info.video.frame_rate <= 0:
        raise UnsupportedSource(f"source {info.uri} has no usable frame rate")


def require_remuxable(info: SourceInfo) -> None:
    """Raise ``UnsupportedSource`` unless the source (each of its programmes, when it
    carries several) can be stream-copied into HLS (H.264/AAC)."""
    for programme in info.programmes:
        where = f" in programme {programme.program_id}"
        _require_remuxable(info.uri, programme.video, programme.audio, where=where)
    _require_remuxable(info.uri, info.video, info.audio, where="")


def _require_remuxable(uri: str, video: VideoInfo, audio: AudioInfo | None, *, where: str) -> None:
    if video.codec not in REMUXABLE_VIDEO:
        raise UnsupportedSource(
            f"cannot stream-copy video codec {video.codec!r}{where} (needs h264)",
            details={"codec": video.codec},
        )
    if audio is None:
        raise UnsupportedSource(f"source {uri}{where} has no audio stream")
    if audio.codec not in REMUXABLE_AUDIO:
        raise UnsupportedSource(
            f"cannot stream-copy audio codec {audio.codec!r}{where} (needs aac)",
            details={"codec": audio.codec},
        )


def is_local_missing(source: str) -> bool:
    """True when ``source`` is a local path (or file: URL) with no file behind it."""
    return _is_local(source) and not os.path.isfile(_local_path(source))


def _is_local(source: str) -> bool:
    scheme = urlsplit(source).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def _local_path(source: str) -> str:
    return urlsplit(source).path if source.startswith("file:") else source


def _rate(text: object) -> float:
    if not isinstance(text, str) or "/" not in text:
        return 0.0
    num, den = text.split("/", 1)
    return int(num) / int(den) if int(den) else 0.0


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]  # ffprobe gives strings or None
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]  # ffprobe gives strings or None
    except (TypeError, ValueError):
        return None


_DURATION = re.compile(r"^\s+Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s+Stream #0:\d+\S*: (Video|Audio): (\w+)(.*)$")
_PARENS = re.compile(r"\(([^()]*)\)")
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})")
_SAR = re.compile(r"\[SAR (\d+):(\d+)")
_FPS = re.compile(r", ([\d.]+)(k?) fps")
_HZ = re.compile(r", (\d+) Hz")
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "7.1": 8}


class InputReport:
    """Source facts read from FFmpeg's description of its input (``-loglevel info``).

    Feed it FFmpeg's stderr lines; when the input section ends (the ``Output #0``
    line, before any packet is copied) it calls ``on_ready`` with the ``SourceInfo``,
    so a caller can refuse the source and stop FFmpeg before it writes anything.
    """

    def __init__(self, uri: str, *, on_ready: Callable[[SourceInfo], None]) -> None:
        self._uri = uri
        self._on_ready = on_ready
        self._format = ""
        self._duration: float | None = None
        self._video: VideoInfo | None = None
        self._audio: AudioInfo | None = None
        self._state = "before"  # before -> input -> done
        self.info: SourceInfo | None = None

    def feed(self, line: str) -> None:
        """Take one stderr line."""
        if self._state == "done":
            return
        if line.startswith("Input #0, "):
            self._state = "input"
            self._format = line[len("Input #0, ") :].rsplit(", from ", 1)[0]
        elif self._state == "input" and line.startswith(("Output #", "Stream mapping:")):
            self._state = "done"
            self.info = self._build()
            self._on_ready(self.info)
        elif self._state == "input":
            self._parse(line)

    def finish(self) -> None:
        """End of FFmpeg's output: judge an input section that no output line closed.

        FFmpeg stops before its output section when a mapped stream is missing (no
        audio, say); the input it described still says why, more clearly than FFmpeg.
        """
        if self._state == "input":
            self._state = "done"
            self.info = self._build()
            self._on_ready(self.info)

    def _parse(self, line: str) -> None:
        duration = _DURATION.match(line)
        if duration:
            hours, minutes, seconds = duration.groups()
            self._duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            return
        stream = _STREAM.match(line)
        if stream is None:
            return
        kind, codec, rest = stream.groups()
        # The first parenthesis is the profile unless it is the codec tag ("avc1 / 0x...").
        first = _PARENS.search(rest)
        profile = first.group(1) if first and " / 0x" not in first.group(1) else ""
        if kind == "Video" and self._video is None and "attached pic" not in rest:
            size = _SIZE.search(rest)
            if size is None:
                return
            sar = _SAR.search(rest)
            fps = _FPS.search(rest)
            self._video = VideoInfo(
                codec=codec,
                width=int(size.group(1)),
                height=int(size.group(2)),
                frame_rate=_ntsc(float(fps.group(1)) * (1000 if fps.group(2) else 1))
                if fps
                else 0.0,
                sample_aspect=int(sar.group(1)) / int(sar.group(2))
                if sar and int(sar.group(2))
                else 1.0,
                profile=profile,
                level=0,  # not printed; CODECS comes from the output's SPS
                pix_fmt="",
                bit_rate=None,
            )
        elif kind == "Audio" and self._audio is None:
            hz = _HZ.search(rest)
            layout = next((n for name, n in _LAYOUTS.items() if f" Hz, {name}," in rest), 2)
            self._audio = AudioInfo(
                codec=codec,
                profile=profile,
                sample_rate=int(hz.group(1)) if hz else 0,
                channels=layout,
                bit_rate=None,
            )

    def _build(self) -> SourceInfo:
        if self._video is None:
            raise UnsupportedSource(f"source {self._uri} has no video stream")
        if not self._duration:
            raise CorruptSource(f"source {self._uri} has no readable duration")
        return SourceInfo(self._uri, self._format, self._duration, self._video, self._audio)


def _ntsc(rate: float) -> float:
    """FFmpeg prints 4 significant digits (23.98); recover the exact NTSC rate (24000/1001)."""
    nominal = round(rate * 1.001)
    if rate != round(rate) and abs(rate - nominal / 1.001) < 0.006:
        return nominal / 1.001
    return rate
