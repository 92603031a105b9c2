"""VOD packaging: source -> ladder (or stream copy) -> HLS in a temp dir -> measure ->
(encrypt) -> publish.

Everything, our playlists included, is written into a staging directory; a
failure or a cancel removes it and leaves the destination as it was. Publishing
swaps it in atomically (:mod:`transcode.staging`). An encrypted asset is
encrypted there too (:mod:`transcode.encrypt`), so no clear copy is ever published.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from transcode import ffmpeg_cmd
from transcode.encrypt import AssetEncryption, encrypt_ladder
from transcode.errors import (
    CorruptSource,
    DiskFull,
    EncodeFailed,
    SourceNotFound,
    TranscodeError,
)
from transcode.hls import (
    IFrameVariant,
    MasterPlaylist,
    MediaPlaylist,
    Variant,
    render_master,
    render_media,
)
from transcode.ladder import PlannedRung, ProcessMode, Profile, plan_ladder
from transcode.measure import (
    RungMeasurement,
    SegmentScan,
    aac_codec,
    measure_audio,
    measure_rung,
    scan_finished,
)
from transcode.probe import (
    InputReport,
    SourceInfo,
    is_local_missing,
    probe,
    require_remuxable,
    require_transcodable,
)
from transcode.progress import (
    ENCODE_SHARE,
    ENCRYPT_AT,
    MEASURE_SHARE,
    ProgressCallback,
    Reporter,
)
from transcode.runner import finish, run_all, run_ffmpeg
from transcode.staging import discard, publish_tree, staging_dir
from transcode.subtitles import VodSubtitles
from transcode.tracks import (
    AUDIO_GROUP,
    SUBTITLES_GROUP,
    SubtitleFile,
    Track,
    audio_of,
    plan_tracks,
    renditions,
    subtitles_of,
)

MASTER_NAME = "master.m3u8"
MEDIA_NAME = "index.m3u8"
IFRAMES_NAME = "iframes.m3u8"
# A shorter output than this (seconds, or fraction of the source) means the source
# ended early: a truncated file whose header still claims the full length.
_TRUNCATION_SLACK_SECONDS = 1.0
_TRUNCATION_SLACK_FRACTION = 0.02
# Free space below this after an unfinished FFmpeg output means the disk filled up.
_NEARLY_FULL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RungResult:
    """One published rendition."""

    name: str
    variant: Variant
    iframe_variant: IFrameVariant
    segment_count: int
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class PackageResult:
    """A published asset: where it is, what it holds, what was measured."""

    dest: Path
    master_path: Path
    source: SourceInfo
    rungs: tuple[RungResult, ...]
    duration_seconds: float
    master: MasterPlaylist


# (rung name, measurement, resolution, frame rate) for one written rendition.
_RungOutput = tuple[str, RungMeasurement, tuple[int, int], float]


class _Produced(NamedTuple):
    """What FFmpeg wrote: the source's facts, the rungs, and the audio renditions."""

    info: SourceInfo
    rungs: list[_RungOutput]
    audio: list[tuple[Track, RungMeasurement]]


