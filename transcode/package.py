"""VOD packaging: source -> ladder (or stream copy) -> HLS in a temp dir -> measure ->
(encrypt) -> publish.

Segments are MPEG-TS, or CMAF (``PackageFormat.CMAF``): an ``init.mp4`` and ``.m4s``
segments per single-track rendition, listed by HLS playlists with ``EXT-X-MAP`` and by a
``manifest.mpd`` (:mod:`transcode.dash`) beside the master, the same segments for both.

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
from dataclasses import dataclass
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
    MasterPlaylist,
    render_master,
)
from transcode.jobs import PackageFormat
from transcode.ladder import PlannedRung, ProcessMode, Profile, plan_ladder
from transcode.measure import (
    RungMeasurement,
    SegmentScan,
    measure_audio,
    measure_rung,
    scan_finished,
)
from transcode.measure_cmaf import measure_renditions
from transcode.names import MPD_NAME
from transcode.probe import (
    InputReport,
    SourceInfo,
    is_local_missing,
    probe,
    require_remuxable,
    require_transcodable,
)
from transcode.profiles import require_format
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
    SubtitleFile,
    Track,
    audio_of,
    first_audio,
    plan_tracks,
    subtitles_of,
)
from transcode.vod_playlists import (
    MASTER_NAME,
    RungOutput,
    RungResult,
    master_of,
    write_mpd,
    write_playlists,
)

# A shorter output than this (seconds, or fraction of the source) means the source
# ended early: a truncated file whose header still claims the full length.
_TRUNCATION_SLACK_SECONDS = 1.0
_TRUNCATION_SLACK_FRACTION = 0.02
# Free space below this after an unfinished FFmpeg output means the disk filled up.
_NEARLY_FULL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackageResult:
    """A published asset: where it is, what it holds, what was measured."""

    dest: Path
    master_path: Path
    source: SourceInfo
    rungs: tuple[RungResult, ...]
    duration_seconds: float
    master: MasterPlaylist


class _Produced(NamedTuple):
    """What FFmpeg wrote: the source's facts, the rungs, and the audio renditions."""

    info: SourceInfo
    rungs: list[RungOutput]
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
    package_format: PackageFormat = PackageFormat.TS,
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
    ``package_format``: CMAF writes fMP4 video-only rungs and every audio track (even a
    single one) as a rendition, plus ``manifest.mpd``; a profile with HEVC rungs is
    CMAF only (``InvalidRequest`` on "format" otherwise, before anything runs).
    """
    require_format(profile, package_format)  # HEVC rungs: CMAF only
    cmaf = _cmaf(package_format, encryption)
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
        separate_audio=cmaf,
    )
    audio = audio_of(tracks)
    report.duration = info.duration_seconds

    async def encode(temp: Path) -> _Produced:
        dirs = [temp / rung.name for rung in plan]

        def command(rungs: Sequence[PlannedRung], tracks: Sequence[Track]) -> list[str]:
            return ffmpeg_cmd.ladder_command(
                source, rungs, profile, temp, ffmpeg_bin=ffmpeg_bin, input_options=input_options,
                audio=tracks, video_only=bool(audio), cmaf=cmaf,
            )  # fmt: skip

        if process_mode is ProcessMode.SINGLE:
            run = run_ffmpeg(command(plan, audio), on_progress=report.ffmpeg("encode"))
        else:
            # One process per rung, and one for the audio renditions.
            commands = [command([rung], ()) for rung in plan]
            if audio:
                commands.append(command((), audio))
            run = run_all(commands, on_progress=report.ffmpeg_many("encode", len(commands)))
        if cmaf:
            # fMP4 headers are read after FFmpeg: a few boxes per fragment, no TS scan.
            await run
            report.phase("measure", ENCODE_SHARE)
            names = [*(r.name for r in plan), *(t.name for t in audio)]
            measured = await measure_renditions(temp, names, len(plan))
            return _produced(info, plan, audio, measured)
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
        return _produced(info, plan, audio, list(measured))

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
    package_format: PackageFormat = PackageFormat.TS,
) -> PackageResult:
    """Stream-copy an H.264/AAC mezzanine into one-rung HLS with our master and I-frame lists.

    Same publishing, failure, cancel and encryption rules as ``package_vod``; segments are
    cut at the source's own keyframes, so its GOP structure decides the segment durations.
    With CMAF the source's first audio track is a rendition of its own (``audio-1``).
    """
    cmaf = _cmaf(package_format, encryption)
    audio_track = first_audio() if cmaf else None
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
            audio_name=audio_track.name if audio_track else "",
        )
        # No ffprobe: at hundreds of times realtime one more process start is a visible
        # share of a remux, so the source's facts come from FFmpeg's own input report.
        facts = InputReport(source, on_ready=accept)

        def on_stderr(line: str) -> None:
            facts.feed(line)
            if not cmaf and line.endswith("' for writing") and ".ts'" in line:
                # The HLS muxer opened the next segment: the previous one is complete,
                # so scan it now, while FFmpeg keeps copying (it is I/O-bound).
                report.tick.set()

        run = run_ffmpeg(args, on_progress=report.ffmpeg("remux"), on_stderr=on_stderr)
        try:
            if audio_track is None:
                (scans,) = await _run_scanning(run, [folder], report.tick)
            else:
                await run
        except TranscodeError:
            facts.finish()  # raises the source's own problem when FFmpeg described one
            raise
        if facts.info is None:
            raise CorruptSource(f"ffmpeg could not describe the source {source}")
        info = facts.info
        report.phase("measure", ENCODE_SHARE)
        size = (info.video.width, info.video.height)
        if audio_track is not None:
            video, sound = await measure_renditions(temp, [rung_name, audio_track.name], 1)
            rung = (rung_name, video, size, info.video.frame_rate)
            return _Produced(info, [rung], [(audio_track, sound)])
        measured = await asyncio.to_thread(measure_rung, folder, ffmpeg_cmd.FFMPEG_PLAYLIST, scans)
        return _Produced(info, [(rung_name, measured, size, info.video.frame_rate)], [])

    names = [rung_name, *([audio_track.name] if audio_track else [])]
    return await _package(dest, names, remux, report, work_dir, encryption, None)


def _cmaf(package_format: PackageFormat, encryption: AssetEncryption | None) -> bool:
    """Whether to write CMAF; refuses CMAF with encryption (the service refuses it first)."""
    if package_format is PackageFormat.CMAF and encryption is not None:
        raise EncodeFailed("a CMAF asset cannot be encrypted yet (AES-128 is MPEG-TS only)")
    return package_format is PackageFormat.CMAF


def _produced(
    info: SourceInfo,
    plan: Sequence[PlannedRung],
    audio: Sequence[Track],
    measured: Sequence[RungMeasurement],
) -> _Produced:
    rungs = [
        (rung.name, m, (rung.width, rung.height), rung.frame_rate)
        for rung, m in zip(plan, measured[: len(plan)], strict=True)
    ]
    return _Produced(info, rungs, list(zip(audio, measured[len(plan) :], strict=True)))


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
            first = outputs[0][1]
            start = None if first.cmaf is None else first.cmaf.first_start / first.cmaf.timescale
            await subtitles.write(temp, first, temp / outputs[0][0], first_keyframe_seconds=start)
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
        rungs, playlists = write_playlists(temp, info, outputs, audio)
        master = master_of(rungs, audio, subtitle_tracks)
        (temp / MASTER_NAME).write_text(render_master(master))
        if outputs[0][1].cmaf is not None:
            (temp / MPD_NAME).write_text(write_mpd(master, playlists, outputs, audio))
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


def _check_outputs(info: SourceInfo, outputs: Sequence[RungOutput]) -> None:
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


def _disk_nearly_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES
