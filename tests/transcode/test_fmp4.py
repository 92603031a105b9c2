"""The fMP4 reader on FFmpeg's real CMAF output, checked against ffprobe, and on malformed
input (every bad shape fails with a clear MalformedMp4, never reads past the data)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.media import Media
from transcode import ffmpeg_cmd, fmp4
from transcode.measure import read_segment_list
from transcode.measure_cmaf import split_init

H264_PROFILES = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}


@dataclass(frozen=True)
class Written:
    video: Path
    audio: Path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _joined(folder: Path, segment: str, out: Path) -> Path:
    """The init segment followed by one media segment: a file ffprobe reads alone."""
    out.write_bytes((folder / "init.mp4").read_bytes() + (folder / segment).read_bytes())
    return out


@pytest.fixture(scope="module")
def written(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Written:
    """The 13 s clip stream-copied by our CMAF command: video and audio tracks apart."""
    root = tmp_path_factory.mktemp("cmaf")
    for name in ("v", "a"):
        (root / name).mkdir()
    args = ffmpeg_cmd.remux_command(str(media.long_clip), "v", 6.0, root, audio_name="a")
    subprocess.run(args, check=True, capture_output=True)
    for name in ("v", "a"):
        listed = read_segment_list(root / name / ffmpeg_cmd.FFMPEG_PLAYLIST)
        split_init(root / name, ffmpeg_cmd.CMAF_INIT, listed[0][0])
    return Written(root / "v", root / "a")


def _segments(folder: Path) -> list[str]:
    return [uri for uri, _ in read_segment_list(folder / ffmpeg_cmd.FFMPEG_PLAYLIST)]


def test_init_tracks_match_ffprobe(written: Written, tmp_path: Path) -> None:
    (video,) = fmp4.read_init((written.video / "init.mp4").read_bytes())
    (audio,) = fmp4.read_init((written.audio / "init.mp4").read_bytes())
    first_video = _joined(written.video, _segments(written.video)[0], tmp_path / "v.mp4")
    first_audio = _joined(written.audio, _segments(written.audio)[0], tmp_path / "a.mp4")
    (probed_video,) = _ffprobe(first_video, "-show_streams")["streams"]
    (probed_audio,) = _ffprobe(first_audio, "-show_streams")["streams"]
    assert (video.handler, audio.handler) == ("vide", "soun")
    assert (video.width, video.height) == (probed_video["width"], probed_video["height"])
    assert video.timescale == int(probed_video["time_base"].split("/")[1])
    assert audio.timescale == int(probed_audio["time_base"].split("/")[1])
    kind, config = video.codec.split(".")
    assert kind == "avc1"
    assert int(config[:2], 16) == H264_PROFILES[probed_video["profile"]]
    assert int(config[4:], 16) == probed_video["level"]
    assert probed_audio["profile"] == "LC"
    assert audio.codec == "mp4a.40.2"


def test_init_holds_no_media_after_the_split(written: Written) -> None:
    for folder in (written.video, written.audio):
        data = (folder / "init.mp4").read_bytes()
        assert [b.type for b in fmp4.boxes(data)] == [b"ftyp", b"moov"]
        assert fmp4.init_end(data) == len(data)


@pytest.mark.parametrize("which", ["video", "audio"])
def test_fragment_durations_and_keyframes_match_ffprobe(
    written: Written, which: str, tmp_path: Path
) -> None:
    folder = getattr(written, which)
    tracks = fmp4.read_init((folder / "init.mp4").read_bytes())
    (track,) = tracks
    expected_start = 0
    for name in _segments(folder):
        segment = fmp4.read_segment((folder / name).read_bytes(), tracks)
        assert segment.fragments, name
        assert segment.start == expected_start  # tfdt continues across segments
        expected_start += segment.duration
        packets = _ffprobe(
            _joined(folder, name, tmp_path / f"{which}-{name}.mp4"), "-show_packets"
        )["packets"]
        assert isinstance(packets, list)
        samples = [s for f in segment.fragments for s in f.samples]
        assert [s.size for s in samples] == [int(p["size"]) for p in packets]
        # ffprobe leaves out the duration of a packet its edit list trims (AAC priming), and
        # gives the track's last AAC frame its nominal 1024 where trun says what plays.
        timed = [
            (s.duration, int(p["duration"]))
            for s, p in zip(samples[:-1], packets[:-1], strict=True)
            if "duration" in p
        ]
        assert len(timed) >= len(samples) - 2
        assert all(ours == theirs for ours, theirs in timed)
        # Decode times from tfdt and durations, plus composition offsets, are ffprobe's PTS.
        ours = [
            f.start + sum(x.duration for x in f.samples[:i]) + sample.composition_offset
            for f in segment.fragments
            for i, sample in enumerate(f.samples)
        ]
        assert [t - ours[0] for t in ours] == [
            int(p["pts"]) - int(packets[0]["pts"]) for p in packets
        ]
        if which == "video":
            # A fragment per keyframe: each begins with one, so an I-frame is one moof away.
            assert all(f.starts_with_sync for f in segment.fragments)
            assert len(segment.fragments) == sum(s.sync for s in samples)
    assert expected_start / track.timescale == pytest.approx(13.0, abs=0.05)


def test_keyframe_byte_range_decodes_alone(written: Written, tmp_path: Path) -> None:
    """init + the bytes from a moof to the end of its first sample is one decodable frame."""
    tracks = fmp4.read_init((written.video / "init.mp4").read_bytes())
    init = (written.video / "init.mp4").read_bytes()
    checked = 0
    for name in _segments(written.video):
        data = (written.video / name).read_bytes()
        for fragment in fmp4.read_segment(data, tracks).fragments:
            alone = tmp_path / f"iframe{checked}.mp4"
            alone.write_bytes(init + data[fragment.offset : fragment.first_sample_end])
            frames = subprocess.run(
                ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                 "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(alone)],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            assert frames == "1"
            checked += 1
    assert checked >= 6  # 13 s of 2 s GOPs


def test_hevc_codec_string(tmp_path: Path) -> None:
    if (
        b"libx265"
        not in subprocess.run(
            ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, check=True
        ).stdout
    ):
        pytest.skip("this FFmpeg has no libx265")
    out = tmp_path / "hevc.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=s=128x72:r=10", "-t", "1", "-c:v", "libx265", "-preset", "ultrafast",
         "-x265-params", "log-level=error", "-tag:v", "hvc1",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(out)],
        check=True,
    )  # fmt: skip
    (track,) = fmp4.read_init(out.read_bytes())
    (probed,) = _ffprobe(out, "-show_streams")["streams"]
    parts = track.codec.split(".")
    assert parts[0] == "hvc1"
    assert parts[1] == "1"
    assert probed["profile"] == "Main"
    assert parts[3] == f"L{probed['level']}"
    segment = fmp4.read_segment(out.read_bytes(), (track,))
    assert segment.fragments
    assert segment.fragments[0].starts_with_sync


def _init_of(written: Written) -> bytes:
    return (written.video / "init.mp4").read_bytes()


def _first_segment(written: Written) -> bytes:
    return (written.video / _segments(written.video)[0]).read_bytes()


def _moof_offset(data: bytes) -> int:
    return next(b.offset for b in fmp4.boxes(data) if b.type == b"moof")


def _patch(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("empty", "no moov", id="empty"),
        pytest.param("stray", "stray bytes", id="stray-bytes"),
        pytest.param("cut-moov", "claims", id="truncated-moov"),
        pytest.param("huge-size", "claims", id="size-past-the-data"),
        pytest.param("small-size", "claims", id="size-below-header"),
        pytest.param("no-moov", "no moov", id="media-segment-as-init"),
        pytest.param("no-trak", "no track", id="moov-without-track"),
        pytest.param("many-boxes", "more than", id="box-count-cap"),
    ],
)
def test_malformed_init_fails_clearly(written: Written, case: str, message: str) -> None:
    init = _init_of(written)
    data = {
        "empty": b"",
        "stray": init + b"\x00\x00\x00",
        "cut-moov": init[: len(init) // 2],
        "huge-size": _patch(init, 0, struct.pack(">I", 1 << 30)),
        "small-size": _patch(init, 0, struct.pack(">I", 4)),
        "no-moov": _first_segment(written),
        "no-trak": _box(b"ftyp", b"iso6\x00\x00\x00\x00")
        + _box(b"moov", _box(b"mvhd", bytes(100))),
        "many-boxes": _box(b"free", b"") * (fmp4.MAX_BOXES + 1),
    }[case]
    with pytest.raises(fmp4.MalformedMp4, match=message):
        fmp4.read_init(data)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("truncated", "claims", id="truncated-mdat"),
        pytest.param("trun-count", "shorter than its entries|claims", id="trun-claims-more"),
        pytest.param("data-offset", "outside its data", id="samples-outside-the-mdat"),
        pytest.param("other-track", "not in the init", id="unknown-track"),
        pytest.param("no-trun", "lacks tfhd or trun", id="traf-without-trun"),
    ],
)
def test_malformed_segment_fails_clearly(written: Written, case: str, message: str) -> None:
    tracks = fmp4.read_init(_init_of(written))
    data = _first_segment(written)
    moof = _moof_offset(data)
    traf = next(b for b in fmp4.boxes(data, moof + 8, _moof_end(data, moof)) if b.type == b"traf")
    parts = {b.type: b for b in fmp4.boxes(data, traf.payload, traf.end)}
    trun, tfhd = parts[b"trun"], parts[b"tfhd"]
    bad = {
        "truncated": data[: len(data) - 10],
        "trun-count": _patch(data, trun.payload + 4, struct.pack(">I", 100_000)),
        "data-offset": _patch(data, trun.payload + 8, struct.pack(">i", 1 << 30)),
        "other-track": _patch(data, tfhd.payload + 4, struct.pack(">I", 99)),
        "no-trun": _patch(data, trun.offset + 4, b"free"),
    }[case]
    with pytest.raises(fmp4.MalformedMp4, match=message):
        fmp4.read_segment(bad, tracks)


def _moof_end(data: bytes, moof: int) -> int:
    return next(b.end for b in fmp4.boxes(data) if b.offset == moof)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(b"", "missing", id="empty"),
        pytest.param(b"\x03\x80\x80\x80\x7f", "past the end", id="size-past-the-end"),
        pytest.param(b"\x03\x03\x00\x01\x00", "descriptor 0x04 missing", id="no-decoder-config"),
    ],
)
def test_malformed_esds_fails_clearly(payload: bytes, message: str) -> None:
    with pytest.raises(fmp4.MalformedMp4, match=message):
        fmp4.aac_codec_of(payload)


def test_split_init_on_a_malformed_init_changes_nothing(written: Written, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(written.video, folder)
    (folder / "init.mp4").write_bytes(_init_of(written)[:100])
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(fmp4.MalformedMp4):
        split_init(folder, "init.mp4", _segments(written.video)[0])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
