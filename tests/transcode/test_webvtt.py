"""Segmented WebVTT: the reader, the segments and their timestamp map, FFmpeg's extraction.

Sources are made with real FFmpeg (an SRT, an ASS, an MP4 with mov_text, an MKV with
subrip tracks); every rendered segment is also read by an independent parser (webvtt-py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import webvtt as webvtt_py

from tests.support.media import ffmpeg
from transcode import webvtt
from transcode.errors import InvalidSubtitles
from transcode.webvtt import (
    Cue,
    CueTail,
    extract_webvtt,
    parse_cues,
    render_segment,
    segment_texts,
    webvtt_command,
)

SRT = "1\n00:00:00,500 --> 00:00:01,500\nHello\nworld\n\n2\n00:00:02,000 --> 00:00:03,250\nSecond\n"
SRT_CUES = (Cue(0.5, 1.5, "Hello\nworld"), Cue(2.0, 3.25, "Second"))
OTHER_SRT = "1\n00:00:01,000 --> 00:00:02,000\nBonjour\n"
TINY_VIDEO = ("-f", "lavfi", "-i", "color=s=64x64:r=5:d=4")
ENCODE = ("-c:v", "libx264", "-preset", "ultrafast")


def _srt(root: Path, text: str = SRT, name: str = "subs.srt") -> Path:
    path = root / name
    path.write_text(text)
    return path


def _source(kind: str, root: Path) -> Path:
    """A source holding SRT's cues: the SRT itself, or FFmpeg's conversion of it."""
    srt = _srt(root)
    if kind == "srt":
        return srt
    out = root / f"subs.{kind}"
    if kind == "ass":
        ffmpeg("-i", str(srt), str(out))
    elif kind == "mp4":
        ffmpeg(*TINY_VIDEO, "-i", str(srt), *ENCODE, "-c:s", "mov_text", str(out))
    else:
        ffmpeg(*TINY_VIDEO, "-i", str(srt), *ENCODE, "-c:s", "srt", str(out))
    return out


@pytest.mark.parametrize(
    ("kind", "stream"),
    [
        pytest.param("srt", None, id="srt-file"),
        pytest.param("ass", None, id="ass-file"),
        pytest.param("mp4", 0, id="mp4-mov_text"),
        pytest.param("mkv", 0, id="mkv-subrip"),
    ],
)
async def test_extracts_the_cues_of_each_kind_of_source(
    kind: str, stream: int | None, tmp_path: Path
) -> None:
    source = _source(kind, tmp_path)
    cues = await extract_webvtt(str(source), tmp_path / "out.vtt", stream=stream)
    assert cues == SRT_CUES


async def test_takes_the_nth_subtitle_stream(tmp_path: Path) -> None:
    first, second = _srt(tmp_path), _srt(tmp_path, OTHER_SRT, "other.srt")
    source = tmp_path / "two.mkv"
    ffmpeg(
        *TINY_VIDEO,
        *("-i", str(first), "-i", str(second), "-map", "0:v", "-map", "1:s", "-map", "2:s"),
        *ENCODE,
        "-c:s",
        "srt",
        str(source),
    )
    cues = await extract_webvtt(str(source), tmp_path / "out.vtt", stream=1)
    assert cues == (Cue(1.0, 2.0, "Bonjour"),)


async def test_a_source_without_that_subtitle_stream_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "video.mp4"
    ffmpeg(*TINY_VIDEO, *ENCODE, str(source))
    with pytest.raises(InvalidSubtitles, match="has no subtitle stream 0"):
        await extract_webvtt(str(source), tmp_path / "out.vtt", stream=0)


def test_a_whole_file_must_be_a_subtitle_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSubtitles, match="not a subtitle file"):
        webvtt_command("movie.mp4", tmp_path / "out.vtt", stream=None)


def test_the_command_maps_one_subtitle_stream_to_webvtt_with_progress(tmp_path: Path) -> None:
    args = webvtt_command("movie.mkv", tmp_path / "out.vtt", stream=2, ffmpeg_bin="ff")
    assert args[0] == "ff"
    assert args[args.index("-map") + 1] == "0:s:2"
    assert args[args.index("-c:s") + 1] == "webvtt"
    assert args[args.index("-f") + 1] == "webvtt"
    assert args[args.index("-progress") + 1] == "pipe:1"
    assert str(tmp_path / "out.vtt") in args


# --- the reader ---


def test_reads_hand_written_webvtt() -> None:
    text = (
        "\ufeffWEBVTT - a title\r\nKind: captions\r\n\r\n"
        "STYLE\r\n::cue { color: yellow }\r\n\r\n"
        "REGION\r\nid:bottom\r\n\r\n"
        "NOTE a comment\r\nover two lines\r\n\r\n"
        "intro\r\n01:00:00.000 --> 01:00:02.500 align:start line:90%\r\nLate\r\n\r\n\r\n"
        "00:01.000 --> 00:02.000\r\nEarly\r\n\r\n"
        "00:03.000 --> 00:03.000\r\nZero length\r\n\r\n"
        "stray text with no timing\r\n\r\n"
        "00:04.000 --> 00:05.000\r\n"
    )
    assert parse_cues(text) == (
        Cue(1.0, 2.0, "Early"),
        Cue(4.0, 5.0, ""),
        Cue(3600.0, 3602.5, "Late", "align:start line:90%", "intro"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("1\n00:00.000 --> 00:01.000\nx\n", "WEBVTT header", id="no-header"),
        pytest.param("WEBVTTX\n", "WEBVTT header", id="header-glued"),
        pytest.param("WEBVTT\n\n00:00:01,000 --> 00:00:02,000\nx\n", "line 3", id="srt-comma"),
        pytest.param("WEBVTT\n\n0:01.000 --> 0:02.000\nx\n", "malformed timestamp", id="1-digit"),
        pytest.param("WEBVTT\n\n00:60.000 --> 01:02.000\nx\n", "'00:60.000'", id="60-seconds"),
        pytest.param("WEBVTT\n\n00:01.5 --> 00:02.000\nx\n", "'00:01.5'", id="short-millis"),
        pytest.param("WEBVTT\n\n00:01.000 -->\nx\n", "malformed cue timing", id="no-end"),
        pytest.param("WEBVTT\n\nid\n00:01.000 --> 00:02.000\na --> b\n", "line 5", id="arrow"),
    ],
)
def test_malformed_webvtt_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidSubtitles, match=message):
        parse_cues(text)


def test_oversized_input_is_refused() -> None:
    text = "WEBVTT\n\n" + "x\n" * (webvtt.MAX_INPUT_CHARS // 2)
    with pytest.raises(InvalidSubtitles, match="larger than 16777216 characters"):
        parse_cues(text)


def test_a_line_too_long_is_refused() -> None:
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\n" + "x" * (webvtt.MAX_LINE_CHARS + 1) + "\n"
    with pytest.raises(InvalidSubtitles, match="line 4 is longer than 4096"):
        parse_cues(text)


def test_too_many_cues_are_refused() -> None:
    cue = "00:01.000 --> 00:02.000\nx\n\n"
    with pytest.raises(InvalidSubtitles, match="more than 200000 cues"):
        parse_cues("WEBVTT\n\n" + cue * (webvtt.MAX_CUES + 1))


# --- the segments ---

STRADDLING = Cue(1.5, 2.5, "Across\na boundary", "align:start", "7")
LATER = Cue(3.0, 3.5, "Later")
BOUNDARIES = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]


def test_a_cue_across_a_boundary_is_in_both_segments_and_a_quiet_one_is_empty() -> None:
    texts = segment_texts([LATER, STRADDLING], BOUNDARIES, pts_offset=1.4)
    assert texts == [
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"
        "7\n00:00:01.500 --> 00:00:02.500 align:start\nAcross\na boundary\n",
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:306000,LOCAL:00:00:02.000\n\n"
        "7\n00:00:01.500 --> 00:00:02.500 align:start\nAcross\na boundary\n\n"
        "00:00:03.000 --> 00:00:03.500\nLater\n",
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:486000,LOCAL:00:00:04.000\n",
    ]


def test_a_cue_ending_on_a_boundary_stays_in_its_segment() -> None:
    texts = segment_texts([Cue(1.0, 2.0, "Ends at 2")], BOUNDARIES, pts_offset=0.0)
    assert ["Ends at 2" in text for text in texts] == [True, False, False]


def test_a_long_cue_before_short_ones_is_in_every_segment_it_covers() -> None:
    cues = [Cue(0.5, 5.0, "Long"), Cue(0.6, 0.7, "Short")]
    texts = segment_texts(cues, BOUNDARIES, pts_offset=0.0)
    assert ["Long" in text for text in texts] == [True, True, True]
    assert ["Short" in text for text in texts] == [True, False, False]


@pytest.mark.parametrize(
    "cues",
    [
        pytest.param([], id="no-cues"),
        pytest.param([STRADDLING], id="one-cue"),
        pytest.param([Cue(float(n), n + 0.5, f"c{n}") for n in range(100)], id="past-the-end"),
    ],
)
def test_one_segment_per_boundary(cues: list[Cue]) -> None:
    boundaries = [(n * 2.0, n * 2.0 + 2.0) for n in range(10)]
    assert len(segment_texts(cues, boundaries, pts_offset=1.4)) == len(boundaries)


@pytest.mark.parametrize(
    ("start", "pts_offset", "expected"),
    [
        pytest.param(0.0, 1.4, "MPEGTS:126000,LOCAL:00:00:00.000", id="ffmpeg-offset"),
        pytest.param(6.0, 0.0, "MPEGTS:540000,LOCAL:00:00:06.000", id="no-offset"),
        pytest.param(95443.0, 1.4, "MPEGTS:61408,LOCAL:26:30:43.000", id="wrapped"),
        pytest.param(95442.0, 1.4, "MPEGTS:8589906000,LOCAL:26:30:42.000", id="before-wrap"),
    ],
)
def test_the_timestamp_map_is_the_segment_start_on_the_video_clock(
    start: float, pts_offset: float, expected: str
) -> None:
    (text,) = segment_texts([], [(start, start + 2.0)], pts_offset=pts_offset)
    assert text.splitlines()[1] == f"X-TIMESTAMP-MAP={expected}"


def test_every_segment_reads_back_with_an_independent_parser() -> None:
    cues = [STRADDLING, LATER, Cue(5.0, 7.25, "Into the <i>next</i>", "line:0")]
    across = ("7", "00:00:01.500", "00:00:02.500", "Across\na boundary")
    expected = [
        [across],
        [across, (None, "00:00:03.000", "00:00:03.500", "Later")],
        [(None, "00:00:05.000", "00:00:07.250", "Into the <i>next</i>")],
    ]
    texts = segment_texts(cues, BOUNDARIES, pts_offset=1.4)
    for (start, end), text, wanted in zip(BOUNDARIES, texts, expected, strict=True):
        read = webvtt_py.from_string(text)
        assert [(c.identifier, c.start, c.end, c.raw_text) for c in read.captions] == wanted
        assert parse_cues(text) == tuple(c for c in cues if c.start < end and c.end > start)


def test_blank_payload_lines_are_dropped() -> None:
    text = render_segment([Cue(0.0, 1.0, "one\n\n  \ntwo")], 0.0, 2.0, mpegts=0, local=0.0)
    assert text.endswith("00:00:00.000 --> 00:00:01.000\none\ntwo\n")


@pytest.mark.parametrize(
    ("cue", "message"),
    [
        pytest.param(Cue(0.0, 1.0, "a --> b"), "'-->' in its text", id="arrow-text"),
        pytest.param(Cue(0.0, 1.0, "a", "x-->y"), "'-->' in its settings", id="arrow-settings"),
        pytest.param(Cue(0.0, 1.0, "a", identifier="1 --> 2"), "in its id", id="arrow-id"),
        pytest.param(Cue(0.0, 1.0, "a", "line:0\nx"), "line break in its settings", id="break"),
        pytest.param(Cue(-1.0, 1.0, "a"), "cannot be negative", id="negative"),
    ],
)
def test_a_cue_that_would_break_webvtt_is_refused(cue: Cue, message: str) -> None:
    with pytest.raises(InvalidSubtitles, match=message):
        render_segment([cue], 0.0, 2.0, mpegts=0, local=0.0)


# --- a growing file ---


def test_a_tail_returns_each_complete_cue_once(tmp_path: Path) -> None:
    srt = _srt(tmp_path)
    ffmpeg("-i", str(srt), "-c:s", "webvtt", "-f", "webvtt", str(tmp_path / "whole.vtt"))
    written = (tmp_path / "whole.vtt").read_bytes()
    half = written.index(b"world")  # inside the first cue's payload
    live = tmp_path / "live.vtt"
    tail = CueTail(live)
    assert tail.read_new() == ()  # FFmpeg has not made the file yet
    live.write_bytes(written[:half])
    assert tail.read_new() == ()
    with live.open("ab") as file:
        file.write(written[half:])
    # FFmpeg writes the blank line ending a cue when the next one begins.
    assert tail.read_new() == SRT_CUES[:1]
    assert tail.read_new() == ()
    assert tail.read_new(final=True) == SRT_CUES[1:]
    assert tail.read_new(final=True) == ()


def test_a_tail_refuses_a_block_past_its_read_bound(tmp_path: Path) -> None:
    live = tmp_path / "live.vtt"
    live.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\n" + "x\n" * webvtt.MAX_TAIL_READ_BYTES)
    tail = CueTail(live)
    assert tail.read_new() == ()  # the header
    with pytest.raises(InvalidSubtitles, match="block is longer than 1048576 bytes"):
        tail.read_new()
