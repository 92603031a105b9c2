"""Control-plane values and rules: jobs, live channels, archive entries, time windows.

Pure: no Redis, no gRPC, no aiohttp. Stores and faces convert to and from
these frozen dataclasses.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from headend.ids import CHANNEL_ID_MAX, CHANNEL_ID_RULE, is_channel_id
from transcode.errors import InvalidRequest

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Channel ids follow the CDN controller's path rule (the edges match it in URLs).
_RUNG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
# Catch-up windows are bounded so one request cannot render a whole archive.
MAX_WINDOW = timedelta(hours=24)
MAX_CATCHUP_DAYS = 30
LIVE_SCHEMES = ("udp", "http", "https", "file")


class JobState(enum.Enum):
    """Where a VOD packaging job is in its life."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job has got."""

    percent: float = 0.0
    speed: float = 0.0
    eta_seconds: float = 0.0
    phase: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One VOD packaging job: a source packaged into ``vod/<asset>``."""

    id: str
    source: str
    asset: str
    profile: str
    state: JobState
    created_at: datetime
    updated_at: datetime
    progress: Progress = field(default_factory=Progress)
    reason: str = ""
    deliveries: int = 0
    worker: str = ""
    cancel_requested: bool = False
    output: str = ""

    def with_state(self, state: JobState, now: datetime, reason: str = "") -> Job:
        """A copy moved to ``state``."""
        return replace(self, state=state, updated_at=now, reason=reason or self.reason)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One step of a job as WatchJob streams it."""

    job_id: str
    state: JobState
    progress: Progress
    reason: str = ""


def validate_id(field_name: str, value: str) -> str:
    """Check a job, asset or channel id: lower-case, URL- and path-safe, <= 63 chars."""
    if not _ID.match(value):
        raise InvalidRequest(field_name, "must match [a-z0-9][a-z0-9_-]{0,62}")
    return value


def validate_channel_id(field_name: str, value: str) -> str:
    """Check a live channel id (the platform-wide rule in ``headend.ids``)."""
    if not is_channel_id(value):
        raise InvalidRequest(field_name, f"must be {CHANNEL_ID_RULE}, <= {CHANNEL_ID_MAX} chars")
    return value


def validate_rung(value: str) -> str:
    """Check a rung name (it becomes a directory and a URL path segment)."""
    if not _RUNG.match(value):
        raise InvalidRequest("rung", "must match [a-z0-9][a-z0-9_.-]{0,31}")
    return value


def validate_source(value: str) -> str:
    """Check a VOD source: an absolute path or an http(s) URL."""
    if not value:
        raise InvalidRequest("source", "is required")
    if len(value) > 2048:
        raise InvalidRequest("source", "longer than 2048 characters")
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        return value
    if scheme in ("", "file") and value.removeprefix("file://").startswith("/"):
        return value.removeprefix("file://")
    raise InvalidRequest("source", "must be an absolute path or an http(s) URL")


def retry_delay(deliveries: int, *, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff before delivery ``deliveries + 1`` (1 -> base, 2 -> 2*base ...)."""
    return min(max_seconds, base_seconds * 2 ** max(0, deliveries - 1))


class ChannelState(enum.Enum):
    """What a live channel is showing."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    LIVE = "LIVE"
    SLATE = "SLATE"


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """A live channel's configuration: source, ladder, segmenting and catch-up."""

    id: str
    source: str
    profile: str = "default"
    segment_seconds: int = 6
    window_segments: int = 6
    catchup_days: int = 7
    source_timeout_seconds: float = 3.0

    def validate(self) -> LiveChannel:
        """Check every field; returns self for chaining."""
        validate_channel_id("channel.id", self.id)
        validate_live_source(self.source)
        if not 1 <= self.segment_seconds <= 10:
            raise InvalidRequest("channel.segment_seconds", "must be between 1 and 10")
        if not 6 <= self.window_segments <= 100:
            raise InvalidRequest("channel.window_segments", "must be between 6 and 100")
        if not 0 <= self.catchup_days <= MAX_CATCHUP_DAYS:
            raise InvalidRequest(
                "channel.catchup_days", f"must be between 0 and {MAX_CATCHUP_DAYS}"
            )
        if not 0.5 <= self.source_timeout_seconds <= 60:
            raise InvalidRequest("channel.source_timeout_seconds", "must be between 0.5 and 60")
        return self


def validate_live_source(value: str) -> str:
    """Check a live source: ``udp://host:port`` (unicast or multicast), http(s) or a file."""
    parts = urlsplit(value)
    if parts.scheme not in LIVE_SCHEMES:
        raise InvalidRequest("channel.source", f"scheme must be one of {', '.join(LIVE_SCHEMES)}")
    if parts.scheme == "udp" and (not parts.hostname or not parts.port):
        raise InvalidRequest("channel.source", "udp sources need udp://host:port")
    if parts.scheme == "file" and not parts.path.startswith("/"):
        raise InvalidRequest("channel.source", "file sources need an absolute path")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise InvalidRequest("channel.source", "http sources need a host")
    return value


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A live channel's current state as the supervisor reports it."""

    channel: LiveChannel
    state: ChannelState
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    restarts: int = 0
    reason: str = ""
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived live segment of a channel's rung."""

    sequence: int
    start: datetime
    duration: float
    size: int
    path: str
    discontinuity: bool = False

    @property
    def end(self) -> datetime:
        """When the segment's media ends."""
        return self.start + timedelta(seconds=self.duration)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open ``[start, end)`` time window for catch-up."""

    start: datetime
    end: datetime


def parse_instant(field_name: str, raw: str) -> datetime:
    """Read ISO-8601 with an explicit offset, or epoch seconds, as an aware UTC datetime."""
    text = raw.strip()
    if not text:
        raise InvalidRequest(field_name, "is required (ISO-8601 with offset or epoch seconds)")
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isnan(seconds):
        if not math.isfinite(seconds) or not 0 <= seconds < 10**11:
            raise InvalidRequest(field_name, "epoch seconds out of range")
        return datetime.fromtimestamp(seconds, UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidRequest(field_name, f"not ISO-8601 or epoch seconds: {text[:40]!r}") from err
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(field_name, "ISO-8601 time needs a UTC offset (e.g. +08:00 or Z)")
    return value.astimezone(UTC)


def parse_window(
    raw_from: str | None,
    raw_to: str | None,
    *,
    now: datetime,
    names: tuple[str, str] = ("from", "to"),
) -> Window:
    """Validate a catch-up window: both ends present, ordered, in the past, <= MAX_WINDOW."""
    first, last = names
    start = parse_instant(first, raw_from or "")
    end = parse_instant(last, raw_to or "")
    if end <= start:
        raise InvalidRequest(last, f"must be after {first}")
    if end - start > MAX_WINDOW:
        raise InvalidRequest(last, f"window longer than {int(MAX_WINDOW.total_seconds())} s")
    if start >= now:
        raise InvalidRequest(first, "must be in the past")
    return Window(start, end)


def select_window(entries: list[ArchiveEntry], window: Window) -> list[ArchiveEntry]:
    """Segments that overlap ``[start, end)``, in order (whole segments only)."""
    return [e for e in entries if e.start < window.end and e.end > window.start]


# Retention never touches the last half hour, so a channel with no catch-up still
# keeps the segments its live window (<= 100 x 10 s) refers to.
MIN_RETENTION = timedelta(minutes=30)


def retention_cutoff(now: datetime, catchup_days: int) -> datetime:
    """Segments that end before this instant are past the channel's catch-up period."""
    return now - max(timedelta(days=catchup_days), MIN_RETENTION)
