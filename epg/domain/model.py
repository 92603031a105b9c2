"""EPG values: channels, programmes, rights, changes and recurring slot rules (frozen),
and the change feed that carries changes."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple, Protocol

DEFAULT_TIMEZONE = "Asia/Shanghai"


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
    """One scheduled programme on one channel, ``[start, stop)`` in UTC.

    ``audio_languages`` lists its audio tracks' languages, the default (original) first;
    ``subtitle_languages`` the subtitles a viewer can turn on (not burned-in ones).
    """

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
    audio_languages: tuple[str, ...] = ()
    subtitle_languages: tuple[str, ...] = ()

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


class Scheduled(Protocol):
    """Anything on a channel's schedule over ``[start, stop)``: a programme, or its times."""

    @property
    def start(self) -> datetime: ...
    @property
    def stop(self) -> datetime: ...


class Airing(NamedTuple):
    """When a programme is on, without the rest of it (what a guide's status reads)."""

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


class ChangeFeed:
    """A positioned change feed: ``version`` is where it starts (changes after it follow;
    0 when there is nothing to resume from)."""

    def __init__(self, version: int, changes: AsyncGenerator[Change, None]) -> None:
        self.version = version
        self._changes = changes

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> Change:
        return await anext(self._changes)

    async def aclose(self) -> None:
        """Stop following."""
        await self._changes.aclose()


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
