"""Schedule rules: what a channel, a programme, a batch and a query window may hold.

Free text follows the platform's one rule (``headend.text.validate_text``): no
control, line-separator or next-line character anywhere a broadcaster can
write, plain newlines only in descriptions. Stored text ends up in M3U
lineups and XMLTV guides, where one such character forges a line or breaks
the document for every box.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime

from epg.domain.model import Channel, Gap, Programme, Scheduled, Text
from epg.errors import (
    BatchTooLarge,
    InvalidChannel,
    InvalidProgramme,
    InvalidSlotRule,
    InvalidTimeRange,
    UnknownTimezone,
)
from headend import regions
from headend.errors import InvalidArgument
from headend.ids import CHANNEL_ID_RULE, is_channel_id
from headend.languages import is_language_tag, validate_languages
from headend.text import validate_text

MAX_TEXT_CHARS = 256  # titles, sub-titles, names, categories, keywords
MAX_DESC_CHARS = 8192
MAX_SHORT_CHARS = 64  # groups, episode numbers, rating systems and values
MAX_URL_CHARS = 1024
MAX_ITEMS = 32  # per repeated field of a programme
MAX_LANGUAGES = 8  # audio or subtitle languages of a programme: one HLS rendition each
MAX_PROGRAMME_SECONDS = 48 * 3600
MAX_CATCHUP_DAYS = 30
MAX_CHANNEL_NUMBER = 99_999
MAX_WINDOW_SECONDS = 31 * 86400
# Programmes live in this span: any instant in it converts to every UTC offset
# and back (a year-1 or year-9999 time overflows in a timezone conversion).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# fullmatch throughout: "$" would also accept one trailing newline.
_PROGRAMME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_OWNER = re.compile(r"[a-z0-9][a-z0-9._:-]{0,62}")
# Whitespace, quotes and angle brackets end a URL early in M3U attributes and HTML.
_URL = re.compile(r"https?://[^\s\"'<>\\^`{|}]+")

ErrorType = type[InvalidChannel] | type[InvalidProgramme] | type[InvalidSlotRule]


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone called ``name``; refuses anything not in the tz database."""
    if name not in _zone_names():
        raise UnknownTimezone("timezone", f"unknown IANA timezone {name!r}")
    return zoneinfo.ZoneInfo(name)


def _channel_id_ok(channel_id: str) -> bool:
    # headend.ids matches with "$", which lets one trailing newline through.
    return is_channel_id(channel_id) and not channel_id.endswith("\n")


def validate_channel_id(channel_id: str, field_name: str = "channel_id") -> str:
    """Check a DNS-like channel id to look up.

    Lookups accept what ids were once created with (a trailing newline got
    through), so such a channel can still be read and deleted; new channels
    and programmes need the strict form (``validate_channel``).
    """
    if not is_channel_id(channel_id):
        raise InvalidChannel(field_name, f"{channel_id!r} is not a channel id ({CHANNEL_ID_RULE})")
    return channel_id


def _strict_channel_id(channel_id: str, field_name: str) -> None:
    if not _channel_id_ok(channel_id):
        raise InvalidChannel(field_name, f"{channel_id!r} is not a channel id ({CHANNEL_ID_RULE})")


def check_text(
    field_name: str,
    value: str,
    error: ErrorType,
    *,
    max_chars: int,
    multiline: bool = False,
    required: bool = False,
) -> str:
    """Apply the platform's text rule to one field, raising this package's ``error``."""
    try:
        return validate_text(
            field_name, value, max_chars=max_chars, multiline=multiline, required=required
        )
    except InvalidArgument as err:
        raise error(err.field, err.reason) from err


@functools.lru_cache(maxsize=1024)
def _lang_ok(lang: str) -> bool:
    # A text's language may be unknown (""); guides use a handful of codes: check each once.
    return not lang or is_language_tag(lang)


def _languages(values: Sequence[str], field_name: str) -> None:
    try:
        validate_languages(field_name, values, limit=MAX_LANGUAGES)
    except InvalidArgument as err:
        raise InvalidProgramme(err.field, err.reason) from err


def texts(
    items: Sequence[Text],
    prefix: str,
    field_name: str,
    *,
    limit: int,
    required: bool,
    error: ErrorType,
    multiline: bool = False,
) -> None:
    """Check a repeated localized text field (languages, emptiness, length, characters)."""
    # Field names are only formatted on failure: this runs for every imported programme.
    if not items:
        if required:
            raise error(f"{prefix}.{field_name}", "at least one is required")
        return
    if len(items) > MAX_ITEMS:
        raise error(f"{prefix}.{field_name}", f"at most {MAX_ITEMS} allowed")
    for i, t in enumerate(items):
        if not _lang_ok(t.lang):
            raise error(f"{prefix}.{field_name}[{i}].lang", f"{t.lang!r} is not a language code")
        text = t.text
        if not text.strip():
            raise error(f"{prefix}.{field_name}[{i}].text", "must not be empty")
        if len(text) > limit:
            raise error(f"{prefix}.{field_name}[{i}].text", f"longer than {limit} characters")
        if not text.isprintable():  # the common case is settled in C above
            check_text(
                f"{prefix}.{field_name}[{i}].text",
                text,
                error,
                max_chars=limit,
                multiline=multiline,
            )


