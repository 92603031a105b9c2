"""Who may watch what, when: catch-up windows and blackout areas (pure rules).

The front door applies every rule before it leases a stream and signs a URL;
the origin applies the window and programme rules again to what reaches it
(a signed window, or a programme id it resolves itself). Both call these
functions, so the two faces can never disagree on a right. Each rule answers
with a :class:`Refusal` (a stable reason code a box can act on, and a
message) or None; the caller raises its own face's error from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from epg.domain.model import Channel, Programme
from headend import regions

# The longest catch-up window any face serves (a face may set a shorter one).
MAX_CATCHUP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a right is refused: ``reason`` is the code a box sees; ``field`` is the end of the
    window at fault (``start`` or ``stop``, each face names it its own way), empty when the
    request is well-formed and the rights refuse it."""

    reason: str
    message: str
    field: str = ""

    def describe(self, start: str = "start", stop: str = "stop") -> str:
        """The message, with the window's ends called what the face calls them."""
        return self.message.format(start=start, stop=stop)


def window_refusal(
    start: datetime, stop: datetime, now: datetime, *, longest: timedelta = MAX_CATCHUP_WINDOW
) -> Refusal | None:
    """A catch-up window must be ordered, at most ``longest`` (capped at the platform's
    maximum) and already started."""
    if stop <= start:
        return Refusal("bad_window", "must be after {start}", "stop")
    limit = min(longest, MAX_CATCHUP_WINDOW)
    if stop - start > limit:
        return Refusal("bad_window", f"window longer than {int(limit.total_seconds())} s", "stop")
    if start >= now:
        return Refusal("not_yet_aired", "the window has not started yet: must be in the past")
    return None


def channel_refusal(channel: Channel, start: datetime, now: datetime) -> Refusal | None:
    """The channel must keep catch-up, and for long enough to reach back to ``start``."""
    if channel.catchup_days <= 0:
        return Refusal("catchup_disabled", "this channel has no catch-up")
    if start < now - timedelta(days=channel.catchup_days):
        return Refusal(
            "outside_catchup_days", f"older than the channel's {channel.catchup_days} catch-up days"
        )
    return None


def blacked_out(programme: Programme, region: str) -> bool:
    """Is ``programme`` blacked out for a box in ``region`` (inside any blackout area)?"""
    return any(regions.covers(area, region) for area in programme.rights.blackout_regions)


def programme_refusal(programme: Programme, region: str | None = None) -> Refusal | None:
    """The programme must allow catch-up, and (for a box in ``region``) not be blacked out."""
    if not programme.rights.catchup_allowed:
        return Refusal("catchup_not_allowed", "this programme is not available for catch-up")
    if region is not None and blacked_out(programme, region):
        return Refusal("blacked_out", "this programme is blacked out in your region")
    return None


def overlapping(
    programmes: Iterable[Programme], start: datetime, stop: datetime
) -> list[Programme]:
    """The programmes that air during ``[start, stop)``."""
    return [p for p in programmes if p.start < stop and p.stop > start]
