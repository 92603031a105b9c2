"""A cue: a signal scheduled into a live channel at a time, and the regions blacked out
while it runs (pure).

A cue runs from :attr:`Cue.start` for :attr:`Cue.duration_seconds` (0: a point signal,
which neither runs nor blacks anything out). The farm signals it in the channel's SCTE-35
(``CueKind.BREAK``: a splice_insert out and its return; ``CueKind.SEGMENT``: time_signals
with a segmentation descriptor); the front doors show boxes in one of its
:attr:`Cue.blackout_regions` the slate instead of the channel while it runs. Which
regions contain a box is ``headend.regions.covers``'s rule.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from headend import regions

# The longest cue (a break, a blacked-out match).
MAX_DURATION_SECONDS = 6 * 3600.0


class CueKind(enum.Enum):
    """How the cue is signalled in SCTE-35."""

    BREAK = "break"
    SEGMENT = "segment"


class CueState(enum.Enum):
    """Scheduled (or running), or withdrawn before it started."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Cue:
    """A cue of one channel. ``event_id`` 0 means "derived from the id" (:attr:`event`)."""

    id: str
    channel_id: str
    kind: CueKind
    start: datetime
    duration_seconds: float = 0.0
    segmentation_type_id: int = 0
    event_id: int = 0
    blackout_regions: tuple[str, ...] = ()
    description: str = ""
    state: CueState = CueState.SCHEDULED
    creator: str = ""
    created: datetime | None = None
    version: int = 0

    @property
    def end(self) -> datetime:
        """When it ends (its start, for a point signal)."""
        return self.start + timedelta(seconds=self.duration_seconds)

    @property
    def event(self) -> int:
        """The 32-bit splice_event_id / segmentation_event_id it is signalled with: its
        own, else one derived from the channel and id (stable across replicas)."""
        return self.event_id or (zlib.crc32(f"{self.channel_id}/{self.id}".encode()) or 1)

    def running(self, at: datetime) -> bool:
        """Scheduled and ``start <= at < end``."""
        return self.state is CueState.SCHEDULED and self.start <= at < self.end

    def blacks_out(self, region: str) -> bool:
        """Does it black out a box in ``region`` (while it runs)?"""
        return self.state is CueState.SCHEDULED and any(
            regions.covers(area, region) for area in self.blackout_regions
        )
