"""HEVC rungs on real libx265: a mixed tiny ladder packaged as CMAF decodes, states CODECS
that match the bitstream (ffprobe's profile and level, the SPS's tier and flags), cuts its
segments on the H.264 rungs' keyframes to the frame, lists the same segments in HLS and
DASH (an AdaptationSet per codec); HEVC in MPEG-TS and unknown profiles are refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from headend.rpc import error_details
from protos import transcode_pb2 as pb
from tests.support.media import Media, Packaged, tiny_profile
from tests.support.transcode_rig import Rig
from transcode import ffmpeg_cmd, fmp4, hls_parse
from transcode.errors import EncodeFailed, InvalidProfile, InvalidRequest
from transcode.jobs import PackageFormat
from transcode.ladder import Profile, Rung, hevc_level, plan_ladder
from transcode.measure_cmaf import measure_renditions
from transcode.package import package_vod
from transcode.probe import SourceInfo, VideoInfo
from transcode.profiles import hevc_rung, resolve_profile
from transcode.runner import run_ffmpeg
from transcode.settings import QueueSettings
from transcode.worker import Worker, vod_packager

DASH = "{urn:mpeg:dash:schema:mpd:2011}"
PAIRS = (("90p", "90p-hevc"), ("180p", "180p-hevc"))


def _mixed_profile() -> Profile:
    """The tiny H.264 ladder plus an HEVC rung per size (2 s segments of 1 s GOPs)."""
    base = tiny_profile()
    return replace(base, name="tiny-hevc", rungs=(*base.rungs, *map(hevc_rung, base.rungs)))


@pytest.fixture(scope="module")
def hevc_ladder(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """The 5 s clip through the mixed ladder as CMAF (x265 ultrafast: a few seconds)."""
    dest = tmp_path_factory.mktemp("hevc-origin") / "vod" / "mixed"
    profile = _mixed_profile()
    result = asyncio.run(
        package_vod(str(media.clip), dest, profile, package_format=PackageFormat.CMAF)
    )
    return Packaged("ladder", result, profile)


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _ffprobe(path: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        _run("ffprobe", "-v", "error", "-of", "json", *args, str(path))
    )
    return result


def _joined(dest: Path, name: str, out: Path) -> Path:
    """A rendition's init segment and every media segment, in order: one playable file."""
    media = hls_parse.parse_media((dest / name / "index.m3u8").read_text())
    parts = [(dest / name / "init.mp4").read_bytes()]
    parts += [(dest / name / s.uri).read_bytes() for s in media.segments]
    out.write_bytes(b"".join(parts))
    return out


def _variant(packaged: Packaged, name: str) -> Any:
    return next(v for v in packaged.result.master.variants if v.uri == f"{name}/index.m3u8")


