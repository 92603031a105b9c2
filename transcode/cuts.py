"""Cut views: a channel's playlist with another live channel's picture spliced in (pure).

For an emergency alert or a picture blackout the front door sends the boxes of a region to
a *cut view* of channel C: from instant S until instant E (open-ended without one) the
segments are those of the feed F (the emergency feed, the blackout slate). The view is
**number-aligned**: it lists exactly the media sequence numbers C's own playlist lists at
that moment, and a number n whose segment starts inside ``[S, E)`` names the F segment
starting closest to it instead. The front door may switch a box between C's playlist and
the view at any reload; because the numbers match, every player goes on at its next number.

The joins carry ``EXT-X-DISCONTINUITY`` (before the first replaced segment and before the
first of C's after E), and so does a replaced segment whose F segment does not follow the
previous one's (F restarted, or its segments are not C's length); C's own discontinuities
stay where they are, replaced or not (one too many only resets a decoder). Which F segment
a number gets is decided once: while F has not yet published a segment starting at or
after n's start, a later one could still be closer, so the view waits for it (it ends
before n); F runs beside C during an alert, so the view lags by at most a segment.

A live view reads C's numbers back to the cut's start on each reload, to count what the
view added to those that slid out: its cost grows with the cut's age (one sorted-set
range of C and one of F).

``EXT-X-DISCONTINUITY-SEQUENCE`` of a live view is C's own (what C's playlist says, which
counts C's discontinuities that slid out) plus the discontinuities the view added to the
numbers that slid out (:func:`added_discontinuities`): each reload agrees with the last.
Keys: each segment keeps its own channel's key (with its own number's IV), so an F segment
that is clear after an encrypted C one gets ``METHOD=NONE`` from :mod:`transcode.hls`.
SCTE-35 date ranges likewise: C's own numbers keep C's (``dateranges``, by number, as
:func:`transcode.cues.dateranges_for` places them on C's segments); an F segment carries
none, C's signals being about C's programme and F's cues F's.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from transcode import hls
from transcode.archive import RungInfo, WindowState, catchup_playlist, segment_key
from transcode.domain import ArchiveEntry, validate_channel_id
from transcode.errors import ArchiveNotFound, InvalidRequest

# Where a view names F's files, below the rung's own directory: ``feed/{frung}/{segment}``.
# A rung's directory holds segment files only, so this never meets a rung or a segment.
FEED_DIR = "feed"
# A number F has no segment for shows C's own once C is this many target durations past it.
DOWN_TARGETS = 3
_SPAN = re.compile(r"([0-9]{1,12})-([0-9]{1,12})", re.ASCII)

# C's SCTE-35 date ranges before each of its numbers (absent: none).
DateRanges = Mapping[int, tuple[hls.DateRange, ...]]


@dataclass(frozen=True, slots=True)
class Cut:
    """The feed and the instants of a cut (``end`` None: open-ended), as its path says them
    (``x/{feed}/{start}-{end}/``, epoch seconds, end 0 for open)."""

    feed: str
    start: datetime
    end: datetime | None = None

    def covers(self, start: datetime, duration: float) -> bool:
        """True when C's segment of ``duration`` seconds starting at ``start`` shows the
        feed: it overlaps the cut (the segment on air when the cut began shows the feed
        too, so the picture switches a segment sooner)."""
        ends = start + timedelta(seconds=duration)
        return self.start < ends and (self.end is None or start < self.end)


def parse_cut(channel: str, feed: str, span: str) -> Cut:
    """A cut of ``channel`` from its path parts; ``InvalidRequest`` naming the bad one."""
    validate_channel_id("feed", feed)
    if feed == channel:
        raise InvalidRequest("feed", "must be another channel")
    match = _SPAN.fullmatch(span)
    if match is None:
        raise InvalidRequest("cut", "must be {start}-{end} in epoch seconds (end 0: open)")
    start, end = int(match[1]), int(match[2])
    if start <= 0:
        raise InvalidRequest("cut", "the start must be after the epoch")
    if end and end <= start:
        raise InvalidRequest("cut", "the end must be 0 (open) or after the start")
    return Cut(
        feed,
        datetime.fromtimestamp(start, UTC),
        datetime.fromtimestamp(end, UTC) if end else None,
    )


def feed_rung(
    rung: RungInfo, bandwidth: int, candidates: Sequence[tuple[RungInfo, int]]
) -> str | None:
    """F's rung or rendition for C's ``rung`` (``bandwidth``: its average bits/s): the one of
    the same name, else the one of the same kind with the nearest bandwidth (None: F has
    none of that kind). ``candidates`` are F's, each with its average bits/s."""
    same_kind = [(r, rate) for r, rate in candidates if r.kind == rung.kind]
    for r, _rate in same_kind:
        if r.name == rung.name:
            return r.name
    if not same_kind:
        return None
    return min(same_kind, key=lambda c: (abs(c[1] - bandwidth), c[0].name))[0].name