async def package_vod(
    source: str,
    dest: Path,
    profile: Profile,
    *,
    work_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
    process_mode: ProcessMode = ProcessMode.SINGLE,
    ffmpeg_bin: str = "ffmpeg",
    ffprobe_bin: str = "ffprobe",
    input_options: Mapping[str, str] | None = None,
    encryption: AssetEncryption | None = None,
    subtitle_files: Sequence[SubtitleFile] = (),
    default_language: str = "",
) -> PackageResult:
    """Encode ``source`` into the profile's ladder and publish HLS atomically at ``dest``.

    The temp tree is written under ``work_dir`` (default: ``dest``'s parent) as
    ``.{dest.name}.tmp-*``; from elsewhere it is moved next to ``dest`` (copied only
    across file systems) before the swap. Raises a ``TranscodeError`` leaf (nothing
    published) when the source is missing, corrupt, truncated or unsupported, FFmpeg
    fails, or the disk fills up. Cancelling the awaiting task kills FFmpeg's process
    group and removes the temp output. ``input_options`` go before the source on every
    FFmpeg and ffprobe command (e.g. the source guard's protocol whitelist).
    With ``encryption`` every segment is AES-128 encrypted before publishing.

    Every audio track of a source with several (up to the profile's ``max_audio_tracks``)
    and every text subtitle track, then each of ``subtitle_files``, become renditions
    (``transcode.tracks``); ``default_language`` picks the default audio track.
    """
    report = Reporter(on_progress)
    report.phase("probe", 0.0)
    info = await probe(source, ffprobe=ffprobe_bin, input_options=input_options)
    require_transcodable(info)
    plan = plan_ladder(profile, info)
    tracks = plan_tracks(
        info,
        max_audio=profile.max_audio_tracks,
        subtitle_files=subtitle_files,
        default_language=default_language,
    )
    audio = audio_of(tracks)
    report.duration = info.duration_seconds

    async def encode(temp: Path) -> _Produced:
        dirs = [temp / rung.name for rung in plan]

        def command(rungs: Sequence[PlannedRung], tracks: Sequence[Track]) -> list[str]:
            return ffmpeg_cmd.ladder_command(
                source, rungs, profile, temp, ffmpeg_bin=ffmpeg_bin, input_options=input_options,
                audio=tracks, video_only=bool(audio),
            )  # fmt: skip

        if process_mode is ProcessMode.SINGLE:
            run = run_ffmpeg(command(plan, audio), on_progress=report.ffmpeg("encode"))
        else:
            # One process per rung, and one for the audio renditions.
            commands = [command([rung], ()) for rung in plan]
            if audio:
                commands.append(command((), audio))
            run = run_all(commands, on_progress=report.ffmpeg_many("encode", len(commands)))
        scans = await _run_scanning(run, dirs, report.tick)
        report.phase("measure", ENCODE_SHARE)
        measured = await asyncio.gather(
            *(
                asyncio.to_thread(measure_rung, folder, ffmpeg_cmd.FFMPEG_PLAYLIST, found)
                for folder, found in zip(dirs, scans, strict=True)
            ),
            *(
                asyncio.to_thread(measure_audio, temp / t.name, ffmpeg_cmd.FFMPEG_PLAYLIST)
                for t in audio
            ),
        )
        rungs = [
            (rung.name, m, (rung.width, rung.height), rung.frame_rate)
            for rung, m in zip(plan, measured[: len(plan)], strict=True)
        ]
        return _Produced(info, rungs, list(zip(audio, measured[len(plan) :], strict=True)))

    subtitles = VodSubtitles(source, subtitles_of(tracks), input_options, ffmpeg_bin)
    names = [*(r.name for r in plan), *(t.name for t in tracks)]
    return await _package(dest, names, encode, report, work_dir, encryption, subtitles)


async def remux_vod(
    source: str,
    dest: Path,
    *,
    rung_name: str = "src",
    segment_seconds: float = 6.0,
    work_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
    ffmpeg_bin: str = "ffmpeg",
    input_options: Mapping[str, str] | None = None,
    encryption: AssetEncryption | None = None,
) -> PackageResult:
    """Stream-copy an H.264/AAC mezzanine into one-rung HLS with our master and I-frame lists.

    Same publishing, failure, cancel and encryption rules as ``package_vod``; segments are
    cut at the source's own keyframes, so its GOP structure decides the segment durations.
    """
    report = Reporter(on_progress)
    report.phase("probe", 0.0)
    if await asyncio.to_thread(is_local_missing, source):
        raise SourceNotFound(f"source {source} does not exist", details={"source": source})

    def accept(info: SourceInfo) -> None:
        # Runs before FFmpeg copies a packet: raising here kills it.
        require_remuxable(info)
        report.duration = info.duration_seconds

    async def remux(temp: Path) -> _Produced:
        folder = temp / rung_name
        args = ffmpeg_cmd.remux_command(
            source,
            rung_name,
            segment_seconds,
            temp,
            ffmpeg_bin=ffmpeg_bin,
            input_options=input_options,
        )
        # No ffprobe: at hundreds of times realtime one more process start is a visible
        # share of a remux, so the source's facts come from FFmpeg's own input report.
        facts = InputReport(source, on_ready=accept)

        def on_stderr(line: str) -> None:
            facts.feed(line)
            if line.endswith("' for writing") and ".ts'" in line:
                # The HLS muxer opened the next segment: the previous one is complete,
                # so scan it now, while FFmpeg keeps copying (it is I/O-bound).
                report.tick.set()

        run = run_ffmpeg(args, on_progress=report.ffmpeg("remux"), on_stderr=on_stderr)
        try:
            (scans,) = await _run_scanning(run, [folder], report.tick)
        except TranscodeError:
            facts.finish()  # raises the source's own problem when FFmpeg described one
            raise
        if facts.info is None:
            raise CorruptSource(f"ffmpeg could not describe the source {source}")
        info = facts.info
        report.phase("measure", ENCODE_SHARE)
        measured = await asyncio.to_thread(measure_rung, folder, ffmpeg_cmd.FFMPEG_PLAYLIST, scans)
        size = (info.video.width, info.video.height)
        return _Produced(info, [(rung_name, measured, size, info.video.frame_rate)], [])

    return await _package(dest, [rung_name], remux, report, work_dir, encryption, None)


