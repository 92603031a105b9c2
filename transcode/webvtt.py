"""Subtitles as segmented WebVTT: read cues, cut them along the video's segments, extract them.

Why the segments are ours: FFmpeg's segment and HLS muxers write a WebVTT segment only
when a cue arrives, so a stretch without dialogue leaves no file and the subtitle
playlist's media sequence drifts away from the video's. A player then asks for subtitle
segment N at the wrong time, or for one that does not exist. Here FFmpeg only converts a
track into one WebVTT file (``webvtt_command``); ``segment_texts`` then writes exactly one
segment per video segment, with the same boundaries, an empty one (header and map only)
where no cue shows.

The timestamp mapping (RFC 8216 section 3.5). Cue times are *media time*: seconds on the
timeline of the video's segment boundaries (FFmpeg's output timeline, the source's start
time removed). The video's MPEG-TS PTS of media time ``t`` is ``t + pts_offset`` seconds
at 90 kHz, wrapped at 2**33 (``pts_offset`` is the TS muxer's initial offset: 1.4 s in
the house's HLS outputs, which keep the source's timeline). Each segment maps its own
start: ``LOCAL`` is the segment's start and ``MPEGTS`` is
``round((start + pts_offset) * 90000) mod 2**33``, so a player places a cue at
``MPEGTS + (cue time - LOCAL) * 90000``, on the video's clock, and a channel running past
the 26.5 h PTS wrap keeps small, correct offsets in every segment.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from transcode.errors import EncodeFailed, InvalidSubtitles
from transcode.ffmpeg_cmd import compile_command
from transcode.jobs import SUBTITLE_FILE_SUFFIXES, is_subtitle_file
from transcode.runner import run_ffmpeg

# Bounds on what one reader takes: a feature film has a few thousand cues of short lines.
MAX_INPUT_CHARS = 16 * 1024 * 1024
MAX_CUES = 200_000
MAX_LINE_CHARS = 4096
# One CueTail.read_new reads at most this much of a growing file.
MAX_TAIL_READ_BYTES = 1024 * 1024
MPEGTS_CLOCK_HZ = 90_000
MPEGTS_WRAP = 2**33

_HEADER = "WEBVTT"
_ARROW = "-->"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TIMESTAMP = re.compile(r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
_TIMING = re.compile(r"(\S+)[ \t]+-->[ \t]+(\S+)(?:[ \t]+(.*))?")
_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")
_NO_STREAM = "matches no streams"
# The request fields a refusal names: the subtitles themselves, or the stream chosen.
_FIELD = "subtitles"
_STREAM_FIELD = "subtitle_stream"
_STDERR_LINES = 30


@dataclass(frozen=True, slots=True)
class Cue:
    """One WebVTT cue: media times in seconds, payload (lines joined by "\\n"), settings."""

    start: float
    end: float
    text: str
    settings: str = ""
    identifier: str = ""


def parse_cues(text: str) -> tuple[Cue, ...]:
    """The cues of a WebVTT document, sorted by start (a stable sort: ties keep file order).

    Takes FFmpeg's webvtt muxer output and hand-written files: a BOM, CRLF line breaks,
    ``mm:ss.ttt`` times, header metadata, NOTE/STYLE/REGION blocks and blocks of stray text
    (no timing line: FFmpeg writes one when a payload holds a blank line) are taken or
    skipped. Cues whose end is not after their start show nothing and are dropped.
    Refused with ``InvalidSubtitles``: no ``WEBVTT`` header, a malformed timing line, a
    payload line holding ``-->`` (FFmpeg copies it from the source verbatim; where such a
    cue ends cannot be known), and input past the size, line or cue count bounds.
    """
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidSubtitles(_FIELD, f"WebVTT input is larger than {MAX_INPUT_CHARS} characters")
    lines = _LINE_BREAK.split(text.removeprefix("\ufeff"))
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise InvalidSubtitles(_FIELD, f"WebVTT line {number} is longer than {MAX_LINE_CHARS}")
    first = lines[0]
    if not (first == _HEADER or first.startswith((_HEADER + " ", _HEADER + "\t"))):
        raise InvalidSubtitles(_FIELD, "WebVTT input does not start with the WEBVTT header")
    cues: list[Cue] = []
    for number, block in _blocks(lines):
        cue = _cue(number, block)
        if cue is None:
            continue
        if len(cues) == MAX_CUES:
            raise InvalidSubtitles(_FIELD, f"WebVTT input holds more than {MAX_CUES} cues")
        cues.append(cue)
    cues.sort(key=lambda cue: cue.start)
    return tuple(cues)


class CueTail:
    """Reads the cues FFmpeg's webvtt muxer appends to one growing file (a live channel's).

    A cue is complete once a blank line follows it; the muxer writes that blank line when
    the next cue begins, so the newest cue shows up with the next one (or with ``final``).
    One tail per file: a new epoch writes a new file and gets a new tail.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0  # bytes consumed: the header, then whole blocks only

    def read_new(self, *, final: bool = False) -> tuple[Cue, ...]:
        """The complete cues written since the last call (none while the file is missing);
        ``final`` (the writer has exited) also takes a last block that ends the file."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read(MAX_TAIL_READ_BYTES + 1)
        except FileNotFoundError:
            return ()
        at_end = len(data) <= MAX_TAIL_READ_BYTES
        data = data[:MAX_TAIL_READ_BYTES]
        cut = len(data) if final and at_end else _after_last_blank_line(data)
        if cut == 0:
            if not at_end:
                raise InvalidSubtitles(
                    _FIELD,
                    f"{self.path}: a WebVTT block is longer than {MAX_TAIL_READ_BYTES} bytes",
                )
            return ()
        try:
            chunk = data[:cut].decode()
        except UnicodeDecodeError as err:
            raise InvalidSubtitles(_FIELD, f"{self.path} is not UTF-8 WebVTT") from err
        # Past the header, the file's next blocks are read as a document of their own.
        cues = parse_cues(chunk if self._offset == 0 else f"{_HEADER}\n\n{chunk}")
        self._offset += cut
        return cues


def render_segment(
    cues: Sequence[Cue], start: float, end: float, *, mpegts: int, local: float
) -> str:
    """The WebVTT text of the subtitle segment covering media time [start, end): the header,
    ``X-TIMESTAMP-MAP`` (``local`` seconds on the cues' timeline is ``mpegts`` at 90 kHz on
    the video's), then every cue overlapping the range with its full times (a cue across
    a boundary is in both segments, as Apple's tools write it). Blank payload lines are
    dropped; a payload, setting or identifier that would break the format is refused."""
    parts = [f"{_HEADER}\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{_timestamp(local)}\n"]
    for cue in sorted(cues, key=lambda cue: cue.start):
        if cue.start < end and cue.end > start:
            parts.append(_render_cue(cue))
    return "\n".join(parts)


def segment_texts(
    cues: Sequence[Cue], boundaries: Sequence[tuple[float, float]], *, pts_offset: float
) -> list[str]:
    """One WebVTT segment per (start, end) video segment, in order, empty ones included;
    each maps its own start: ``LOCAL`` = start, ``MPEGTS`` = round((start + pts_offset) *
    90000) mod 2**33 (see the module docstring)."""
    ordered = sorted(cues, key=lambda cue: cue.start)
    starts = [cue.start for cue in ordered]
    longest = max((cue.end - cue.start for cue in ordered), default=0.0)
    texts = []
    for start, end in boundaries:
        # Only a cue starting at most ``longest`` before the segment can still be showing.
        low = bisect.bisect_left(starts, start - longest)
        high = bisect.bisect_left(starts, end)
        mpegts = round((start + pts_offset) * MPEGTS_CLOCK_HZ) % MPEGTS_WRAP
        texts.append(render_segment(ordered[low:high], start, end, mpegts=mpegts, local=start))
    return texts


def webvtt_command(
    source: str,
    out: Path,
    *,
    stream: int | None,
    input_options: Mapping[str, str] | None = None,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """FFmpeg converting the ``stream``-th subtitle stream of ``source`` (``0:s:<stream>``),
    or a whole subtitle file (.srt, .vtt, .ass, .ssa) when ``stream`` is None, into one
    WebVTT file ``out`` (overwritten)."""
    if stream is None and not is_subtitle_file(source):
        raise InvalidSubtitles(
            _STREAM_FIELD,
            f"{source} is not a subtitle file ({', '.join(sorted(SUBTITLE_FILE_SUFFIXES))}):"
            " name the subtitle stream to take from it",
        )
    source_in = ffmpeg.input(source, **(input_options or {}))
    track = source_in[f"s:{stream or 0}"]
    output = ffmpeg.output(track, str(out), **{"c:s": "webvtt", "f": "webvtt"})
    return compile_command(output.overwrite_output(), ffmpeg_bin)


async def extract_webvtt(
    source: str,
    out: Path,
    *,
    stream: int | None,
    input_options: Mapping[str, str] | None = None,
    ffmpeg_bin: str = "ffmpeg",
) -> tuple[Cue, ...]:
    """Run ``webvtt_command`` and read the cues of the WebVTT file it wrote; a source
    without that subtitle stream is refused with ``InvalidSubtitles``."""
    args = webvtt_command(
        source, out, stream=stream, input_options=input_options, ffmpeg_bin=ffmpeg_bin
    )
    stderr: deque[str] = deque(maxlen=_STDERR_LINES)
    try:
        await run_ffmpeg(args, on_stderr=stderr.append)
    except EncodeFailed as err:
        if any(_NO_STREAM in line for line in stderr):
            raise InvalidSubtitles(
                _STREAM_FIELD, f"{source} has no subtitle stream {stream or 0}"
            ) from err
        raise
    with out.open("rb") as file:
        data = file.read(MAX_INPUT_CHARS + 1)
    if len(data) > MAX_INPUT_CHARS:
        raise InvalidSubtitles(
            _FIELD, f"{source}: its WebVTT is larger than {MAX_INPUT_CHARS} bytes"
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as err:
        raise InvalidSubtitles(_FIELD, f"{out} is not UTF-8 WebVTT") from err
    return parse_cues(text)


def _after_last_blank_line(data: bytes) -> int:
    """Where the last complete block of ``data`` ends (0: none is complete yet)."""
    ends = [data.rfind(blank) + len(blank) for blank in (b"\n\n", b"\n\r\n") if blank in data]
    return max(ends, default=0)


def _blocks(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """The blocks after the header block, each with the line number it starts on."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    in_header = True
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not current and not in_header:
                blocks.append((number, current))
            current.append(line)
        else:
            in_header = False
            current = []
    return blocks


def _cue(number: int, block: Sequence[str]) -> Cue | None:
    first = block[0]
    if first.split(maxsplit=1)[0] in _SKIPPED_BLOCKS:
        return None
    if _ARROW in first:
        identifier, timing, payload = "", first, block[1:]
    elif len(block) > 1 and _ARROW in block[1]:
        identifier, timing, payload, number = first, block[1], block[2:], number + 1
    else:
        return None
    match = _TIMING.fullmatch(timing.strip())
    if match is None:
        raise InvalidSubtitles(_FIELD, f"WebVTT line {number}: malformed cue timing {timing!r}")
    start, end = _seconds(number, match[1]), _seconds(number, match[2])
    for offset, line in enumerate(payload, 1):
        if _ARROW in line:
            raise InvalidSubtitles(_FIELD, f"WebVTT line {number + offset}: '-->' in a cue's text")
    if end <= start:
        return None
    return Cue(start, end, "\n".join(payload), (match[3] or "").strip(), identifier)


def _seconds(number: int, timestamp: str) -> float:
    match = _TIMESTAMP.fullmatch(timestamp)
    if match is None:
        raise InvalidSubtitles(_FIELD, f"WebVTT line {number}: malformed timestamp {timestamp!r}")
    hours, minutes, seconds, millis = (int(part or 0) for part in match.groups())
    return (((hours * 60 + minutes) * 60 + seconds) * 1000 + millis) / 1000


def _timestamp(seconds: float) -> str:
    """``hh:mm:ss.mmm`` (more hour digits past 99 h), rounded to the millisecond."""
    if seconds < 0:
        raise InvalidSubtitles(_FIELD, f"a WebVTT time cannot be negative ({seconds} s)")
    millis = round(seconds * 1000)
    minutes, millis = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def _render_cue(cue: Cue) -> str:
    lines = [line for line in _LINE_BREAK.split(cue.text) if line.strip()]
    for field, value in (("text", cue.text), ("settings", cue.settings), ("id", cue.identifier)):
        if _ARROW in value:
            raise InvalidSubtitles(
                _FIELD, f"cue at {cue.start} s: '-->' in its {field} breaks WebVTT"
            )
    for field, value in (("settings", cue.settings), ("id", cue.identifier)):
        if _LINE_BREAK.search(value):
            raise InvalidSubtitles(_FIELD, f"cue at {cue.start} s: a line break in its {field}")
    timing = f"{_timestamp(cue.start)} {_ARROW} {_timestamp(cue.end)}"
    head = [cue.identifier] if cue.identifier else []
    return "\n".join([*head, f"{timing} {cue.settings}".rstrip(), *lines]) + "\n"
