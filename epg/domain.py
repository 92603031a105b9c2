"""EPG domain: channels, programmes, schedule rules and recurring slots (pure, no I/O).

Times are UTC instants; a programme covers the half-open interval
``[start, stop)``, so one programme may end exactly when the next starts.
Local wall-clock time only appears when a recurring slot is expanded in a
channel's IANA timezone, with an explicit policy for DST gaps and folds.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from epg.errors import (
    BatchTooLarge,
    InvalidChannel,
    InvalidProgramme,
    InvalidSlotRule,
    InvalidTimeRange,
    UnknownTimezone,
)
from headend.ids import CHANNEL_ID_RULE, is_channel_id

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_TEXT_CHARS = 256  # titles, sub-titles, names, categories, keywords
MAX_DESC_CHARS = 8192
MAX_ITEMS = 32  # per repeated field of a programme
MAX_PROGRAMME_SECONDS = 48 * 3600
MAX_CATCHUP_DAYS = 30
MAX_CHANNEL_NUMBER = 99_999
MAX_WINDOW_SECONDS = 31 * 86400

_PROGRAMME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_LANG = re.compile(r"^(?:[a-zA-Z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)?$")
_REGION = re.compile(r"^\d{6}$")
_OWNER = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,62}$")
_GROUP = re.compile(r"^[^\x00-\x1f]{0,64}$")


class WritePolicy(enum.Enum):
    """What a programme write does when it overlaps programmes already scheduled."""

    REFUSE = "refuse"
    REPLACE = "replace"


class GapPolicy(enum.Enum):
    """What to do with a local time that does not exist (clocks spring forward)."""

    SKIP = "skip"
    SHIFT_FORWARD = "shift_forward"


class FoldPolicy(enum.Enum):
    """Which instant a local time that occurs twice (clocks fall back) means."""

    FIRST = "first"
    SECOND = "second"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Text:
    """A string in one language (``lang`` may be empty when unknown)."""

    lang: str
    text: str


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel in the catalogue; ``version`` increases on every update."""

    id: str
    number: int
    names: tuple[Text, ...]
    owner: str
    timezone: str = DEFAULT_TIMEZONE
    logo_url: str = ""
    catchup_days: int = 0
    group: str = ""
    active: bool = True
    version: int = 0

    def name(self, lang: str = "") -> str:
        """The display name in ``lang``, else the first one."""
        for n in self.names:
            if n.lang == lang:
                return n.text
        return self.names[0].text


@dataclass(frozen=True, slots=True)
class Rating:
    """A content rating in a rating system (e.g. ``CN``, ``MPAA``)."""

    system: str
    value: str


@dataclass(frozen=True, slots=True)
class Rights:
    """Catch-up permission and blackout regions (6-digit division codes) with a slate."""

    catchup_allowed: bool = True
    blackout_regions: tuple[str, ...] = ()
    blackout_slate: str = ""

    @property
    def is_default(self) -> bool:
        """True when nothing restricts the programme."""
        return self.catchup_allowed and not self.blackout_regions and not self.blackout_slate


DEFAULT_RIGHTS = Rights()


