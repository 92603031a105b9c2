"""Live CMAF audio renditions: a channel with two audio languages gets a CMAF audio track per
language beside its TS rendition, listed in the CMAF master as the TS master lists them and
in the MPD as one AdaptationSet per language; the rungs stay video-only, no muxed ``audio``
track is made, and a real origin serves the new tracks to ffprobe."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.media import Media, dominant_hz, ffmpeg, multilingual_clip, probe_streams
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex, RungInfo
from transcode.dash.model import Mpd
from transcode.dash.parse import parse_mpd
from transcode.domain import ChannelState, LiveChannel
from transcode.fmp4 import read_init, read_segment
from transcode.fmp4.writer import VIDEO_TIMESCALE, AacConfig
from transcode.jobs import PackageFormat
from transcode.live import LiveManager
from transcode.live.cmaf import (
    AUDIO_TRACK,
    CmafSegment,
    LiveCmaf,
    Picture,
    remux,
    remux_files,
)
from transcode.live.cmaf_tracks import audio_start
from transcode.live.multicast.ts import PTS_WRAP
from transcode.live.remux import AudioTrack, EsSample, demux
from transcode.live.window import Window
from transcode.names import CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME
from transcode.origin import start_origin
from transcode.settings import OriginSettings, SourceSettings
from transcode.sources import SourceGuard

pytestmark = pytest.mark.xdist_group("live")

LANGUAGES = ("audio-zh", "audio-en")
START = 1_764_547_200.5  # a program date-time, in seconds since 1970
T0 = datetime(2030, 1, 1, tzinfo=UTC)


# -- the remux of a rendition's own TS file ---------------------------------------------------


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two seconds of the multilingual clip as a live epoch writes it with two languages: a
    video-only rung and each language's audio-only TS, one FFmpeg run (one clock)."""
    base = tmp_path_factory.mktemp("renditions")
    source = multilingual_clip(base / "multi.ts", 2, subtitles=False)
    out = {"90p": base / "90p.ts", "audio-zh": base / "zh.ts", "audio-en": base / "en.ts"}
    ffmpeg(
        "-i", str(source),
        "-map", "0:v", "-c", "copy", str(out["90p"]),
        "-map", "0:a:0", "-c", "copy", str(out["audio-zh"]),
        "-map", "0:a:1", "-c", "copy", str(out["audio-en"]),
    )  # fmt: skip
    return out


def test_each_rendition_becomes_an_audio_track_of_its_own(
    split: dict[str, Path], tmp_path: Path
) -> None:
    written = remux_files(
        tmp_path, split, {"90p": Picture(320, 180)}, sequence=5, start_seconds=START,
        duration=2.0, keep=10, renditions=LANGUAGES,
    )  # fmt: skip
    assert set(written) == {"90p", *LANGUAGES}  # no muxed "audio" track
    for name, hz in (("audio-zh", 440), ("audio-en", 880)):
        segment = written[name]
        init = (tmp_path / name / segment.init).read_bytes()
        data = (tmp_path / name / "5.m4s").read_bytes()
        (track,) = read_init(init)
        assert (track.handler, track.timescale, track.codec) == ("soun", 48_000, "mp4a.40.2")
        media = read_segment(data, (track,))
        # Shifted with the video: its first frame keeps its distance from the rung's first
        # sample on the TS clock (the two files are outputs of one run).
        lead = (_first_dts(split[name], audio=True) - _first_dts(split["90p"])) / 90_000
        assert media.start == segment.start == round((START + lead) * 48_000)
        assert abs(lead) < 0.2
        assert len(media.fragments[0].samples) == pytest.approx(2 * 48_000 / 1024, abs=4)
        whole = tmp_path / f"{name}.mp4"
        whole.write_bytes(init + data)
        assert dominant_hz(whole) == pytest.approx(hz, rel=0.05)
    assert written["90p"].start == round(START * VIDEO_TIMESCALE)


def _first_dts(path: Path, *, audio: bool = False) -> int:
    demuxed = demux(path.read_bytes())
    track = demuxed.audio if audio else demuxed.video
    assert track is not None
    return track.samples[0].dts