def _sps_ptl(path: Path, out: Path) -> bytes:
    """The profile_tier_level bytes (12) of the first SPS in the rendition's bitstream,
    emulation prevention removed: what a decoder reads, independently of the hvcC."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c:v", "copy", "-bsf:v",
         "hevc_mp4toannexb", "-f", "hevc", str(out)],
        check=True,
    )  # fmt: skip
    data = out.read_bytes()
    for chunk in data.split(b"\x00\x00\x01")[1:]:
        if (chunk[0] >> 1) & 0x3F == 33:  # SPS
            clean = chunk.replace(b"\x00\x00\x03", b"\x00\x00")
            # 2 bytes NAL header, 1 byte VPS id / max sub-layers / nesting flag.
            return clean[3:15]
    raise AssertionError("no SPS in the bitstream")


# ------------------------------------------------------------------------- the outputs


@pytest.mark.parametrize("name", ["90p-hevc", "180p-hevc"])
def test_an_hevc_rung_decodes_whole(hevc_ladder: Packaged, tmp_path: Path, name: str) -> None:
    joined = _joined(hevc_ladder.result.dest, name, tmp_path / "joined.mp4")
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(joined), "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stderr == ""
    (stream,) = _ffprobe(joined, "-count_frames", "-show_streams")["streams"]
    assert stream["codec_name"] == "hevc"
    assert stream["codec_tag_string"] == "hvc1"
    rate = _variant(hevc_ladder, name).frame_rate
    assert int(stream["nb_read_frames"]) == round(5 * rate)  # the clip's 5 s, every frame


@pytest.mark.parametrize("name", ["90p-hevc", "180p-hevc"])
def test_hevc_codecs_match_ffprobe_and_the_sps(
    hevc_ladder: Packaged, tmp_path: Path, name: str
) -> None:
    dest = hevc_ladder.result.dest
    variant = _variant(hevc_ladder, name)
    video, audio = variant.codecs.split(",")
    assert audio == "mp4a.40.2"
    (track,) = fmp4.read_init((dest / name / "init.mp4").read_bytes())
    assert video == track.codec
    entry, profile, compat, tier_level, *constraints = video.split(".")
    joined = _joined(dest, name, tmp_path / "joined.mp4")
    (probed,) = _ffprobe(joined, "-show_streams")["streams"]
    assert entry == "hvc1"
    assert probed["profile"] == "Main"
    assert profile == "1"
    assert tier_level == f"L{probed['level']}"
    planned = next(
        r for r in plan_ladder(_mixed_profile(), hevc_ladder.result.source) if r.name == name
    )
    assert probed["level"] == round(30 * float(planned.hevc_level))
    ptl = _sps_ptl(joined, tmp_path / "raw.hevc")
    assert ptl[0] >> 6 == 0  # general_profile_space: no letter
    assert not ptl[0] & 0x20  # general_tier_flag: Main tier ("L")
    assert ptl[0] & 0x1F == 1
    flags = int.from_bytes(ptl[1:5], "big")
    assert int(compat, 16) == int(f"{flags:032b}"[::-1], 2)
    assert constraints == [f"{b:02X}" for b in ptl[5:11].rstrip(b"\x00")]
    assert ptl[11] == probed["level"]
    iframe = next(v for v in hevc_ladder.result.master.iframe_variants if v.uri.startswith(name))
    assert iframe.codecs == video


def test_h264_variants_come_first_in_the_master(hevc_ladder: Packaged) -> None:
    codecs = [v.codecs.split(".")[0] for v in hevc_ladder.result.master.variants]
    assert codecs == ["avc1", "avc1", "hvc1", "hvc1"]
    iframes = [v.uri for v in hevc_ladder.result.master.iframe_variants]
    assert iframes == [f"{n}/iframes.m3u8" for n in ("90p", "180p", "90p-hevc", "180p-hevc")]


def _keyframe_times(path: Path) -> list[float]:
    packets = _ffprobe(path, "-select_streams", "v", "-show_entries", "packet=pts_time,flags")
    return sorted(float(p["pts_time"]) for p in packets["packets"] if "K" in p["flags"])


@pytest.mark.parametrize(("h264", "hevc"), PAIRS)
def test_hevc_keyframes_and_cuts_coincide_with_h264(
    hevc_ladder: Packaged, tmp_path: Path, h264: str, hevc: str
) -> None:
    dest = hevc_ladder.result.dest
    frame = 1 / _variant(hevc_ladder, hevc).frame_rate
    times = [_keyframe_times(_joined(dest, n, tmp_path / f"{n}.mp4")) for n in (h264, hevc)]
    assert len(times[0]) == 5  # 1 s GOPs of the 5 s clip
    assert times[1] == pytest.approx(times[0], abs=frame / 2)
    lists = [hls_parse.parse_media((dest / n / "index.m3u8").read_text()) for n in (h264, hevc)]
    assert [s.uri for s in lists[1].segments] == [s.uri for s in lists[0].segments]
    assert [s.duration for s in lists[1].segments] == pytest.approx(
        [s.duration for s in lists[0].segments], abs=frame / 2
    )
    # Each segment starts at the same media time (tfdt) in both, and with a sync sample.
    starts = []
    for name, media in zip((h264, hevc), lists, strict=True):
        tracks = fmp4.read_init((dest / name / "init.mp4").read_bytes())
        found = []
        for segment in media.segments:
            facts = fmp4.read_segment((dest / name / segment.uri).read_bytes(), tracks)
            assert facts.fragments[0].starts_with_sync
            found.append(facts.start / tracks[0].timescale)
        starts.append(found)
    assert starts[1] == pytest.approx(starts[0], abs=frame / 2)


def test_hevc_iframe_playlists_point_at_moofs_that_decode_alone(
    hevc_ladder: Packaged, tmp_path: Path
) -> None:
    dest = hevc_ladder.result.dest
    for name in ("90p-hevc", "180p-hevc"):
        iframes = hls_parse.parse_media((dest / name / "iframes.m3u8").read_text())
        assert iframes.iframes_only
        assert len(iframes.segments) == 5
        init = (dest / name / "init.mp4").read_bytes()
        for index, entry in enumerate(iframes.segments):
            assert entry.byterange is not None
            length, offset = entry.byterange
            data = (dest / name / entry.uri).read_bytes()
            alone = tmp_path / f"{name}-{index}.mp4"
            alone.write_bytes(init + data[offset : offset + length])
            (stream,) = _ffprobe(alone, "-count_frames", "-show_streams")["streams"]
            assert stream["nb_read_frames"] == "1", (name, index)


def test_dash_puts_each_codec_in_its_own_adaptation_set(hevc_ladder: Packaged) -> None:
    dest = hevc_ladder.result.dest
    root = ET.fromstring((dest / "manifest.mpd").read_text())
    sets = [
        (
            a.get("id"),
            a.get("contentType"),
            [r.get("codecs", "")[:4] for r in a.iter(f"{DASH}Representation")],
        )
        for a in root.iter(f"{DASH}AdaptationSet")
    ]
    assert sets == [
        ("0", "video", ["avc1", "avc1"]),
        ("1", "video", ["hvc1", "hvc1"]),
        ("2", "audio", ["mp4a"]),
    ]


def _mpd_segments(text: str) -> dict[str, list[tuple[int, float]]]:
    """Each Representation's segment numbers and durations (SegmentTemplate + timeline)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for aset in ET.fromstring(text).iter(f"{DASH}AdaptationSet"):
        template = aset.find(f"{DASH}SegmentTemplate")
        assert template is not None
        scale = int(template.get("timescale", "1"))
        for rep in aset.iter(f"{DASH}Representation"):
            number = int(template.get("startNumber", "1"))
            listed = found.setdefault(rep.get("id", ""), [])
            timeline = template.find(f"{DASH}SegmentTimeline")
            assert timeline is not None
            for s in timeline.iter(f"{DASH}S"):
                for _ in range(int(s.get("r", "0")) + 1):
                    listed.append((number, int(s.get("d", "0")) / scale))
                    number += 1
    return found


