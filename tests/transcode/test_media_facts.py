"""Source facts from FFmpeg's input report, and FFmpeg failure classification (pure)."""

from __future__ import annotations

import pytest

from transcode.errors import (
    CorruptSource,
    DiskFull,
    EncodeFailed,
    SourceNotFound,
    TranscodeError,
    UnsupportedSource,
)
from transcode.measure import aac_codec
from transcode.probe import InputReport, SourceInfo
from transcode.runner import classify_failure

REPORT = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'film.mp4':
  Metadata:
    major_brand     : isom
  Duration: 01:02:03.50, start: 0.000000, bitrate: 5310 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), \
1920x1080 [SAR 1:1 DAR 16:9], 5173 kb/s, 23.98 fps, 23.98 tbr, 24k tbn (default)
  Stream #0:1[0x2](eng): Audio: aac (HE-AAC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, \
64 kb/s (default)
Output #0, hls, to 'out/.ffmpeg.m3u8':
  Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 1280x720
"""


def _read(text: str) -> list[SourceInfo]:
    ready: list[SourceInfo] = []
    report = InputReport("film.mp4", on_ready=ready.append)
    for line in text.splitlines():
        report.feed(line)
    return ready


def test_input_report_reads_the_input_section_only() -> None:
    (info,) = _read(REPORT)

    assert info.duration_seconds == pytest.approx(3723.5)
    assert info.format_name == "mov,mp4,m4a,3gp,3g2,mj2"
    assert (info.video.codec, info.video.profile) == ("h264", "High")
    assert (info.video.width, info.video.height) == (1920, 1080)  # not the output's 1280x720
    assert info.video.frame_rate == pytest.approx(24000 / 1001)  # printed as 23.98
    assert info.audio is not None
    assert (info.audio.codec, info.audio.profile, info.audio.channels) == ("aac", "HE-AAC", 2)
    assert aac_codec(info.audio.profile) == "mp4a.40.5"


def test_input_report_refuses_a_source_without_video() -> None:
    text = REPORT.replace("Video: h264", "Data: bin_data")

    with pytest.raises(UnsupportedSource):
        _read(text)


def test_input_report_without_duration_is_corrupt() -> None:
    text = REPORT.replace("  Duration: 01:02:03.50,", "  Duration: N/A,")

    with pytest.raises(CorruptSource):
        _read(text)


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        pytest.param(
            ["av_interleaved_write_frame(): No space left on device"], DiskFull, id="enospc"
        ),
        pytest.param(["in.mp4: No such file or directory"], SourceNotFound, id="missing"),
        pytest.param(
            ["in.mp4: Invalid data found when processing input"], CorruptSource, id="corrupt"
        ),
        pytest.param(["[mov,mp4 @ 0x1] moov atom not found"], CorruptSource, id="no-moov"),
        pytest.param(["Conversion failed!"], EncodeFailed, id="other"),
    ],
)
def test_ffmpeg_failures_are_classified(stderr: list[str], error: type[TranscodeError]) -> None:
    failure = classify_failure(1, stderr)

    assert type(failure) is error
    assert failure.details["returncode"] == "1"
    assert failure.details["ffmpeg"] == stderr[-1]