def test_given_renditions_no_rungs_muxed_audio_is_taken(split: dict[str, Path]) -> None:
    """Given renditions, a rung's own muxed audio is never taken (a rung with audio and
    renditions both would list a language twice)."""
    muxed = split["90p"].with_name("muxed.ts")
    ffmpeg("-i", str(split["90p"]), "-i", str(split["audio-zh"]), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(muxed))  # fmt: skip
    files = {"90p": muxed, "audio-en": split["audio-en"]}
    pictures = {"90p": Picture(320, 180)}
    alone = remux(files, pictures, start_seconds=START, duration=2.0)
    assert set(alone) == {"90p", AUDIO_TRACK}  # no renditions: as before, muxed audio taken
    both = remux(files, pictures, start_seconds=START, duration=2.0, renditions=("audio-en",))
    assert set(both) == {"90p", "audio-en"}


@pytest.mark.parametrize(
    ("files", "made"),
    [
        pytest.param({"audio-zh": "garbage"}, {"90p", "audio-en"}, id="unreadable-rendition"),
        pytest.param({"audio-zh": "missing"}, {"90p", "audio-en"}, id="missing-file"),
        pytest.param({"audio-zh": "90p"}, {"90p", "audio-en"}, id="rendition-without-audio"),
        pytest.param({"90p": "garbage"}, set(), id="no-video-to-time-them-by"),
    ],
)
def test_a_rendition_that_cannot_be_remuxed_is_left_out(
    split: dict[str, Path], tmp_path: Path, files: dict[str, str], made: set[str]
) -> None:
    garbage = tmp_path / "garbage.ts"
    garbage.write_bytes(b"\x47" + bytes(187) + b"not a transport stream")
    swap = {"garbage": garbage, "missing": tmp_path / "missing.ts", "90p": split["90p"]}
    published = {**split, **{name: swap[what] for name, what in files.items()}}
    out = remux(published, {"90p": Picture(320, 180)}, start_seconds=START, duration=2.0,
                renditions=LANGUAGES)  # fmt: skip
    assert set(out) == made


def test_a_rendition_after_the_33_bit_wrap_keeps_its_place() -> None:
    """A rendition's file has its own times: one whose first frame is just past the wrap,
    while the video's first sample is just before it, is 1 ms after the video, not 26.5 h."""
    config = AacConfig(b"\x11\x90", 48_000, 2)
    ahead = AudioTrack(config, (EsSample(b"x", 5, 5, True),))
    assert audio_start(ahead, PTS_WRAP - 85, START) == round((START + 0.001) * 48_000)
    behind = AudioTrack(config, (EsSample(b"x", PTS_WRAP - 85, PTS_WRAP - 85, True),))
    assert audio_start(behind, 5, START) == round((START - 0.001) * 48_000)
    plain = AudioTrack(config, (EsSample(b"x", 9000 + 90, 9000 + 90, True),))
    assert audio_start(plain, 9000, START) == round((START + 0.001) * 48_000)


# -- the CMAF master and MPD of the renditions (pure) -----------------------------------------

RUNGS_INFO = [
    RungInfo("90p", "avc1.42c00d,mp4a.40.2", 160, 90, 25.0),
    RungInfo("audio-zh", "", 0, 0, 0.0, "audio", "zh", "普通话"),
    RungInfo("audio-en", "", 0, 0, 0.0, "audio", "en", "English", default=True),
    RungInfo("subs-en", "", 0, 0, 0.0, "subtitles", "en", "English"),
]


def _slide(window: Window, state: LiveCmaf, seq: int, tracks: tuple[str, ...]) -> None:
    start = T0 + timedelta(seconds=2 * seq)
    at = state.position(start)
    sizes = {"90p": 1000, "audio-zh": 300, "audio-en": 300}
    window.slide(seq, 2.0, start, False, sizes, None, length=6,
                 cmaf={t: (500, "init-00000000.mp4") for t in tracks})  # fmt: skip
    facts = {
        t: CmafSegment(500, "init-00000000.mp4", "avc1.42c00d" if t == "90p" else "mp4a.40.2",
                       90_000 if t == "90p" else 48_000, 0)
        for t in tracks
    }  # fmt: skip
    state.published(window, at, 2.0, start, facts)


