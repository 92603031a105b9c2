"""Live CMAF: each published clear MPEG-TS segment remuxed into CMAF tracks beside it.

The TS stays the channel's canonical output (multicast, set-top boxes, the archive); a
channel whose ``formats`` include CMAF also gets, for TS segment N, the CMAF segment N of
the same media, so the HLS (TS and CMAF) and DASH views list the same segments by
construction. Each video rung becomes a video-only track (``{rung}/{seq}.m4s``, a
fragment per keyframe so a fragment can be fetched alone), and the audio muxed in the
first rung that has any becomes one audio track (``audio/{seq}.m4s``); a channel with
several audio languages has none in its rungs, and each of its TS audio renditions becomes
a CMAF audio track in the rendition's directory instead (``audio-zh/{seq}.m4s``, listed as
the TS master lists it: ``cmaf_tracks.py``). Each video track also gets an I-frame
playlist, ``cmaf-iframes.m3u8``, of its keyframe fragments' byte ranges, listed in
``master-cmaf.m3u8`` (``cmaf_iframes.py``). An init segment is named by its content
(``init-{sha8}.mp4``): an epoch whose codec parameters change writes a new one and later
segments' ``EXT-X-MAP`` name it. Subtitle renditions get no CMAF track.

Timeline (``transcode.dash`` timing contract): a run of segments starts at its first
segment's program date-time, in seconds since 1970, and each following segment starts
the previous one's EXTINF duration later, so every segment's ``tfdt`` is the run's first
plus the rounded sum of the durations before it, across discontinuities too. Inside a
segment, samples keep the spacing of their TS decode times; the last video sample lasts
until the segment's end, so a track's fragments tile the EXTINF durations exactly. Audio
(muxed or a rendition) is shifted with its segment's video (lip sync is the TS's), so its
``tfdt`` may sit a fraction of a frame off the contract, which players absorb.

Runs on a worker thread: it reads each published TS file whole.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from transcode import hls
from transcode.archive import LIVE_IFRAMES, RungInfo, live_master
from transcode.dash import live_mpd
from transcode.dash.tracks import TrackTiming
from transcode.errors import InvalidPlaylist
from transcode.fmp4 import MalformedMp4, read_init
from transcode.fmp4.writer import (
    VIDEO_TIMESCALE,
    OutFragment,
    OutSample,
    init_segment,
    media_segment,
)
from transcode.live.cmaf_iframes import IFrameRuns, scan_media
from transcode.live.cmaf_tracks import AUDIO_TRACK, audio_start, master_infos
from transcode.live.files import atomic_write
from transcode.live.iframes import segment_iframes
from transcode.live.remux import AudioTrack, EsSample, RemuxFailed, demux
from transcode.live.window import Window, cmaf_name
from transcode.measure import SegmentScan, bits_per_second
from transcode.names import CMAF_IFRAMES, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME

log = logging.getLogger(__name__)

_TRACK_ID = 1
# mfhd sequence numbers: segment N's fragments are numbered from N * this (mod 2^32).
_FRAGMENTS_PER_SEGMENT = 1000
LIVE_INDEX = "index.m3u8"
# A DASH player starts this many segments behind the live edge (as HLS players do).
_DELAY_SEGMENTS = 3


@dataclass(frozen=True, slots=True)
class CmafSegment:
    """One track's CMAF segment as written: its size, init segment and the track's facts."""

    size: int
    init: str  # the init segment's file name in the track's directory
    codec: str  # RFC 6381
    timescale: int
    start: int  # tfdt of its first fragment, timescale ticks
    # A video track's keyframe fragments as byte ranges (None: audio, or not readable).
    scan: SegmentScan | None = None


@dataclass(frozen=True, slots=True)
class Picture:
    """A rung's picture size, which its init segment states."""

    width: int
    height: int


def track_start(start_seconds: float, timescale: int) -> int:
    """A segment's ``tfdt`` from its start on the CMAF timeline (seconds)."""
    return round(start_seconds * timescale)


