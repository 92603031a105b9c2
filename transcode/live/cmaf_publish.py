"""A live publisher's CMAF step (``publish.py``): each published clear TS segment remuxed
into CMAF tracks, its files and the CMAF playlists and MPD written beside the TS ones.

A clear channel whose ``formats`` include CMAF gets each segment remuxed (``cmaf.py``: a
video-only track per rung, one audio track or one per audio rendition), read from the
clear files on a worker thread *before* the segment's number is taken, so a cancel there
commits nothing, and written beside the TS files once it is. Their ``cmaf.m3u8``
playlists, ``master-cmaf.m3u8`` and the live ``manifest.mpd`` are written with the TS
playlists, fenced the same way (the publisher's file lock and lease check). An encrypted
channel gets none: CMAF needs CENC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from transcode.ladder import PlannedRung
from transcode.live.cmaf import CmafSegment, LiveCmaf, Picture, Remuxed, remux, write_tracks
from transcode.live.window import Window
from transcode.tracks import Track, audio_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Remuxing:
    """One segment remuxed before its number is taken: where it starts on the CMAF
    timeline, and its tracks (none: not written, the runs end)."""

    at: float
    tracks: dict[str, Remuxed]


class CmafPublishing:
    """The CMAF side of one live channel's publisher (its state in :class:`LiveCmaf`)."""

    def __init__(self, channel_id: str, directory: Path, *, keep: int) -> None:
        self._channel_id = channel_id
        self._dir = directory
        self._keep = keep  # segments kept behind the window: a player may still fetch one
        self.live = LiveCmaf()

    async def remux(
        self,
        start: datetime,
        duration: float,
        files: dict[str, Path],
        plan: Sequence[PlannedRung],
        tracks: Sequence[Track],
    ) -> Remuxing:
        """Remux one segment's clear ``files`` (by rung or rendition) on a worker thread:
        every video rung of ``plan``, and each audio rendition as its own audio track."""
        at = self.live.position(start)
        pictures = {r.name: Picture(r.width, r.height) for r in plan}
        sounds = {t.name for t in audio_of(tracks)}
        wanted = {name: path for name, path in files.items() if name in pictures or name in sounds}
        made = await asyncio.to_thread(
            remux, wanted, pictures, start_seconds=at, duration=duration, renditions=sounds
        )
        return Remuxing(at, made)

    def write(self, remuxing: Remuxing, seq: int) -> dict[str, CmafSegment]:
        """Write segment ``seq``'s CMAF tracks; a failure (a full disk) only ends the runs."""
        if not remuxing.tracks:
            return {}
        try:
            return write_tracks(self._dir, remuxing.tracks, sequence=seq, keep=self._keep)
        except OSError as err:
            log.warning("CMAF segment not written", extra={"channel": self._channel_id,
                                                           "reason": str(err)})  # fmt: skip
            return {}

    def published(
        self,
        window: Window,
        remuxing: Remuxing,
        duration: float,
        start: datetime,
        made: dict[str, CmafSegment],
    ) -> None:
        """The segment just slid into ``window`` (with the CMAF segments ``made``)."""
        self.live.published(window, remuxing.at, duration, start, made)