def test_hls_and_dash_list_the_same_segments(hevc_ladder: Packaged) -> None:
    dest = hevc_ladder.result.dest
    dash = _mpd_segments((dest / "manifest.mpd").read_text())
    assert set(dash) == {"90p", "180p", "90p-hevc", "180p-hevc", "audio-1"}
    for name, listed in dash.items():
        media = hls_parse.parse_media((dest / name / "index.m3u8").read_text())
        assert [f"seg_{n:05d}.m4s" for n, _ in listed] == [s.uri for s in media.segments]
        assert [d for _, d in listed] == pytest.approx(
            [s.duration for s in media.segments], abs=1e-3
        )


def _hvcc(first: int, compat: int, constraints: bytes, level: int) -> bytes:
    """An hvcC payload's 13-byte head (the rest is not read for CODECS)."""
    return bytes([1, first]) + compat.to_bytes(4, "big") + constraints + bytes([level])


@pytest.mark.parametrize(
    ("entry", "hvcc", "codecs"),
    [
        pytest.param(b"hvc1", _hvcc(0x01, 0x6000_0000, bytes.fromhex("900000000000"), 93),
                     "hvc1.1.6.L93.90", id="main"),
        pytest.param(b"hev1", _hvcc(0x22, 0x2000_0000, bytes.fromhex("b00000000000"), 153),
                     "hev1.2.4.H153.B0", id="main10-high-tier"),
        pytest.param(b"hvc1", _hvcc(0x44, 0x0800_0000, bytes.fromhex("123400560000"), 120),
                     "hvc1.A4.10.L120.12.34.00.56", id="space-a-inner-zero-kept"),
        pytest.param(b"hvc1", _hvcc(0x01, 0x6000_0000, bytes(6), 93), "hvc1.1.6.L93",
                     id="no-constraints"),
    ],
)  # fmt: skip
def test_hevc_codecs_follow_annex_e(entry: bytes, hvcc: bytes, codecs: str) -> None:
    assert fmp4.hevc_codec(entry, hvcc) == codecs


def test_a_short_hvcc_is_malformed() -> None:
    with pytest.raises(fmp4.MalformedMp4, match="13-byte"):
        fmp4.hevc_codec(b"hvc1", bytes(12))


# ------------------------------------------------------------------------- ladder rules


def _source(width: int, height: int, fps: float) -> SourceInfo:
    video = VideoInfo("h264", width, height, fps, 1.0, "High", 40, "yuv420p", None)
    return SourceInfo(
        uri="in.mp4", format_name="mov,mp4", duration_seconds=60.0, video=video, audio=None
    )