@dataclass(frozen=True, slots=True)
class Remuxed:
    """One track of a segment remuxed, not yet written (its number is not taken yet)."""

    init: bytes
    fragments: tuple[OutFragment, ...]
    timescale: int


def remux(
    published: Mapping[str, Path],
    pictures: Mapping[str, Picture],
    *,
    start_seconds: float,
    duration: float,
    renditions: Collection[str] = (),
) -> dict[str, Remuxed]:
    """Every video rung of ``published`` (rung -> its clear TS file) and the audio tracks
    remuxed; a rung that cannot be (unreadable, no H.264) is left out, and its CMAF run
    starts again. ``renditions``: the names in ``published`` that are audio renditions
    (audio-only TS files): each becomes an audio track of its own name, and no rung's muxed
    audio is taken (``cmaf_tracks.py``); without them, the audio muxed in the first rung
    that has any is the ``audio`` track. Reads the files whole: run it on a worker thread."""
    out: dict[str, Remuxed] = {}
    first_dts: int | None = None  # the first remuxed rung's first video sample: audio's anchor
    for rung, path in published.items():
        if rung in renditions:
            continue
        picture = pictures.get(rung, Picture(0, 0))
        try:
            demuxed = demux(path.read_bytes(), width=picture.width, height=picture.height)
        except (RemuxFailed, OSError):
            continue
        if demuxed.video is None or not demuxed.video.samples:
            continue
        video = demuxed.video
        end = track_start(start_seconds + duration, VIDEO_TIMESCALE)
        first = track_start(start_seconds, VIDEO_TIMESCALE)
        out[rung] = Remuxed(
            init_segment(_TRACK_ID, video.config),
            tuple(video_fragments(video.samples, first, end)),
            VIDEO_TIMESCALE,
        )
        audio = demuxed.audio
        if not renditions and AUDIO_TRACK not in out and audio is not None and audio.samples:
            out[AUDIO_TRACK] = _audio(audio, video.samples[0].dts, start_seconds)
        if first_dts is None:
            first_dts = video.samples[0].dts
    for name in renditions:
        file = published.get(name)
        if first_dts is None or file is None:
            continue  # no video to time it by: its run starts again, like a missed rung's
        try:
            sound = demux(file.read_bytes()).audio
        except (RemuxFailed, OSError):
            continue
        if sound is not None and sound.samples:
            out[name] = _audio(sound, first_dts, start_seconds)
    return out


def _audio(audio: AudioTrack, video_dts: int, start_seconds: float) -> Remuxed:
    """An audio track's segment, shifted with the video first decoded at ``video_dts``."""
    at = audio_start(audio, video_dts, start_seconds)
    fragment = audio_fragment(audio.samples, at)
    return Remuxed(init_segment(_TRACK_ID, audio.config), (fragment,), audio.config.sample_rate)


def write_tracks(
    channel_dir: Path, tracks: Mapping[str, Remuxed], *, sequence: int, keep: int
) -> dict[str, CmafSegment]:
    """Write segment ``sequence`` of each track (and its init segment if new) under
    ``channel_dir``; the segment ``keep`` numbers older goes."""
    return {
        name: _write(channel_dir / name, track, sequence, keep) for name, track in tracks.items()
    }


def remux_files(
    channel_dir: Path,
    published: Mapping[str, Path],
    pictures: Mapping[str, Picture],
    *,
    sequence: int,
    start_seconds: float,
    duration: float,
    keep: int,
    renditions: Collection[str] = (),
) -> dict[str, CmafSegment]:
    """:func:`remux` then :func:`write_tracks`."""
    tracks = remux(
        published, pictures, start_seconds=start_seconds, duration=duration, renditions=renditions
    )
    return write_tracks(channel_dir, tracks, sequence=sequence, keep=keep)


