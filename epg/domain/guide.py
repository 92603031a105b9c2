"""How far ahead a channel's guide runs, and its holes until then (pure).

The console's guide page and the ``epg_guide_hours_ahead`` gauge both read this: a
guide that runs out leaves boxes with an empty EPG and blackouts and catch-up rights
without a programme to apply to, so operators want days of warning. Gaps are found by
the one rule ``ListGaps`` uses (``rules.find_gaps``); only those of at least
:data:`GUIDE_GAP_SECONDS` count, shorter ones being rounding in a supplier's feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from epg.domain.model import Channel, Gap, Scheduled
from epg.domain.rules import find_gaps

GUIDE_GAP_SECONDS = 60
DEFAULT_HORIZON_HOURS = 7 * 24
MAX_HORIZON_HOURS = 31 * 24


@dataclass(frozen=True, slots=True)
class GuideStatus:
    """One channel's guide at a glance: where it ends, how far ahead that is, its gaps
    between now and the end (or the horizon, when that comes first)."""

    channel: Channel
    guide_end: datetime | None
    hours_ahead: float
    gaps: tuple[Gap, ...]

    @property
    def gap_seconds(self) -> int:
        """The gaps' total length."""
        return sum(int((g.stop - g.start).total_seconds()) for g in self.gaps)


def guide_status(
    channel: Channel,
    guide_end: datetime | None,
    airings: Sequence[Scheduled],
    *,
    now: datetime,
    horizon: datetime,
) -> GuideStatus:
    """The status of ``channel`` whose last programme stops at ``guide_end`` (None: it has
    none), given its programmes overlapping ``[now, min(horizon, guide_end))``."""
    if guide_end is None or guide_end <= now:
        return GuideStatus(channel, guide_end, 0.0, ())
    until = min(horizon, guide_end)
    gaps = find_gaps(airings, now, until, min_seconds=GUIDE_GAP_SECONDS)
    return GuideStatus(channel, guide_end, (guide_end - now).total_seconds() / 3600, tuple(gaps))