def test_the_mixed_profile_adds_hevc_at_sixty_percent_for_the_top_sizes() -> None:
    plan = plan_ladder(resolve_profile("default-hevc"), _source(1920, 1080, 25.0))
    h264 = {r.name: r for r in plan if r.codec == "h264"}
    hevc = [r for r in plan if r.codec == "hevc"]
    assert [r.codec for r in plan] == ["h264"] * 6 + ["hevc"] * 3
    assert [r.name for r in hevc] == ["540p-hevc", "720p-hevc", "1080p-hevc"]
    assert [r.hevc_level for r in hevc] == ["3", "3.1", "4"]
    for rung in hevc:
        twin = h264[rung.name.removesuffix("-hevc")]
        assert (rung.width, rung.height, rung.gop_frames) == (
            twin.width,
            twin.height,
            twin.gop_frames,
        )
        assert rung.video_kbps == round(0.6 * twin.video_kbps)
        assert rung.hevc_profile == "main"


def test_the_hevc_profile_fits_a_small_source_at_its_own_size() -> None:
    (rung,) = plan_ladder(resolve_profile("hevc"), _source(320, 180, 30.0))
    assert (rung.name, rung.codec, rung.width, rung.height) == ("234p-hevc", "hevc", 320, 180)
    assert rung.hevc_level == "2"


@pytest.mark.parametrize(
    ("size", "fps", "kbps", "level"),
    [
        pytest.param((160, 90), 15.0, 80, "1", id="tiny"),
        pytest.param((1280, 720), 30.0, 2000, "3.1", id="720p30"),
        pytest.param((1280, 720), 60.0, 2000, "4", id="720p60-sample-rate"),
        pytest.param((1920, 1080), 30.0, 13000, "4.1", id="1080p-bitrate"),
        pytest.param((3840, 2160), 60.0, 20000, "5.1", id="2160p60"),
        pytest.param((8192, 64), 30.0, 500, "5", id="wide-picture-side"),
    ],
)
def test_hevc_level_is_the_lowest_that_holds_the_rung(
    size: tuple[int, int], fps: float, kbps: int, level: str
) -> None:
    assert hevc_level(*size, fps, kbps, kbps) == level


def test_a_rung_past_every_hevc_level_is_refused() -> None:
    with pytest.raises(InvalidProfile, match=r"level 6\.2") as info:
        hevc_level(7680, 4320, 120.0, 300_000, 300_000)
    assert info.value.field == "rungs"


@pytest.mark.parametrize(
    ("rung", "passthrough", "field"),
    [
        pytest.param(Rung("a", 320, 180, 300, codec="vp9"), False, "rungs.codec", id="codec"),  # type: ignore[arg-type]
        pytest.param(
            Rung("a", 320, 180, 300, codec="hevc", hevc_profile="main12"),  # type: ignore[arg-type]
            False,
            "rungs.hevc_profile",
            id="hevc-profile",
        ),
        pytest.param(
            Rung("src", 320, 180, 300, codec="hevc"), True, "rungs.codec", id="passthrough"
        ),
    ],
)
def test_bad_hevc_rungs_are_refused(rung: Rung, passthrough: bool, field: str) -> None:
    with pytest.raises(InvalidProfile) as info:
        Profile(name="p", rungs=(rung,), passthrough=passthrough)
    assert info.value.field == field


def test_the_hevc_encode_carries_the_gop_rules_and_the_hvc1_tag(tmp_path: Path) -> None:
    profile = _mixed_profile()
    plan = [r for r in plan_ladder(profile, _source(320, 180, 30.0)) if r.codec == "hevc"]
    args = ffmpeg_cmd.ladder_command("in.mp4", plan[1:], profile, tmp_path, cmaf=True)
    joined = " ".join(args)
    assert "-c:v libx265" in joined
    assert "-tag:v hvc1" in joined
    assert "-forced-idr 1" in joined
    assert "-force_key_frames expr:gte(t,n_forced*1)" in joined
    assert "keyint=30:min-keyint=30:scenecut=0:open-gop=0:level-idc=2:high-tier=0" in joined
    assert "-profile:v main " in joined
    assert "format=yuv420p" in joined


def test_a_main10_rung_is_encoded_in_ten_bits(tmp_path: Path) -> None:
    profile = replace(
        _mixed_profile(), rungs=(Rung("a", 320, 180, 300, codec="hevc", hevc_profile="main10"),)
    )
    args = " ".join(
        ffmpeg_cmd.ladder_command(
            "in.mp4", plan_ladder(profile, _source(320, 180, 30.0)), profile, tmp_path, cmaf=True
        )
    )
    assert "format=yuv420p10le" in args
    assert "-profile:v main10" in args


# ------------------------------------------------------------------------- refusals


