"""CMAF packaging of VOD assets on real FFmpeg: the ladder and the stream copy write
single-track fMP4 renditions that ffprobe reads, playlists with EXT-X-MAP whose facts match
ffprobe's, I-frames that decode alone, and a DASH manifest listing the same segments; the
format travels through submit, the queue, the worker, the CLI and the origin."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis

from headend.contentkeys import ContentKeyStore, KekRing, scope_for_asset
from headend.rpc import error_details
from protos import transcode_pb2 as pb
from tests.support.media import Media, Packaged, conformance_profile, ffmpeg, write_srt
from tests.support.transcode_rig import Rig
from transcode import cli, fmp4, hls_parse
from transcode.encrypt import AssetEncryption
from transcode.errors import CorruptSource, EncodeFailed
from transcode.jobs import Job, JobState, PackageFormat
from transcode.origin import start_origin
from transcode.package import package_vod, remux_vod
from transcode.progress import Progress
from transcode.queue.codec import job_from_hash
from transcode.queue.jobs import job_key
from transcode.settings import OriginSettings, QueueSettings
from transcode.tracks import SubtitleFile
from transcode.worker import Worker, vod_packager

H264_PROFILES = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}
DASH = "{urn:mpeg:dash:schema:mpd:2011}"


@pytest.fixture(scope="module")
def cmaf_ladder(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip through the ladder as CMAF (2 s GOPs, 6 s segments), with an SRT."""
    root = tmp_path_factory.mktemp("cmaf-origin")
    srt = write_srt(root / "film.en.srt")
    dest = root / "vod" / "ladder"
    profile = conformance_profile()
    result = asyncio.run(
        package_vod(
            str(media.long_clip), dest, profile, package_format=PackageFormat.CMAF,
            subtitle_files=[SubtitleFile(str(srt), "en")],
        )
    )  # fmt: skip
    return Packaged("ladder", result, profile)


