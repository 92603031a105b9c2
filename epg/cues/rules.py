"""What makes a cue acceptable (pure): every refusal names the request field, like the rest
of the EPG (``cue.blackout_regions[3]``, ``cue.duration_seconds``).

Regions use the platform's one rule (``headend.regions.problem``) and text
``headend.text.validate_text``, which already refuses control characters. A cue is
checked as inserted at ``now``: it may start at most a minute in the past (a cue the farm
would still place on the next segment) and at most 30 days ahead.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

from epg.cues.domain import MAX_DURATION_SECONDS, Cue, CueKind
from epg.cues.errors import InvalidCue
from headend import regions
from headend.errors import InvalidArgument
from headend.ids import RECORD_ID_RULE, is_record_id, new_record_id
from headend.text import validate_text

CUE_ID_RULE = RECORD_ID_RULE
# An unset start_time on the wire: the cue starts when the server stores it.
START_NOW = datetime.fromtimestamp(0, UTC)
MAX_PAST = timedelta(seconds=60)
MAX_AHEAD = timedelta(days=30)
MAX_REGIONS = 256
MAX_DESCRIPTION = 200
MAX_EVENT_ID = 2**32 - 1
# ListCues: the widest window, and the defaults of an unset start and end.
MAX_WINDOW = timedelta(days=8)
DEFAULT_LOOKBACK = timedelta(days=1)


def new_cue_id(now: datetime) -> str:
    """``yyyymmdd-hhmmss-`` and six random base32 letters: sortable, unguessable enough."""
    return new_record_id(now.strftime("%Y%m%d-%H%M%S-"))


def validate_cue_id(cue_id: str, field: str = "cue_id") -> str:
    """``cue_id`` if it fits :data:`CUE_ID_RULE`."""
    if not is_record_id(cue_id):
        raise InvalidCue(field, f"must match {CUE_ID_RULE}")
    return cue_id


def validate(cue: Cue, now: datetime) -> Cue:
    """``cue`` as inserted at ``now`` if acceptable, normalised (start set, regions
    deduplicated, the event id it signals made explicit); ``InvalidCue`` naming the field."""
    validate_cue_id(cue.id)
    start = now if cue.start == START_NOW else cue.start
    if start < now - MAX_PAST:
        raise InvalidCue("cue.start_time", f"more than {MAX_PAST.seconds} s in the past")
    if start > now + MAX_AHEAD:
        raise InvalidCue("cue.start_time", f"more than {MAX_AHEAD.days} days ahead")
    duration = cue.duration_seconds
    if not math.isfinite(duration) or not 0 <= duration <= MAX_DURATION_SECONDS:
        raise InvalidCue("cue.duration_seconds", f"0 to {MAX_DURATION_SECONDS:g} seconds")
    if cue.kind is CueKind.SEGMENT and not 1 <= cue.segmentation_type_id <= 255:
        raise InvalidCue("cue.segmentation_type_id", "1 to 255 for a segment cue")
    if cue.kind is CueKind.BREAK and cue.segmentation_type_id:
        raise InvalidCue("cue.segmentation_type_id", "must be 0 for a break")
    if not 0 <= cue.event_id <= MAX_EVENT_ID:
        raise InvalidCue("cue.event_id", "a 32-bit number")
    areas = tuple(dict.fromkeys(cue.blackout_regions))
    if len(areas) > MAX_REGIONS:
        raise InvalidCue("cue.blackout_regions", f"at most {MAX_REGIONS} region codes")
    for i, code in enumerate(cue.blackout_regions):
        problem = regions.problem(code)
        if problem is not None:
            raise InvalidCue(f"cue.blackout_regions[{i}]", problem)
    if areas and duration == 0:
        raise InvalidCue("cue.blackout_regions", "a blackout needs a duration")
    try:
        validate_text("cue.description", cue.description, max_chars=MAX_DESCRIPTION)
    except InvalidArgument as err:
        raise InvalidCue("cue.description", err.reason) from err
    return dataclasses.replace(cue, start=start, blackout_regions=areas, event_id=cue.event)


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """ListCues' ``[start, end)``: start unset, a day before ``now``; end unset, 8 days
    after start; at most 8 days wide."""
    start = now - DEFAULT_LOOKBACK if start is None else start
    end = start + MAX_WINDOW if end is None else end
    if end <= start:
        raise InvalidCue("end_time", "must be after start_time")
    if end - start > MAX_WINDOW:
        raise InvalidCue("end_time", f"at most {MAX_WINDOW.days} days after start_time")
    return start, end


def overlaps(cue: Cue, start: datetime, end: datetime) -> bool:
    """Does ``cue`` run (or a point cue fall) at some instant of ``[start, end)``?"""
    return cue.start < end and (cue.end > start or cue.start >= start)