async def test_hevc_in_ts_is_refused_before_anything_runs(media: Media, tmp_path: Path) -> None:
    dest = tmp_path / "vod" / "ts"
    with pytest.raises(InvalidRequest) as info:
        await package_vod(str(media.clip), dest, _mixed_profile(), package_format=PackageFormat.TS)
    assert info.value.field == "format"
    assert "CMAF" in info.value.reason
    assert not dest.exists()
    assert not (tmp_path / "vod").exists() or list((tmp_path / "vod").iterdir()) == []


async def test_video_rungs_off_each_others_cuts_are_refused(media: Media, tmp_path: Path) -> None:
    two, one = tiny_profile(), tiny_profile(segment_seconds=1.0)
    small, large = plan_ladder(two, _source(320, 180, 30.0))
    for profile, rung in ((two, small), (one, large)):
        (tmp_path / rung.name).mkdir()
        args = ffmpeg_cmd.ladder_command(
            str(media.clip), [rung], profile, tmp_path, video_only=True, cmaf=True
        )
        await run_ffmpeg(args)
    with pytest.raises(
        EncodeFailed, match="180p's segments do not line up with 90p's to the frame"
    ):
        await measure_renditions(tmp_path, ["90p", "180p"], 2)


def test_an_unknown_profile_names_the_hevc_ones() -> None:
    with pytest.raises(InvalidRequest, match="default, low, passthrough, hevc, default-hevc"):
        resolve_profile("h265")


@pytest.mark.parametrize(
    ("profile", "package_format", "field"),
    [
        pytest.param("hevc", pb.PACKAGE_FORMAT_TS, "format", id="hevc-ts"),
        pytest.param("default-hevc", pb.PACKAGE_FORMAT_TS, "format", id="mixed-ts"),
        pytest.param("hevc", pb.PACKAGE_FORMAT_UNSPECIFIED, "format", id="hevc-unspecified"),
        pytest.param("nope", pb.PACKAGE_FORMAT_CMAF, "profile", id="unknown-profile"),
        pytest.param("HEVC", pb.PACKAGE_FORMAT_CMAF, "profile", id="upper-case"),
        pytest.param("default+hevc", pb.PACKAGE_FORMAT_CMAF, "profile", id="plus"),
    ],
)
async def test_bad_profile_or_format_is_invalid_argument_and_queues_nothing(
    rig: Rig, media: Media, profile: str, package_format: Any, field: str
) -> None:
    request = pb.SubmitJobRequest(
        source=str(media.clip), asset="a", profile=profile, format=package_format
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.SubmitJob(request, metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(info.value).fields
    listed = await rig.stub.ListJobs(pb.ListJobsRequest(), metadata=rig.admin)
    assert list(listed.jobs) == []


async def test_an_hevc_cmaf_job_is_packaged_by_the_worker(rig: Rig, media: Media) -> None:
    job = await rig.stub.SubmitJob(
        pb.SubmitJobRequest(
            source=str(media.clip), asset="film", profile="hevc", format=pb.PACKAGE_FORMAT_CMAF
        ),
        metadata=rig.admin,
    )
    stop = asyncio.Event()
    worker = Worker(
        queue=rig.queue,
        packager=vod_packager(origin_root=rig.origin, work_dir=None, sources=rig.sources),
        consumer="w-hevc",
        settings=QueueSettings(),
        heartbeat_seconds=0.2,
        block_ms=100,
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        events = [
            e
            async for e in rig.stub.WatchJob(pb.WatchJobRequest(name=job.name), metadata=rig.admin)
        ]
    finally:
        stop.set()
        await task
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1].reason
    master = hls_parse.parse_master((rig.origin / "vod" / "film" / "master.m3u8").read_text())
    assert [v.uri for v in master.variants] == ["234p-hevc/index.m3u8"]
    assert master.variants[0].codecs.startswith("hvc1.1.6.L60.")


@pytest.mark.parametrize("profile", ["hevc", "default-hevc"])
async def test_a_live_channel_on_an_hevc_profile_is_refused(rig: Rig, profile: str) -> None:
    channel = pb.Channel(name="channels/a.ch", source="udp://239.1.1.1:5000", profile=profile)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rig.stub.StartChannel(pb.StartChannelRequest(channel=channel), metadata=rig.admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile" in error_details(info.value).fields
    assert "VOD (CMAF) profile" in (info.value.details() or "")
    listed = await rig.stub.ListChannels(pb.ListChannelsRequest(), metadata=rig.admin)
    assert list(listed.channels) == []
