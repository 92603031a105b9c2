"""Viewing figures as values, and the rules for windows and buckets (pure: no Redis, no gRPC).

A cell is the set of dimensions figures are kept for (``channel``; ``channel`` and
``carrier``; all three ...): distinct boxes and peaks do not add up, so every set of
dimensions a query can fix (its ``group_by`` plus its filters) has figures of its own.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from subscriber.errors import InvalidField

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The longest window one query reads.
MAX_WINDOW = timedelta(days=92)


class Dimension(enum.Enum):
    """What a row's key names (the order is the cells' order)."""

    CHANNEL = "channel"
    CARRIER = "carrier"
    REGION = "region"


class Granularity(enum.Enum):
    """A bucket's length."""

    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        """The bucket's duration."""
        return HOUR if self is Granularity.HOUR else DAY


Cell = tuple[Dimension, ...]
# Every non-empty set of dimensions, in the dimensions' order.
CELLS: tuple[Cell, ...] = tuple(
    cell for size in (1, 2, 3) for cell in itertools.combinations(tuple(Dimension), size)
)


@dataclass(frozen=True, slots=True)
class ViewingRow:
    """One bucket of one key (see ``protos/reports.proto``)."""

    bucket_start: datetime
    key: str
    watch_seconds: int
    unique_boxes: int
    peak_concurrency: int


@dataclass(frozen=True, slots=True)
class ViewingQuery:
    """A window of buckets, grouped by one dimension, optionally filtered (``""``: all)."""

    start: datetime
    end: datetime
    granularity: Granularity = Granularity.HOUR
    group_by: Dimension = Dimension.CHANNEL
    channel_id: str = ""
    carrier_id: str = ""
    region: str = ""

    def filters(self) -> dict[Dimension, str]:
        """The dimensions the query fixes, with their values."""
        given = {
            Dimension.CHANNEL: self.channel_id,
            Dimension.CARRIER: self.carrier_id,
            Dimension.REGION: self.region,
        }
        return {dim: value for dim, value in given.items() if value}

    def cell(self) -> Cell:
        """The cell whose figures answer the query: ``group_by`` and the filtered dimensions."""
        fixed = {self.group_by, *self.filters()}
        return tuple(dim for dim in Dimension if dim in fixed)


@dataclass(frozen=True, slots=True)
class ChannelViewers:
    """Boxes playing a channel now, for one carrier."""

    channel_id: str
    carrier_id: str
    viewers: int


def floor_to(when: datetime, length: timedelta) -> datetime:
    """The start of the UTC bucket of ``length`` (an hour or a day) holding ``when``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (when - epoch) // length * length


def window(
    start: datetime | None,
    end: datetime | None,
    granularity: Granularity,
    *,
    now: datetime,
    retention: timedelta,
) -> tuple[datetime, datetime]:
    """The query's window in whole buckets (start rounded down, end up; end unset: now);
    ``InvalidField`` unless it is non-empty, at most ``MAX_WINDOW`` and inside retention."""
    if start is None:
        raise InvalidField("start_time", "required")
    end = now if end is None else end
    if end <= start:
        raise InvalidField("end_time", "must be after start_time")
    if end - start > MAX_WINDOW:
        raise InvalidField("end_time", f"a window is at most {MAX_WINDOW.days} days")
    if start < now - retention:
        raise InvalidField("start_time", f"figures are kept {retention.days} days")
    length = granularity.length
    first = floor_to(start, length)
    last = floor_to(end, length)
    return first, last if last == end else last + length


def day_rows(
    key: str,
    day: datetime,
    figures: dict[str, int],
    granularity: Granularity,
    start: datetime,
    end: datetime,
) -> list[ViewingRow]:
    """The rows of one key's day, from its stored figures (``w<h>`` watch ms, ``u<h>``
    boxes, ``p<h>`` peak of hour ``h``; ``u`` the day's boxes), inside ``start``-``end``.
    A day's watch time is the sum of its hours, its peak their maximum."""
    hours = [
        (day + h * HOUR, figures.get(f"w{h}", 0), figures.get(f"u{h}", 0), figures.get(f"p{h}", 0))
        for h in range(24)
    ]
    if granularity is Granularity.DAY:
        watch = sum(w for _, w, _, _ in hours)
        peak = max(p for _, _, _, p in hours)
        hours = [(day, watch, figures.get("u", 0), peak)]
    return [
        ViewingRow(bucket, key, watch_ms // 1000, boxes, peak)
        for bucket, watch_ms, boxes, peak in hours
        if start <= bucket < end and (watch_ms or boxes or peak)
    ]
