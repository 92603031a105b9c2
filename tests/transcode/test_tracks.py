"""Several audio languages and subtitles in a VOD asset: planned from the source's tags,
encoded once per track, aligned with the video, and read back by real clients."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import m3u8
import pytest
import webvtt

from headend.contentkeys import ContentKeyStore, KekRing, scope_for_asset
from headend.contentkeys.cipher import decrypt_segment
from headend.languages import player_language
from headend.redisconn import connect
from headend.redisproc import RedisServer
from tests.support.media import (
    SUBTITLE_CUES,
    cue_time,
    dominant_hz,
    multilingual_clip,
    probe_streams,
    tiny_profile,
    write_srt,
)
from transcode.encrypt import AssetEncryption
from transcode.hls_parse import parse_master, parse_media
from transcode.jobs import SubtitleFile
from transcode.measure import PTS_HZ, scan_segment
from transcode.package import PackageResult, package_vod
from transcode.probe import SourceInfo, StreamTags, VideoInfo
from transcode.tracks import live_tracks, plan_tracks


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PackageResult]:
    """A 7 s Matroska source with Mandarin and English audio and English SubRip, packaged
    with an attached Cantonese subtitle file."""
    root = tmp_path_factory.mktemp("multilingual")
    source = multilingual_clip(root / "src.mkv", 7)
    attached = write_srt(root / "yue.srt", ((0.2, 1.0, "粤语字幕"), (5.0, 6.0, "再见")))
    result = asyncio.run(
        package_vod(
            str(source),
            root / "out",
            tiny_profile(),
            subtitle_files=[SubtitleFile(str(attached), "yue", "粤语")],
            default_language="en",
        )
    )
    return root / "out", result


def _info(audio: list[StreamTags]) -> SourceInfo:
    video = VideoInfo("h264", 320, 180, 25.0, 1.0, "High", 31, "yuv420p", None)
    return SourceInfo("x", "mpegts", 1.0, video, None, audio_streams=tuple(audio))


def test_one_audio_track_stays_muxed_and_several_become_renditions() -> None:
    one = _info([StreamTags(0, "aac", "chi", "", True)])
    assert plan_tracks(one, max_audio=4) == ()
    several = _info(
        [
            StreamTags(0, "aac", "chi", "", False),
            StreamTags(1, "aac", "eng", "", True),
            StreamTags(2, "aac", "", "Director", False),
        ]
    )
    tracks = plan_tracks(several, max_audio=4)
    assert [(t.name, t.language, t.title, t.default) for t in tracks] == [
        ("audio-zh", "zh", "中文", False),
        ("audio-en", "en", "English", True),  # the source's default disposition
        ("audio-3", "", "Director", False),
    ]
    assert [t.default for t in plan_tracks(several, max_audio=4, default_language="zh")] == [
        True, False, False,
    ]  # fmt: skip
    assert len(plan_tracks(several, max_audio=2)) == 2


def test_a_repeated_language_gets_its_own_directory() -> None:
    tracks = live_tracks(["zh", "zh", "en"], ["en", "en"])
    assert [t.name for t in tracks] == [
        "audio-zh",
        "audio-zh-2",
        "audio-en",
        "subs-en",
        "subs-en-5",
    ]
    assert [t.default for t in tracks] == [True, False, False, False, False]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("chi", "zh"),
        ("zho", "zh"),
        ("eng", "en"),
        ("yue", "yue"),
        ("und", ""),
        ("zh_Hans", "zh-Hans"),
        ("fre", "fr"),
        ("English", ""),
    ],
)
def test_source_tags_become_player_languages(tag: str, expected: str) -> None:
    assert player_language(tag) == expected


def test_the_master_lists_every_audio_and_subtitle_rendition(
    multilingual: tuple[Path, PackageResult],
) -> None:
    out, result = multilingual
    master = parse_master((out / "master.m3u8").read_text())
    audio = [r for r in master.renditions if r.type == "AUDIO"]
    subs = [r for r in master.renditions if r.type == "SUBTITLES"]
    assert [(r.language, r.name, r.default, r.uri) for r in audio] == [
        ("zh", "普通话", False, "audio-zh/index.m3u8"),
        ("en", "English", True, "audio-en/index.m3u8"),
    ]
    assert [(r.language, r.name, r.default, r.autoselect) for r in subs] == [
        ("en", "English", False, False),
        ("yue", "粤语", False, False),
    ]
    assert {r.group_id for r in audio} == {"audio"}
    assert {r.group_id for r in subs} == {"subs"}
    for variant in master.variants:
        assert (variant.audio, variant.subtitles) == ("audio", "subs")
        assert variant.codecs.endswith(",mp4a.40.2")
    # A variant's bandwidth covers its video and the most demanding audio rendition.
    audio_peak = max(_peak(out / r.uri) for r in audio)
    for rung in result.rungs:
        assert rung.variant.bandwidth > audio_peak


def _peak(playlist: Path) -> int:
    media = parse_media(playlist.read_text())
    return max(
        int((playlist.parent / s.uri).stat().st_size * 8 / s.duration) for s in media.segments
    )


def test_rungs_carry_video_only_and_each_language_is_encoded_once(
    multilingual: tuple[Path, PackageResult],
) -> None:
    out, result = multilingual
    for rung in result.rungs:
        kinds = [s["codec_type"] for s in probe_streams(out / rung.name / "seg_00000.ts")]
        assert kinds == ["video"]
    for name in ("audio-zh", "audio-en"):
        (stream,) = probe_streams(out / name / "seg_00001.ts")
        assert (stream["codec_type"], stream["codec_name"], stream["channels"]) == (
            "audio",
            "aac",
            2,
        )


def test_each_rendition_holds_its_own_source_track(
    multilingual: tuple[Path, PackageResult],
) -> None:
    out, _ = multilingual
    assert dominant_hz(out / "audio-zh" / "seg_00001.ts") == pytest.approx(440, rel=0.05)
    assert dominant_hz(out / "audio-en" / "seg_00001.ts") == pytest.approx(880, rel=0.05)


def test_video_audio_and_subtitles_are_aligned(multilingual: tuple[Path, PackageResult]) -> None:
    out, result = multilingual
    video = parse_media((out / result.rungs[0].name / "index.m3u8").read_text())
    for name in ("audio-zh", "audio-en", "subs-en", "subs-yue", result.rungs[1].name):
        other = parse_media((out / name / "index.m3u8").read_text())
        assert other.media_sequence == video.media_sequence
        assert [s.duration for s in other.segments] == [s.duration for s in video.segments]
        assert [s.discontinuity for s in other.segments] == [
            s.discontinuity for s in video.segments
        ]
    # Each audio segment starts within one AAC frame of its video segment.
    for index, segment in enumerate(video.segments):
        video_pts = scan_segment(out / result.rungs[0].name / segment.uri).keyframes[0].pts
        audio_pts = _first_pts(out / "audio-zh" / f"seg_{index:05d}.ts")
        assert abs(audio_pts - video_pts) <= 1024 / 48000 * PTS_HZ + 1


def _first_pts(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=pts", "-read_intervals", "%+#1",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return int(out.split()[0].rstrip(","))


def test_subtitle_segments_map_to_the_video_clock(multilingual: tuple[Path, PackageResult]) -> None:
    out, result = multilingual
    rung = out / result.rungs[0].name
    video = parse_media((rung / "index.m3u8").read_text())
    subs = parse_media((out / "subs-en" / "index.m3u8").read_text())
    start = 0.0
    for segment, video_segment in zip(subs.segments, video.segments, strict=True):
        text = (out / "subs-en" / segment.uri).read_text()
        found = re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:(\S+)", text)
        assert found is not None
        keyframe_pts = scan_segment(rung / video_segment.uri).keyframes[0].pts
        assert int(found.group(1)) == pytest.approx(keyframe_pts, abs=2)
        assert found.group(2) == cue_time(start)
        start += segment.duration
    # Every cue of the source is in the segments its time covers, read by webvtt-py.
    seen = {
        c.text for s in subs.segments for c in webvtt.read(str(out / "subs-en" / s.uri)).captions
    }
    assert seen == {text for _, _, text in SUBTITLE_CUES}
    attached = {
        c.text for s in subs.segments for c in webvtt.read(str(out / "subs-yue" / s.uri)).captions
    }
    assert attached == {"粤语字幕", "再见"}


def test_playlists_pass_a_strict_parser(multilingual: tuple[Path, PackageResult]) -> None:
    out, _ = multilingual
    master = m3u8.load(str(out / "master.m3u8"))
    assert {m.type for m in master.media} == {"AUDIO", "SUBTITLES"}
    for media in master.media:
        playlist = m3u8.load(str(out / media.uri))
        assert playlist.is_endlist
        assert playlist.target_duration == 2


def test_ffprobe_reads_the_audio_renditions_through_the_master(
    multilingual: tuple[Path, PackageResult],
) -> None:
    """FFmpeg's HLS reader opens alternative audio (not subtitle renditions: those are read
    by webvtt-py above and by hls.js in the browser tests)."""
    out, _ = multilingual
    streams = probe_streams(out / "master.m3u8")
    languages = {s["tags"]["language"] for s in streams if s["codec_type"] == "audio"}  # type: ignore[index]
    assert languages == {"zh", "en"}
    assert any(s["codec_type"] == "video" for s in streams)
    (subtitles,) = probe_streams(out / "subs-en" / "index.m3u8")
    assert subtitles["codec_name"] == "webvtt"


def test_an_encrypted_asset_encrypts_its_audio_renditions_and_not_its_subtitles(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    source = multilingual_clip(tmp_path / "src.mkv", 5)
    dest = tmp_path / "out"

    async def package() -> dict[str, bytes]:
        client = connect(redis_server.url)
        try:
            store = ContentKeyStore(client, KekRing.generate("k1"))
            encryption = AssetEncryption("multi", 4, store, "http://127.0.0.1:1", "test")
            await package_vod(str(source), dest, tiny_profile(), encryption=encryption)
            scope = scope_for_asset("multi")
            return {
                info.key_id: (await store.get(scope, info.key_id)).key
                for info in await store.list_keys(scope)
            }
        finally:
            await client.aclose()

    keys = asyncio.run(package())
    video = parse_media((dest / "180p" / "index.m3u8").read_text())
    for name in ("audio-zh", "audio-en"):
        audio = parse_media((dest / name / "index.m3u8").read_text())
        # The same key for the same segment as the rungs, IV its number.
        assert [s.key for s in audio.segments] == [s.key for s in video.segments]
        for position, segment in enumerate(audio.segments):
            assert segment.key is not None
            data = (dest / name / segment.uri).read_bytes()
            assert set(data[:1880:188]) != {0x47}  # not MPEG-TS in clear
            key = keys[segment.key.uri.rsplit("/", 1)[1]]
            clear = decrypt_segment(data, key, position)
            assert set(clear[:1880:188]) == {0x47}
    subtitles = parse_media((dest / "subs-en" / "index.m3u8").read_text())
    assert all(s.key is None for s in subtitles.segments)
    assert (dest / "subs-en" / subtitles.segments[0].uri).read_text().startswith("WEBVTT")