@pytest.fixture(scope="module")
def cmaf_remux(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 13 s clip stream-copied as CMAF (its own 2 s GOPs, 6 s segments)."""
    dest = tmp_path_factory.mktemp("cmaf-origin") / "vod" / "remux"
    result = asyncio.run(remux_vod(str(media.long_clip), dest, package_format=PackageFormat.CMAF))
    return Packaged("remux", result, None)


@pytest.fixture(params=["ladder", "remux"])
def packaged(request: pytest.FixtureRequest) -> Packaged:
    """Each CMAF asset in turn."""
    fixture: Packaged = request.getfixturevalue(f"cmaf_{request.param}")
    return fixture


def _ffprobe(path: Path | str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], check=True, capture_output=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _streams(path: Path) -> list[dict[str, Any]]:
    streams: list[dict[str, Any]] = _ffprobe(path, "-show_streams")["streams"]
    return streams


def _joined(folder: Path, segment: str, out: Path) -> Path:
    out.write_bytes((folder / "init.mp4").read_bytes() + (folder / segment).read_bytes())
    return out


def _renditions(packaged: Packaged) -> list[str]:
    master = packaged.result.master
    return [
        *(v.uri.split("/")[0] for v in master.variants),
        *(r.uri.split("/")[0] for r in master.renditions if r.type == "AUDIO"),
    ]


def test_every_rendition_is_single_track_fmp4_that_ffprobe_reads(
    packaged: Packaged, tmp_path: Path
) -> None:
    dest = packaged.result.dest
    master = packaged.result.master
    assert [r.uri for r in master.renditions if r.type == "AUDIO"] == ["audio-1/index.m3u8"]
    for name in _renditions(packaged):
        media = hls_parse.parse_media((dest / name / "index.m3u8").read_text())
        assert {s.map.uri if s.map else None for s in media.segments} == {"init.mp4"}
        assert all(s.uri.endswith(".m4s") for s in media.segments)
        for segment in media.segments:
            streams = _streams(_joined(dest / name, segment.uri, tmp_path / "joined.mp4"))
            kinds = [s["codec_type"] for s in streams]
            assert kinds == (["audio"] if name.startswith("audio-") else ["video"])


def test_master_codecs_and_sizes_come_from_the_init_segments(
    packaged: Packaged, tmp_path: Path
) -> None:
    dest = packaged.result.dest
    master = packaged.result.master
    (audio,) = fmp4.read_init((dest / "audio-1/init.mp4").read_bytes())
    assert audio.codec == "mp4a.40.2"
    for variant in master.variants:
        name = variant.uri.split("/")[0]
        (video,) = fmp4.read_init((dest / name / "init.mp4").read_bytes())
        assert variant.codecs == f"{video.codec},{audio.codec}"
        assert variant.audio == "audio"
        assert variant.resolution == (video.width, video.height)
        (probed,) = _streams(_joined(dest / name, "seg_00000.m4s", tmp_path / "v.mp4"))
        config = video.codec.split(".")[1]
        assert int(config[:2], 16) == H264_PROFILES[str(probed["profile"])]
        assert int(config[4:], 16) == probed["level"]
        assert (probed["width"], probed["height"]) == variant.resolution


def test_durations_match_the_fragments_and_the_source(packaged: Packaged) -> None:
    dest = packaged.result.dest
    for name in _renditions(packaged):
        media = hls_parse.parse_media((dest / name / "index.m3u8").read_text())
        tracks = fmp4.read_init((dest / name / "init.mp4").read_bytes())
        (track,) = tracks
        total = 0.0
        for segment in media.segments:
            facts = fmp4.read_segment((dest / name / segment.uri).read_bytes(), tracks)
            if not name.startswith("audio-"):
                # Video segments are listed with their own fragments' duration; audio ones
                # with the video's, so that every rendition shares one timeline.
                assert segment.duration == pytest.approx(facts.duration / track.timescale)
                assert facts.fragments[0].starts_with_sync
            total += segment.duration
        assert total == pytest.approx(13.0, abs=0.1)
        assert media.independent_segments
    probed = _ffprobe(dest / "master.m3u8", "-show_format", "-show_streams")
    assert float(probed["format"]["duration"]) == pytest.approx(13.0, abs=0.2)
    kinds = {s["codec_name"] for s in probed["streams"]}
    assert {"h264", "aac"} <= kinds


def test_iframe_playlists_point_at_moofs_that_decode_alone(
    packaged: Packaged, tmp_path: Path
) -> None:
    dest = packaged.result.dest
    for variant in packaged.result.master.iframe_variants:
        name = variant.uri.split("/")[0]
        iframes = hls_parse.parse_media((dest / variant.uri).read_text())
        assert iframes.iframes_only
        init = (dest / name / "init.mp4").read_bytes()
        keyframes = 0
        for segment in hls_parse.parse_media((dest / name / "index.m3u8").read_text()).segments:
            probed = _ffprobe(
                _joined(dest / name, segment.uri, tmp_path / "s.mp4"), "-show_packets"
            )["packets"]
            keyframes += sum("K" in p["flags"] for p in probed)
        assert len(iframes.segments) == keyframes  # a fragment per keyframe: all of them
        for index, entry in enumerate(iframes.segments):
            assert entry.map is not None
            assert entry.byterange is not None
            length, offset = entry.byterange
            data = (dest / name / entry.uri).read_bytes()
            assert data[offset + 4 : offset + 8] == b"moof"
            alone = tmp_path / f"iframe{index}.mp4"
            alone.write_bytes(init + data[offset : offset + length])
            frames = subprocess.run(
                ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                 "stream=nb_read_frames", "-of", "csv=p=0", str(alone)],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            assert frames == "1", (name, index)


_NUMBER = re.compile(r"\$Number(%0(\d+)d)?\$")


def _number(number: int) -> Callable[[re.Match[str]], str]:
    def fill(match: re.Match[str]) -> str:
        return f"{number:0{match.group(2) or 1}d}"

    return fill


def _mpd_segments(text: str) -> dict[str, list[tuple[str, float]]]:
    """Each Representation's media segment URIs and durations from its SegmentTemplate +
    SegmentTimeline (an independent reading of the manifest, for comparing with HLS)."""
    root = ET.fromstring(text)
    found: dict[str, list[tuple[str, float]]] = {}
    for aset in root.iter(f"{DASH}AdaptationSet"):
        for rep in aset.iter(f"{DASH}Representation"):
            template = rep.find(f"{DASH}SegmentTemplate")
            if template is None:
                template = aset.find(f"{DASH}SegmentTemplate")
            assert template is not None
            timescale = int(template.get("timescale", "1"))
            number = int(template.get("startNumber", "1"))
            media = template.get("media", "").replace("$RepresentationID$", rep.get("id", ""))
            listed = found.setdefault(media.split("/")[0], [])
            timeline = template.find(f"{DASH}SegmentTimeline")
            assert timeline is not None
            for entry in timeline.iter(f"{DASH}S"):
                for _ in range(int(entry.get("r", "0")) + 1):
                    uri = _NUMBER.sub(_number(number), media)
                    listed.append((uri, int(entry.get("d", "0")) / timescale))
                    number += 1
    return found


def test_hls_and_dash_list_the_same_segments(packaged: Packaged) -> None:
    dest = packaged.result.dest
    dash = _mpd_segments((dest / "manifest.mpd").read_text())
    for name in _renditions(packaged):
        media = hls_parse.parse_media((dest / name / "index.m3u8").read_text())
        hls = [(f"{name}/{s.uri}", s.duration) for s in media.segments]
        listed = dash[name]
        assert [uri for uri, _ in listed] == [uri for uri, _ in hls]
        assert [d for _, d in listed] == pytest.approx([d for _, d in hls], abs=0.001)


def test_subtitles_stay_webvtt_renditions(cmaf_ladder: Packaged) -> None:
    dest = cmaf_ladder.result.dest
    (subs,) = [r for r in cmaf_ladder.result.master.renditions if r.type == "SUBTITLES"]
    first = (dest / subs.uri).parent / "seg_00000.vtt"
    text = first.read_text()
    assert text.startswith("WEBVTT")
    assert "X-TIMESTAMP-MAP=MPEGTS:0," in text  # fMP4 decode time starts at 0
    assert "first line" in text


async def test_cmaf_refuses_encryption_and_publishes_nothing(
    media: Media, tmp_path: Path, redis: aioredis.Redis
) -> None:
    dest = tmp_path / "vod" / "enc"
    keys = ContentKeyStore(redis, KekRing.generate("k1"))
    encryption = AssetEncryption("enc", 6, keys, "https://keys.example", "test")
    with pytest.raises(EncodeFailed, match="CMAF asset cannot be encrypted"):
        await remux_vod(
            str(media.long_clip), dest, encryption=encryption, package_format=PackageFormat.CMAF
        )
    assert not dest.exists()
    assert await keys.list_keys(scope_for_asset("enc")) == []  # refused before any key


async def test_truncated_source_fails_and_publishes_nothing(media: Media, tmp_path: Path) -> None:
    dest = tmp_path / "vod" / "cut"
    with pytest.raises(CorruptSource):
        await package_vod(
            str(media.truncated), dest, conformance_profile(), package_format=PackageFormat.CMAF
        )
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def _source(path: Path, video_seconds: float, audio_seconds: float, gop: int) -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s=160x90:r=30:d={video_seconds}"),
        *("-f", "lavfi", "-i", f"sine=sample_rate=48000:d={audio_seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-c:a", "aac"),
        str(path),
    )
    return path


async def test_audio_outlasting_the_video_is_folded_into_its_last_segment(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path / "long_audio.mp4", 12, 12.4, 60)
    result = await remux_vod(str(source), tmp_path / "vod" / "a", package_format=PackageFormat.CMAF)
    audio = result.dest / "audio-1"
    listed = hls_parse.parse_media((audio / "index.m3u8").read_text()).segments
    assert [s.uri for s in listed] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert not (audio / "seg_00002.m4s").exists()
    tracks = fmp4.read_init((audio / "init.mp4").read_bytes())
    last = fmp4.read_segment((audio / "seg_00001.m4s").read_bytes(), tracks)
    assert last.duration / tracks[0].timescale == pytest.approx(6.4, abs=0.05)
    # ffprobe reads every frame of the folded segment, the moved fragments included.
    packets = _ffprobe(_joined(audio, "seg_00001.m4s", tmp_path / "a.mp4"), "-show_packets")
    assert len(packets["packets"]) == sum(len(f.samples) for f in last.fragments)
    assert len(last.fragments) >= 2


async def test_keyframes_off_the_segment_grid_fail_clearly_and_publish_nothing(
    tmp_path: Path,
) -> None:
    # 2.5 s GOPs: the video is cut at 7.5 s and 12.5 s, the audio at 6 s and 12 s.
    source = _source(tmp_path / "odd_gops.mp4", 13, 13, 75)
    dest = tmp_path / "vod" / "odd"
    with pytest.raises(EncodeFailed, match="do not line up"):
        await remux_vod(str(source), dest, package_format=PackageFormat.CMAF)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


async def test_cancel_removes_the_temp_output(media: Media, tmp_path: Path) -> None:
    dest = tmp_path / "vod" / "endless"
    remuxing = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.phase == "remux":
            remuxing.set()

    task = asyncio.create_task(
        remux_vod(
            str(media.endless), dest, package_format=PackageFormat.CMAF,
            on_progress=on_progress,
        )
    )  # fmt: skip
    await remuxing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == []


# ---------------------------------------------------------------- the format as a job field


async def _run_worker(rig: Rig, job_name: str) -> list[pb.JobEvent]:
    stop = asyncio.Event()
    worker = Worker(
        queue=rig.queue,
        packager=vod_packager(origin_root=rig.origin, work_dir=None, sources=rig.sources),
        consumer="w-cmaf",
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=100,
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        return [
            e
            async for e in rig.stub.WatchJob(pb.WatchJobRequest(name=job_name), metadata=rig.admin)
        ]
    finally:
        stop.set()
        await task


async def test_cmaf_job_round_trips_and_the_worker_packages_it(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(
            source=str(media.clip), asset="film", profile="low", format=pb.PACKAGE_FORMAT_CMAF
        ),
        metadata=rig.admin,
    )
    assert job.format == pb.PACKAGE_FORMAT_CMAF
    stored = await rig.queue.get(job.name.removeprefix("jobs/"))
    assert stored.format is PackageFormat.CMAF
    events = await _run_worker(rig, job.name)
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1].reason
    got = await rig.stub.GetJob(pb.GetJobRequest(name=job.name), metadata=rig.admin)
    assert got.format == pb.PACKAGE_FORMAT_CMAF
    listed = await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)
    assert [j.format for j in listed.jobs] == [pb.PACKAGE_FORMAT_CMAF]
    asset = rig.origin / "vod" / "film"
    assert (asset / "manifest.mpd").is_file()
    assert (asset / "audio-1" / "init.mp4").is_file()
    assert not list(asset.rglob("*.ts"))


async def test_unspecified_format_is_ts(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="old"), metadata=rig.admin
    )
    assert job.format == pb.PACKAGE_FORMAT_TS
    assert (await rig.queue.get(job.name.removeprefix("jobs/"))).format is PackageFormat.TS


async def test_a_job_stored_before_formats_reads_as_ts(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="older"), metadata=rig.admin
    )
    job_id = job.name.removeprefix("jobs/")
    stored = await rig.redis.hgetall(job_key(job_id))
    assert stored[b"format"] == b"TS"
    raw = {cast(bytes, k): cast(bytes, v) for k, v in stored.items() if k != b"format"}
    assert job_from_hash(raw).format is PackageFormat.TS
    assert job_from_hash({**raw, b"format": b"CMAF"}).format is PackageFormat.CMAF


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(
            pb.SubmitJobRequest(source="/m/a.mp4", asset="a", format=7),  # type: ignore[arg-type]
            id="unknown-format",
        ),
        pytest.param(
            pb.SubmitJobRequest(
                source="/m/a.mp4",
                asset="a",
                format=pb.PACKAGE_FORMAT_CMAF,
                encryption=pb.Job.Encryption(enabled=True),
            ),
            id="cmaf-encrypted",
        ),
    ],
)
async def test_bad_format_is_invalid_argument_and_queues_nothing(
    rig: Rig, request_: pb.SubmitJobRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(request_, metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "format" in error_details(info.value).fields
    listed = await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)
    assert list(listed.jobs) == []


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_cli_submits_the_format(rig: Rig, media: Media) -> None:
    env = {"TRANSCODE_TARGET": f"127.0.0.1:{rig.port}", "HEADEND_API_KEY": rig.admin[0][1][7:]}
    out = io.StringIO()
    args = _parse("transcode", "submit", str(media.clip), "--asset", "c", "--job-id", "cm1",
                  "--format", "cmaf")  # fmt: skip
    assert await cli.submit_job(args, env, out) == 0
    assert (await rig.queue.get("cm1")).format is PackageFormat.CMAF
    listing = io.StringIO()
    assert await cli.list_jobs(_parse("transcode", "jobs", "-o", "json"), env, listing) == 0
    assert [j["format"] for j in json.loads(listing.getvalue())] == ["cmaf"]
    with pytest.raises(SystemExit):
        _parse("transcode", "submit", str(media.clip), "--asset", "c", "--format", "webm")


def test_job_defaults_to_ts() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert Job("j", "/m/a.mp4", "a", "low", JobState.QUEUED, now, now).format is PackageFormat.TS


# ---------------------------------------------------------------- the origin


async def test_origin_serves_cmaf_and_the_manifest(
    cmaf_remux: Packaged, redis: aioredis.Redis
) -> None:
    root = cmaf_remux.result.dest.parent.parent
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    base = f"http://127.0.0.1:{port}/vod/remux"
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            for path in ("src/init.mp4", "src/seg_00000.m4s", "audio-1/seg_00001.m4s"):
                async with http.get(f"{base}/{path}") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "video/mp4"
                    assert "immutable" in response.headers["Cache-Control"]
                    assert await response.read() == (cmaf_remux.result.dest / path).read_bytes()
            headers = {"Accept-Encoding": "gzip"}
            async with http.get(f"{base}/manifest.mpd", headers=headers) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("application/dash+xml")
                assert response.headers["Cache-Control"] == "public, max-age=86400"
                body = gzip.decompress(await response.read())
                assert body == (cmaf_remux.result.dest / "manifest.mpd").read_bytes()
            async with http.get(f"{base}/src/seg_00000.m4s", headers={"Range": "bytes=0-7"}) as r:
                assert r.status == 206
                assert (await r.read())[4:8] == b"styp"
    finally:
        await runner.cleanup()