@dataclass(frozen=True, slots=True)
class Piece:
    """One number of a view: C's segment or the F segment replacing it."""

    number: int
    own_start: datetime  # when C's segment of this number starts
    entry: ArchiveEntry  # C's own, or F's when ``from_feed``
    from_feed: bool
    discontinuity: bool  # EXT-X-DISCONTINUITY before it in the view
    own_discontinuity: bool  # what C's own playlist says of this number


def _match(
    feed: Sequence[ArchiveEntry], starts: Sequence[datetime], when: datetime, slack: float
) -> ArchiveEntry | None:
    """F's segment for a number starting at ``when``, once it can no longer change; None
    while F has not caught up (or has nothing within ``slack`` seconds). ``starts`` are
    ``feed``'s starts."""
    at = bisect.bisect_left(starts, when)
    near = feed[max(0, at - 1) : at + 1]
    if not near:
        return None
    best = min(near, key=lambda f: (abs((f.start - when).total_seconds()), f.start))
    if abs((best.start - when).total_seconds()) > slack:
        return None
    last = feed[-1]
    # A segment F publishes later starts at or after the last one's end: it cannot be
    # closer once F has one starting at or after ``when``, or ``when`` is in the first
    # half of F's last segment.
    settled = last.start >= when or when <= last.start + timedelta(seconds=last.duration / 2)
    return best if settled else None


def _given_up(when: datetime, newest: datetime, slack: float) -> bool:
    """Is a number starting at ``when`` that F has no segment for already
    :data:`DOWN_TARGETS` target durations behind C's newest? F (stopped, never started, or
    restarted with a gap) has had its chance: the number shows C's own segment, so boxes
    see the channel rather than a picture frozen for as long as F is away."""
    return newest - when > timedelta(seconds=DOWN_TARGETS * slack)


def splice(
    own: Sequence[ArchiveEntry],
    feed: Sequence[ArchiveEntry],
    cut: Cut,
    *,
    slack_seconds: float,
    before: Piece | None = None,
) -> list[Piece]:
    """C's segments ``own`` (in number order) with those inside the cut replaced by F's
    (``feed``, in start order), up to the first one F has not caught up with (or, once C is
    :data:`DOWN_TARGETS` targets past a number F never showed near, C's own); ``before``
    is the piece of the number just before ``own[0]``, if known (the joins depend on it)."""
    starts = [f.start for f in feed]
    newest = own[-1].start if own else cut.start
    pieces: list[Piece] = []
    previous = before
    for entry in own:
        match = None
        if cut.covers(entry.start, entry.duration):
            match = _match(feed, starts, entry.start, slack_seconds)
            if match is None and not _given_up(entry.start, newest, slack_seconds):
                break
        if match is None:
            # C's own: outside the cut, or a number F never showed near. The first of C's
            # after F's is a join.
            join = previous is not None and previous.from_feed
            piece = Piece(entry.sequence, entry.start, entry, False,
                          entry.discontinuity or join, entry.discontinuity)  # fmt: skip
        else:
            follows = (
                previous is not None
                and previous.from_feed
                and previous.entry.sequence + 1 == match.sequence
                and not match.discontinuity
            )
            piece = Piece(entry.sequence, entry.start, match, True,
                          entry.discontinuity or not follows, entry.discontinuity)  # fmt: skip
        pieces.append(piece)
        previous = piece
    return pieces


@dataclass(frozen=True, slots=True)
class Tally:
    """What a live view added to C's discontinuities through the number of ``piece``: kept
    between reloads, so a reload splices only the numbers after it, not the cut's whole
    past. The same from any origin: the splice is a function of the archives."""

    piece: Piece
    added: int


def added_discontinuities(pieces: Sequence[Piece]) -> int:
    """How many discontinuities the view adds to C's own over ``pieces``."""
    return sum(1 for p in pieces if p.discontinuity and not p.own_discontinuity)