@dataclass(frozen=True, slots=True)
class Programme:
    """One scheduled programme on one channel, ``[start, stop)`` in UTC."""

    id: str
    channel_id: str
    start: datetime
    stop: datetime
    titles: tuple[Text, ...]
    sub_titles: tuple[Text, ...] = ()
    descriptions: tuple[Text, ...] = ()
    categories: tuple[Text, ...] = ()
    keywords: tuple[Text, ...] = ()
    episode_xmltv_ns: str = ""
    episode_onscreen: str = ""
    ratings: tuple[Rating, ...] = ()
    previously_shown: bool = False
    premiere: bool = False
    icons: tuple[str, ...] = ()
    rights: Rights = field(default=DEFAULT_RIGHTS)

    @property
    def start_s(self) -> int:
        """Start as epoch seconds."""
        return int(self.start.timestamp())

    @property
    def stop_s(self) -> int:
        """Stop as epoch seconds."""
        return int(self.stop.timestamp())

    def title(self, lang: str = "") -> str:
        """The title in ``lang``, else the first one."""
        for t in self.titles:
            if t.lang == lang:
                return t.text
        return self.titles[0].text


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a programme write changed."""

    version: int
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    trimmed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """An unscheduled interval ``[start, stop)`` in a channel's guide."""

    start: datetime
    stop: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the guide, as sent by ``WatchChanges``."""

    version: int
    kind: str  # "channel", "programmes", or "resync" when history was trimmed
    channel_id: str
    deleted: bool = False
    programme_ids: tuple[str, ...] = ()
    window_start: datetime | None = None
    window_stop: datetime | None = None


@dataclass(frozen=True, slots=True)
class SlotRule:
    """A recurring slot: on ``weekdays`` (0 = Monday) at local ``at``, for ``duration``."""

    weekdays: frozenset[int]
    at: time
    duration: timedelta
    titles: tuple[Text, ...]
    first_day: date
    last_day: date
    gap_policy: GapPolicy = GapPolicy.SHIFT_FORWARD
    fold_policy: FoldPolicy = FoldPolicy.FIRST
    categories: tuple[Text, ...] = ()
    descriptions: tuple[Text, ...] = ()


# ---------------------------------------------------------------- validation


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone called ``name``; refuses anything not in the tz database."""
    if name not in _zone_names():
        raise UnknownTimezone("timezone", f"unknown IANA timezone {name!r}")
    return zoneinfo.ZoneInfo(name)


def validate_channel_id(channel_id: str, field_name: str = "channel_id") -> str:
    """Check a DNS-like channel id."""
    if not is_channel_id(channel_id):
        raise InvalidChannel(field_name, f"{channel_id!r} is not a channel id ({CHANNEL_ID_RULE})")
    return channel_id


@functools.lru_cache(maxsize=1024)
def _lang_ok(lang: str) -> bool:
    # Guides use a handful of language codes: match each one once.
    return _LANG.match(lang) is not None


def _texts(
    items: Sequence[Text],
    prefix: str,
    field_name: str,
    *,
    limit: int,
    required: bool,
    error: type[InvalidChannel] | type[InvalidProgramme],
) -> None:
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
        if not t.text.strip():
            raise error(f"{prefix}.{field_name}[{i}].text", "must not be empty")
        if len(t.text) > limit:
            raise error(f"{prefix}.{field_name}[{i}].text", f"longer than {limit} characters")


def _url(value: str, name: str, error: type[InvalidChannel] | type[InvalidProgramme]) -> None:
    if value and (
        not value.startswith(("http://", "https://"))
        or len(value) > 1024
        or any(c.isspace() for c in value)
    ):
        raise error(name, "must be an http(s) URL of at most 1024 characters")


def validate_channel(channel: Channel) -> Channel:
    """Check every field of a channel; returns it unchanged."""
    validate_channel_id(channel.id, "channel.id")
    if not 0 <= channel.number <= MAX_CHANNEL_NUMBER:
        raise InvalidChannel("channel.number", f"must be between 0 and {MAX_CHANNEL_NUMBER}")
    _texts(
        channel.names,
        "channel",
        "names",
        limit=MAX_TEXT_CHARS,
        required=True,
        error=InvalidChannel,
    )
    if not _OWNER.match(channel.owner):
        raise InvalidChannel("channel.owner", "must be a broadcaster id")
    try:
        zone(channel.timezone)
    except UnknownTimezone as err:
        raise UnknownTimezone("channel.timezone", err.reason) from err
    _url(channel.logo_url, "channel.logo_url", InvalidChannel)
    if not 0 <= channel.catchup_days <= MAX_CATCHUP_DAYS:
        raise InvalidChannel("channel.catchup_days", f"must be between 0 and {MAX_CATCHUP_DAYS}")
    if not _GROUP.match(channel.group):
        raise InvalidChannel("channel.group", "at most 64 printable characters")
    return channel