def test_the_master_and_mpd_list_each_language_as_the_ts_master_does() -> None:
    window, state = Window(), LiveCmaf()
    for seq in range(3):
        _slide(window, state, seq, ("90p", *LANGUAGES))
    texts = state.texts(window, RUNGS_INFO, segment_seconds=2, endlist=False, now=T0)
    assert set(texts) == {"90p/cmaf.m3u8", "audio-zh/cmaf.m3u8", "audio-en/cmaf.m3u8",
                          CMAF_MASTER, MPD_NAME}  # fmt: skip
    master = hls_parse.parse_master(texts[CMAF_MASTER])
    listed = [(r.type, r.group_id, r.uri, r.language, r.name, r.default) for r in master.renditions]
    assert listed == [
        ("AUDIO", "audio", "audio-zh/cmaf.m3u8", "zh", "普通话", False),
        ("AUDIO", "audio", "audio-en/cmaf.m3u8", "en", "English", True),
    ]  # fmt: skip
    (variant,) = master.variants
    assert (variant.uri, variant.codecs, variant.audio, variant.subtitles) == (
        "90p/cmaf.m3u8", "avc1.42c00d,mp4a.40.2", "audio", None,
    )  # fmt: skip
    mpd = parse_mpd(texts[MPD_NAME])
    audio = [a for p in mpd.periods for a in p.adaptation_sets if a.content_type == "audio"]
    assert [(a.lang, a.label, a.representations[0].id) for a in audio] == [
        ("zh", "普通话", "audio-zh"), ("en", "English", "audio-en"),
    ]  # fmt: skip
    assert [bool(a.roles) for a in audio] == [False, True]  # the default is the main one
    # A language that misses a segment starts its run again; the master keeps listing it
    # (it has segments) and the MPD lists what every track has.
    _slide(window, state, 3, ("90p", "audio-zh"))
    _slide(window, state, 4, ("90p", *LANGUAGES))
    texts = state.texts(window, RUNGS_INFO, segment_seconds=2, endlist=False, now=T0)
    english = hls_parse.parse_media(texts["audio-en/cmaf.m3u8"])
    assert (english.media_sequence, [s.uri for s in english.segments]) == (4, ["4.m4s"])
    assert len(hls_parse.parse_media(texts["audio-zh/cmaf.m3u8"]).segments) == 5
    master = hls_parse.parse_master(texts[CMAF_MASTER])
    assert [r.language for r in master.renditions] == ["zh", "en"]
    mpd = parse_mpd(texts[MPD_NAME])
    assert {a.lang for p in mpd.periods for a in p.adaptation_sets} == {"", "zh", "en"}
    assert all(
        (a.segment_template or a.representations[0].segment_template).start_number == 4  # type: ignore[union-attr]
        for p in mpd.periods
        for a in p.adaptation_sets
    )


def test_a_single_audio_channel_keeps_its_one_audio_track() -> None:
    """Renditions named but never made (no CMAF track yet) leave the master as before."""
    window, state = Window(), LiveCmaf()
    for seq in range(2):
        _slide(window, state, seq, ("90p", AUDIO_TRACK))
    texts = state.texts(window, RUNGS_INFO[:1], segment_seconds=2, endlist=False, now=T0)
    master = hls_parse.parse_master(texts[CMAF_MASTER])
    assert [(r.uri, r.name, r.default) for r in master.renditions] == [
        ("audio/cmaf.m3u8", "Audio", True)
    ]


# -- a real multilingual channel --------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The playlists, masters and MPD one publication left on disk."""

    ts: dict[str, hls.MediaPlaylist]
    cmaf: dict[str, hls.MediaPlaylist]
    ts_master: hls.MasterPlaylist
    master: hls.MasterPlaylist | None
    mpd: Mpd | None