def video_fragments(samples: tuple[EsSample, ...], start: int, end: int) -> list[OutFragment]:
    """Video samples (90 kHz TS times) as fragments from ``start`` to ``end`` (ticks on the
    CMAF timeline), a new fragment at each keyframe after the first sample."""
    base = samples[0].dts
    times = [start + s.dts - base for s in samples]
    durations = [b - a for a, b in itertools.pairwise(times)]
    last = end - times[-1]
    durations.append(last if last > 0 else (durations[-1] if durations else 1))
    fragments: list[OutFragment] = []
    current: list[OutSample] = []
    first_time = times[0]
    for sample, at, length in zip(samples, times, durations, strict=True):
        if sample.sync and current:
            fragments.append(OutFragment(first_time, tuple(current)))
            current, first_time = [], at
        current.append(OutSample(sample.data, max(1, length), sample.sync, sample.pts - sample.dts))
    fragments.append(OutFragment(first_time, tuple(current)))
    return fragments


def audio_fragment(samples: tuple[EsSample, ...], start: int) -> OutFragment:
    """AAC frames as one fragment from ``start`` (sample-rate ticks), 1024 samples each."""
    return OutFragment(start, tuple(OutSample(s.data, 1024, True) for s in samples))


def _write(directory: Path, track: Remuxed, sequence: int, keep: int) -> CmafSegment:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"init-{hashlib.sha256(track.init).hexdigest()[:8]}.mp4"
    if not (directory / name).exists():
        atomic_write(directory / name, track.init)
    first_fragment = sequence * _FRAGMENTS_PER_SEGMENT % (1 << 32)
    media = media_segment(_TRACK_ID, first_fragment, track.fragments)
    atomic_write(directory / cmaf_name(sequence), media)
    (directory / cmaf_name(sequence - keep)).unlink(missing_ok=True)
    # The track's CODECS and keyframe fragments, as the reader finds them in what the
    # writer wrote (the segment's bytes still in hand, not read back from the file).
    info = read_init(track.init)[0]
    scan = None
    if info.handler == "vide":
        try:
            scan = scan_media(cmaf_name(sequence), media, info)
        except MalformedMp4 as err:  # never from our writer; its I-frame run only ends
            log.warning("CMAF I-frames not read", extra={"reason": err.message})
    return CmafSegment(
        len(media), name, info.codec, track.timescale, track.fragments[0].start, scan
    )


