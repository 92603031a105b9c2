"""Live CMAF remux: a real FFmpeg TS segment into CMAF tracks, read back and decoded."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from tests.support.media import h264_ts_clip
from transcode.fmp4 import MalformedMp4, read_init, read_segment
from transcode.fmp4.writer import VIDEO_TIMESCALE
from transcode.live.cmaf import AUDIO_TRACK, Picture, remux_files
from transcode.live.remux import RemuxFailed, demux, nal_units

START = 1_764_547_200.5  # a program date-time, in seconds since 1970
DURATION = 2.0


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s TS like a live rung's segment: 1 s GOPs, AUDs, AAC-LC 44.1 kHz mono."""
    return h264_ts_clip(tmp_path_factory.mktemp("remux") / "seg.ts", 2)


def _packets(path: Path, stream: str) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
         "packet=pts,dts,size,flags", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    packets: list[dict[str, str]] = json.loads(out)["packets"]
    return packets


def test_video_samples_match_the_ts_packets(segment: Path, tmp_path: Path) -> None:
    written = remux_files(tmp_path, {"low": segment}, {"low": Picture(320, 180)}, sequence=7,
                          start_seconds=START, duration=DURATION, keep=10)  # fmt: skip
    video = written["low"]
    init = (tmp_path / "low" / video.init).read_bytes()
    (track,) = read_init(init)
    assert (track.handler, track.timescale, track.codec) == ("vide", 90_000, "avc1.4d401e")
    assert (track.width, track.height) == (320, 180)
    media = read_segment((tmp_path / "low" / "7.m4s").read_bytes(), (track,))
    samples = [s for f in media.fragments for s in f.samples]
    packets = _packets(segment, "v:0")
    assert len(samples) == len(packets) == 60
    # A fragment per keyframe (1 s GOPs), each starting with one.
    assert len(media.fragments) == 2
    assert all(f.starts_with_sync for f in media.fragments)
    assert [s.sync for s in samples] == ["K" in p["flags"] for p in packets]
    first_dts = int(packets[0]["dts"])
    assert media.start == round(START * VIDEO_TIMESCALE)
    dts = [int(p["dts"]) - first_dts for p in packets]
    assert [f.start - media.start for f in media.fragments] == [dts[0], dts[30]]
    assert [s.duration for s in samples[:-1]] == [b - a for a, b in itertools.pairwise(dts)]
    # The last sample runs to the segment's end: the fragments tile its EXTINF duration.
    assert media.duration == round(DURATION * VIDEO_TIMESCALE)
    assert [s.composition_offset for s in samples] == [
        int(p["pts"]) - int(p["dts"]) for p in packets
    ]
    # Each sample is its TS packet without the AUD and the SPS/PPS (6 + 4-byte lengths...):
    # never larger, and every slice's bytes are there.
    assert all(s.size <= int(p["size"]) for s, p in zip(samples, packets, strict=True))
    assert sum(s.size for s in samples) > 0.9 * sum(int(p["size"]) for p in packets)


def test_audio_track_keeps_its_frames_and_config(segment: Path, tmp_path: Path) -> None:
    written = remux_files(tmp_path, {"low": segment}, {}, sequence=3, start_seconds=START,
                          duration=DURATION, keep=10)  # fmt: skip
    audio = written[AUDIO_TRACK]
    (track,) = read_init((tmp_path / AUDIO_TRACK / audio.init).read_bytes())
    assert (track.handler, track.timescale, track.codec) == ("soun", 44_100, "mp4a.40.2")
    media = read_segment((tmp_path / AUDIO_TRACK / "3.m4s").read_bytes(), (track,))
    packets = _packets(segment, "a:0")
    samples = media.fragments[0].samples
    assert len(samples) == len(packets)
    # A raw frame is its ADTS frame without the 7-byte header.
    assert [s.size for s in samples] == [int(p["size"]) - 7 for p in packets]
    video_first = int(_packets(segment, "v:0")[0]["dts"])
    offset = (int(packets[0]["pts"]) - video_first) / 90_000
    assert media.start == round((START + offset) * 44_100)


@pytest.mark.parametrize("track", ["low", AUDIO_TRACK])
def test_init_and_segment_decode_with_ffmpeg(segment: Path, tmp_path: Path, track: str) -> None:
    written = remux_files(tmp_path, {"low": segment}, {"low": Picture(320, 180)}, sequence=1,
                          start_seconds=START, duration=DURATION, keep=10)  # fmt: skip
    joined = tmp_path / f"{track}.mp4"
    joined.write_bytes(
        (tmp_path / track / written[track].init).read_bytes()
        + (tmp_path / track / "1.m4s").read_bytes()
    )
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(joined), "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_init_is_named_by_content_and_old_segments_go(segment: Path, tmp_path: Path) -> None:
    for sequence in range(4):
        written = remux_files(tmp_path, {"low": segment}, {"low": Picture(320, 180)},
                              sequence=sequence, start_seconds=START + 2 * sequence,
                              duration=DURATION, keep=2)  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "low").iterdir())
    assert names == ["2.m4s", "3.m4s", written["low"].init]
    other = remux_files(tmp_path, {"low": segment}, {"low": Picture(640, 360)}, sequence=4,
                        start_seconds=START, duration=DURATION, keep=2)  # fmt: skip
    assert other["low"].init != written["low"].init


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "not whole 188-byte", id="empty"),
        pytest.param(b"\x47" + b"\0" * 186, "not whole 188-byte", id="partial-packet"),
        pytest.param(b"\x00" * 188, "sync lost", id="no-sync"),
        pytest.param(b"\x47\x1f\xff\x10" + b"\xff" * 184, "no PAT and PMT", id="no-programme"),
    ],
)
def test_bad_ts_is_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(RemuxFailed, match=message):
        demux(data)


def test_a_bad_segment_is_left_out_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"\x47" * 188 * 3)
    out = tmp_path / "out"
    assert remux_files(out, {"low": bad}, {}, sequence=0, start_seconds=START,
                       duration=DURATION, keep=2) == {}  # fmt: skip
    assert not out.exists()


def test_annex_b_without_a_start_code_is_refused() -> None:
    with pytest.raises(RemuxFailed, match="no start code"):
        nal_units(b"\x65\x88\x84")
    assert nal_units(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x65\x88") == [b"\x09\xf0", b"\x65\x88"]


def test_reader_refuses_a_truncated_written_segment(segment: Path, tmp_path: Path) -> None:
    written = remux_files(tmp_path, {"low": segment}, {"low": Picture(320, 180)}, sequence=0,
                          start_seconds=START, duration=DURATION, keep=2)  # fmt: skip
    tracks = read_init((tmp_path / "low" / written["low"].init).read_bytes())
    data = (tmp_path / "low" / "0.m4s").read_bytes()
    with pytest.raises(MalformedMp4):
        read_segment(data[: len(data) // 2], tracks)
