"""Recurring slots: weekly rules in a channel's local time, expanded DST-correctly."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from epg.domain.model import Channel, FoldPolicy, GapPolicy, Programme, SlotRule
from epg.domain.rules import (
    EARLIEST,
    LATEST,
    MAX_DESC_CHARS,
    MAX_PROGRAMME_SECONDS,
    MAX_TEXT_CHARS,
    programme_id,
    texts,
    zone,
)
from epg.errors import InvalidSlotRule

# Local days a rule may cover: a day's times in any zone stay inside the programme span.
_FIRST_DAY = EARLIEST.date() + timedelta(days=2)
_LAST_DAY = LATEST.date() - timedelta(days=3)


def local_to_utc(
    day: date, at: time, tz: zoneinfo.ZoneInfo, *, gap: GapPolicy, fold: FoldPolicy
) -> datetime | None:
    """The UTC instant of local ``day at`` in ``tz``, or None when the policy skips it."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    # A wall time that does not survive a round trip through UTC never happened.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        if gap is GapPolicy.SKIP:
            return None
        # fold=0 uses the offset before the jump, which lands just after it:
        # 01:30 in a 01:00->02:00 spring-forward becomes 02:30 local.
        return first.astimezone(UTC)
    if first.utcoffset() != second.utcoffset():
        if fold is FoldPolicy.SKIP:
            return None
        return (first if fold is FoldPolicy.FIRST else second).astimezone(UTC)
    return first.astimezone(UTC)


def expand_slots(rule: SlotRule, channel: Channel) -> list[Programme]:
    """Expand a recurring slot into programmes in the channel's timezone."""
    validate_slot_rule(rule)
    tz = zone(channel.timezone)
    out: list[Programme] = []
    day = rule.first_day
    while day <= rule.last_day:
        if day.weekday() in rule.weekdays:
            start = local_to_utc(day, rule.at, tz, gap=rule.gap_policy, fold=rule.fold_policy)
            if start is not None:
                out.append(
                    Programme(
                        id=programme_id(channel.id, start),
                        channel_id=channel.id,
                        start=start,
                        stop=start + rule.duration,
                        titles=rule.titles,
                        descriptions=rule.descriptions,
                        categories=rule.categories,
                    )
                )
        day += timedelta(days=1)
    return out


def validate_slot_rule(rule: SlotRule) -> None:
    """Check a recurring slot rule."""
    if not rule.weekdays or any(not 0 <= d <= 6 for d in rule.weekdays):
        raise InvalidSlotRule("rule.weekdays", "give at least one weekday, 0 (Mon) to 6 (Sun)")
    if rule.at.tzinfo is not None:
        raise InvalidSlotRule("rule.at", "a local wall-clock time, without offset")
    seconds = rule.duration.total_seconds()
    if seconds <= 0 or seconds > MAX_PROGRAMME_SECONDS or seconds != int(seconds):
        raise InvalidSlotRule("rule.duration", "whole seconds, more than 0 and at most 48 hours")
    for name, day in (("first_day", rule.first_day), ("last_day", rule.last_day)):
        if not _FIRST_DAY <= day <= _LAST_DAY:
            raise InvalidSlotRule(f"rule.{name}", f"must be between {_FIRST_DAY} and {_LAST_DAY}")
    if rule.last_day < rule.first_day:
        raise InvalidSlotRule("rule.last_day", "must not be before first_day")
    if (rule.last_day - rule.first_day).days > 366:
        raise InvalidSlotRule("rule.last_day", "a rule may span at most 366 days")
    # The rule's texts become every expanded programme's: refuse them here, by rule field.
    for items, field_name, limit, required, multiline in (
        (rule.titles, "titles", MAX_TEXT_CHARS, True, False),
        (rule.categories, "categories", MAX_TEXT_CHARS, False, False),
        (rule.descriptions, "descriptions", MAX_DESC_CHARS, False, True),
    ):
        texts(
            items,
            "rule",
            field_name,
            limit=limit,
            required=required,
            error=InvalidSlotRule,
            multiline=multiline,
        )
