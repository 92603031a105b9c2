"""Tiny real media made with FFmpeg, small ladders at test speed, and packaged outputs."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from transcode.ladder import Profile, Rung
from transcode.package import PackageResult


def ffmpeg(*args: str) -> None:
    """Run FFmpeg quietly; fail loudly if it cannot make the file."""
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error", *args], check=True
    )


def _av_clip(path: Path, seconds: int, *extra: str, rate: int = 30) -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s=320x180:r={rate}"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(seconds), "-pix_fmt", "yuv420p"),
        *extra,
        str(path),
    )
    return path


@dataclass(frozen=True)
class Media:
    """Paths of the session's test sources."""

    clip: Path  # 5 s 320x180@30 H.264/AAC MP4, 1 s GOPs
    long_clip: Path  # 13 s, 2 s closed GOPs: enough for two 6 s segments and a tail
    endless: Path  # 10 minutes by stream-copy looping (cancel tests never finish it)
    no_audio: Path
    audio_only: Path
    mpeg2: Path  # MPEG-2 video + MP2 audio in TS: transcodable, not remuxable
    png_video: Path  # a codec the ladder refuses
    corrupt: Path  # random bytes
    truncated: Path  # an MP4 cut in half whose header still declares 13 s


def make_media(root: Path) -> Media:
    """Make every test source under ``root`` (a second or two of FFmpeg in total)."""
    h264 = ("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "64k")
    clip = _av_clip(root / "clip.mp4", 5, *h264, "-g", "30", "-movflags", "+faststart")
    long_clip = _av_clip(
        root / "long.mp4",
        13,
        *h264,
        *("-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-movflags", "+faststart"),
    )
    endless = root / "endless.mp4"
    ffmpeg("-stream_loop", "120", "-i", str(clip), "-c", "copy", "-t", "600", str(endless))
    no_audio = root / "no_audio.mp4"
    video_only = ("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30", "-t", "2")
    ffmpeg(*video_only, "-c:v", "libx264", "-preset", "ultrafast", str(no_audio))
    audio_only = root / "audio_only.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:a", "aac", str(audio_only))
    mpeg2 = _av_clip(root / "mpeg2.ts", 2, "-c:v", "mpeg2video", "-c:a", "mp2")
    png_video = _av_clip(root / "png.mov", 1, "-c:v", "png", "-c:a", "aac")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(bytes(range(256)) * 400)
    truncated = root / "truncated.mp4"
    data = long_clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return Media(
        clip, long_clip, endless, no_audio, audio_only, mpeg2, png_video, corrupt, truncated
    )


def tiny_profile(**overrides: object) -> Profile:
    """Two small rungs, fast preset: the shape of a real ladder at test speed."""
    base = Profile(
        name="tiny",
        rungs=(
            Rung("90p", 160, 90, 120, 48, "baseline", "2.1"),
            Rung("180p", 320, 180, 300, 64, "main", "3.0"),
        ),
        segment_seconds=2.0,
        gop_seconds=1.0,
        preset="ultrafast",
        low_rung_below_height=120,
        low_rung_max_fps=15.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def conformance_profile() -> Profile:
    """The production GOP and segment rules (2 s GOPs, 6 s segments) on tiny rungs."""
    return tiny_profile(segment_seconds=6.0, gop_seconds=2.0, preset="veryfast")


@dataclass(frozen=True)
class Packaged:
    """A published asset and how it was made."""

    kind: str
    result: PackageResult
    profile: Profile | None


# Two cues a viewer can read, and one across the 2 s segment boundary of the tiny profile.
SUBTITLE_CUES = ((0.5, 1.5, "第一句 first line"), (1.8, 2.6, "across the cut"), (4.0, 5.0, "last"))


def cue_time(seconds: float, decimal: str = ".") -> str:
    """``hh:mm:ss.mmm`` (WebVTT; SubRip with ``decimal=","``)."""
    millis = round(seconds * 1000)
    hours, minutes, whole = millis // 3_600_000, millis // 60_000 % 60, millis // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal}{millis % 1000:03d}"


def write_srt(path: Path, cues: tuple[tuple[float, float, str], ...] = SUBTITLE_CUES) -> Path:
    """An SRT file of ``cues`` (start, end seconds, text)."""
    blocks = [
        f"{n}\n{cue_time(a, ',')} --> {cue_time(b, ',')}\n{text}\n"
        for n, (a, b, text) in enumerate(cues, 1)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def multilingual_clip(path: Path, seconds: int, *, subtitles: bool = True) -> Path:
    """Video, Mandarin (440 Hz) and English (880 Hz) audio tagged with their languages and
    titles, and (``subtitles``) an English text subtitle track: MP4 mov_text, or
    Matroska SubRip for a ``.mkv`` path, or MPEG-TS without subtitles."""
    srt = write_srt(path.with_suffix(".srt"))
    subtitle_codec = "srt" if path.suffix == ".mkv" else "mov_text"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000"),
        *(("-i", str(srt)) if subtitles else ()),
        *("-map", "0:v", "-map", "1:a", "-map", "2:a"),
        *(
            ("-map", "3:s", "-c:s", subtitle_codec, "-metadata:s:s:0", "language=eng")
            if subtitles
            else ()
        ),
        *("-metadata:s:a:0", "language=chi", "-metadata:s:a:0", "title=普通话"),
        *("-metadata:s:a:1", "language=eng", "-metadata:s:a:1", "title=English"),
        *("-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-g", "25", "-c:a", "aac", "-b:a", "64k"),
        str(path),
    )
    return path


def h264_ts_clip(path: Path, seconds: int) -> Path:
    """An MPEG-TS feed as a broadcast encoder sends it: H.264 Main@3.0 320x180@30 with
    access unit delimiters and 1 s closed GOPs, AAC-LC 44.1 kHz mono."""
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"),
        *("-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast"),
        *("-profile:v", "main", "-level:v", "3.0", "-x264-params", "aud=1"),
        *("-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-flags", "+cgop"),
        *("-c:a", "aac", "-ac", "1", "-b:a", "64k", "-f", "mpegts"),
        str(path),
    )
    return path