def check_url(value: str, field_name: str, error: ErrorType) -> None:
    """Check an optional http(s) URL (logos, icons, slates)."""
    if not value:
        return
    check_text(field_name, value, error, max_chars=MAX_URL_CHARS)
    if _URL.fullmatch(value) is None:
        raise error(
            field_name,
            f"must be an http(s) URL of at most {MAX_URL_CHARS} characters, "
            "without spaces, quotes or angle brackets",
        )


def validate_channel(channel: Channel) -> Channel:
    """Check every field of a channel; returns it unchanged."""
    _strict_channel_id(channel.id, "channel_id")
    if not 0 <= channel.number <= MAX_CHANNEL_NUMBER:
        raise InvalidChannel("channel.number", f"must be between 0 and {MAX_CHANNEL_NUMBER}")
    texts(
        channel.names,
        "channel",
        "names",
        limit=MAX_TEXT_CHARS,
        required=True,
        error=InvalidChannel,
    )
    if _OWNER.fullmatch(channel.owner) is None:
        raise InvalidChannel("channel.owner", "must be a broadcaster id")
    try:
        zone(channel.timezone)
    except UnknownTimezone as err:
        raise UnknownTimezone("channel.timezone", err.reason) from err
    check_url(channel.logo_url, "channel.logo_url", InvalidChannel)
    if not 0 <= channel.catchup_days <= MAX_CATCHUP_DAYS:
        raise InvalidChannel("channel.catchup_days", f"must be between 0 and {MAX_CATCHUP_DAYS}")
    check_text("channel.group", channel.group, InvalidChannel, max_chars=MAX_SHORT_CHARS)
    return channel