@pytest.fixture(scope="module")
def source(media: Media) -> Path:
    """Seven seconds of video, Mandarin (440 Hz) and English (880 Hz) audio, English SubRip."""
    path = media.clip.parent / "live-cmaf-multilingual.mkv"
    if not path.exists():
        multilingual_clip(path, 7)
    return path


def _read(base: Path) -> Snapshot:
    def media(name: str, names: tuple[str, ...]) -> dict[str, hls.MediaPlaylist]:
        return {
            n: hls_parse.parse_media((base / n / name).read_text())
            for n in names
            if (base / n / name).exists()
        }

    names = ("90p", "180p", *LANGUAGES, "subs-en", AUDIO_TRACK)
    master, mpd = base / CMAF_MASTER, base / MPD_NAME
    return Snapshot(
        media("index.m3u8", names),
        media(CMAF_PLAYLIST, names),
        hls_parse.parse_master((base / "master.m3u8").read_text()),
        hls_parse.parse_master(master.read_text()) if master.exists() else None,
        parse_mpd(mpd.read_text()) if mpd.exists() else None,
    )


def _packets(path: Path) -> tuple[str, int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_name,sample_rate,nb_read_packets", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    (stream,) = json.loads(out)["streams"]
    return stream["codec_name"], int(stream["sample_rate"]), int(stream["nb_read_packets"])


def _languages(url: str) -> list[tuple[str, str]]:
    """Each stream FFmpeg finds at ``url``: its codec and language, sorted."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:stream_tags=language",
         "-of", "json", url],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    streams = json.loads(out)["streams"]
    return sorted((s["codec_name"], s.get("tags", {}).get("language", "")) for s in streams)


@pytest.mark.slow
async def test_a_multilingual_cmaf_channel_publishes_a_track_per_language(
    redis: aioredis.Redis, tmp_path: Path, source: Path, source_settings: SourceSettings
) -> None:
    root = tmp_path / "origin"
    base = root / "live" / "mcm"
    snaps: asyncio.Queue[Snapshot] = asyncio.Queue()

    def observe(_channel: str, _seq: int, state: ChannelState) -> None:
        if state is ChannelState.LIVE:
            snaps.put_nowait(_read(base))  # right after the write: one consistent view

    manager = LiveManager(
        redis=redis, archive=ArchiveIndex(redis), origin_root=root,
        sources=SourceGuard(source_settings), observer=observe,
    )  # fmt: skip
    channel = LiveChannel(
        id="mcm", source=f"file://{source}", profile="low", segment_seconds=2, catchup_days=1,
        audio_languages=("zh", "en"), subtitle_languages=("en",), audio_language="en",
        formats=(PackageFormat.CMAF,),
    )  # fmt: skip
    try:
        await manager.start(channel)
        snap = await asyncio.wait_for(snaps.get(), 60)
        while len(snap.ts["90p"].segments) < 4 or snap.mpd is None:
            snap = await asyncio.wait_for(snaps.get(), 60)
        # The TS view is as before: video-only rungs, a TS rendition per language.
        assert [
            s["codec_type"] for s in probe_streams(base / "90p" / snap.ts["90p"].segments[-1].uri)
        ] == ["video"]
        # A CMAF track per rung and per language; no muxed "audio", no subtitle track.
        assert set(snap.cmaf) == {"90p", "180p", *LANGUAGES}
        assert not (base / AUDIO_TRACK).exists()
        for name in LANGUAGES:
            ts, cmaf = snap.ts[name], snap.cmaf[name]
            assert cmaf.media_sequence == ts.media_sequence
            assert cmaf.discontinuity_sequence == ts.discontinuity_sequence
            assert [f"{int(s.uri.removesuffix('.m4s')):010d}.ts" for s in cmaf.segments] == [
                s.uri for s in ts.segments
            ]
            assert [s.duration for s in cmaf.segments] == [s.duration for s in ts.segments]
            assert [s.discontinuity for s in cmaf.segments] == [
                s.discontinuity for s in ts.segments
            ]
            assert [s.program_date_time for s in cmaf.segments] == [
                s.program_date_time for s in ts.segments
            ]
        # The CMAF master lists the languages as the TS master does (en the default).
        assert snap.master is not None
        ts_audio = [r for r in snap.ts_master.renditions if r.type == "AUDIO"]
        assert [(r.language, r.name, r.default, r.group_id) for r in snap.master.renditions] == [
            (r.language, r.name, r.default, r.group_id) for r in ts_audio
        ]
        assert [(r.language, r.default) for r in snap.master.renditions] == [
            ("zh", False), ("en", True),
        ]  # fmt: skip
        assert [r.uri for r in snap.master.renditions] == [
            f"{n}/{CMAF_PLAYLIST}" for n in LANGUAGES
        ]
        assert all(v.codecs.endswith(",mp4a.40.2") for v in snap.master.variants)
        # The MPD: one audio AdaptationSet per language.
        assert snap.mpd is not None
        audio = [a for a in snap.mpd.periods[-1].adaptation_sets if a.content_type == "audio"]
        assert [a.lang for a in audio] == ["zh", "en"]
        # Each language's init + segment is AAC of about 2 s, its own language's tone, and
        # starts with its segment's video (the timeline contract of the muxed audio).
        for name, hz in (("audio-zh", 440), ("audio-en", 880)):
            playlist = snap.cmaf[name]
            segment = playlist.segments[-1]
            assert segment.map is not None
            init = (base / name / segment.map.uri).read_bytes()
            data = (base / name / segment.uri).read_bytes()
            whole = tmp_path / f"{name}.mp4"
            whole.write_bytes(init + data)
            codec, rate, frames = _packets(whole)
            assert (codec, rate) == ("aac", 48_000)
            assert 40 <= frames <= 200  # 2 s at 48 kHz is about 94 frames of 1024 samples
            assert dominant_hz(whole) == pytest.approx(hz, rel=0.05)
            video_init = snap.cmaf["90p"].segments[-1].map
            assert video_init is not None
            video = read_segment(
                (base / "90p" / segment.uri).read_bytes(),
                read_init((base / "90p" / video_init.uri).read_bytes()),
            )
            tracks = read_init(init)
            start = read_segment(data, tracks).start
            assert abs(start / rate - video.start / VIDEO_TIMESCALE) < 0.1, name
            # Every segment's tfdt: the first plus the cumulated durations (audio keeps its
            # frames' lip sync, so near the contract, as the muxed track is).
            elapsed, first = 0.0, None
            for entry in playlist.segments:
                at = read_segment((base / name / entry.uri).read_bytes(), tracks).start
                first = at if first is None else first
                assert abs(at - first - round(elapsed * rate)) <= rate // 10, (name, entry.uri)
                elapsed += entry.duration
        # A real origin serves the new tracks (their names pass validate_rung).
        runner, port = await start_origin(
            OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
        )
        url = f"http://127.0.0.1:{port}/live/mcm"
        try:
            async with aiohttp.ClientSession() as http:
                for name in LANGUAGES:
                    async with http.get(f"{url}/{name}/{CMAF_PLAYLIST}") as response:
                        assert response.status == 200
                        served = hls_parse.parse_media(await response.text())
                    segment = served.segments[-1]
                    assert segment.map is not None
                    async with http.get(f"{url}/{name}/{segment.map.uri}") as response:
                        assert response.status == 200
                    async with http.get(f"{url}/{name}/{segment.uri}") as response:
                        assert (response.status, response.content_type) == (200, "video/mp4")
                    async with http.get(f"{url}/{name}/0{segment.uri}") as response:
                        assert response.status == 404  # not a segment name
            # FFmpeg reads both languages through both views.
            for path in (CMAF_MASTER, MPD_NAME):
                streams = await asyncio.to_thread(_languages, f"{url}/{path}")
                assert streams == [("aac", "en"), ("aac", "zh"), ("h264", ""), ("h264", "")], path
        finally:
            await runner.cleanup()
    finally:
        await manager.close()