# Programme 1 of ``two_programme_ts`` is its small picture, programme 2 its large one; a copy
# of it keeps them only when given these (FFmpeg does not carry an input's programmes over).
TWO_PROGRAMMES = (
    *("-program", "program_num=1:title=small:st=0:st=1"),
    *("-program", "program_num=2:title=large:st=2:st=3"),
)


def two_programme_ts(path: Path, seconds: int) -> Path:
    """An MPEG-TS feed carrying its encoder's ladder as two programmes: 1 is H.264
    Constrained Baseline@1.3 160x90 with AAC-LC 44.1 kHz mono, 2 is H.264 Main@3.0 320x180
    with AAC-LC 48 kHz stereo; both 25 fps in closed 1 s GOPs starting at the same instants."""
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=160x90:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100"),
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-map", "0:v", "-map", "1:a", "-map", "2:v", "-map", "3:a"),
        *("-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast"),
        *("-profile:v:0", "baseline", "-level:v:0", "1.3"),
        *("-profile:v:1", "main", "-level:v:1", "3.0", "-x264-params", "aud=1"),
        *("-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-flags", "+cgop"),
        *("-c:a", "aac", "-b:a", "48k", "-ac:a:0", "1", "-ac:a:1", "2"),
        *TWO_PROGRAMMES,
        *("-f", "mpegts", str(path)),
    )
    return path


def stream_facts(path: Path, *, programme: int | None = None) -> dict[str, tuple[object, ...]]:
    """What a player configures its decoders from: the first video and audio stream's codec,
    profile, level, size and frame rate / sample rate and channels (ffprobe), of one
    ``programme`` if given."""
    selected = () if programme is None else ("-select_streams", f"p:{programme}")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", *selected, str(path)],
        capture_output=True,
        check=True,
    ).stdout
    streams = json.loads(out)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")
    return {
        "video": (
            video["codec_name"],
            video["profile"],
            video["level"],
            video["width"],
            video["height"],
            video["r_frame_rate"],
        ),
        "audio": (audio["codec_name"], audio["profile"], audio["sample_rate"], audio["channels"]),
    }


def video_packet_hashes(path: Path, *, stream: str = "v:0") -> list[str]:
    """The MD5 of every packet's bytes of ``stream`` (the first video unless given), in
    order (ffprobe; nothing is decoded)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_data_hash", "md5",
         "-show_entries", "packet=data_hash", "-of", "csv=p=0", str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout  # fmt: skip
    return [line.strip(",") for line in out.splitlines() if line.strip(",")]


def probe_streams(path: Path | str) -> list[dict[str, object]]:
    """ffprobe's streams of a file (or URL)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    streams: list[dict[str, object]] = json.loads(out)["streams"]
    return streams


def dominant_hz(segment: Path) -> float:
    """The loudest frequency of a segment's audio (the sources are pure sines)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(segment), "-f", "s16le", "-ac", "1", "-ar", "8000",
         "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    samples = memoryview(pcm).cast("h")
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return crossings / (len(samples) / 8000)