def _check_times(p: Programme, prefix: str) -> None:
    for name, value in (("start", p.start), ("stop", p.stop)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidProgramme(f"{prefix}.{name}", "naive time: an explicit offset is required")
        if value.microsecond:
            raise InvalidProgramme(f"{prefix}.{name}", "sub-second precision is not allowed")
        if not EARLIEST <= value <= LATEST:
            raise InvalidProgramme(
                f"{prefix}.{name}",
                f"{value.isoformat()} is outside {EARLIEST.year} to {LATEST.year}",
            )
    seconds = (p.stop - p.start).total_seconds()
    if seconds <= 0:
        raise InvalidProgramme(f"{prefix}.stop", "must be after start (zero or negative duration)")
    if seconds > MAX_PROGRAMME_SECONDS:
        raise InvalidProgramme(f"{prefix}.stop", "a programme may last at most 48 hours")


def validate_programme_id(pid: str, field_name: str = "id") -> str:
    """Check a programme id a caller names (lookups and deletes as well as writes)."""
    if _PROGRAMME_ID.fullmatch(pid) is None:
        raise InvalidProgramme(field_name, "must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
    return pid


def validate_programme(p: Programme, prefix: str = "programme") -> Programme:
    """Check every field of a programme; returns it unchanged."""
    if _PROGRAMME_ID.fullmatch(p.id) is None:
        raise InvalidProgramme(f"{prefix}.id", "must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
    if not _channel_id_ok(p.channel_id):  # the field name is only formatted on failure
        _strict_channel_id(p.channel_id, f"{prefix}.channel_id")
    _check_times(p, prefix)
    for items, field_name, limit, required, multiline in (
        (p.titles, "titles", MAX_TEXT_CHARS, True, False),
        (p.sub_titles, "sub_titles", MAX_TEXT_CHARS, False, False),
        (p.descriptions, "descriptions", MAX_DESC_CHARS, False, True),
        (p.categories, "categories", MAX_TEXT_CHARS, False, False),
        (p.keywords, "keywords", MAX_TEXT_CHARS, False, False),
    ):
        if items or required:
            texts(
                items,
                prefix,
                field_name,
                limit=limit,
                required=required,
                error=InvalidProgramme,
                multiline=multiline,
            )
    for name, episode in (
        ("episode_xmltv_ns", p.episode_xmltv_ns),
        ("episode_onscreen", p.episode_onscreen),
    ):
        if episode and (len(episode) > MAX_SHORT_CHARS or not episode.isprintable()):
            check_text(f"{prefix}.{name}", episode, InvalidProgramme, max_chars=MAX_SHORT_CHARS)
    if len(p.ratings) > MAX_ITEMS:
        raise InvalidProgramme(f"{prefix}.ratings", f"at most {MAX_ITEMS} allowed")
    for i, r in enumerate(p.ratings):
        if not r.value:
            raise InvalidProgramme(f"{prefix}.ratings[{i}].value", "must not be empty")
        for name, value in (("system", r.system), ("value", r.value)):
            if len(value) > MAX_SHORT_CHARS or not value.isprintable():
                check_text(
                    f"{prefix}.ratings[{i}].{name}",
                    value,
                    InvalidProgramme,
                    max_chars=MAX_SHORT_CHARS,
                )
    if len(p.icons) > MAX_ITEMS:
        raise InvalidProgramme(f"{prefix}.icons", f"at most {MAX_ITEMS} allowed")
    for i, icon in enumerate(p.icons):
        if not icon:
            raise InvalidProgramme(f"{prefix}.icons[{i}]", "must not be empty")
        check_url(icon, f"{prefix}.icons[{i}]", InvalidProgramme)
    if len(p.rights.blackout_regions) > 4096:
        raise InvalidProgramme(f"{prefix}.blackout_regions", "at most 4096 regions")
    for i, region in enumerate(p.rights.blackout_regions):
        problem = regions.problem(region)
        if problem is not None:
            raise InvalidProgramme(f"{prefix}.blackout_regions[{i}]", f"{region!r}: {problem}")
    check_url(p.rights.blackout_slate, f"{prefix}.blackout_slate", InvalidProgramme)
    if p.audio_languages:
        _languages(p.audio_languages, f"{prefix}.audio_languages")
    if p.subtitle_languages:
        _languages(p.subtitle_languages, f"{prefix}.subtitle_languages")
    return p


def validate_batch(
    channel_id: str, programmes: Sequence[Programme], *, max_batch: int
) -> list[Programme]:
    """Check a batch for one channel; returns it sorted by start.

    Refuses programmes of other channels, duplicate ids and overlaps inside
    the batch itself, naming the offending index.
    """
    if len(programmes) > max_batch:
        raise BatchTooLarge(
            f"batch of {len(programmes)} programmes exceeds {max_batch}",
            details={"limit": str(max_batch)},
        )
    seen: set[str] = set()
    for i, p in enumerate(programmes):
        validate_programme(p, f"programmes[{i}]")
        if p.channel_id != channel_id:
            raise InvalidProgramme(
                f"programmes[{i}].channel_id",
                f"{p.channel_id!r} is not the batch channel {channel_id!r}",
            )
        if p.id in seen:
            raise InvalidProgramme(f"programmes[{i}].id", f"duplicate id {p.id!r} in batch")
        seen.add(p.id)
    ordered = sorted(programmes, key=lambda p: p.start)
    for prev, cur in itertools.pairwise(ordered):
        if cur.start < prev.stop:
            raise InvalidProgramme(
                "programmes",
                f"{prev.id} and {cur.id} overlap within the batch",
                details={"conflicting_ids": f"{prev.id},{cur.id}"},
            )
    return ordered


def validate_window(
    start: datetime,
    stop: datetime,
    *,
    max_seconds: int = MAX_WINDOW_SECONDS,
    field_name: str = "stop",
) -> None:
    """Check a query window ``[start, stop)``."""
    if stop <= start:
        raise InvalidTimeRange(field_name, "must be after start")
    if (stop - start).total_seconds() > max_seconds:
        raise InvalidTimeRange(field_name, f"window longer than {max_seconds // 86400} days")


def guide_key(channel: Channel) -> str:
    """The guide order (logical number, then id) as text that sorts the same way:
    the key a page of channels resumes after."""
    return f"{channel.number:010d} {channel.id}"


def time_key(when: datetime) -> str:
    """An instant in [EARLIEST, LATEST] as text that sorts in time order: the key a page of
    one channel's programmes (which never overlap) or gaps resumes after."""
    return f"{int(when.timestamp()):011d}"


def programme_id(channel_id: str, start: datetime) -> str:
    """A stable id from channel and start, so re-importing a guide yields the same ids."""
    digest = hashlib.sha1(f"{channel_id}|{int(start.timestamp())}".encode()).hexdigest()
    return f"p{digest[:20]}"


def find_gaps(
    programmes: Sequence[Scheduled], start: datetime, stop: datetime, *, min_seconds: int = 1
) -> list[Gap]:
    """Unscheduled intervals inside ``[start, stop)`` given a channel's programmes (or
    just their times)."""
    gaps: list[Gap] = []
    cursor = start
    for p in sorted(programmes, key=lambda p: p.start):
        if p.start > cursor:
            gaps.append(Gap(cursor, min(p.start, stop)))
        cursor = max(cursor, p.stop)
        if cursor >= stop:
            break
    if cursor < stop:
        gaps.append(Gap(cursor, stop))
    return [g for g in gaps if (g.stop - g.start).total_seconds() >= min_seconds]