def validate_programme(p: Programme, prefix: str = "programme") -> Programme:
    """Check every field of a programme; returns it unchanged."""
    if not _PROGRAMME_ID.match(p.id):
        raise InvalidProgramme(f"{prefix}.id", "must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
    if not is_channel_id(p.channel_id):  # the field name is only formatted on failure
        validate_channel_id(p.channel_id, f"{prefix}.channel_id")
    for name, value in (("start", p.start), ("stop", p.stop)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidProgramme(f"{prefix}.{name}", "naive time: an explicit offset is required")
        if value.microsecond:
            raise InvalidProgramme(f"{prefix}.{name}", "sub-second precision is not allowed")
    seconds = (p.stop - p.start).total_seconds()
    if seconds <= 0:
        raise InvalidProgramme(f"{prefix}.stop", "must be after start (zero or negative duration)")
    if seconds > MAX_PROGRAMME_SECONDS:
        raise InvalidProgramme(f"{prefix}.stop", "a programme may last at most 48 hours")
    for items, field_name, limit, required in (
        (p.titles, "titles", MAX_TEXT_CHARS, True),
        (p.sub_titles, "sub_titles", MAX_TEXT_CHARS, False),
        (p.descriptions, "descriptions", MAX_DESC_CHARS, False),
        (p.categories, "categories", MAX_TEXT_CHARS, False),
        (p.keywords, "keywords", MAX_TEXT_CHARS, False),
    ):
        if items or required:
            _texts(
                items, prefix, field_name, limit=limit, required=required, error=InvalidProgramme
            )
    for name, episode in (
        ("episode_xmltv_ns", p.episode_xmltv_ns),
        ("episode_onscreen", p.episode_onscreen),
    ):
        if len(episode) > 64:
            raise InvalidProgramme(f"{prefix}.{name}", "longer than 64 characters")
    if len(p.ratings) > MAX_ITEMS or any(
        not r.value or len(r.value) > 64 or len(r.system) > 64 for r in p.ratings
    ):
        raise InvalidProgramme(f"{prefix}.ratings", "each needs a value of at most 64 characters")
    if len(p.icons) > MAX_ITEMS:
        raise InvalidProgramme(f"{prefix}.icons", f"at most {MAX_ITEMS} allowed")
    for i, icon in enumerate(p.icons):
        _url(icon, f"{prefix}.icons[{i}]", InvalidProgramme)
        if not icon:
            raise InvalidProgramme(f"{prefix}.icons[{i}]", "must not be empty")
    for i, region in enumerate(p.rights.blackout_regions):
        if not _REGION.match(region):
            raise InvalidProgramme(
                f"{prefix}.blackout_regions[{i}]", f"{region!r} is not a 6-digit division code"
            )
    if len(p.rights.blackout_regions) > 4096:
        raise InvalidProgramme(f"{prefix}.blackout_regions", "at most 4096 regions")
    _url(p.rights.blackout_slate, f"{prefix}.blackout_slate", InvalidProgramme)
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


def programme_id(channel_id: str, start: datetime) -> str:
    """A stable id from channel and start, so re-importing a guide yields the same ids."""
    digest = hashlib.sha1(f"{channel_id}|{int(start.timestamp())}".encode()).hexdigest()
    return f"p{digest[:20]}"


def find_gaps(
    programmes: Sequence[Programme], start: datetime, stop: datetime, *, min_seconds: int = 1
) -> list[Gap]:
    """Unscheduled intervals inside ``[start, stop)`` given a channel's programmes."""
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


# ---------------------------------------------------------------- recurring slots


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
    if rule.last_day < rule.first_day:
        raise InvalidSlotRule("rule.last_day", "must not be before first_day")
    if (rule.last_day - rule.first_day).days > 366:
        raise InvalidSlotRule("rule.last_day", "a rule may span at most 366 days")
    if not rule.titles:
        raise InvalidSlotRule("rule.titles", "at least one title is required")


# ---------------------------------------------------------------- serialization
# Compact JSON for the store: positional arrays keep each programme small and
# quick to decode on the NowNext/Range hot path.


# The stdlib's C string encoder, exactly what json.dumps(ensure_ascii=False) uses.
_jstr: Callable[[str], str] = json.encoder.encode_basestring


def _tx(items: Iterable[Text]) -> list[list[str]]:
    return [[t.lang, t.text] for t in items]


def _xt(items: Any) -> tuple[Text, ...]:
    return tuple(Text(a, b) for a, b in items)


def _jtx(items: Sequence[Text]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        t = items[0]
        return f"[{_jstr(t.lang)},{_jstr(t.text)}]"
    return ",".join([f"[{_jstr(t.lang)},{_jstr(t.text)}]" for t in items])


def encode_programme(p: Programme) -> str:
    """The stored form of a programme's guide data (bounds and rights are kept apart).

    Byte-for-byte what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
    gives for the positional array (the unchanged check compares stored strings),
    built by hand because the generic encoder was a large share of bulk-import time.
    """
    ratings = ",".join([f"[{_jstr(r.system)},{_jstr(r.value)}]" for r in p.ratings])
    icons = ",".join([_jstr(i) for i in p.icons])
    return (
        f"[[{_jtx(p.titles)}],[{_jtx(p.sub_titles)}],[{_jtx(p.descriptions)}],"
        f"[{_jtx(p.categories)}],[{_jtx(p.keywords)}],{_jstr(p.episode_xmltv_ns)},"
        f"{_jstr(p.episode_onscreen)},[{ratings}],{int(p.previously_shown)},"
        f"{int(p.premiere)},[{icons}]]"
    )


def decode_programme(
    pid: str, channel_id: str, start_s: int, stop_s: int, data: str, rights: Rights = DEFAULT_RIGHTS
) -> Programme:
    """Rebuild a programme from its stored form."""
    t, st, d, c, k, ens, eos, r, ps, pr, ic = json.loads(data)
    return Programme(
        id=pid,
        channel_id=channel_id,
        start=datetime.fromtimestamp(start_s, UTC),
        stop=datetime.fromtimestamp(stop_s, UTC),
        titles=_xt(t),
        sub_titles=_xt(st),
        descriptions=_xt(d),
        categories=_xt(c),
        keywords=_xt(k),
        episode_xmltv_ns=ens,
        episode_onscreen=eos,
        ratings=tuple(Rating(a, b) for a, b in r),
        previously_shown=bool(ps),
        premiere=bool(pr),
        icons=tuple(ic),
        rights=rights,
    )


def encode_rights(r: Rights) -> str:
    """The stored form of a programme's rights."""
    return json.dumps(
        [int(r.catchup_allowed), list(r.blackout_regions), r.blackout_slate], separators=(",", ":")
    )


def decode_rights(data: str | None) -> Rights:
    """Rebuild rights; ``None`` means the defaults."""
    if not data:
        return DEFAULT_RIGHTS
    ca, regions, slate = json.loads(data)
    return Rights(bool(ca), tuple(regions), slate)


def encode_channel(c: Channel) -> str:
    """The stored form of a channel."""
    return json.dumps(
        {
            "id": c.id,
            "number": c.number,
            "names": _tx(c.names),
            "owner": c.owner,
            "timezone": c.timezone,
            "logo_url": c.logo_url,
            "catchup_days": c.catchup_days,
            "group": c.group,
            "active": c.active,
            "version": c.version,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_channel(data: str | bytes) -> Channel:
    """Rebuild a channel from its stored form."""
    d = json.loads(data)
    return Channel(
        id=d["id"],
        number=d["number"],
        names=_xt(d["names"]),
        owner=d["owner"],
        timezone=d["timezone"],
        logo_url=d["logo_url"],
        catchup_days=d["catchup_days"],
        group=d["group"],
        active=d["active"],
        version=d["version"],
    )


def with_version(channel: Channel, version: int) -> Channel:
    """A copy of ``channel`` at ``version``."""
    return replace(channel, version=version)