def _segments(
    pieces: Sequence[Piece], *, channel: str, cut: Cut, feed_rung: str, key_base_url: str,
    dateranges: DateRanges | None,
) -> list[hls.Segment]:  # fmt: skip
    out = []
    for i, p in enumerate(pieces):
        name = p.entry.path.rsplit("/", 1)[-1]
        owner = cut.feed if p.from_feed else channel
        out.append(
            hls.Segment(
                uri=f"{FEED_DIR}/{feed_rung}/{name}" if p.from_feed else name,
                duration=p.entry.duration,
                program_date_time=p.entry.start,
                # The first one's is implied by the discontinuity sequence.
                discontinuity=p.discontinuity and i > 0,
                key=segment_key(p.entry, owner, key_base_url),
                dateranges=() if p.from_feed or not dateranges else dateranges.get(p.number, ()),
            )
        )
    return out


def render_live_cut(
    entries: Sequence[ArchiveEntry],
    feed: Sequence[ArchiveEntry],
    *,
    first: int,
    discontinuity_sequence: int,
    target_duration: int,
    cut: Cut,
    channel: str,
    feed_rung: str,
    key_base_url: str,
    tally: Tally | None = None,
    dateranges: DateRanges | None = None,
) -> tuple[str, Tally | None]:
    """A live view's playlist, and the tally for the next reload. ``entries`` are C's
    segments after ``tally``'s number, which is at most ``first`` (without a tally: from the
    cut's start, or from ``first`` when that is later) to the latest, ``first`` the first
    number C's playlist lists now, ``discontinuity_sequence`` and ``target_duration`` what
    C's playlist says (the target is raised to F's where F's segments are longer),
    ``dateranges`` C's date ranges of the numbers from ``first`` on."""
    before = None if tally is None else tally.piece
    pieces = splice(entries, feed, cut, slack_seconds=slack_seconds((), target_duration),
                    before=before)  # fmt: skip
    # The tally's own number is still listed while it is the first.
    carried = [] if before is None or before.number != first else [before]
    listed = [p for p in (*carried, *pieces) if p.number >= first]
    if not listed:
        raise ArchiveNotFound("nothing of the cut view is published yet")
    # The view's additions to the numbers that slid out, and to the first one (implied).
    counted = [p for p in pieces if p.number <= first]
    added = (0 if tally is None else tally.added) + added_discontinuities(counted)
    if counted:
        tally = Tally(counted[-1], added)
    segments = _segments(listed, channel=channel, cut=cut, feed_rung=feed_rung,
                         key_base_url=key_base_url, dateranges=dateranges)  # fmt: skip
    text = hls.render_media(
        hls.MediaPlaylist(
            segments=segments,
            media_sequence=listed[0].number,
            discontinuity_sequence=discontinuity_sequence + added,
            target_duration=max(target_duration, hls.target_duration(segments)),
        )
    )
    return text, tally


def view_state(
    state: WindowState, pieces: Sequence[Piece], own: Sequence[ArchiveEntry]
) -> WindowState:
    """A catch-up view's state: the window's, but ``growing`` while F has not caught up with
    all of its numbers (the view waits for F, as a growing window waits for C)."""
    return state if len(pieces) == len(own) else "growing"


def render_catchup_cut(
    pieces: Sequence[Piece],
    *,
    state: WindowState,
    channel: str,
    cut: Cut,
    feed_rung: str,
    key_base_url: str,
    dateranges: DateRanges | None = None,
) -> str:
    """A catch-up window's view (``state``: :func:`view_state`), made as catch-up makes
    the window's own playlist (:func:`transcode.archive.catchup_playlist`); ``dateranges``:
    C's date ranges of the window's numbers."""
    if not pieces:
        raise ArchiveNotFound("no archived segments of the cut view in the window")
    segments = _segments(pieces, channel=channel, cut=cut, feed_rung=feed_rung,
                         key_base_url=key_base_url, dateranges=dateranges)  # fmt: skip
    return hls.render_media(catchup_playlist(segments, pieces[0].number, state))


def slack_seconds(own: Sequence[ArchiveEntry], pinned: int = 0) -> float:
    """One target duration (``pinned``, a live playlist's, or that of C's segments ``own``):
    how far an F segment may start from the number it replaces."""
    longest = max((e.duration for e in own), default=0.0)
    return float(max(pinned, math.ceil(longest), 1))
