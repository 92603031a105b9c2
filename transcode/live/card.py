"""FFmpeg commands of card epochs: text on a dark card, with silence or a looped audio file,
encoded with the channel's ladder like a source epoch (every rung, every audio rendition).

A card channel (``LiveChannel.card``: an emergency alert's card, a blackout slate) runs
one for ever; the slate a channel shows when every source is lost is the same card
saying :data:`SLATE_TEXT`. The text is the caller's, so it never enters the filter
graph: the node writes it to a file in the epoch's directory (:func:`write_card_text`)
and drawtext reads that file with expansion off, so quotes, colons, backslashes and
``%{...}`` are shown as they are. Lines longer than :data:`CARD_COLUMNS` are wrapped
(a CJK character takes two columns), and the font is sized so the whole text fits.
The font is the first one fontconfig lists as covering Chinese (:func:`cjk_font`, looked up
once per process); without one installed (``scripts/system-deps.sh``) drawtext takes
fontconfig's default sans, which shows Latin text and boxes for CJK.

A passthrough channel's slate is encoded to the probed source's size, rate, H.264 profile
and level and AAC sample rate and channels (see ``commands``), so a player switching to
it at a discontinuity keeps its decoder configuration.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from transcode.ffmpeg_cmd import frame_rate_expr, rung_encoding
from transcode.ladder import PlannedRung, Profile
from transcode.live.commands import (
    LIVE_FRAME_RATE,
    compile_command,
    live_command,
    programmes,
    segment_options,
)
from transcode.probe import AudioInfo, SourceInfo
from transcode.sources import SourceInput
from transcode.tracks import Track, audio_of

SLATE_TEXT = "signal lost"
# Lines are wrapped at this many columns (a wide character counts two).
CARD_COLUMNS = 40
CARD_FILE = "card.txt"
_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
# Roughly how wide one column is, and how tall one line is, in ems.
_COLUMN_EMS = 0.65
_LINE_EMS = 1.25


@dataclass(frozen=True, slots=True)
class CardText:
    """A card's text as shown (wrapped) and the file drawtext reads it from."""

    path: Path
    lines: tuple[str, ...]

    @property
    def columns(self) -> int:
        """The widest line, in columns."""
        return max((_columns(line) for line in self.lines), default=0)


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap_card(text: str, columns: int = CARD_COLUMNS) -> tuple[str, ...]:
    """The lines of ``text`` as shown: split on ``\\n``, each wrapped at a space before
    ``columns``, or anywhere in a word (a CJK run) longer than that."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, width = "", 0
        for word in re.split(r"(?<= )", paragraph):  # each word keeps its trailing space
            if width and width + _columns(word.rstrip(" ")) > columns:
                lines.append(line.rstrip(" "))
                line, width = "", 0
            for char in word:
                if width and width + _columns(char) > columns and char != " ":
                    lines.append(line)
                    line, width = "", 0
                line, width = line + char, width + _columns(char)
        lines.append(line)
    return tuple(lines)


def write_card_text(directory: Path, text: str) -> CardText:
    """Write the wrapped ``text`` for drawtext into ``directory`` (created if need be)."""
    lines = wrap_card(text)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CARD_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return CardText(path, lines)


@functools.cache
def cjk_font() -> str:
    """The file of a font with Chinese glyphs ("" when fontconfig knows none)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return ""
    try:
        listed = subprocess.run(
            [fc_list, ":lang=zh-cn", "file"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    files = sorted(line.rstrip(": ") for line in listed.splitlines() if line.strip())
    return files[0] if files else ""


def _font_size(text: CardText, width: int, height: int) -> int:
    """The largest size (at most a tenth of the height) at which every line fits."""
    by_width = 0.9 * width / max(1, text.columns * _COLUMN_EMS)
    by_height = 0.85 * height / max(1, len(text.lines) * _LINE_EMS)
    return max(6, int(min(height // 10, by_width, by_height)))


def _picture(text: CardText, width: int, height: int, frame_rate: float) -> Any:
    size = _font_size(text, width, height)
    font = cjk_font()
    return ffmpeg.input(
        f"color=c=0x202020:s={width}x{height}:r={frame_rate_expr(frame_rate)}",
        f="lavfi",
        re=None,
    ).filter(
        "drawtext",
        textfile=str(text.path),
        expansion="none",
        **({"fontfile": font} if font else {}),
        fontcolor="white",
        fontsize=size,
        line_spacing=max(1, size // 4),
        x="(w-text_w)/2",
        y="(h-text_h)/2",
    )


def _sound(audio: SourceInput | None, sample_rate: int, layout: str) -> Any:
    """The card's audio: the checked file, looped and read at its rate, or silence."""
    if audio is None:
        return ffmpeg.input(f"anullsrc=r={sample_rate}:cl={layout}", f="lavfi", re=None)
    return ffmpeg.input(audio.url, stream_loop=-1, re=None, **audio.options)["a:0"]


def card_command(
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    *,
    text: CardText,
    audio: SourceInput | None = None,
    source: SourceInfo | None = None,
    tracks: Sequence[Track] = (),
) -> list[str]:
    """The FFmpeg command of a card epoch: ``text`` on a dark card, and ``audio`` looped
    (silence when None) in every rung or in each audio rendition of ``tracks`` (its
    subtitle renditions get empty segments).

    A passthrough channel's card matches ``source``, its last probe (see the module).
    """
    if profile.passthrough:
        return _passthrough_card_command(plan, profile, out_dir, text, audio, source)
    top = max(plan, key=lambda r: r.height)
    video = _picture(text, top.width, top.height, LIVE_FRAME_RATE)
    sound = _sound(audio, profile.audio_sample_rate, "stereo")
    count = len(audio_of(tracks))
    sounds = [sound]
    if count:
        split = sound.filter_multi_output("asplit", count)
        sounds = [split.stream(i) for i in range(count)]
    return live_command(video, sounds, plan, profile, out_dir, tracks=audio_of(tracks))


def _passthrough_card_command(
    plan: Sequence[PlannedRung],
    profile: Profile,
    out_dir: Path,
    text: CardText,
    audio: SourceInput | None,
    source: SourceInfo | None,
) -> list[str]:
    """Each rung encoded as its programme of ``source`` (which ``plan`` was made from) is:
    same size, pixel aspect, frame rate, H.264 profile and level, AAC sample rate and
    channels."""
    if source is None:
        (rung,) = plan  # the nominal rung: nothing was probed yet
        outputs = [_card_output(rung, profile, out_dir, text, audio, 1.0, None)]
    else:
        outputs = [
            _card_output(rung, profile, out_dir, text, audio, video.sample_aspect, info)
            for rung, (video, info) in zip(plan, programmes(source), strict=True)
        ]
    return compile_command(ffmpeg.merge_outputs(*outputs), "ffmpeg")


def _card_output(
    rung: PlannedRung,
    profile: Profile,
    out_dir: Path,
    text: CardText,
    audio: SourceInput | None,
    sample_aspect: float,
    audio_info: AudioInfo | None,
) -> ffmpeg.nodes.OutputStream:
    audio_info = audio_info or AudioInfo(
        "aac", "LC", profile.audio_sample_rate, profile.audio_channels, None
    )
    sar = Fraction(sample_aspect).limit_denominator(1000)
    video = (
        _picture(text, rung.width, rung.height, rung.frame_rate)
        .filter("setsar", f"{sar.numerator}/{sar.denominator}")
        .filter("format", "yuv420p")
    )
    layout = _CHANNEL_LAYOUTS.get(audio_info.channels, "stereo")
    sound = _sound(audio, audio_info.sample_rate, layout)
    # A still card needs few bits: cap it well under the source's rate (the level's too).
    kbps = max(64, min(rung.video_kbps, 1000))
    card_rung = replace(
        rung,
        video_kbps=kbps,
        maxrate_kbps=kbps,
        bufsize_kbps=2 * kbps,
        audio_kbps=min(rung.audio_kbps, 128),
    )
    rung_dir = out_dir / rung.name
    return ffmpeg.output(
        video,
        sound,
        str(rung_dir / "seg_%06d.ts"),
        **{
            **rung_encoding(card_rung, profile),
            "tune": "zerolatency",
            "ar": audio_info.sample_rate,
            "ac": audio_info.channels,
            **segment_options(profile, rung_dir),
        },
    )