class LiveCmaf:
    """A publisher's CMAF state: the timeline, the Periods' starts, the tracks' facts and
    I-frames; and the CMAF master, media and I-frame playlists and MPD of its window
    (pure: texts, no I/O)."""

    def __init__(self) -> None:
        # Where the next segment starts on the CMAF timeline (None: at its date).
        self._next_at: float | None = None
        # By sequence number, where each segment of the window starts (seconds).
        self._at: dict[int, float] = {}
        # The first segment's date this run: the MPD's availabilityStartTime.
        self.availability_start: datetime | None = None
        # When each Period began, by discontinuity sequence number (ISO/IEC 23009-1: a
        # Period's start never moves between MPD updates).
        self._period_starts: dict[int, datetime] = {}
        self._facts: dict[str, CmafSegment] = {}
        self._iframes = IFrameRuns()

    def position(self, start: datetime) -> float:
        """Where a segment dated ``start`` starts on the CMAF timeline, if published next."""
        return start.timestamp() if self._next_at is None else self._next_at

    def published(
        self,
        window: Window,
        at: float,
        duration: float,
        start: datetime,
        made: Mapping[str, CmafSegment],
    ) -> None:
        """Note a segment just slid into ``window`` at ``at`` (with the CMAF segments
        ``made`` of it, maybe none)."""
        self._next_at = at + duration
        self._at[window.seqs[-1]] = at
        for seq in [s for s in self._at if s < window.seqs[0]]:
            del self._at[seq]
        if self.availability_start is None:
            self.availability_start = start
        number = window.discontinuity_sequence + sum(window.discontinuities[1:])
        self._period_starts.setdefault(number, start)
        for gone in [n for n in self._period_starts if n < window.discontinuity_sequence]:
            del self._period_starts[gone]
        self._facts.update(made)
        frames = {
            t: segment_iframes(c.scan, duration, hz=c.timescale, origin=c.start)
            for t, c in made.items()
            if c.scan is not None
        }
        self._iframes.slide(window.seqs[-1], frames, {t: len(e) for t, e in window.cmaf.items()})

    def texts(
        self,
        window: Window,
        rungs: Sequence[RungInfo],
        *,
        segment_seconds: float,
        endlist: bool,
        now: datetime,
    ) -> dict[str, str]:
        """Every CMAF file to write, by path under the channel's directory: each track's
        ``cmaf.m3u8``, each video track's ``cmaf-iframes.m3u8``, ``master-cmaf.m3u8`` and
        (while live) ``manifest.mpd``."""
        media = window.cmaf_media(segment_seconds=segment_seconds, endlist=endlist)
        # A window taken over from another publisher (a handover) lists tracks and segments
        # this one has no facts or times of until it has published its own.
        media = {t: p for t, p in media.items() if t in self._facts}
        if not media:
            return {}
        out = {f"{t}/{CMAF_PLAYLIST}": hls.render_media(p) for t, p in media.items()}
        trick = {t: self._iframes.playlist(t, p) for t, p in media.items()}
        out.update(
            {f"{t}/{CMAF_IFRAMES}": hls.render_media(p) for t, p in trick.items() if p is not None}
        )
        measured = window.cmaf_measured()
        iframes = {t: m for t, m in self._iframes.measured().items() if trick.get(t) is not None}
        infos = master_infos(rungs, media, {t: f.codec for t, f in self._facts.items()})
        audio = {r.name for r in infos if r.kind == "audio"}
        master = _cmaf_uris(live_master(infos, measured, iframes=iframes))
        if not master.variants:
            return out
        out[CMAF_MASTER] = hls.render_master(master)
        if endlist or self.availability_start is None:
            return out  # an ended channel's MPD stays as it was last written
        by_uri = {f"{t}/{CMAF_PLAYLIST}": t for t in media}
        firsts = {t: window.seqs[len(window.seqs) - len(window.cmaf[t])] for t in media}
        if any(seq not in self._at for seq in firsts.values()):
            return out  # timed by another publisher: the MPD follows once this one's are
        timings = {
            uri: TrackTiming(
                self._facts[t].timescale,
                track_start(self._at[firsts[t]], self._facts[t].timescale),
                bits_per_second(*measured[t])[0] if t in audio else 0,
            )
            for uri, t in by_uri.items()
        }  # fmt: skip
        try:
            out[MPD_NAME] = live_mpd(
                master,
                {uri: media[t] for uri, t in by_uri.items()},
                timings,
                availability_start=self.availability_start,
                publish_time=now,
                time_shift_buffer_depth=sum(window.durations),
                minimum_update_period=segment_seconds,
                suggested_presentation_delay=_DELAY_SEGMENTS * segment_seconds,
                period_starts=self._period_starts,
            )
        except InvalidPlaylist as err:
            # A window the MPD cannot state truthfully (dates that disagree with durations
            # inside a Period): the last MPD written stays until that slides out.
            log.warning("live MPD not written", extra={"reason": err.message})
        return out


def _cmaf_uris(master: hls.MasterPlaylist) -> hls.MasterPlaylist:
    """A live master pointing at the CMAF media and I-frame playlists (the TS master's
    names, as ``live_master`` writes them, changed to the CMAF ones)."""

    def uri(value: str) -> str:
        return value.replace(f"/{LIVE_INDEX}", f"/{CMAF_PLAYLIST}")

    def iframes(value: str) -> str:
        return value.replace(f"/{LIVE_IFRAMES}", f"/{CMAF_IFRAMES}")

    return replace(
        master,
        variants=[replace(v, uri=uri(v.uri)) for v in master.variants],
        iframe_variants=[replace(v, uri=iframes(v.uri)) for v in master.iframe_variants],
        renditions=tuple(replace(r, uri=uri(r.uri)) for r in master.renditions),
    )
