"""HLS conformance of real packaged output: RFC 8216 and Apple's authoring rules.

Each rule is checked against what FFmpeg and the packager actually wrote, with
ffprobe (not our own measurement code) as the source of media facts.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import m3u8
import pytest

from tests.support.media import Packaged

# Apple HLS Authoring Specification: 6 s target segment duration.
APPLE_SEGMENT_SECONDS = 6.0
# Segments are cut at keyframes; at 30 fps a segment may end a frame late.
SEGMENT_TOLERANCE_SECONDS = 0.1


@pytest.fixture(params=["ladder", "remux"], scope="module")
def packaged(request: pytest.FixtureRequest) -> Packaged:
    """Each conformance rule runs on the transcoded ladder and on the remux."""
    result: Packaged = request.getfixturevalue(f"packaged_{request.param}")
    return result


def _ffprobe(*args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args], capture_output=True, check=True
    ).stdout
    return json.loads(out)


@cache
def _packets(segment: Path) -> tuple[tuple[float, int, bool], ...]:
    """(pts_time, byte position, keyframe) of each video packet in a TS segment."""
    data = _ffprobe(
        "-select_streams", "v:0", "-show_entries", "packet=pts_time,pos,flags", str(segment)
    )
    return tuple(
        (float(p["pts_time"]), int(p["pos"]), p["flags"].startswith("K")) for p in data["packets"]
    )


@cache
def _stream(segment: Path, selector: str) -> dict:
    return _ffprobe("-select_streams", selector, "-show_streams", str(segment))["streams"][0]


@cache
def _duration(segment: Path) -> float:
    return float(_ffprobe("-show_entries", "format=duration", str(segment))["format"]["duration"])


@dataclass(frozen=True)
class Rendition:
    """One variant as published: its playlists parsed by m3u8, and its folder."""

    stream: m3u8.Playlist
    media: m3u8.M3U8
    iframes: m3u8.M3U8
    folder: Path

    def segments(self) -> list[Path]:
        return [self.folder / s.uri for s in self.media.segments]


def _master(packaged: Packaged) -> m3u8.M3U8:
    return m3u8.loads((packaged.result.dest / "master.m3u8").read_text())


def _renditions(packaged: Packaged) -> list[Rendition]:
    dest = packaged.result.dest
    master = _master(packaged)
    iframe_uris = {p.uri.split("/")[0]: p.uri for p in master.iframe_playlists}
    out = []
    for stream in master.playlists:
        folder = dest / stream.uri.split("/")[0]
        out.append(
            Rendition(
                stream=stream,
                media=m3u8.loads((dest / stream.uri).read_text()),
                iframes=m3u8.loads((dest / iframe_uris[folder.name]).read_text()),
                folder=folder,
            )
        )
    return out


def test_rfc8216_target_duration_covers_every_rounded_segment(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        for playlist in (rendition.media, rendition.iframes):
            assert playlist.target_duration is not None
            # 4.3.3.1: EXTINF rounded to the nearest integer <= EXT-X-TARGETDURATION.
            assert all(
                math.floor(s.duration + 0.5) <= playlist.target_duration for s in playlist.segments
            )


def test_rfc8216_media_sequence_rules(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        text = (rendition.folder / "index.m3u8").read_text()
        # 4.3.3.2: the tag appears before the first segment; a VOD starts at 0.
        assert text.index("#EXT-X-MEDIA-SEQUENCE:0") < text.index("#EXTINF")
        assert rendition.media.media_sequence == 0
        uris = [s.uri for s in rendition.media.segments]
        assert uris == [f"seg_{i:05d}.ts" for i in range(len(uris))]
        assert all(s.discontinuity is False for s in rendition.media.segments)


def test_rfc8216_versions_match_the_features_used(packaged: Packaged) -> None:
    master = _master(packaged)
    assert master.version == 1  # nothing in our master needs more
    for rendition in _renditions(packaged):
        assert rendition.media.version == 3  # decimal EXTINF durations
        assert rendition.iframes.version == 4  # EXT-X-BYTERANGE, EXT-X-I-FRAMES-ONLY


def test_vod_playlists_are_typed_and_ended(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        for playlist in (rendition.media, rendition.iframes):
            assert playlist.playlist_type == "vod"
            assert playlist.is_endlist


def test_independent_segments_are_declared(packaged: Packaged) -> None:
    assert _master(packaged).is_independent_segments
    for rendition in _renditions(packaged):
        assert rendition.media.is_independent_segments


def test_apple_segment_durations_are_six_seconds(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        durations = [s.duration for s in rendition.media.segments]
        assert rendition.media.target_duration == 6
        for declared in durations[:-1]:
            assert declared == pytest.approx(APPLE_SEGMENT_SECONDS, abs=SEGMENT_TOLERANCE_SECONDS)
        assert 0 < durations[-1] <= APPLE_SEGMENT_SECONDS + SEGMENT_TOLERANCE_SECONDS
        # The declared durations agree with what ffprobe measures in each file.
        for path, declared in zip(rendition.segments(), durations, strict=True):
            assert _duration(path) == pytest.approx(declared, abs=0.1)


def test_apple_every_segment_starts_with_a_keyframe(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        for path in rendition.segments():
            first_pts, _, key = min(_packets(path))
            assert key, f"{path} starts with a non-keyframe at {first_pts}"


def test_keyframes_are_aligned_across_rungs(packaged: Packaged) -> None:
    keyframe_times = [
        [round(t, 2) for path in r.segments() for t, _, key in _packets(path) if key]
        for r in _renditions(packaged)
    ]
    assert all(times == keyframe_times[0] for times in keyframe_times)
    gaps = {round(b - a, 2) for a, b in zip(keyframe_times[0], keyframe_times[0][1:], strict=False)}
    assert gaps == {2.0}  # closed 2 s GOPs, no scene-cut keyframes


def test_apple_declared_bandwidth_covers_the_measured_bitrate(packaged: Packaged) -> None:
    for rendition in _renditions(packaged):
        paths = rendition.segments()
        sizes = [p.stat().st_size for p in paths]
        # Apple's validator: each segment's bits over its EXTINF duration (checked
        # against ffprobe in test_apple_segment_durations_are_six_seconds).
        declared = [s.duration for s in rendition.media.segments]
        peak = max(8 * b / s for b, s in zip(sizes, declared, strict=True))
        # The average from ffprobe's own durations, independent of the playlist.
        average = 8 * sum(sizes) / sum(_duration(p) for p in paths)
        info = rendition.stream.stream_info
        assert info.bandwidth >= peak
        assert info.average_bandwidth == pytest.approx(average, rel=0.10)
        assert info.average_bandwidth <= info.bandwidth


def test_apple_codecs_resolution_and_frame_rate_match_the_stream(packaged: Packaged) -> None:
    profiles = {"Constrained Baseline": 0x42, "Baseline": 0x42, "Main": 0x4D, "High": 0x64}
    for rendition in _renditions(packaged):
        first = rendition.segments()[0]
        video = _stream(first, "v:0")
        audio = _stream(first, "a:0")
        info = rendition.stream.stream_info
        avc, aac = info.codecs.split(",")
        assert avc.startswith("avc1.")
        assert len(avc) == 11
        assert int(avc[5:7], 16) == profiles[video["profile"]]
        assert int(avc[9:11], 16) == video["level"]
        assert aac == "mp4a.40.2"
        assert audio["profile"] == "LC"
        assert info.resolution == (video["width"], video["height"])
        num, den = video["avg_frame_rate"].split("/")
        assert info.frame_rate == pytest.approx(int(num) / int(den), abs=0.001)


def test_iframe_playlists_point_at_every_keyframe(packaged: Packaged) -> None:
    master = _master(packaged)
    assert len(master.iframe_playlists) == len(master.playlists)
    for rendition in _renditions(packaged):
        expected = [
            (path.name, pos)
            for path in rendition.segments()
            for _, pos, key in _packets(path)
            if key
        ]
        listed = []
        for segment in rendition.iframes.segments:
            length, offset = segment.byterange.split("@")
            listed.append((segment.uri, int(offset)))
            assert int(length) > 0
        assert listed == expected
        assert sum(s.duration for s in rendition.iframes.segments) == pytest.approx(
            sum(s.duration for s in rendition.media.segments), abs=0.01
        )
        iframe_info = next(
            p.iframe_stream_info
            for p in master.iframe_playlists
            if p.uri.startswith(rendition.folder.name + "/")
        )
        assert iframe_info.codecs == rendition.stream.stream_info.codecs.split(",")[0]
        assert iframe_info.bandwidth >= iframe_info.average_bandwidth > 0
