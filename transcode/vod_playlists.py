"""The playlists of a packaged VOD asset, from what was measured: each rendition's media and
I-frame playlists, the master, and (CMAF) the DASH manifest listing the same segments.

Split from :mod:`transcode.package`, which runs FFmpeg and publishes; this writes text
files into the staging tree only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from transcode import dash, ffmpeg_cmd
from transcode.hls import (
    IFrameVariant,
    MasterPlaylist,
    MediaPlaylist,
    Variant,
    render_media,
)
from transcode.measure import RungMeasurement, aac_codec
from transcode.probe import SourceInfo
from transcode.tracks import AUDIO_GROUP, SUBTITLES_GROUP, Track, renditions

MASTER_NAME = "master.m3u8"
MEDIA_NAME = "index.m3u8"
IFRAMES_NAME = "iframes.m3u8"

# (rung name, measurement, resolution, frame rate) for one written rendition.
RungOutput = tuple[str, RungMeasurement, tuple[int, int], float]


@dataclass(frozen=True, slots=True)
class RungResult:
    """One published rendition."""

    name: str
    variant: Variant
    iframe_variant: IFrameVariant
    segment_count: int
    duration_seconds: float


def write_mpd(
    master: MasterPlaylist,
    playlists: Mapping[str, MediaPlaylist],
    outputs: Sequence[RungOutput],
    audio: Sequence[tuple[Track, RungMeasurement]],
) -> str:
    """The DASH manifest of a CMAF asset: the same segments the HLS playlists list.

    ``playlists``: the media playlists by their URIs in the master, as ``write_playlists``
    returns them (subtitle renditions are WebVTT and have none here)."""
    timings = {}
    for uri, measured in [
        *((f"{name}/{MEDIA_NAME}", m) for name, m, _, _ in outputs),
        *((f"{t.name}/{MEDIA_NAME}", m) for t, m in audio),
    ]:
        if measured.cmaf is not None:
            # The track's own peak: a DASH Representation is the video (or audio) alone.
            timings[uri] = dash.TrackTiming(
                measured.cmaf.timescale, measured.cmaf.first_start, bandwidth=measured.peak_bps
            )
    return dash.vod_mpd(master, playlists, timings)


def write_playlists(
    temp: Path,
    info: SourceInfo,
    outputs: Sequence[RungOutput],
    audio: Sequence[tuple[Track, RungMeasurement]],
) -> tuple[list[RungResult], dict[str, MediaPlaylist]]:
    """Every rung's and audio rendition's media playlists (returned too, keyed by their
    master URIs); the rungs' master entries (with audio renditions, a variant's bandwidth
    adds the most demanding one's, RFC 8216 section 4.3.4.2)."""
    codec = aac_codec(info.audio.profile if info.audio and not audio else "LC")
    cmaf_audio = next((m.cmaf.codec for _, m in audio if m.cmaf is not None), "")
    codec = cmaf_audio or codec
    written: dict[str, MediaPlaylist] = {}
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
        written[f"{track.name}/{MEDIA_NAME}"] = media
    audio_peak = max((m.peak_bps for _, m in audio), default=0)
    audio_average = max((m.average_bps for _, m in audio), default=0)
    results = []
    # ``avc_codec`` is the rung's video CODECS: from its SPS (TS), or from its init segment's
    # sample entry (CMAF: ``avc1`` or, for an HEVC rung, ``hvc1``, ``transcode.fmp4.codecs``).
    # Rungs come in plan order, H.264 first: players skip the variants they cannot decode.
    for name, measured, resolution, frame_rate in outputs:
        rung_dir = temp / name
        (rung_dir / ffmpeg_cmd.FFMPEG_PLAYLIST).unlink()
        media = MediaPlaylist(measured.segments, playlist_type="VOD", endlist=True)
        (rung_dir / MEDIA_NAME).write_text(render_media(media))
        written[f"{name}/{MEDIA_NAME}"] = media
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
    return results, written


def master_of(
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