async def _run_scanning(
    run: Coroutine[Any, Any, None], dirs: Sequence[Path], tick: threading.Event
) -> list[dict[str, SegmentScan]]:
    """Run FFmpeg while one thread scans each segment it finishes, woken by ``tick``."""
    scans: list[dict[str, SegmentScan]] = [{} for _ in dirs]
    stop = threading.Event()

    def scan_until_stopped() -> None:
        # One long-lived thread, not a task per tick: the event loop stays free for
        # FFmpeg's output and the scan costs no more than reading the headers.
        # A scan error is left for measure_rung, which rescans and reports it.
        while True:
            tick.wait()
            tick.clear()
            if stop.is_set():
                return
            for folder, found in zip(dirs, scans, strict=True):
                scan_finished(folder, found, ffmpeg_cmd.segment_name)

    # Its own thread rather than the shared executor, which a job would hold for hours.
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[None] = loop.create_future()

    def scanner() -> None:
        try:
            scan_until_stopped()
        finally:
            loop.call_soon_threadsafe(stopped.set_result, None)

    threading.Thread(target=scanner, name="segment-scan", daemon=True).start()
    try:
        await run
    finally:
        stop.set()
        tick.set()
        await finish(stopped)
    return scans


async def _package(
    dest: Path,
    rung_names: Sequence[str],
    produce: Callable[[Path], Awaitable[_Produced]],
    report: Reporter,
    work_dir: Path | None,
    encryption: AssetEncryption | None,
    subtitles: VodSubtitles | None,
) -> PackageResult:
    temp = staging_dir(dest, work_dir)
    try:
        for name in rung_names:
            (temp / name).mkdir(parents=True)
        info, outputs, audio = await produce(temp)
        _check_outputs(info, [*outputs, *((t.name, m, (0, 0), 0.0) for t, m in audio)])
        subtitle_tracks: Sequence[Track] = ()
        if subtitles is not None and subtitles.tracks:
            # Timed by the first rung's clear segments: before they are encrypted.
            subtitle_tracks = subtitles.tracks
            await subtitles.write(temp, outputs[0][1], temp / outputs[0][0])
        if encryption is not None:
            # Only once the output is known good: its keys replace the asset's old ones.
            report.phase("encrypt", ENCRYPT_AT)
            measured = await encrypt_ladder(
                temp,
                [*((o[0], o[1]) for o in outputs), *((t.name, m) for t, m in audio)],
                encryption,
            )
            outputs = [
                (name, m, size, rate)
                for (name, _, size, rate), m in zip(outputs, measured[: len(outputs)], strict=True)
            ]
            audio = [(t, m) for (t, _), m in zip(audio, measured[len(outputs) :], strict=True)]
        rungs = _write_playlists(temp, info, outputs, audio)
        master = _master(rungs, audio, subtitle_tracks)
        (temp / MASTER_NAME).write_text(render_master(master))
        report.phase("publish", ENCODE_SHARE + MEASURE_SHARE)
        await asyncio.to_thread(publish_tree, temp, dest)
    except EncodeFailed as err:
        discard(temp)
        if _disk_nearly_full(temp.parent):
            # FFmpeg's HLS muxer exits 0 on ENOSPC; the unfinished output is the only sign.
            raise DiskFull(
                f"no space left writing {dest}: {err.message}", details={"dest": str(dest)}
            ) from err
        raise
    except OSError as err:
        discard(temp)
        if err.errno == errno.ENOSPC:
            raise DiskFull(f"no space left writing {dest}", details={"dest": str(dest)}) from err
        raise EncodeFailed(f"cannot write the output at {dest}: {err}") from err
    except BaseException:
        # Failed or cancelled (FFmpeg's group is already killed): publish nothing.
        discard(temp)
        raise
    report.phase("done", 100.0)
    return PackageResult(
        dest=dest,
        master_path=dest / MASTER_NAME,
        source=info,
        rungs=tuple(rungs),
        duration_seconds=max((r.duration_seconds for r in rungs), default=0.0),
        master=master,
    )


def _check_outputs(info: SourceInfo, outputs: Sequence[_RungOutput]) -> None:
    """Refuse a truncated output, or one whose segments do not start with a keyframe."""
    for name, measured, _, _ in outputs:
        expected = info.duration_seconds
        slack = max(_TRUNCATION_SLACK_SECONDS, _TRUNCATION_SLACK_FRACTION * expected)
        if measured.duration_seconds < expected - slack:
            raise CorruptSource(
                f"source {info.uri} is truncated: packaged {measured.duration_seconds:.1f} s "
                f"of the {expected:.1f} s its header declares",
                details={"source": info.uri},
            )
        if not measured.every_segment_starts_with_keyframe:
            # EXT-X-INDEPENDENT-SEGMENTS would be a lie (a source with odd keyframes).
            raise EncodeFailed(f"a segment of {name} does not start with a keyframe")


def _write_playlists(
    temp: Path,
    info: SourceInfo,
    outputs: Sequence[_RungOutput],
    audio: Sequence[tuple[Track, RungMeasurement]],
) -> list[RungResult]:
    """Every rung's and audio rendition's media playlists; the rungs' master entries (with
    audio renditions, a variant's bandwidth adds the most demanding one's, RFC 8216
    section 4.3.4.2)."""
    codec = aac_codec(info.audio.profile if info.audio and not audio else "LC")
    video = outputs[0][1].segments
    for track, measured in audio:
        (temp / track.name / ffmpeg_cmd.FFMPEG_PLAYLIST).unlink()
        segments = measured.segments
        if len(segments) == len(video):
            # Cut at the AAC frame after each video cut (a few ms later): listed with the
            # video's durations, so every rendition has the same timeline and target.
            segments = tuple(
                replace(a, duration=v.duration) for a, v in zip(segments, video, strict=True)
            )
        media = MediaPlaylist(segments, playlist_type="VOD", endlist=True)
        (temp / track.name / MEDIA_NAME).write_text(render_media(media))
    audio_peak = max((m.peak_bps for _, m in audio), default=0)
    audio_average = max((m.average_bps for _, m in audio), default=0)
    results = []
    for name, measured, resolution, frame_rate in outputs:
        rung_dir = temp / name
        (rung_dir / ffmpeg_cmd.FFMPEG_PLAYLIST).unlink()
        media = MediaPlaylist(measured.segments, playlist_type="VOD", endlist=True)
        (rung_dir / MEDIA_NAME).write_text(render_media(media))
        iframes = MediaPlaylist(
            measured.iframes, playlist_type="VOD", endlist=True, iframes_only=True
        )
        (rung_dir / IFRAMES_NAME).write_text(render_media(iframes))
        results.append(
            RungResult(
                name=name,
                variant=Variant(
                    uri=f"{name}/{MEDIA_NAME}",
                    bandwidth=measured.peak_bps + audio_peak,
                    average_bandwidth=measured.average_bps + audio_average,
                    codecs=f"{measured.avc_codec},{codec}",
                    resolution=resolution,
                    frame_rate=frame_rate,
                    audio=AUDIO_GROUP if audio else None,
                ),
                iframe_variant=IFrameVariant(
                    uri=f"{name}/{IFRAMES_NAME}",
                    bandwidth=measured.iframe_peak_bps,
                    average_bandwidth=measured.iframe_average_bps,
                    codecs=measured.avc_codec,
                    resolution=resolution,
                ),
                segment_count=len(measured.segments),
                duration_seconds=measured.duration_seconds,
            )
        )
    return results


def _master(
    rungs: Sequence[RungResult],
    audio: Sequence[tuple[Track, RungMeasurement]],
    subtitles: Sequence[Track],
) -> MasterPlaylist:
    group = SUBTITLES_GROUP if subtitles else None
    return MasterPlaylist(
        variants=tuple(replace(r.variant, subtitles=group) for r in rungs),
        iframe_variants=tuple(r.iframe_variant for r in rungs),
        renditions=renditions(
            [*(t for t, _ in audio), *subtitles], lambda t: f"{t.name}/{MEDIA_NAME}"
        ),
    )


def _disk_nearly_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES
