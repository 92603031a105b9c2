"""Playlists from the archive and the live window: catch-up media playlists, the live and
catch-up masters (with I-frame variants where a live rung has them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from headend.contentkeys import key_uri, scope_for_channel
from transcode import hls
from transcode.archive.index import RungInfo
from transcode.domain import ArchiveEntry, Window
from transcode.errors import ArchiveNotFound
from transcode.measure import bits_per_second
from transcode.tracks import AUDIO_GROUP, SUBTITLES_GROUP, renditions

# A window that ended this recently may still be reloaded by players that watched it grow.
SETTLED = timedelta(minutes=1)
# A live video rung's I-frame playlist, beside its ``index.m3u8`` (``transcode.live.window``).
LIVE_IFRAMES = "iframes.m3u8"
# CODECS entries of audio (AAC, AC-3, E-AC-3, Opus), left out of an I-frame variant's.
_AUDIO_CODECS = ("mp4a.", "ac-3", "ec-3", "Opus", "opus")


def segment_key(entry: ArchiveEntry, channel: str, base_url: str) -> hls.SegmentKey | None:
    """An archived segment's key as a playlist names it (None: a clear segment)."""
    if not entry.key_id:
        return None
    return hls.SegmentKey(
        key_uri(base_url, scope_for_channel(channel), entry.key_id), entry.sequence
    )


WindowState = Literal["settled", "growing", "ended"]


def window_state(entries: Sequence[ArchiveEntry], window: Window, now: datetime) -> WindowState:
    """What a catch-up window's playlist is now: ``settled`` (over for more than
    :data:`SETTLED`: VOD, cached long), ``growing`` (its end is ahead and the archive has not
    reached it: start-over, timeshift) or ``ended`` (it grew, and its end has come: the
    same EVENT playlist with ENDLIST appended, as RFC 8216 asks of an EVENT that ends)."""
    if window.end < now - SETTLED:
        return "settled"
    if now >= window.end or (entries and entries[-1].end >= window.end):
        return "ended"
    return "growing"


def render_catchup_media(
    entries: Sequence[ArchiveEntry],
    *,
    channel: str,
    key_base_url: str,
    state: WindowState = "settled",
    dateranges: Sequence[tuple[hls.DateRange, ...]] = (),
) -> str:
    """A playlist of archived segments (URIs are the segment file names): VOD for a settled
    window; EVENT while it may still grow or has just ended (see :func:`window_state`),
    telling players to begin at its first segment (``EXT-X-START``), not at its live edge,
    with ENDLIST once it has ended. It is numbered from the first segment's sequence
    number, so an encrypted segment's IV is implied and only a key change (or a gap in the
    numbers) needs an ``EXT-X-KEY``; keys are named ``{key_base_url}/keys/{channel}/{key_id}``.
    ``dateranges``: each entry's SCTE-35 date ranges (``transcode.cues.dateranges_for``)."""
    return hls.render_media(
        catchup_media(
            entries, channel=channel, key_base_url=key_base_url, state=state, dateranges=dateranges
        )
    )


def catchup_media(
    entries: Sequence[ArchiveEntry],
    *,
    channel: str,
    key_base_url: str,
    state: WindowState = "settled",
    dateranges: Sequence[tuple[hls.DateRange, ...]] = (),
) -> hls.MediaPlaylist:
    """The playlist :func:`render_catchup_media` renders (CMAF catch-up,
    ``transcode.origin.cmaf_catchup``, renames its segments)."""
    if not entries:
        raise ArchiveNotFound("no archived segments in the window")
    segments = [
        hls.Segment(
            uri=Path(e.path).name,
            duration=e.duration,
            program_date_time=e.start,
            discontinuity=e.discontinuity and i > 0,
            key=segment_key(e, channel, key_base_url),
            dateranges=dateranges[i] if dateranges else (),
        )
        for i, e in enumerate(entries)
    ]
    return catchup_playlist(segments, entries[0].sequence, state)


def catchup_playlist(
    segments: Sequence[hls.Segment], media_sequence: int, state: WindowState
) -> hls.MediaPlaylist:
    """A catch-up window's playlist of ``segments`` as its ``state`` makes it (see
    :func:`render_catchup_media`; cut views, :mod:`transcode.cuts`, are made the same way)."""
    return hls.MediaPlaylist(
        segments=segments,
        media_sequence=media_sequence,
        playlist_type="VOD" if state == "settled" else "EVENT",
        endlist=state != "growing",
        start_offset_seconds=None if state == "settled" else 0.0,
    )


def live_master(
    rungs: Sequence[RungInfo],
    measured: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    query: str = "",
    iframes: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
) -> hls.MasterPlaylist:
    """The master of a live channel or a catch-up window: one variant per rung with segments,
    lowest bandwidth first, and its audio and subtitle renditions that have segments
    (``measured`` maps a rung or rendition to its segments' sizes in bytes and durations in
    seconds). With audio renditions a variant's bandwidth adds the most demanding one's
    (RFC 8216 section 4.3.4.2) and names the group, as VOD does (``transcode.tracks``).
    ``iframes`` maps a video rung with an I-frame playlist (``{rung}/iframes.m3u8``) to its
    I-frames' sizes and durations: each gets an ``EXT-X-I-FRAME-STREAM-INF``, its bandwidth
    measured as VOD's is (catch-up windows have none: the archive holds no keyframes)."""
    have = [r for r in rungs if measured.get(r.name, ((), ()))[0]]
    tracks = [r.track() for r in have if r.kind != "video"]
    rates = {r.name: bits_per_second(*measured[r.name]) for r in have}
    audio = [t for t in tracks if t.kind == "audio"]
    audio_peak = max((rates[t.name][0] for t in audio), default=0)
    audio_average = max((rates[t.name][1] for t in audio), default=0)
    subtitles = any(t.kind == "subtitles" for t in tracks)
    video = [r for r in have if r.kind == "video"]
    variants = [
        hls.Variant(
            uri=f"{rung.name}/index.m3u8{query}",
            bandwidth=rates[rung.name][0] + audio_peak,
            average_bandwidth=rates[rung.name][1] + audio_average,
            codecs=rung.codecs,
            resolution=(rung.width, rung.height),
            frame_rate=rung.frame_rate,
            audio=AUDIO_GROUP if audio else None,
            subtitles=SUBTITLES_GROUP if subtitles else None,
        )
        for rung in video
    ]
    variants.sort(key=lambda v: v.bandwidth)
    keyframes = {
        r.name: bits_per_second(*iframes[r.name])
        for r in video
        if iframes is not None and iframes.get(r.name, ((), ()))[0]
    }
    iframe_variants = [
        hls.IFrameVariant(
            uri=f"{rung.name}/{LIVE_IFRAMES}{query}",
            bandwidth=keyframes[rung.name][0],
            average_bandwidth=keyframes[rung.name][1],
            codecs=_video_codecs(rung.codecs),
            resolution=(rung.width, rung.height),
        )
        for rung in video
        if rung.name in keyframes
    ]
    iframe_variants.sort(key=lambda v: v.bandwidth)
    return hls.MasterPlaylist(
        variants=variants,
        iframe_variants=iframe_variants,
        renditions=renditions(tracks, lambda t: f"{t.name}/index.m3u8{query}") if variants else (),
    )


def _video_codecs(codecs: str) -> str:
    """A variant's CODECS without its audio's: what an I-frame variant lists (RFC 8216
    section 4.3.4.3)."""
    return ",".join(c for c in codecs.split(",") if not c.startswith(_AUDIO_CODECS))


def render_master_for(
    rungs: Sequence[RungInfo], windows: Mapping[str, Sequence[ArchiveEntry]], *, query: str = ""
) -> str:
    """A catch-up master playlist over the rungs and renditions that have segments in their
    windows."""
    measured = {
        name: ([e.size for e in entries], [e.duration for e in entries])
        for name, entries in windows.items()
    }
    master = live_master(rungs, measured, query=query)
    if not master.variants:
        raise ArchiveNotFound("no archived segments in the window")
    return hls.render_master(master)
